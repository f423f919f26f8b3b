//! Recovering what a cut-short MP4/MOV holds: a recording whose camera
//! died before it wrote the `moov` index still has every frame it recorded
//! in `mdat`, but no player can find them. With the codec configuration of
//! another, complete recording of the same camera (the *reference*), this
//! walks the sample data, finds each complete video access unit
//! (length-prefixed H.264/H.265 NAL units) and each audio frame between
//! them (AAC frames, whose length the decoder finds; PCM runs), and writes
//! them into a new MP4 with the reference's codec configuration and
//! timing.
//!
//! **Invariants:** the original is only read. Nothing is invented: a video
//! access unit is kept only if its NAL units are complete and it decodes
//! with the reference's configuration; an audio frame only if it decodes.
//! Like the rest of `render`, this parses untrusted bytes in C and only
//! runs in a `render-worker` child process.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

/// What was recovered, and from what: the rendition's provenance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The media id of the recording whose codec configuration was used
    /// (`None` when the original's own container carried it).
    pub reference: Option<String>,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Length of the recovered video (or audio), in seconds.
    pub seconds: f64,
    /// The byte range of the original the frames were found in.
    pub bytes_from: u64,
    pub bytes_to: u64,
    /// Bytes in that range that were not part of any recovered frame.
    pub bytes_skipped: u64,
    /// Access units that were complete but did not decode (left out).
    pub undecodable: u64,
    /// Frames the decoder had to conceal errors in (kept, but not as
    /// recorded: a damaged stretch of the sample data).
    #[serde(default)]
    pub frames_damaged: u64,
    pub video_codec: String,
    pub audio_codec: Option<String>,
}

/// Why a recovery could not be made with a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverError {
    /// Nothing can be recovered from this original, with any reference.
    NotRecoverable(String),
    /// This reference does not fit the original (another camera setting):
    /// another reference may.
    Unsuitable(String),
    /// Reading or writing failed (may pass).
    Io(String),
}

impl std::fmt::Display for RecoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoverError::NotRecoverable(s) | RecoverError::Unsuitable(s) | RecoverError::Io(s) => f.write_str(s),
        }
    }
}

