//! Describing originals: what kind of media a file is, its streams,
//! duration and capture time.
//!
//! - [`sniff`]: format from the first bytes (pure, runs in the daemon).
//! - [`exif`]: photo size and EXIF time (pure Rust).
//! - [`probe`]: audio/video via libav (only in a prober child process).
//! - [`worker`]: the prober child processes, with time and memory limits,
//!   and the line protocol between them and the daemon.
//! - [`encode`]: synthetic clips for the simulated docking station.
//!
//! This module does not know stations, the archive or the index.

pub mod encode;
pub mod exif;
pub mod probe;
pub mod recover;
pub mod render;
pub mod sniff;
pub mod worker;

use std::io::{BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::MediaKind;

/// Everything the describer found out about one file. Crosses the process
/// boundary as one JSON line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// `video`, `audio`, `photo` or `other`.
    pub kind: String,
    /// Container or image format (`mov,mp4,m4a,3gp,3g2,mj2`, `jpeg`, …).
    pub format: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub rotation: Option<f64>,
    pub duration_secs: Option<f64>,
    /// Container `creation_time`, as written.
    pub creation_time: Option<String>,
    /// EXIF capture time: local wall clock `YYYY-MM-DDThh:mm:ss`.
    pub exif_local: Option<String>,
    /// EXIF offset in minutes, when the camera wrote one.
    pub exif_offset_minutes: Option<i16>,
    /// Why the content could not be (fully) read; `None` when it could.
    pub probe_error: Option<String>,
}

impl Description {
    pub fn media_kind(&self) -> MediaKind {
        MediaKind::parse(&self.kind).unwrap_or(MediaKind::Other)
    }

    /// What is known without parsing: used when the prober crashed or hung.
    pub fn fallback(path: &Path, error: String) -> Description {
        let sniffed = read_head(path).ok().and_then(|h| sniff::sniff(&h));
        Description {
            kind: sniffed.map(|s| s.kind).unwrap_or(MediaKind::Other).as_str().into(),
            format: sniffed.map(|s| s.format.to_string()),
            probe_error: Some(error),
            ..Default::default()
        }
    }
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    std::fs::File::open(path)?.take(sniff::HEAD_LEN as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Describe one file. Never fails: what cannot be read becomes
/// `probe_error`. Runs libav, so call it only in a prober process.
pub fn describe_file(path: &Path) -> Description {
    let head = match read_head(path) {
        Ok(h) => h,
        Err(e) => {
            return Description {
                kind: "other".into(),
                probe_error: Some(format!("cannot read: {e}")),
                ..Default::default()
            }
        }
    };
    if head.is_empty() {
        return Description {
            kind: "other".into(),
            probe_error: Some("empty file (0 bytes)".into()),
            ..Default::default()
        };
    }
    let sniffed = sniff::sniff(&head);
    if let Some(s) = sniffed.filter(|s| s.kind == MediaKind::Photo) {
        let meta = match std::fs::File::open(path) {
            Ok(f) => exif::read_photo(BufReader::new(f)),
            Err(e) => exif::PhotoMeta { error: Some(e.to_string()), ..Default::default() },
        };
        return Description {
            kind: "photo".into(),
            format: Some(s.format.into()),
            width: meta.width,
            height: meta.height,
            duration_secs: Some(0.0),
            exif_local: meta.taken.map(|t| t.local.format("%Y-%m-%dT%H:%M:%S").to_string()),
            exif_offset_minutes: meta.taken.and_then(|t| t.offset_minutes),
            probe_error: meta.error.or_else(|| photo_damage(path, s.format, meta.width, meta.height)),
            ..Default::default()
        };
    }
    match probe::probe_av(path) {
        Ok(av) => {
            let kind = if av.video.is_some() { MediaKind::Video } else { MediaKind::Audio };
            Description {
                kind: kind.as_str().into(),
                format: Some(av.container),
                video_codec: av.video.as_ref().map(|v| v.codec.clone()),
                audio_codec: av.audio.as_ref().map(|a| a.codec.clone()),
                width: av.video.as_ref().map(|v| v.width),
                height: av.video.as_ref().map(|v| v.height),
                frame_rate: av.video.as_ref().and_then(|v| v.frame_rate),
                rotation: av.video.as_ref().and_then(|v| v.rotation),
                duration_secs: av.duration_secs,
                creation_time: av.creation_time,
                probe_error: av.problem,
                ..Default::default()
            }
        }
        Err(e) => Description {
            kind: sniffed.map(|s| s.kind).unwrap_or(MediaKind::Other).as_str().into(),
            format: sniffed.map(|s| s.format.to_string()),
            probe_error: Some(match sniffed {
                Some(s) if matches!(s.format, "mp4" | "mov" | "3gp") => format!(
                    "{} container without a readable index (moov): the recording was probably cut short \
                     (battery, card removed) or the copy is truncated; {e}",
                    s.format
                ),
                Some(s) => format!("{} file that cannot be parsed: {e}", s.format),
                None => format!("unrecognised content: {e}"),
            }),
            ..Default::default()
        },
    }
}

/// What is wrong with a photo whose header reads fine: cut short (no JPEG
/// end-of-image marker, no PNG `IEND`), or dimensions no camera makes.
fn photo_damage(path: &Path, format: &str, width: Option<u32>, height: Option<u32>) -> Option<String> {
    if let (Some(w), Some(h)) = (width, height) {
        if w == 0 || h == 0 {
            return Some(format!("no picture: the {format} header says {w}x{h} pixels"));
        }
        if u64::from(w) * u64::from(h) > 1 << 31 {
            return Some(format!("implausible dimensions {w}x{h} in the {format} header (a damaged or crafted file)"));
        }
    }
    let tail = read_tail(path, 4096).ok()?;
    let trimmed = {
        // Some cameras pad JPEGs with zeros after the end marker.
        let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        &tail[..end]
    };
    match format {
        "jpeg" if !trimmed.ends_with(&[0xFF, 0xD9]) => {
            Some("truncated: the JPEG has no end-of-image marker (a copy or write cut short)".into())
        }
        "png" if !tail.windows(4).any(|w| w == b"IEND") => {
            Some("truncated: the PNG has no IEND chunk (a copy or write cut short)".into())
        }
        _ => None,
    }
}

fn read_tail(path: &Path, n: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}
