//! Reading audio/video containers with libav (ffmpeg-next).
//!
//! **Invariant:** this parses untrusted bytes in C; it is only ever called in
//! a prober child process (see [`super::worker`]), never in the daemon.

use std::path::Path;

use ff::codec::packet::side_data::Type as SideDataType;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;

/// What libav says about a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvInfo {
    pub container: String,
    pub duration_secs: Option<f64>,
    /// `creation_time` from the container or its first stream, as written.
    pub creation_time: Option<String>,
    pub video: Option<VideoStream>,
    pub audio: Option<AudioStream>,
    /// Damage found while reading the media data (truncation, read errors).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoStream {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    /// Display rotation in degrees (counter-clockwise), from the stream's
    /// display matrix.
    pub rotation: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioStream {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
}

/// Initialise libav once per process, quietly (hostile files make it talk).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Quiet);
    });
}

fn rational(r: ff::Rational) -> Option<f64> {
    (r.denominator() != 0 && r.numerator() > 0).then(|| f64::from(r))
}

fn rotation_of(stream: &ff::format::stream::Stream<'_>) -> Option<f64> {
    for sd in stream.side_data() {
        if sd.kind() == SideDataType::DisplayMatrix && sd.data().len() >= 36 {
            // SAFETY: the display matrix is nine 32-bit integers; we checked
            // the length, and av_display_rotation_get only reads them.
            let r = unsafe { ff::ffi::av_display_rotation_get(sd.data().as_ptr() as *const i32) };
            if r.is_finite() {
                return Some(if r == 0.0 { 0.0 } else { -r });
            }
        }
    }
    None
}

/// Open and examine a media file: streams, duration, creation time, and a
/// pass over all packets to find truncation and read errors.
pub fn probe_av(path: &Path) -> Result<AvInfo, String> {
    init();
    let mut ictx = ff::format::input(&path).map_err(|e| format!("not a readable audio/video file: {e}"))?;
    let mut info = AvInfo { container: ictx.format().name().to_string(), ..Default::default() };
    let d = ictx.duration();
    if d > 0 && d != ff::ffi::AV_NOPTS_VALUE {
        info.duration_secs = Some(d as f64 / f64::from(ff::ffi::AV_TIME_BASE));
    }
    info.creation_time = ictx.metadata().get("creation_time").map(str::to_string);
    let mut time_bases = Vec::new();
    for stream in ictx.streams() {
        time_bases.push(stream.time_base());
        if info.creation_time.is_none() {
            info.creation_time = stream.metadata().get("creation_time").map(str::to_string);
        }
        let params = stream.parameters();
        let codec = params.id().name().to_string();
        match params.medium() {
            MediaType::Video if info.video.is_none() => {
                if stream.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC) {
                    continue; // cover art in an audio file
                }
                // SAFETY: parameters() points at this stream's codecpar,
                // which lives as long as `ictx`.
                let (w, h) = unsafe {
                    let p = params.as_ptr();
                    ((*p).width, (*p).height)
                };
                info.video = Some(VideoStream {
                    codec,
                    width: w.max(0) as u32,
                    height: h.max(0) as u32,
                    frame_rate: rational(stream.avg_frame_rate()).or_else(|| rational(stream.rate())),
                    rotation: rotation_of(&stream),
                });
            }
            MediaType::Audio if info.audio.is_none() => {
                let (rate, channels) = unsafe {
                    let p = params.as_ptr();
                    ((*p).sample_rate, (*p).ch_layout.nb_channels)
                };
                info.audio =
                    Some(AudioStream { codec, sample_rate: rate.max(0) as u32, channels: channels.max(0) as u16 });
            }
            _ => {}
        }
    }
    if info.video.is_none() && info.audio.is_none() {
        return Err(format!("{} container holds no audio or video stream", info.container));
    }
    let file_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    info.problem = match check_index(&mut ictx, file_size, info.duration_secs) {
        // The samples are all there; the box structure may still be cut
        // short (a copy that stopped inside the trailing metadata).
        IndexCheck::Complete if info.container.contains("mp4") => top_level_boxes_complete(path, file_size),
        IndexCheck::Complete => None,
        IndexCheck::Truncated(why) => Some(why),
        // No sample index (MP3, WAV, TS, AVI without idx1): read the packets.
        IndexCheck::NoIndex => scan_packets(&mut ictx, &time_bases, info.duration_secs),
    };
    if info.problem.is_none() && info.container == "mpegts" {
        info.problem = ts_cut(file_size);
    }
    Ok(info)
}

/// An MPEG transport stream is a sequence of 188-byte packets (192 with
/// the timecode prefix of M2TS): a length that is neither means the
/// recording or the copy stopped inside a packet.
pub fn ts_cut(file_size: u64) -> Option<String> {
    (file_size % 188 != 0 && file_size % 192 != 0).then(|| {
        format!(
            "truncated: the transport stream ends inside a packet ({} bytes after the last whole 188-byte packet): \
             the recording or the copy was cut short",
            file_size % 188
        )
    })
}

