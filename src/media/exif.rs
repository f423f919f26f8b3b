//! Photos: pixel size and EXIF `DateTimeOriginal` (JPEG, HEIC/HEIF, PNG,
//! TIFF, WebP), read with pure-Rust parsers (imagesize, kamadak-exif).

use std::io::{BufRead, Cursor, Seek, SeekFrom};

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use exif::{In, Tag, Value};

/// The moment a photo was taken, as the camera wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExifTime {
    /// Wall-clock time on the camera.
    pub local: NaiveDateTime,
    /// Its UTC offset in minutes, when the camera wrote one
    /// (`OffsetTimeOriginal`); otherwise the station's time zone applies.
    pub offset_minutes: Option<i16>,
}

impl ExifTime {
    pub fn to_utc(self, station_tz: Tz) -> Option<DateTime<Utc>> {
        match self.offset_minutes {
            Some(m) => FixedOffset::east_opt(i32::from(m) * 60)?
                .from_local_datetime(&self.local)
                .single()
                .map(|t| t.with_timezone(&Utc)),
            None => match station_tz.from_local_datetime(&self.local) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
                LocalResult::None => None,
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhotoMeta {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub taken: Option<ExifTime>,
    /// What could not be read (the photo is still a record).
    pub error: Option<String>,
}

fn ascii(field: &exif::Field) -> Option<&[u8]> {
    match &field.value {
        Value::Ascii(v) => v.first().map(|s| s.as_slice()),
        _ => None,
    }
}

fn exif_time(exif: &exif::Exif) -> Result<Option<ExifTime>, String> {
    let field = exif
        .get_field(Tag::DateTimeOriginal, In::PRIMARY)
        .or_else(|| exif.get_field(Tag::DateTimeDigitized, In::PRIMARY))
        .or_else(|| exif.get_field(Tag::DateTime, In::PRIMARY));
    let Some(field) = field else { return Ok(None) };
    let Some(raw) = ascii(field) else {
        return Err("EXIF date is not text".into());
    };
    let mut dt =
        exif::DateTime::from_ascii(raw).map_err(|e| format!("EXIF date {:?}: {e}", String::from_utf8_lossy(raw)))?;
    if let Some(off) = exif.get_field(Tag::OffsetTimeOriginal, In::PRIMARY).and_then(ascii) {
        // A malformed offset is ignored: the station's zone applies then.
        let _ = dt.parse_offset(off);
    }
    let local = NaiveDate::from_ymd_opt(i32::from(dt.year), u32::from(dt.month), u32::from(dt.day))
        .and_then(|d| d.and_hms_opt(u32::from(dt.hour), u32::from(dt.minute), u32::from(dt.second)))
        .ok_or_else(|| format!("EXIF date {:?} is not a valid date", String::from_utf8_lossy(raw)))?;
    Ok(Some(ExifTime { local, offset_minutes: dt.offset }))
}

/// Read a photo's size and capture time from any seekable reader.
pub fn read_photo<R: BufRead + Seek>(mut r: R) -> PhotoMeta {
    let mut meta = PhotoMeta::default();
    let mut errors = Vec::new();
    match imagesize::reader_size(&mut r) {
        Ok(s) => {
            meta.width = u32::try_from(s.width).ok();
            meta.height = u32::try_from(s.height).ok();
        }
        Err(e) => errors.push(format!("image size: {e}")),
    }
    if r.seek(SeekFrom::Start(0)).is_ok() {
        match exif::Reader::new().read_from_container(&mut r) {
            Ok(exif) => match exif_time(&exif) {
                Ok(t) => meta.taken = t,
                Err(e) => errors.push(e),
            },
            // A photo without EXIF is common (PNG screenshots): not an error.
            Err(exif::Error::NotFound(_)) => {}
            Err(e) => errors.push(format!("EXIF: {e}")),
        }
    }
    if !errors.is_empty() {
        meta.error = Some(errors.join("; "));
    }
    meta
}

/// [`read_photo`] over bytes in memory (used by the fuzz targets).
pub fn read_photo_bytes(data: &[u8]) -> PhotoMeta {
    read_photo(Cursor::new(data))
}

/// Build a minimal EXIF (TIFF) block with `DateTimeOriginal` and an offset,
/// for simulated cameras. Returns the APP1 payload (starting `Exif\0\0`).
pub fn exif_block(taken: &str, offset: &str, model: &str) -> Vec<u8> {
    use exif::experimental::Writer;
    use exif::Field;
    let fields = [
        Field { tag: Tag::Model, ifd_num: In::PRIMARY, value: Value::Ascii(vec![model.as_bytes().to_vec()]) },
        Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![taken.as_bytes().to_vec()]),
        },
        Field {
            tag: Tag::OffsetTimeOriginal,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![offset.as_bytes().to_vec()]),
        },
    ];
    let mut w = Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut out = Cursor::new(Vec::new());
    w.write(&mut out, false).expect("writing EXIF to memory cannot fail");
    [b"Exif\0\0".as_slice(), out.get_ref()].concat()
}