fn io(ctx: &'static str) -> impl Fn(ff::Error) -> RecoverError {
    move |e| RecoverError::Io(format!("{ctx}: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    Hevc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioKind {
    Aac,
    /// Bytes per sample frame (all channels).
    Pcm {
        block_align: u64,
    },
}

struct RefAudio {
    par: ff::codec::Parameters,
    kind: AudioKind,
    rate: i32,
    channels: u64,
    /// Samples per AAC frame.
    frame_size: i64,
    /// Where audio starts against video, in samples (AAC priming: -1024).
    offset: i64,
    name: String,
}

/// What the reference recording supplies.
struct Reference {
    codec: Codec,
    par: ff::codec::Parameters,
    tb: ff::Rational,
    /// One frame, in `tb`.
    frame_dur: i64,
    nal_len: usize,
    width: u32,
    height: u32,
    /// Longest NAL unit believed possible (longer lengths are not video).
    max_nal: u64,
    audio: Option<RefAudio>,
    name: String,
}

fn extradata(par: &ff::codec::Parameters) -> Vec<u8> {
    // SAFETY: the parameters are valid; extradata is `extradata_size`
    // readable bytes or null.
    unsafe {
        let p = par.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
    }
}

fn read_reference(path: &Path) -> Result<Reference, RecoverError> {
    super::probe::init();
    let mut ictx =
        ff::format::input(&path).map_err(|e| RecoverError::Unsuitable(format!("the reference does not open: {e}")))?;
    let vst = ictx
        .streams()
        .find(|s| s.parameters().medium() == MediaType::Video)
        .ok_or_else(|| RecoverError::Unsuitable("the reference has no video".into()))?;
    let vpar = vst.parameters();
    let codec = match vpar.id() {
        ff::codec::Id::H264 => Codec::H264,
        ff::codec::Id::HEVC => Codec::Hevc,
        other => {
            return Err(RecoverError::NotRecoverable(format!(
                "the camera records {}; only H.264 and H.265 video can be recovered",
                other.name()
            )))
        }
    };
    let ed = extradata(&vpar);
    let nal_len = match (codec, ed.first()) {
        (Codec::H264, Some(1)) if ed.len() > 5 => usize::from(ed[4] & 3) + 1,
        (Codec::Hevc, Some(1)) if ed.len() > 22 => usize::from(ed[21] & 3) + 1,
        _ => {
            return Err(RecoverError::Unsuitable(
                "the reference's video has no avcC/hvcC configuration (length-prefixed NAL units)".into(),
            ))
        }
    };
    if nal_len == 3 {
        return Err(RecoverError::Unsuitable("3-byte NAL lengths are not valid".into()));
    }
    let (vi, vtb) = (vst.index(), vst.time_base());
    // SAFETY: reading plain fields of valid parameters.
    let (width, height) = unsafe { ((*vpar.as_ptr()).width.max(0) as u32, (*vpar.as_ptr()).height.max(0) as u32) };
    let audio_stream = ictx
        .streams()
        .find(|s| s.parameters().medium() == MediaType::Audio)
        .map(|s| (s.index(), s.time_base(), s.parameters()));
    let audio = match &audio_stream {
        None => None,
        Some((_, _, par)) => {
            let id = par.id();
            // SAFETY: plain fields of valid parameters.
            let (rate, channels, frame_size) = unsafe {
                let p = par.as_ptr();
                ((*p).sample_rate, (*p).ch_layout.nb_channels.max(1) as u64, i64::from((*p).frame_size))
            };
            let kind = if id == ff::codec::Id::AAC {
                AudioKind::Aac
            } else {
                // SAFETY: a pure function of the codec id.
                let bits = unsafe { ff::ffi::av_get_bits_per_sample(id.into()) };
                let pcm = format!("{id:?}").starts_with("PCM_");
                if !pcm || bits <= 0 || bits % 8 != 0 {
                    return Err(RecoverError::NotRecoverable(format!(
                        "the camera records {} audio; only AAC and PCM audio can be walked between video frames",
                        id.name()
                    )));
                }
                AudioKind::Pcm { block_align: channels * (bits as u64 / 8) }
            };
            if rate <= 0 {
                return Err(RecoverError::Unsuitable("the reference's audio has no sample rate".into()));
            }
            Some(RefAudio {
                par: par.clone(),
                kind,
                rate,
                channels,
                frame_size: if frame_size > 0 { frame_size } else { 1024 },
                offset: 0,
                name: id.name().to_string(),
            })
        }
    };
    // Timing from the first packets: the frame duration (the most common
    // one) and where audio starts against video.
    let mut durs: Vec<i64> = Vec::new();
    let (mut v_first, mut a_first): (Option<f64>, Option<f64>) = (None, None);
    let mut max_sample = 0u64;
    let mut seen = 0;
    let mut pkt = ff::Packet::empty();
    while seen < 3000 {
        match pkt.read(&mut ictx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(_) => {
                seen += 1;
                continue;
            }
        }
        seen += 1;
        if pkt.stream() == vi {
            max_sample = max_sample.max(pkt.size() as u64);
            if pkt.duration() > 0 {
                durs.push(pkt.duration());
            }
            if let Some(t) = pkt.pts() {
                let s = t as f64 * f64::from(vtb);
                v_first = Some(v_first.map_or(s, |f: f64| f.min(s)));
            }
        } else if let Some((ai, atb, _)) = &audio_stream {
            if pkt.stream() == *ai && a_first.is_none() {
                a_first = pkt.pts().map(|t| t as f64 * f64::from(*atb));
            }
        }
    }
    durs.sort_unstable();
    let frame_dur = mode(&durs).or_else(|| {
        let r = vst_rate(&ictx, vi);
        (r > 0.0).then(|| (1.0 / r / f64::from(vtb)).round() as i64)
    });
    let frame_dur = frame_dur
        .filter(|d| *d > 0)
        .ok_or_else(|| RecoverError::Unsuitable("the reference's frame rate is unknown".into()))?;
    let audio = audio.map(|mut a| {
        if let (Some(v), Some(s)) = (v_first, a_first) {
            a.offset = ((s - v) * f64::from(a.rate)).round() as i64;
        }
        a
    });
    Ok(Reference {
        codec,
        par: vpar,
        tb: vtb,
        frame_dur,
        nal_len,
        width,
        height,
        max_nal: (max_sample * 8).max(4 << 20),
        audio,
        name: if codec == Codec::H264 { "h264".into() } else { "hevc".into() },
    })
}

fn vst_rate(ictx: &ff::format::context::Input, vi: usize) -> f64 {
    ictx.stream(vi).map(|s| f64::from(s.avg_frame_rate())).filter(|r| r.is_finite()).unwrap_or(0.0)
}

/// The most common value of a sorted list.
fn mode(sorted: &[i64]) -> Option<i64> {
    let mut best: Option<(i64, usize)> = None;
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|&&x| x == sorted[i]).count();
        if best.is_none_or(|(_, n)| j > n) {
            best = Some((sorted[i], j));
        }
        i += j;
    }
    best.map(|(v, _)| v)
}

