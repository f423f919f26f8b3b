//! Domain types: media ids, kinds, file signatures, recording times and the
//! rules that decide them.
//!
//! Everything here is pure: no IO, no serde, no clocks. Callers pass the
//! current time in, which is what lets the deadline and clock rules be tested
//! with exact instants.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};

/// The identity of an original: the BLAKE3 hash of its bytes.
///
/// Paths are only sightings; two files with the same bytes are one original.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(pub [u8; 32]);

impl MediaId {
    pub fn from_hash(hash: blake3::Hash) -> Self {
        MediaId(*hash.as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaId({})", self.to_hex())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a media id is 64 lowercase hex digits (a BLAKE3 hash), got {0:?}")]
pub struct BadMediaId(pub String);

impl FromStr for MediaId {
    type Err = BadMediaId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadMediaId(s.chars().take(80).collect()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadMediaId(s.to_string()))?;
        Ok(MediaId(out))
    }
}

/// What an original is, decided from its content (never from its extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
    Photo,
    /// The content was not recognised (corrupt, empty, unknown format).
    Other,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Photo => "photo",
            MediaKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            "photo" => MediaKind::Photo,
            "other" => MediaKind::Other,
            _ => return None,
        })
    }
}

/// Where a recording's start time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartSource {
    /// The station's naming pattern (`start` group): the camera's clock when
    /// recording began, as written into the file name.
    FileName,
    /// The container's `creation_time` (MP4/MOV/MKV metadata).
    Container,
    /// EXIF `DateTimeOriginal` of a photo.
    Exif,
    /// The dock file's modification time minus the duration: the last resort,
    /// since docks and copy tools may rewrite it.
    FileMtime,
}

impl StartSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StartSource::FileName => "file_name",
            StartSource::Container => "container",
            StartSource::Exif => "exif",
            StartSource::FileMtime => "file_mtime",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "file_name" => StartSource::FileName,
            "container" => StartSource::Container,
            "exif" => StartSource::Exif,
            "file_mtime" => StartSource::FileMtime,
            _ => return None,
        })
    }
}

/// What identifies one state of a dock file: if any of these change, the file
/// was written to (ctime cannot be set by user tools, so a copy tool that
/// restores mtime still changes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSig {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// Start-time candidates for one original, gathered from its name, its
/// content and its dock file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeEvidence {
    pub file_name: Option<DateTime<Utc>>,
    pub container: Option<DateTime<Utc>>,
    pub exif: Option<DateTime<Utc>>,
    pub file_mtime: Option<DateTime<Utc>>,
    /// Seconds of media (0 for photos, `None` when unknown).
    pub duration_secs: Option<f64>,
}

/// The resolved recording interval of an original.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingTime {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub source: StartSource,
    /// False when the clock that produced `start` is implausible (see
    /// [`clock_plausible`]). An untrusted time is recorded, never believed.
    pub trusted: bool,
}

/// The earliest recording time we believe: body cameras did not exist before.
pub fn earliest_plausible() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
}

/// A camera clock is implausible when it claims a time before 2000 (this
/// covers the 1970 epoch of a clock that lost power) or more than a day after
/// the file was first seen on a station (a recording cannot end after it was
/// docked; a day of slack covers drift and a misconfigured time zone).
pub fn clock_plausible(t: DateTime<Utc>, first_seen: DateTime<Utc>) -> bool {
    t >= earliest_plausible() && t <= first_seen + Duration::days(1)
}