/// Walk an MP4/MOV file's top-level boxes: each must end inside the file.
/// A box that runs past the end means the file was cut short, even if
/// every media sample happens to be present.
pub fn top_level_boxes_complete(path: &Path, file_size: u64) -> Option<String> {
    boxes_complete(std::fs::File::open(path).ok()?, file_size)
}

/// [`top_level_boxes_complete`] over any reader of `file_size` bytes.
pub fn boxes_complete(mut f: impl std::io::Read + std::io::Seek, file_size: u64) -> Option<String> {
    use std::io::SeekFrom;
    let mut at = 0u64;
    let mut boxes = 0;
    while at + 8 <= file_size && boxes < 100_000 {
        let mut h = [0u8; 16];
        f.seek(SeekFrom::Start(at)).ok()?;
        let n = f.read(&mut h).ok()?;
        if n < 8 {
            break;
        }
        let kind = String::from_utf8_lossy(&h[4..8]).into_owned();
        let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        if size == 1 {
            if n < 16 {
                return Some(format!("truncated: the {kind:?} box's 64-bit size lies past the end of the file"));
            }
            size = u64::from_be_bytes(h[8..16].try_into().ok()?);
        } else if size == 0 {
            // Extends to the end of the file, by definition.
            return None;
        }
        if size < 8 {
            return Some(format!("damaged: a {kind:?} box at byte {at} declares an impossible size of {size}"));
        }
        let end = at.saturating_add(size);
        if end > file_size {
            return Some(format!(
                "truncated: the {kind:?} box at byte {at} declares {size} bytes, but the file ends after {} \
                 (a copy or recording cut short)",
                file_size - at
            ));
        }
        at = end;
        boxes += 1;
    }
    None
}

enum IndexCheck {
    Complete,
    Truncated(String),
    NoIndex,
}

/// For containers with a sample index (MP4/MOV, MKV cues, AVI idx1), check
/// that every indexed sample lies inside the file, without reading the media
/// data: a multi-gigabyte original is then described by reading its header
/// only. A sample past the end means the file was cut short.
fn check_index(ictx: &mut ff::format::context::Input, file_size: u64, declared: Option<f64>) -> IndexCheck {
    let mut any = false;
    let mut first_missing: Option<f64> = None;
    let mut missing = 0u64;
    // SAFETY: the stream pointers and their index entries belong to `ictx`,
    // which outlives this loop; the entries are only read.
    unsafe {
        let ctx = ictx.as_mut_ptr();
        for i in 0..(*ctx).nb_streams as usize {
            let st = *(*ctx).streams.add(i);
            let n = ff::ffi::avformat_index_get_entries_count(st);
            if n <= 0 {
                continue;
            }
            any = true;
            let tb = (*st).time_base;
            for k in 0..n {
                let e = ff::ffi::avformat_index_get_entry(st, k);
                if e.is_null() {
                    continue;
                }
                let end = (*e).pos.saturating_add(i64::from((*e).size()));
                if (*e).pos >= 0 && end as u64 > file_size {
                    missing += 1;
                    let t = (*e).timestamp as f64 * f64::from(tb.num) / f64::from(tb.den.max(1));
                    if t.is_finite() {
                        first_missing = Some(first_missing.map_or(t, |m: f64| m.min(t)));
                    }
                }
            }
        }
    }
    if !any {
        return IndexCheck::NoIndex;
    }
    if missing == 0 {
        return IndexCheck::Complete;
    }
    let at = first_missing.map(|t| format!("{t:.1} s")).unwrap_or_else(|| "?".into());
    let of = declared.map(|d| format!(" of a declared {d:.1} s")).unwrap_or_default();
    IndexCheck::Truncated(format!(
        "truncated: media data ends at {at}{of} ({missing} indexed samples lie past the end of the file)"
    ))
}

/// Read every packet (no decoding). Returns a description of the damage, if
/// any: a read error, or media data that ends well before the duration the
/// header declares (a recording cut short, or a truncated copy).
fn scan_packets(
    ictx: &mut ff::format::context::Input,
    time_bases: &[ff::Rational],
    declared: Option<f64>,
) -> Option<String> {
    let mut end_secs: f64 = 0.0;
    let mut packets: u64 = 0;
    let mut errors = 0;
    let mut first_error = None;
    loop {
        let mut pkt = ff::Packet::empty();
        match pkt.read(ictx) {
            Ok(()) => {
                packets += 1;
                errors = 0;
                let tb = time_bases.get(pkt.stream()).copied().unwrap_or(ff::Rational(1, 1));
                if let Some(ts) = pkt.pts().or(pkt.dts()) {
                    let end = (ts + pkt.duration().max(0)) as f64 * f64::from(tb);
                    if end.is_finite() && end > end_secs {
                        end_secs = end;
                    }
                }
            }
            Err(ff::Error::Eof) => break,
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                errors += 1;
                // libav may report the same error forever on some damage.
                if errors >= 64 {
                    break;
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Some(format!("damaged media data after {packets} packets: {e}"));
    }
    if packets == 0 {
        return Some("no media data (0 packets)".into());
    }
    if let Some(declared) = declared {
        if declared - end_secs > (declared * 0.02).max(1.0) {
            return Some(format!("truncated: media data ends at {end_secs:.1} s of a declared {declared:.1} s"));
        }
    }
    None
}
