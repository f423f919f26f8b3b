//! Cases from case systems: what a valid case is, and when a recording
//! belongs to one.
//!
//! A recording matches a case when (its officer is one of the case's
//! officers, or its device one of its devices) and its start lies in one of
//! the case's windows widened by the case's buffer on both sides. This is
//! how a leading commercial system matches video to dispatch entries.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<CaseStatus> {
        match s {
            "open" => Some(CaseStatus::Open),
            "closed" => Some(CaseStatus::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A case as a case system registers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub title: Option<String>,
    pub status: CaseStatus,
    pub closed_at: Option<DateTime<Utc>>,
    pub officers: Vec<String>,
    pub devices: Vec<String>,
    pub windows: Vec<Window>,
    pub buffer_minutes: i64,
}

/// The longest buffer a case may ask for.
pub const MAX_BUFFER_MINUTES: i64 = 24 * 60;
/// Most officers, devices or windows in one case.
pub const MAX_ITEMS: usize = 1000;

/// Whether a case id is acceptable: 1-128 printable characters, no `/`.
pub fn valid_case_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= 128
        && !id.chars().any(|c| c.is_control() || c == '/' || c == '\\')
        && id.trim() == id
}

/// Check a case as a careful case system expects; every problem is listed.
pub fn validate(c: &Case, max_window: Duration) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if !valid_case_id(&c.id) {
        errs.push(format!("case id {:?} must be 1-128 printable characters without / or surrounding spaces", c.id));
    }
    if c.title.as_ref().is_some_and(|t| t.len() > 1000) {
        errs.push("title is longer than 1000 characters".into());
    }
    if !(0..=MAX_BUFFER_MINUTES).contains(&c.buffer_minutes) {
        errs.push(format!("buffer_minutes must be between 0 and {MAX_BUFFER_MINUTES}"));
    }
    for (what, list) in [("officers", &c.officers), ("devices", &c.devices)] {
        if list.len() > MAX_ITEMS {
            errs.push(format!("{what}: at most {MAX_ITEMS}"));
        }
        if let Some(bad) = list.iter().find(|s| s.trim().is_empty() || s.len() > 64 || s.chars().any(char::is_control))
        {
            errs.push(format!("{what}: {bad:?} is not a valid entry"));
        }
    }
    if c.windows.len() > MAX_ITEMS {
        errs.push(format!("windows: at most {MAX_ITEMS}"));
    }
    for (i, w) in c.windows.iter().enumerate() {
        if w.end <= w.start {
            errs.push(format!("windows[{i}]: end must be after start"));
        } else if w.end - w.start > max_window {
            errs.push(format!(
                "windows[{i}]: {} h long; a window may be at most {} h",
                (w.end - w.start).num_minutes() as f64 / 60.0,
                max_window.num_minutes() as f64 / 60.0
            ));
        }
    }
    match (c.status, c.closed_at) {
        (CaseStatus::Open, Some(_)) => errs.push("closed_at is only for a closed case".into()),
        (CaseStatus::Closed, Some(t)) if c.windows.iter().any(|w| t < w.start) => {
            errs.push("closed_at is before the start of a window".into())
        }
        _ => {}
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Whether a recording that started at `start` falls in the window,
/// widened by `buffer_minutes` on both sides (bounds included).
pub fn in_window(w: &Window, buffer_minutes: i64, start: DateTime<Utc>) -> bool {
    let b = Duration::minutes(buffer_minutes);
    start >= w.start - b && start <= w.end + b
}

/// Whether a recording (officer, device, start) belongs to a case.
pub fn matches(c: &Case, officer: Option<&str>, device: Option<&str>, start: Option<DateTime<Utc>>) -> bool {
    let Some(start) = start else { return false };
    let who = officer.is_some_and(|o| c.officers.iter().any(|x| x == o))
        || device.is_some_and(|d| c.devices.iter().any(|x| x == d));
    who && c.windows.iter().any(|w| in_window(w, c.buffer_minutes, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn case() -> Case {
        Case {
            id: "2026-0457".into(),
            title: Some("Disturbance".into()),
            status: CaseStatus::Open,
            closed_at: None,
            officers: vec!["004711".into(), "004712".into()],
            devices: vec!["CAM0099".into()],
            windows: vec![Window { start: t("2026-11-26T09:30:00+08:00"), end: t("2026-11-26T11:10:00+08:00") }],
            buffer_minutes: 5,
        }
    }

    #[test]
    fn officer_or_device_and_start_in_the_widened_window() {
        let c = case();
        let at = |s| Some(t(s));
        assert!(matches(&c, Some("004711"), None, at("2026-11-26T09:30:00+08:00")));
        assert!(matches(&c, Some("004712"), None, at("2026-11-26T09:25:00+08:00")), "the buffer widens the start");
        assert!(matches(&c, Some("004712"), None, at("2026-11-26T11:15:00+08:00")), "and the end");
        assert!(!matches(&c, Some("004712"), None, at("2026-11-26T11:15:01+08:00")));
        assert!(matches(&c, Some("999999"), Some("CAM0099"), at("2026-11-26T10:00:00+08:00")), "by device");
        assert!(!matches(&c, Some("999999"), Some("CAM0001"), at("2026-11-26T10:00:00+08:00")));
        assert!(!matches(&c, Some("004711"), None, None), "no start, no rule match");
    }

    #[test]
    fn validation_lists_every_problem() {
        let mut c = case();
        assert_eq!(validate(&c, Duration::hours(24)), Ok(()));
        c.windows.push(Window { start: t("2026-11-26T12:00:00Z"), end: t("2026-11-26T11:00:00Z") });
        c.windows.push(Window { start: t("2026-11-26T00:00:00Z"), end: t("2026-11-28T00:00:00Z") });
        c.buffer_minutes = -1;
        c.officers.push(" ".into());
        c.closed_at = Some(t("2026-11-26T12:00:00Z"));
        let errs = validate(&c, Duration::hours(24)).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("end must be after start")));
        assert!(errs.iter().any(|e| e.contains("at most 24 h")));
        assert!(!valid_case_id("a/b") && !valid_case_id("") && !valid_case_id(" x") && valid_case_id("2026-0457"));
    }
}