/// Bytes read by position: the original (a file), or a buffer (the fuzzer).
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, at)
    }
}

impl ReadAt for &[u8] {
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
        let from = usize::try_from(at).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - from);
        buf[..n].copy_from_slice(&self[from..from + n]);
        Ok(n)
    }
}

/// The sample data of a cut MP4/MOV: where its `mdat` payload starts and
/// ends (the end of the file when the box's size was never written or
/// runs past the end). `None` when the file has no `mdat`.
pub fn mdat_range(f: &dyn ReadAt, len: u64) -> std::io::Result<Option<(u64, u64)>> {
    let mut at = 0u64;
    for _ in 0..10_000 {
        // A 64-bit box size can carry `at` to the end of the number range.
        if at.checked_add(8).is_none_or(|e| e > len) {
            break;
        }
        let mut h = [0u8; 16];
        let n = f.read_at(&mut h, at)?;
        if n < 8 {
            break;
        }
        let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let mut header = 8;
        if size == 1 && n >= 16 {
            size = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
            header = 16;
        }
        if &h[4..8] == b"mdat" {
            let start = at + header;
            // 0: "to the end"; a size not yet written (just the header) or
            // one past the end: the recording stopped while writing.
            let end = if size <= header || at.saturating_add(size) > len { len } else { at + size };
            return Ok(Some((start, end)));
        }
        if size < 8 {
            break;
        }
        at = at.saturating_add(size);
    }
    Ok(None)
}

/// A read window over the original, so that walking byte by byte does not
/// cost a system call per byte.
struct Window<'a> {
    f: &'a dyn ReadAt,
    start: u64,
    buf: Vec<u8>,
}

const WINDOW: usize = 1 << 20;

impl<'a> Window<'a> {
    fn new(f: &'a dyn ReadAt) -> Self {
        Window { f, start: 0, buf: Vec::new() }
    }

    /// Up to `n` bytes at `at` (fewer only at the end of the file).
    fn get(&mut self, at: u64, n: usize) -> std::io::Result<&[u8]> {
        let have = at >= self.start && at + n as u64 <= self.start + self.buf.len() as u64;
        if !have {
            self.buf.resize(WINDOW.max(n), 0);
            let mut filled = 0;
            while filled < self.buf.len() {
                let k = self.f.read_at(&mut self.buf[filled..], at + filled as u64)?;
                if k == 0 {
                    break;
                }
                filled += k;
            }
            self.buf.truncate(filled);
            self.start = at;
        }
        let off = (at - self.start) as usize;
        let end = (off + n).min(self.buf.len());
        Ok(&self.buf[off.min(end)..end])
    }
}

/// What lies at a position of the sample data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Au {
    /// A complete access unit of `len` bytes.
    Frame {
        len: u64,
        key: bool,
    },
    /// An access unit starts here but the data ends inside it.
    Cut,
    No,
}

/// Exp-Golomb reader over a few bytes (slice header fields).
struct Bits<'a> {
    b: &'a [u8],
    i: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.i / 8)?;
        let v = (byte >> (7 - self.i % 8)) & 1;
        self.i += 1;
        Some(u32::from(v))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut v = 0u32;
        for _ in 0..zeros {
            v = (v << 1) | self.bit()?;
        }
        Some((1u32 << zeros) - 1 + v)
    }
}