/// Insert an APP1 EXIF segment right after a JPEG's SOI marker.
pub fn jpeg_with_exif(jpeg: &[u8], app1_payload: &[u8]) -> Vec<u8> {
    let len = (app1_payload.len() + 2) as u16;
    let mut out = Vec::with_capacity(jpeg.len() + app1_payload.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(app1_payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An ISO BMFF box: size, type, body.
fn bmff_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
}

/// A full box (version 0 or 2 here, flags 0).
fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    bmff_box(kind, &[&[version, 0, 0, 0][..], body].concat())
}

/// A minimal HEIC (HEIF) container, as phones and newer cameras write: an
/// image item of the given size (its coded data is a placeholder) and an
/// Exif item. For the simulator and the tests: real parsers
/// (kamadak-exif, imagesize) read its size and capture time.
pub fn heic_with_exif(width: u32, height: u32, exif_app1_payload: &[u8]) -> Vec<u8> {
    let tiff = exif_app1_payload.strip_prefix(b"Exif\0\0").unwrap_or(exif_app1_payload);
    // Exif item data: offset to the TIFF header, then "Exif\0\0" and TIFF.
    let exif_item = [&6u32.to_be_bytes()[..], b"Exif\0\0", tiff].concat();
    let image_item = b"not a real HEVC bitstream".to_vec();
    let ftyp = bmff_box(b"ftyp", b"heic\0\0\0\0mif1heic");
    let hdlr = full_box(b"hdlr", 0, &[&[0u8; 4][..], b"pict", &[0u8; 12], b"\0"].concat());
    let pitm = full_box(b"pitm", 0, &1u16.to_be_bytes());
    let infe = |id: u16, kind: &[u8; 4]| full_box(b"infe", 2, &[&id.to_be_bytes()[..], &[0, 0], kind, b"\0"].concat());
    let iinf = full_box(b"iinf", 0, &[&2u16.to_be_bytes()[..], &infe(1, b"hvc1"), &infe(2, b"Exif")].concat());
    let ispe = full_box(b"ispe", 0, &[width.to_be_bytes(), height.to_be_bytes()].concat());
    let ipco = bmff_box(b"ipco", &ispe);
    let ipma = full_box(b"ipma", 0, &[&1u32.to_be_bytes()[..], &1u16.to_be_bytes(), &[1, 0x81]].concat());
    let iprp = bmff_box(b"iprp", &[ipco, ipma].concat());
    // iloc v0: 4-byte offsets and lengths, no base offset; two items.
    let iloc_for = |offsets: [u32; 2]| {
        let mut b = vec![0x44, 0x00];
        b.extend_from_slice(&2u16.to_be_bytes());
        for (id, (off, len)) in [(1u16, (offsets[0], image_item.len())), (2u16, (offsets[1], exif_item.len()))] {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&0u16.to_be_bytes()); // data reference: this file
            b.extend_from_slice(&1u16.to_be_bytes()); // one extent
            b.extend_from_slice(&off.to_be_bytes());
            b.extend_from_slice(&(len as u32).to_be_bytes());
        }
        full_box(b"iloc", 0, &b)
    };
    let meta_len = full_box(b"meta", 0, &[&hdlr[..], &pitm, &iinf, &iprp, &iloc_for([0, 0])].concat()).len();
    let data_start = (ftyp.len() + meta_len + 8) as u32;
    let iloc = iloc_for([data_start, data_start + image_item.len() as u32]);
    let meta = full_box(b"meta", 0, &[&hdlr[..], &pitm, &iinf, &iprp, &iloc].concat());
    let mdat = bmff_box(b"mdat", &[image_item, exif_item].concat());
    [ftyp, meta, mdat].concat()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG with an `eXIf` chunk (and a blank image) of the given size.
pub fn png_with_exif(width: u32, height: u32, exif_app1_payload: &[u8]) -> Vec<u8> {
    let tiff = exif_app1_payload.strip_prefix(b"Exif\0\0").unwrap_or(exif_app1_payload);
    let chunk = |kind: &[u8; 4], data: &[u8]| {
        let body = [&kind[..], data].concat();
        [&(data.len() as u32).to_be_bytes()[..], &body, &crc32(&body).to_be_bytes()].concat()
    };
    let ihdr = [&width.to_be_bytes()[..], &height.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    [&b"\x89PNG\r\n\x1a\n"[..], &chunk(b"IHDR", &ihdr), &chunk(b"eXIf", tiff), &chunk(b"IEND", b"")].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heic_and_png_photos_give_their_size_and_time() {
        let block = exif_block("2026:11:26 09:30:15", "+08:00", "PHONE");
        for (what, bytes) in [("heic", heic_with_exif(4032, 3024, &block)), ("png", png_with_exif(640, 480, &block))] {
            let m = read_photo_bytes(&bytes);
            let want = if what == "heic" { (4032, 3024) } else { (640, 480) };
            assert_eq!((m.width, m.height), (Some(want.0), Some(want.1)), "{what}: {m:?}");
            let t = m.taken.unwrap_or_else(|| panic!("{what}: no time: {m:?}"));
            assert_eq!(t.to_utc(chrono_tz::UTC).unwrap().to_rfc3339(), "2026-11-26T01:30:15+00:00", "{what}");
            assert_eq!(m.error, None, "{what}");
        }
        assert_eq!(crate::media::sniff::sniff(&heic_with_exif(1, 1, &block)).unwrap().format, "heif");
    }

    /// The smallest baseline JPEG header imagesize understands (SOI + SOF0).
    fn tiny_jpeg() -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x30, 0x00, 0x40, 0x03]);
        j.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    #[test]
    fn reads_size_and_time_with_offset() {
        let j = jpeg_with_exif(&tiny_jpeg(), &exif_block("2026:11:26 09:30:15", "+08:00", "CAM0042"));
        let m = read_photo_bytes(&j);
        assert_eq!((m.width, m.height), (Some(64), Some(48)));
        let t = m.taken.unwrap();
        assert_eq!(t.offset_minutes, Some(480));
        assert_eq!(t.to_utc(chrono_tz::UTC).unwrap().to_rfc3339(), "2026-11-26T01:30:15+00:00");
        assert_eq!(m.error, None);
    }

    #[test]
    fn time_without_offset_uses_the_station_zone() {
        let t = ExifTime {
            local: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap().and_hms_opt(9, 30, 0).unwrap(),
            offset_minutes: None,
        };
        assert_eq!(t.to_utc(chrono_tz::Asia::Shanghai).unwrap().to_rfc3339(), "2026-11-26T01:30:00+00:00");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let m = read_photo_bytes(b"\xFF\xD8\xFF\xE1\x00\x10Exif\0\0garbage!!");
        assert!(m.error.is_some());
        let m = read_photo_bytes(b"");
        assert!(m.error.is_some());
    }
}