/// Decide a recording's start and end.
///
/// Precedence (documented in ARCHITECTURE.md): the file name, then the
/// container's creation time (video/audio) or EXIF (photos), then the dock
/// file's mtime minus the duration. The file name comes first because docking
/// stations and cameras write it from the camera clock at the moment
/// recording starts and it is what the station itself indexes; containers
/// often carry local time mislabelled as UTC.
///
/// The first source that exists is used. If its time is implausible, or it
/// is only the dock mtime (not a camera clock), the result is marked
/// untrusted (so never counted on time); a later source is then used only if it is
/// plausible *and* not the dock mtime (an mtime is when the dock copied the
/// file, not when the camera recorded it, so it cannot vouch for a clock).
pub fn resolve_recording_time(ev: &TimeEvidence, first_seen: DateTime<Utc>) -> Option<RecordingTime> {
    let dur = ev.duration_secs.filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e7).unwrap_or(0.0);
    let dur = Duration::milliseconds((dur * 1000.0).round() as i64);
    let candidates = [
        (StartSource::FileName, ev.file_name),
        (StartSource::Container, ev.container),
        (StartSource::Exif, ev.exif),
        (StartSource::FileMtime, ev.file_mtime.map(|m| m - dur)),
    ];
    let mut primary: Option<(StartSource, DateTime<Utc>)> = None;
    for (source, t) in candidates {
        let Some(t) = t else { continue };
        let plausible = clock_plausible(t, first_seen);
        match primary {
            // A dock file's mtime is when the dock wrote it, not a camera
            // clock: it places the recording, but never vouches for it.
            None if plausible => {
                let trusted = source != StartSource::FileMtime;
                return Some(RecordingTime { start: t, end: t + dur, source, trusted });
            }
            None => primary = Some((source, t)),
            // The primary clock is wrong: another camera-clock source may
            // still place the recording, but the clock remains in doubt.
            Some(_) if plausible && source != StartSource::FileMtime => {
                return Some(RecordingTime { start: t, end: t + dur, source, trusted: false });
            }
            Some(_) => {}
        }
    }
    primary.map(|(source, t)| RecordingTime { start: t, end: t + dur, source, trusted: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn media_id_round_trips_and_rejects_bad_hex() {
        let id = MediaId::from_hash(blake3::hash(b"abc"));
        assert_eq!(id.to_hex().parse::<MediaId>().unwrap(), id);
        assert!("xyz".parse::<MediaId>().is_err());
        assert!(id.to_hex().to_uppercase().parse::<MediaId>().is_err());
        assert!(format!("{}0", id).parse::<MediaId>().is_err());
    }

    #[test]
    fn file_name_wins_and_end_is_start_plus_duration() {
        let ev = TimeEvidence {
            file_name: Some(t("2026-11-26T01:30:00Z")),
            container: Some(t("2026-11-26T09:30:00Z")),
            file_mtime: Some(t("2026-11-26T05:00:00Z")),
            duration_secs: Some(90.5),
            ..Default::default()
        };
        let r = resolve_recording_time(&ev, t("2026-11-26T06:00:00Z")).unwrap();
        assert_eq!(r.source, StartSource::FileName);
        assert!(r.trusted);
        assert_eq!(r.start, t("2026-11-26T01:30:00Z"));
        assert_eq!(r.end, t("2026-11-26T01:31:30.500Z"));
    }

    #[test]
    fn epoch_clock_is_recorded_untrusted_not_replaced_by_mtime() {
        let ev = TimeEvidence {
            file_name: Some(t("1970-01-01T00:00:00Z")),
            container: Some(t("1970-01-01T00:00:05Z")),
            file_mtime: Some(t("2026-11-26T05:00:00Z")),
            duration_secs: Some(10.0),
            ..Default::default()
        };
        let r = resolve_recording_time(&ev, t("2026-11-26T06:00:00Z")).unwrap();
        assert!(!r.trusted);
        assert_eq!(r.source, StartSource::FileName);
        assert_eq!(r.start, t("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn bad_name_clock_falls_back_to_container_but_stays_untrusted() {
        let ev = TimeEvidence {
            file_name: Some(t("2031-01-01T00:00:00Z")),
            container: Some(t("2026-11-26T01:00:00Z")),
            duration_secs: Some(10.0),
            ..Default::default()
        };
        let r = resolve_recording_time(&ev, t("2026-11-26T06:00:00Z")).unwrap();
        assert_eq!(r.source, StartSource::Container);
        assert!(!r.trusted);
    }

    #[test]
    fn mtime_only_places_the_recording_but_is_not_a_camera_clock() {
        let ev = TimeEvidence {
            file_mtime: Some(t("2026-11-26T05:00:00Z")),
            duration_secs: Some(60.0),
            ..Default::default()
        };
        let r = resolve_recording_time(&ev, t("2026-11-26T06:00:00Z")).unwrap();
        assert_eq!(r.source, StartSource::FileMtime);
        assert!(!r.trusted, "an mtime is when the dock wrote the file");
        assert_eq!(r.start, t("2026-11-26T04:59:00Z"));
        assert_eq!(r.end, t("2026-11-26T05:00:00Z"));
    }

    #[test]
    fn plausibility_bounds() {
        let seen = t("2026-11-26T06:00:00Z");
        assert!(!clock_plausible(t("1999-12-31T23:59:59Z"), seen));
        assert!(clock_plausible(t("2000-01-01T00:00:00Z"), seen));
        assert!(clock_plausible(t("2026-11-27T06:00:00Z"), seen));
        assert!(!clock_plausible(t("2026-11-27T06:00:01Z"), seen));
    }

    #[test]
    fn nothing_known_gives_none() {
        assert_eq!(resolve_recording_time(&TimeEvidence::default(), Utc::now()), None);
    }
}