/// A NAL unit header: its type, whether it is a picture slice (VCL),
/// a random-access picture, and whether it begins a new access unit.
#[derive(Debug, Clone, Copy)]
struct Nal {
    vcl: bool,
    key: bool,
    starts_au: bool,
}

/// `h`: the NAL unit's first bytes (header and a few of the payload).
fn nal(codec: Codec, h: &[u8]) -> Option<Nal> {
    match codec {
        Codec::H264 => {
            let b = *h.first()?;
            if b & 0x80 != 0 {
                return None;
            }
            let (ref_idc, t) = (b >> 5, b & 0x1f);
            match t {
                1 | 5 => {
                    if t == 5 && ref_idc == 0 {
                        return None;
                    }
                    let mut r = Bits { b: &h[1..], i: 0 };
                    let first_mb = r.ue()?;
                    let slice_type = r.ue()?;
                    let pps = r.ue()?;
                    if slice_type > 9 || pps > 255 {
                        return None;
                    }
                    Some(Nal { vcl: true, key: t == 5, starts_au: first_mb == 0 })
                }
                2..=4 => Some(Nal { vcl: true, key: false, starts_au: false }),
                6 | 9 | 10..=12 if ref_idc != 0 => None,
                6..=9 => Some(Nal { vcl: false, key: false, starts_au: true }),
                10..=12 => Some(Nal { vcl: false, key: false, starts_au: false }),
                _ => None,
            }
        }
        Codec::Hevc => {
            let (b0, b1) = (*h.first()?, *h.get(1)?);
            let t = (b0 >> 1) & 0x3f;
            let layer = ((b0 & 1) << 5) | (b1 >> 3);
            if b0 & 0x80 != 0 || layer != 0 || b1 & 7 == 0 {
                return None;
            }
            match t {
                0..=9 | 16..=21 => {
                    let first_slice = *h.get(2)? & 0x80 != 0;
                    Some(Nal { vcl: true, key: (16..=21).contains(&t), starts_au: first_slice })
                }
                32..=35 | 39 => Some(Nal { vcl: false, key: false, starts_au: true }),
                36..=38 | 40 => Some(Nal { vcl: false, key: false, starts_au: false }),
                _ => None,
            }
        }
    }
}

struct Walker<'a> {
    win: Window<'a>,
    end: u64,
    codec: Codec,
    nal_len: usize,
    max_nal: u64,
}

impl Walker<'_> {
    fn length_at(&mut self, q: u64) -> std::io::Result<Option<(u64, Nal)>> {
        let n = self.nal_len;
        let b = self.win.get(q, n + 8)?;
        if b.len() < n + 3 {
            return Ok(None);
        }
        let len = b[..n].iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
        if len < 2 || len > self.max_nal {
            return Ok(None);
        }
        Ok(nal(self.codec, &b[n..]).map(|h| (len, h)))
    }

    /// The access unit at `p`, if one starts there.
    fn au(&mut self, p: u64) -> std::io::Result<Au> {
        let (mut q, mut vcl, mut key, mut first) = (p, false, false, true);
        loop {
            if q >= self.end {
                break;
            }
            let Some((len, h)) = self.length_at(q)? else {
                if first {
                    return Ok(if self.end - q < (self.nal_len + 3) as u64 { Au::Cut } else { Au::No });
                }
                break;
            };
            if first && !h.starts_au {
                return Ok(Au::No);
            }
            if !first && vcl && h.starts_au {
                break;
            }
            let next = q + self.nal_len as u64 + len;
            if next > self.end {
                return Ok(Au::Cut);
            }
            vcl |= h.vcl;
            key |= h.key;
            first = false;
            q = next;
        }
        Ok(if vcl { Au::Frame { len: q - p, key } } else { Au::No })
    }
}

