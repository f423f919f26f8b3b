//! The 24-hour rule: deadlines, lateness and whose fault it is.

use chrono::{DateTime, Duration, Utc};

use crate::domain::RecordingTime;

/// Why a file missed its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lateness {
    /// It reached a station after its deadline: the recording was docked
    /// too late (the officer's or the device's side).
    LateDocking,
    /// It reached a station in time but was stored late (bodycamd's or the
    /// host's side).
    LateProcessing,
}

impl Lateness {
    pub fn as_str(self) -> &'static str {
        match self {
            Lateness::LateDocking => "late_docking",
            Lateness::LateProcessing => "late_processing",
        }
    }

    pub fn parse(s: &str) -> Option<Lateness> {
        match s {
            "late_docking" => Some(Lateness::LateDocking),
            "late_processing" => Some(Lateness::LateProcessing),
            _ => None,
        }
    }
}

/// How a stored original stands against the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub deadline: DateTime<Utc>,
    pub on_time: bool,
    pub late: Option<Lateness>,
    /// The recording's clock could not be trusted (see [`assess`]).
    pub clock_invalid: bool,
}

/// Assess a stored original.
///
/// With a trusted recording time: `deadline = min(recorded_end, first_seen)
/// + storage`,
/// `on_time = ingested_at <= deadline`; a late file is `late_docking` if it
/// was first seen after its deadline, `late_processing` otherwise.
///
/// **Untrusted or unknown clock (the conservative rule).** Nothing shows
/// when such a recording ended, so nothing can show it was stored in time.
/// Its deadline is set to the moment a station first showed it (the latest
/// instant by which the recording certainly existed), it is never on time,
/// and it is classified `late_docking`: a device clock that cannot be
/// trusted is on the device's side of the line, not the system's. A
/// `clock_invalid` alert accompanies it so that an administrator looks.
pub fn assess(
    rec: Option<&RecordingTime>,
    first_seen: DateTime<Utc>,
    ingested_at: DateTime<Utc>,
    storage: Duration,
) -> Assessment {
    match rec {
        Some(r) if r.trusted => {
            // A recording cannot have ended after a station showed it: a
            // start later than that (a fast clock) cannot push the deadline
            // past `first_seen + storage`.
            let deadline = r.end.min(first_seen) + storage;
            let on_time = ingested_at <= deadline;
            let late = match (on_time, first_seen > deadline) {
                (true, _) => None,
                (false, true) => Some(Lateness::LateDocking),
                (false, false) => Some(Lateness::LateProcessing),
            };
            Assessment { deadline, on_time, late, clock_invalid: false }
        }
        _ => {
            Assessment { deadline: first_seen, on_time: false, late: Some(Lateness::LateDocking), clock_invalid: true }
        }
    }
}

/// The deadline of a file seen on a station and not stored yet (so not
/// described: its duration is unknown). The recording ended no earlier than
/// the start its name gives, so `start + storage` is never later than the
/// true deadline: warnings come early rather than late. Without a start in
/// the name, the dock file's mtime (or when it was first seen, if earlier)
/// stands for the end.
pub fn pending_deadline(
    name_start: Option<DateTime<Utc>>,
    mtime: Option<DateTime<Utc>>,
    first_seen: DateTime<Utc>,
    storage: Duration,
) -> DateTime<Utc> {
    let plausible = |t: &DateTime<Utc>| crate::domain::clock_plausible(*t, first_seen);
    let end = match name_start.filter(plausible) {
        Some(s) => s,
        None => mtime.filter(plausible).map_or(first_seen, |m| m.min(first_seen)),
    };
    end + storage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StartSource;

    fn t(h: f64) -> DateTime<Utc> {
        "2026-11-26T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::milliseconds((h * 3_600_000.0) as i64)
    }

    fn rec(end_h: f64, trusted: bool) -> RecordingTime {
        RecordingTime { start: t(end_h - 0.5), end: t(end_h), source: StartSource::FileName, trusted }
    }

    const DAY: Duration = Duration::hours(24);

    /// The scenarios, in hours after the recording ended.
    #[test]
    fn timing_scenarios() {
        struct Case {
            what: &'static str,
            seen: f64,
            stored: f64,
            on_time: bool,
            late: Option<Lateness>,
        }
        let cases = [
            Case { what: "recorded 23 h ago, docked now", seen: 23.0, stored: 23.01, on_time: true, late: None },
            Case { what: "stored exactly at the deadline", seen: 23.0, stored: 24.0, on_time: true, late: None },
            Case {
                what: "recorded 25 h ago, docked now",
                seen: 25.0,
                stored: 25.01,
                on_time: false,
                late: Some(Lateness::LateDocking),
            },
            Case {
                what: "docked at 20 h, stored at 25 h (backlog)",
                seen: 20.0,
                stored: 25.0,
                on_time: false,
                late: Some(Lateness::LateProcessing),
            },
            Case {
                what: "docked a second before the deadline, stored after",
                seen: 23.9997,
                stored: 24.1,
                on_time: false,
                late: Some(Lateness::LateProcessing),
            },
        ];
        for c in cases {
            let a = assess(Some(&rec(0.0, true)), t(c.seen), t(c.stored), DAY);
            assert_eq!(a.deadline, t(24.0), "{}", c.what);
            assert_eq!((a.on_time, a.late), (c.on_time, c.late), "{}", c.what);
            assert!(!a.clock_invalid);
        }
    }

    #[test]
    fn a_start_after_first_seen_cannot_push_the_deadline_later() {
        // The camera's clock is 10 h fast: it claims the recording ended
        // after the station already had it.
        let fast = rec(15.0, true);
        let a = assess(Some(&fast), t(5.0), t(30.0), DAY);
        assert_eq!(a.deadline, t(29.0), "first seen + 24 h, not claimed end + 24 h");
        assert!(!a.on_time);
        assert_eq!(a.late, Some(Lateness::LateProcessing));
    }

    #[test]
    fn an_untrusted_clock_is_never_on_time() {
        // A 1970 clock: whatever the times, never a false "on time".
        for (seen, stored) in [(1.0, 1.01), (30.0, 30.0)] {
            let a = assess(Some(&rec(-1_000_000.0, false)), t(seen), t(stored), DAY);
            assert!(!a.on_time);
            assert_eq!(a.late, Some(Lateness::LateDocking));
            assert!(a.clock_invalid);
            assert_eq!(a.deadline, t(seen));
        }
        let a = assess(None, t(1.0), t(1.0), DAY);
        assert!(!a.on_time && a.clock_invalid);
    }

    #[test]
    fn pending_deadlines_never_come_late() {
        let seen = t(10.0);
        assert_eq!(pending_deadline(Some(t(2.0)), Some(t(9.0)), seen, DAY), t(26.0));
        assert_eq!(pending_deadline(None, Some(t(9.0)), seen, DAY), t(33.0));
        assert_eq!(
            pending_deadline(None, Some(t(12.0)), seen, DAY),
            t(34.0),
            "an mtime after first seen is not believed"
        );
        let epoch = "1970-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(pending_deadline(Some(epoch), None, seen, DAY), t(34.0));
    }
}
