//! Station naming patterns: what a dock file's path says about the recording
//! (device serial, officer number, start time, sequence number, case).
//!
//! Pure: a compiled regex and a time zone in, [`NameInfo`] out.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use regex::Regex;

/// The pattern used when a station sets none: the common
/// `DEVICE_OFFICER_YYYYMMDDhhmmss[_SEQ].ext` form, in any subfolder.
pub const DEFAULT_PATTERN: &str =
    r"(?:^|/)(?P<device>[A-Za-z0-9-]+)_(?P<officer>\d{4,10})_(?P<start>\d{14})(?:_(?P<seq>\d{1,6}))?\.[A-Za-z0-9]+$";

/// The named groups a pattern may use.
pub const GROUPS: &[&str] = &["device", "officer", "start", "seq", "case"];

/// What a file name says. Every field is optional: a name that does not match
/// still gets ingested, just without these facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameInfo {
    pub device: Option<String>,
    pub officer: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub seq: Option<i64>,
    pub case: Option<String>,
    /// Why a `start` that matched could not be read as a time.
    pub start_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NamePattern {
    regex: Regex,
    tz: Tz,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatternError {
    #[error("invalid regex: {0}")]
    Regex(String),
    #[error("unknown named group `{0}` (allowed: device, officer, start, seq, case)")]
    UnknownGroup(String),
}

impl NamePattern {
    pub fn new(pattern: &str, tz: Tz) -> Result<Self, PatternError> {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| PatternError::Regex(e.to_string()))?;
        for name in regex.capture_names().flatten() {
            if !GROUPS.contains(&name) {
                return Err(PatternError::UnknownGroup(name.to_string()));
            }
        }
        Ok(NamePattern { regex, tz })
    }

    /// Apply the pattern to a path relative to the station folder (with `/`
    /// separators).
    pub fn parse(&self, rel_path: &str) -> NameInfo {
        let Some(caps) = self.regex.captures(rel_path) else {
            return NameInfo::default();
        };
        let text = |name: &str| caps.name(name).map(|m| m.as_str().to_string()).filter(|s| !s.is_empty());
        let mut info = NameInfo {
            device: text("device"),
            officer: text("officer"),
            case: text("case"),
            seq: text("seq").and_then(|s| s.parse().ok()),
            ..Default::default()
        };
        if let Some(s) = text("start") {
            match parse_local_timestamp(&s, self.tz) {
                Ok(t) => info.start = Some(t),
                Err(e) => info.start_error = Some(e),
            }
        }
        info
    }
}

/// Read `YYYYMMDDhhmmss` (separators ignored, so `2026-11-26 09:30:00` works
/// too) as a wall-clock time in `tz`. A time that falls in a daylight-saving
/// gap is an error; one that is ambiguous takes the earlier instant, which
/// never makes a deadline later than it is.
pub fn parse_local_timestamp(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 14 {
        return Err(format!("start time {s:?} is not YYYYMMDDhhmmss"));
    }
    let naive = NaiveDateTime::parse_from_str(&digits, "%Y%m%d%H%M%S")
        .map_err(|e| format!("start time {s:?} is not a valid date and time: {e}"))?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Ok(a.min(b).with_timezone(&Utc)),
        LocalResult::None => Err(format!("start time {s:?} does not exist in {}", tz.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_example_pattern_reads_every_group() {
        let p = NamePattern::new(
            r"^(?P<device>[^/]+)/[^/]*_(?P<officer>\d{6})_(?P<start>\d{14})_(?P<seq>\d{4})\.\w+$",
            chrono_tz::Asia::Shanghai,
        )
        .unwrap();
        let info = p.parse("CAM0042/CAM0042_004711_20261126093000_0007.mp4");
        assert_eq!(info.device.as_deref(), Some("CAM0042"));
        assert_eq!(info.officer.as_deref(), Some("004711"));
        assert_eq!(info.seq, Some(7));
        assert_eq!(info.start.unwrap().to_rfc3339(), "2026-11-26T01:30:00+00:00");
    }

    #[test]
    fn default_pattern_matches_common_names_anywhere() {
        let p = NamePattern::new(DEFAULT_PATTERN, chrono_tz::UTC).unwrap();
        let info = p.parse("a/b/CAM0042_004711_20261126093000_0001.MP4");
        assert_eq!(info.device.as_deref(), Some("CAM0042"));
        assert_eq!(info.seq, Some(1));
        let info = p.parse("REC7_004711_20261126093000.wav");
        assert_eq!(info.device.as_deref(), Some("REC7"));
        assert_eq!(info.seq, None);
        assert_eq!(p.parse("holiday.jpg"), NameInfo::default());
    }

    #[test]
    fn impossible_dates_are_errors_not_panics() {
        let p = NamePattern::new(DEFAULT_PATTERN, chrono_tz::UTC).unwrap();
        let info = p.parse("CAM1_004711_20261341253000_0001.mp4");
        assert!(info.start.is_none());
        assert!(info.start_error.unwrap().contains("not a valid"));
    }

    #[test]
    fn dst_gap_and_overlap() {
        let tz = chrono_tz::Europe::Berlin;
        assert!(parse_local_timestamp("20260329023000", tz).is_err());
        let t = parse_local_timestamp("20261025023000", tz).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    #[test]
    fn unknown_groups_and_bad_regex_are_rejected() {
        assert_eq!(
            NamePattern::new("(?P<badge>x)", chrono_tz::UTC).unwrap_err(),
            PatternError::UnknownGroup("badge".into())
        );
        assert!(matches!(NamePattern::new("(", chrono_tz::UTC).unwrap_err(), PatternError::Regex(_)));
    }
}