/// The video access units a walk finds in `data` (sample data, without
/// audio): (offset, length, random access), in order. Pure: what the
/// fuzzer drives.
pub fn video_units(data: &[u8], hevc: bool, nal_len: usize) -> Vec<(u64, u64, bool)> {
    let codec = if hevc { Codec::Hevc } else { Codec::H264 };
    let nal_len = if matches!(nal_len, 1 | 2 | 4) { nal_len } else { 4 };
    let mut w = Walker { win: Window::new(&data), end: data.len() as u64, codec, nal_len, max_nal: 4 << 20 };
    let (mut p, mut out) = (0u64, Vec::new());
    while p < w.end {
        match w.au(p) {
            Ok(Au::Frame { len, key }) => {
                out.push((p, len, key));
                p += len;
            }
            Ok(Au::Cut) | Err(_) => break,
            Ok(Au::No) => p += 1,
        }
    }
    out
}

/// One recovered sample: where it is in the original.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: u64,
    len: u64,
    key: bool,
}

/// Finds how long the AAC frame at a position is: the shortest prefix that
/// decodes (a shorter one runs out of bits before the END element).
struct AacProbe {
    dec: ff::decoder::Audio,
    max: u64,
}

impl AacProbe {
    fn new(a: &RefAudio) -> Result<AacProbe, RecoverError> {
        let ctx = ff::codec::context::Context::from_parameters(a.par.clone()).map_err(io("audio decoder"))?;
        let dec = ctx.decoder().audio().map_err(io("audio decoder"))?;
        Ok(AacProbe { dec, max: 768 * a.channels + 64 })
    }

    fn decodes(&mut self, data: &[u8]) -> bool {
        self.dec.flush();
        let pkt = ff::Packet::copy(data);
        if self.dec.send_packet(&pkt).is_err() {
            return false;
        }
        let mut frame = ff::frame::Audio::empty();
        self.dec.receive_frame(&mut frame).is_ok() && frame.samples() > 0
    }

    fn frame_len(&mut self, win: &mut Window<'_>, p: u64, end: u64) -> std::io::Result<Option<u64>> {
        let hi = self.max.min(end - p);
        if hi < 2 {
            return Ok(None);
        }
        let data = win.get(p, hi as usize)?.to_vec();
        if !self.decodes(&data) {
            return Ok(None);
        }
        let (mut lo, mut hi) = (1usize, data.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.decodes(&data[..mid]) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok((hi >= 4).then_some(hi as u64))
    }
}

/// Recover the frames of `input` (a cut MP4/MOV) into an MP4 at `output`,
/// using the codec configuration of `reference`.
pub fn recover(input: &Path, reference: &Path, output: &Path) -> Result<Recovery, RecoverError> {
    let r = read_reference(reference)?;
    let f = File::open(input).map_err(|e| RecoverError::Io(format!("opening the original: {e}")))?;
    let len = f.metadata().map_err(|e| RecoverError::Io(e.to_string()))?.len();
    let (start, end) =
        mdat_range(&f, len).map_err(|e| RecoverError::Io(format!("reading the original: {e}")))?.ok_or_else(|| {
            RecoverError::NotRecoverable("the file has no mdat box: there is no sample data to recover".into())
        })?;
    let rio = |e: std::io::Error| RecoverError::Io(format!("reading the original: {e}"));

    let mut vdec = {
        let mut ctx = ff::codec::context::Context::from_parameters(r.par.clone()).map_err(io("video decoder"))?;
        ctx.set_threading(ff::threading::Config { kind: ff::threading::Type::Frame, count: 0, ..Default::default() });
        ctx.decoder().video().map_err(io("video decoder"))?
    };
    let mut aac = match &r.audio {
        Some(a) if a.kind == AudioKind::Aac => Some(AacProbe::new(a)?),
        _ => None,
    };
    let mut w = Walker { win: Window::new(&f), end, codec: r.codec, nal_len: r.nal_len, max_nal: r.max_nal };
    let mut video: Vec<Sample> = Vec::new();
    let mut audio: Vec<Sample> = Vec::new();
    // Presentation rank of each video sample (by decode index), once decoded.
    let mut rank: Vec<Option<u64>> = Vec::new();
    let (mut shown, mut corrupt, mut wrong_size) = (0u64, 0u64, 0u64);
    let mut first_corrupt = false;
    let mut frame = ff::frame::Video::empty();
    let mut receive = |dec: &mut ff::decoder::Video, rank: &mut Vec<Option<u64>>| {
        while dec.receive_frame(&mut frame).is_ok() {
            if let Some(i) = frame.pts().and_then(|i| usize::try_from(i).ok()).filter(|&i| i < rank.len()) {
                rank[i] = Some(shown);
            }
            shown += 1;
            // SAFETY: reading plain fields of a frame the decoder filled.
            let (flags, errors) = unsafe { ((*frame.as_ptr()).flags, (*frame.as_ptr()).decode_error_flags) };
            if flags & ff::ffi::AV_FRAME_FLAG_CORRUPT != 0 || errors != 0 {
                corrupt += 1;
                if shown == 1 {
                    first_corrupt = true;
                }
            }
            if frame.width() != r.width || frame.height() != r.height {
                wrong_size += 1;
            }
        }
    };
    let mut p = start;
    let mut skipped = 0u64;
    let mut last_end = start;
    let mut seen_key = false;
    while p < end {
        let at_video = w.au(p).map_err(rio)?;
        if let Au::Frame { len, key } = at_video {
            if confirmed(&mut w, aac.as_mut(), p + len).map_err(rio)? {
                seen_key |= key;
                // Frames before the first random-access point cannot decode.
                if seen_key {
                    let data = f_read(&f, p, len).map_err(rio)?;
                    let mut pkt = ff::Packet::copy(&data);
                    pkt.set_pts(Some(video.len() as i64));
                    pkt.set_dts(Some(video.len() as i64));
                    if key {
                        pkt.set_flags(ff::codec::packet::Flags::KEY);
                    }
                    video.push(Sample { at: p, len, key });
                    rank.push(None);
                    if vdec.send_packet(&pkt).is_ok() {
                        receive(&mut vdec, &mut rank);
                    }
                } else {
                    skipped += len;
                }
                p += len;
                last_end = p;
                continue;
            }
        }
        if let Some(probe) = aac.as_mut() {
            if let Some(n) = probe.frame_len(&mut w.win, p, end).map_err(rio)? {
                audio.push(Sample { at: p, len: n, key: true });
                p += n;
                last_end = p;
                continue;
            }
        }
        if let Some(RefAudio { kind: AudioKind::Pcm { block_align }, .. }) = &r.audio {
            // PCM runs until the next video access unit. What looks like an
            // access unit cut by the end of the data was PCM if a complete
            // one follows; if none does, the first such place is taken for
            // the cut frame.
            let (mut q, mut first_cut) = (p + block_align, None);
            while q < end {
                match w.au(q).map_err(rio)? {
                    Au::Frame { .. } => break,
                    Au::Cut => {
                        first_cut.get_or_insert(q);
                    }
                    Au::No => {}
                }
                q += block_align;
            }
            if q >= end {
                if at_video == Au::Cut {
                    break;
                }
                q = first_cut.unwrap_or(end);
            }
            let run = ((q.min(end) - p) / block_align) * block_align;
            if run > 0 {
                audio.push(Sample { at: p, len: run, key: true });
                p += run;
                last_end = p;
                continue;
            }
        }
        if at_video == Au::Cut {
            break;
        }
        // Neither: skip to the next place a video access unit starts.
        let from = p;
        p += 1;
        while p < end && !matches!(w.au(p).map_err(rio)?, Au::Frame { .. }) {
            p += 1;
        }
        skipped += p - from;
    }
    let _ = vdec.send_eof();
    receive(&mut vdec, &mut rank);
    if shown == 0 {
        return Err(if video.is_empty() {
            RecoverError::NotRecoverable(format!(
                "no complete {} access unit was found in the sample data ({} bytes)",
                r.name,
                end - start
            ))
        } else {
            RecoverError::Unsuitable(format!(
                "none of the {} access units found decodes with the reference's {} configuration",
                video.len(),
                r.name
            ))
        });
    }
    // The right configuration decodes the first picture cleanly and nearly
    // every other (a damaged stretch of the card may spoil a few).
    if wrong_size > 0 || first_corrupt || corrupt * 20 > shown {
        return Err(RecoverError::Unsuitable(format!(
            "the reference's {} configuration ({}x{}) does not fit: {} of {} frames decoded damaged or at another size",
            r.name,
            r.width,
            r.height,
            corrupt.max(wrong_size),
            shown
        )));
    }
    // Keep the samples that decoded, in decode order, and number them
    // again in both orders.
    let kept: Vec<(Sample, u64)> = video.iter().zip(&rank).filter_map(|(s, r)| r.map(|r| (*s, r))).collect();
    let undecodable = (video.len() - kept.len()) as u64;
    let mut by_rank: Vec<usize> = (0..kept.len()).collect();
    by_rank.sort_by_key(|&i| kept[i].1);
    let mut pres = vec![0i64; kept.len()];
    for (k, &i) in by_rank.iter().enumerate() {
        pres[i] = k as i64;
    }
    let delay = pres.iter().enumerate().map(|(i, &k)| i as i64 - k).max().unwrap_or(0).max(0);
    write(&f, &r, &kept, &pres, delay, &audio, output)?;
    let video_secs = kept.len() as f64 * r.frame_dur as f64 * f64::from(r.tb);
    Ok(Recovery {
        reference: None,
        video_frames: kept.len() as u64,
        audio_frames: audio.len() as u64,
        seconds: video_secs,
        bytes_from: start,
        bytes_to: last_end,
        bytes_skipped: skipped + video.iter().zip(&rank).filter(|(_, r)| r.is_none()).map(|(s, _)| s.len).sum::<u64>(),
        undecodable,
        frames_damaged: corrupt,
        video_codec: r.name.clone(),
        audio_codec: r.audio.as_ref().map(|a| a.name.clone()),
    })
}

/// A video access unit is believed when what follows it is something too:
/// the end of the data, another access unit, or an audio frame.
fn confirmed(w: &mut Walker<'_>, aac: Option<&mut AacProbe>, q: u64) -> std::io::Result<bool> {
    if q >= w.end {
        return Ok(true);
    }
    if !matches!(w.au(q)?, Au::No) {
        return Ok(true);
    }
    match aac {
        // Within an audio frame of the end, what follows may be a cut one.
        Some(probe) if w.end - q < probe.max => Ok(true),
        Some(probe) => Ok(probe.frame_len(&mut w.win, q, w.end)?.is_some()),
        // PCM (or no audio): anything may follow.
        None => Ok(true),
    }
}

fn f_read(f: &File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; len as usize];
    f.read_exact_at(&mut v, at)?;
    Ok(v)
}

fn write(
    f: &File,
    r: &Reference,
    video: &[(Sample, u64)],
    pres: &[i64],
    delay: i64,
    audio: &[Sample],
    output: &Path,
) -> Result<(), RecoverError> {
    // MP4 cannot hold PCM in this libav: then QuickTime, which the render
    // step reads and encodes to AAC.
    let format = if matches!(r.audio.as_ref().map(|a| a.kind), Some(AudioKind::Pcm { .. })) { "mov" } else { "mp4" };
    let mut octx = ff::format::output_as(&output, format).map_err(io("creating the rendition"))?;
    let add = |octx: &mut ff::format::context::Output, par: &ff::codec::Parameters, tb: ff::Rational| {
        let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(io("adding a stream"))?;
        ost.set_parameters(par.clone());
        // SAFETY: the parameters belong to the stream just added; a zero
        // tag lets the MP4 muxer choose.
        unsafe {
            (*ost.parameters().as_mut_ptr()).codec_tag = 0;
        }
        ost.set_time_base(tb);
        Ok::<usize, RecoverError>(ost.index())
    };
    let vi = add(&mut octx, &r.par, r.tb)?;
    let ai = match &r.audio {
        Some(a) if !audio.is_empty() => Some(add(&mut octx, &a.par, ff::Rational(1, a.rate))?),
        _ => None,
    };
    let mut opts = ff::Dictionary::new();
    opts.set("movflags", "+faststart");
    octx.write_header_with(opts).map_err(io("writing the header"))?;
    let vtb_out = octx.stream(vi).map(|s| s.time_base()).unwrap_or(r.tb);
    // Audio sample positions, in samples from the start of video.
    let mut a_ts = Vec::with_capacity(audio.len());
    if let Some(a) = &r.audio {
        let mut t = a.offset;
        for s in audio {
            let n = match a.kind {
                AudioKind::Aac => a.frame_size,
                AudioKind::Pcm { block_align } => (s.len / block_align) as i64,
            };
            a_ts.push((t, n));
            t += n;
        }
    }
    let (mut i, mut j) = (0usize, 0usize);
    while i < video.len() || (j < audio.len() && ai.is_some()) {
        let v_time = (i < video.len()).then(|| (i as i64 - delay) as f64 * r.frame_dur as f64 * f64::from(r.tb));
        let a_time = match (&r.audio, ai) {
            (Some(a), Some(_)) if j < audio.len() => Some(a_ts[j].0 as f64 / f64::from(a.rate)),
            _ => None,
        };
        let take_video = match (v_time, a_time) {
            (Some(v), Some(a)) => v <= a,
            (Some(_), None) => true,
            _ => false,
        };
        if take_video {
            let (s, _) = video[i];
            let mut pkt = ff::Packet::copy(&f_read(f, s.at, s.len).map_err(|e| RecoverError::Io(e.to_string()))?);
            pkt.set_dts(Some((i as i64 - delay) * r.frame_dur));
            pkt.set_pts(Some(pres[i] * r.frame_dur));
            pkt.set_duration(r.frame_dur);
            if s.key {
                pkt.set_flags(ff::codec::packet::Flags::KEY);
            }
            pkt.set_stream(vi);
            pkt.rescale_ts(r.tb, vtb_out);
            pkt.write_interleaved(&mut octx).map_err(io("writing video"))?;
            i += 1;
        } else if let (Some(a), Some(ai)) = (&r.audio, ai) {
            let s = audio[j];
            let (t, n) = a_ts[j];
            let mut pkt = ff::Packet::copy(&f_read(f, s.at, s.len).map_err(|e| RecoverError::Io(e.to_string()))?);
            pkt.set_pts(Some(t));
            pkt.set_dts(Some(t));
            pkt.set_duration(n);
            pkt.set_flags(ff::codec::packet::Flags::KEY);
            pkt.set_stream(ai);
            let atb_out = octx.stream(ai).map(|s| s.time_base()).unwrap_or(ff::Rational(1, a.rate));
            pkt.rescale_ts(ff::Rational(1, a.rate), atb_out);
            pkt.write_interleaved(&mut octx).map_err(io("writing audio"))?;
            j += 1;
        }
    }
    octx.write_trailer().map_err(io("writing the trailer"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_headers_are_classified() {
        // H.264 IDR slice, first_mb 0 (bit '1'), slice_type 7 ('0001000'), pps 0 ('1').
        let idr = [0x65, 0b1000_1000, 0b1000_0000];
        let n = nal(Codec::H264, &idr).unwrap();
        assert!(n.vcl && n.key && n.starts_au);
        // A second slice of the same picture (first_mb 5 = '00110').
        let n = nal(Codec::H264, &[0x41, 0b0011_0100, 0b0100_0000]).unwrap();
        assert!(n.vcl && !n.starts_au);
        assert!(nal(Codec::H264, &[0x85]).is_none(), "forbidden bit");
        assert!(nal(Codec::H264, &[0x05, 0x88]).is_none(), "an IDR with nal_ref_idc 0");
        assert!(nal(Codec::H264, &[0x26]).is_none(), "SEI with nal_ref_idc");
        // HEVC IDR_W_RADL (19), tid 1, first slice in picture.
        let n = nal(Codec::Hevc, &[19 << 1, 1, 0x80]).unwrap();
        assert!(n.vcl && n.key && n.starts_au);
        assert!(nal(Codec::Hevc, &[19 << 1, 0, 0x80]).is_none(), "temporal id 0");
        assert!(nal(Codec::Hevc, &[(19 << 1) | 1, 1, 0x80]).is_none(), "layer 32");
    }

    #[test]
    fn exp_golomb() {
        let mut b = Bits { b: &[0b1010_0110, 0b0100_0000], i: 0 };
        assert_eq!((b.ue(), b.ue(), b.ue(), b.ue()), (Some(0), Some(1), Some(2), Some(3)));
    }

    #[test]
    fn the_mode_is_the_most_common_value() {
        assert_eq!(mode(&[1, 2, 2, 3]), Some(2));
        assert_eq!(mode(&[]), None);
    }
}
