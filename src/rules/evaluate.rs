//! Time-based alerts: what should be open now, given the pending files,
//! the stations and the archive. Pure: the caller takes the snapshot and
//! reconciles the result with the open alerts.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::alerts::{file_subject, AlertKind, AlertSpec};
use crate::clock::rfc3339;

/// The kinds [`time_based`] decides (all of their open alerts are
/// reconciled against its result).
pub const TIME_BASED: &[AlertKind] = &[
    AlertKind::CaseArchiveDue,
    AlertKind::CaseArchiveOverdue,
    AlertKind::DeadlineAtRisk,
    AlertKind::Overdue,
    AlertKind::IngestFailed,
    AlertKind::StationUnavailable,
    AlertKind::StorageLow,
    AlertKind::WatchDegraded,
    AlertKind::ArchiveUnwritable,
    AlertKind::IndexUnwritable,
    AlertKind::ResourcesExhausted,
    AlertKind::DockReplaced,
    AlertKind::IngestRejected,
];

#[derive(Debug, Clone)]
pub struct PendingFile {
    pub station: String,
    /// Path relative to the station.
    pub rel: String,
    pub first_seen: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    /// waiting, retrying, blocked, failed, rejected or missing.
    pub state: String,
    pub attempts: u32,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StationState {
    pub id: String,
    pub available: bool,
    pub unavailable_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub degraded: Option<String>,
    pub degraded_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    pub pending: Vec<PendingFile>,
    pub stations: Vec<StationState>,
    /// Free bytes on the archive's file system, when known.
    pub free_bytes: Option<u64>,
    /// Closed cases whose file is not archived yet: (case id, closed at).
    pub unarchived: Vec<(String, DateTime<Utc>)>,
    /// Outages that are not any one file's fault: (kind, subject, since,
    /// reason).
    pub faults: Vec<(AlertKind, String, DateTime<Utc>, String)>,
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub warn_before: Duration,
    pub station_grace: Duration,
    pub storage_low_bytes: u64,
    /// A closed case must be archived within this.
    pub archive_within: Duration,
}

fn hours(d: Duration) -> f64 {
    (d.num_seconds() as f64 / 360.0).round() / 10.0
}

/// The time-based alerts that should be open.
pub fn time_based(s: &Snapshot, th: &Thresholds) -> Vec<AlertSpec> {
    let mut out = Vec::new();
    // Files unaccounted for after their station's folder was replaced.
    let mut missing: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for p in &s.pending {
        let subject = file_subject(&p.station, &p.rel);
        if p.state == "rejected" {
            out.push(AlertSpec {
                kind: AlertKind::IngestRejected,
                subject,
                details: json!({
                    "station": p.station, "path": p.rel, "first_seen": rfc3339(p.first_seen),
                    "reason": p.reason.clone().unwrap_or_default(),
                    "what_to_do": "the file is left where it is; replace it with a regular file inside the station to have it stored",
                }),
            });
            continue;
        }
        if p.state == "missing" {
            missing.entry(p.station.as_str()).or_default().push(p.rel.as_str());
        }
        if let Some(deadline) = p.deadline {
            let base = json!({
                "station": p.station, "path": p.rel, "first_seen": rfc3339(p.first_seen),
                "deadline": rfc3339(deadline), "state": p.state,
            });
            if s.now >= deadline {
                let mut d = base;
                d["overdue_hours"] = json!(hours(s.now - deadline));
                out.push(AlertSpec { kind: AlertKind::Overdue, subject: subject.clone(), details: d });
            } else if s.now >= deadline - th.warn_before {
                let mut d = base;
                d["hours_left"] = json!(hours(deadline - s.now));
                out.push(AlertSpec { kind: AlertKind::DeadlineAtRisk, subject: subject.clone(), details: d });
            }
        }
        if p.state == "failed" {
            out.push(AlertSpec {
                kind: AlertKind::IngestFailed,
                subject,
                details: json!({
                    "station": p.station, "path": p.rel, "attempts": p.attempts,
                    "reason": p.reason.clone().unwrap_or_default(),
                }),
            });
        }
    }
    for st in &s.stations {
        if let (false, Some(since)) = (st.available, st.unavailable_since) {
            if s.now - since >= th.station_grace {
                out.push(AlertSpec {
                    kind: AlertKind::StationUnavailable,
                    subject: st.id.clone(),
                    details: json!({
                        "since": rfc3339(since), "reason": st.last_error.clone().unwrap_or_default(),
                    }),
                });
            }
        }
        if let (Some(why), Some(until)) = (&st.degraded, st.degraded_until) {
            if s.now < until {
                out.push(AlertSpec {
                    kind: AlertKind::WatchDegraded,
                    subject: st.id.clone(),
                    details: json!({ "reason": why }),
                });
            }
        }
    }
    for (station, files) in missing {
        out.push(AlertSpec {
            kind: AlertKind::DockReplaced,
            subject: station.to_string(),
            details: json!({
                "station": station,
                "unaccounted_files": files.len(),
                "examples": files.iter().take(20).collect::<Vec<_>>(),
                "reason": "the station's folder was replaced or unmounted while these files were not stored; \
                           they are kept as unaccounted for until they come back",
            }),
        });
    }
    for (kind, subject, since, reason) in &s.faults {
        out.push(AlertSpec {
            kind: *kind,
            subject: subject.clone(),
            details: json!({
                "since": rfc3339(*since), "reason": reason,
                "effect": "files wait on the docks (no attempt is counted against them) and are stored once the cause clears",
            }),
        });
    }
    for (case, closed) in &s.unarchived {
        let due = *closed + th.archive_within;
        let kind = if s.now >= due { AlertKind::CaseArchiveOverdue } else { AlertKind::CaseArchiveDue };
        out.push(AlertSpec {
            kind,
            subject: case.clone(),
            details: json!({ "case_id": case, "closed_at": rfc3339(*closed), "archive_by": rfc3339(due) }),
        });
    }
    if let Some(free) = s.free_bytes {
        if free < th.storage_low_bytes {
            out.push(AlertSpec {
                kind: AlertKind::StorageLow,
                subject: "archive".into(),
                details: json!({ "free_bytes": free, "threshold_bytes": th.storage_low_bytes }),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        "2026-11-26T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }

    fn th() -> Thresholds {
        Thresholds {
            warn_before: Duration::hours(2),
            station_grace: Duration::minutes(10),
            storage_low_bytes: 100,
            archive_within: Duration::days(30),
        }
    }

    fn pending(deadline: i64, state: &str) -> PendingFile {
        PendingFile {
            station: "dock-01".into(),
            rel: "CAM1/a.mp4".into(),
            first_seen: t(0),
            deadline: Some(t(deadline)),
            state: state.into(),
            attempts: 0,
            reason: None,
        }
    }

    fn kinds(v: &[AlertSpec]) -> Vec<AlertKind> {
        v.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_waiting_file_goes_from_fine_to_at_risk_to_overdue() {
        let snap = |now| Snapshot {
            now: t(now),
            pending: vec![pending(24, "waiting")],
            stations: vec![],
            free_bytes: None,
            unarchived: vec![],
            faults: vec![],
        };
        assert!(time_based(&snap(21), &th()).is_empty());
        assert_eq!(kinds(&time_based(&snap(22), &th())), [AlertKind::DeadlineAtRisk]);
        assert_eq!(kinds(&time_based(&snap(24), &th())), [AlertKind::Overdue]);
        let a = &time_based(&snap(26), &th())[0];
        assert_eq!(a.subject, "dock-01/CAM1/a.mp4");
        assert_eq!(a.details["overdue_hours"], 2.0);
    }

    #[test]
    fn failed_files_stations_storage_and_watches() {
        let snap = Snapshot {
            now: t(1),
            pending: vec![pending(48, "failed"), pending(1, "rejected")],
            stations: vec![
                StationState {
                    id: "gone".into(),
                    available: false,
                    unavailable_since: Some(t(1) - Duration::minutes(11)),
                    last_error: Some("ENOENT".into()),
                    degraded: None,
                    degraded_until: None,
                },
                StationState {
                    id: "blip".into(),
                    available: false,
                    unavailable_since: Some(t(1) - Duration::minutes(9)),
                    last_error: None,
                    degraded: Some("events lost".into()),
                    degraded_until: Some(t(2)),
                },
            ],
            free_bytes: Some(99),
            unarchived: vec![],
            faults: vec![],
        };
        let got = time_based(&snap, &th());
        let mut k = kinds(&got);
        k.sort();
        assert_eq!(
            k,
            [
                AlertKind::IngestFailed,
                AlertKind::StationUnavailable,
                AlertKind::StorageLow,
                AlertKind::WatchDegraded,
                AlertKind::IngestRejected
            ]
        );
        assert!(got.iter().any(|a| a.kind == AlertKind::StationUnavailable && a.subject == "gone"));
    }

    #[test]
    fn outages_and_unaccounted_files_are_alerted_once_each() {
        let mut a = pending(48, "missing");
        a.rel = "CAM1/a.mp4".into();
        let mut b = pending(48, "missing");
        b.rel = "CAM1/b.mp4".into();
        let snap = Snapshot {
            now: t(1),
            pending: vec![a, b, pending(48, "blocked")],
            stations: vec![],
            free_bytes: None,
            unarchived: vec![],
            faults: vec![(AlertKind::ArchiveUnwritable, "archive".into(), t(0), "ENOSPC".into())],
        };
        let got = time_based(&snap, &th());
        assert_eq!(kinds(&got), [AlertKind::DockReplaced, AlertKind::ArchiveUnwritable]);
        assert_eq!(got[0].details["unaccounted_files"], 2);
        // A blocked file is not failed: its deadline still counts.
        let snap = Snapshot { now: t(47), ..snap };
        assert!(kinds(&time_based(&snap, &th())).contains(&AlertKind::DeadlineAtRisk));
    }

    #[test]
    fn closed_cases_are_due_then_overdue_until_archived() {
        let snap = |h: i64| Snapshot {
            now: t(h),
            pending: vec![],
            stations: vec![],
            free_bytes: None,
            unarchived: vec![("K-1".into(), t(0))],
            faults: vec![],
        };
        let due = time_based(&snap(24), &th());
        assert_eq!(kinds(&due), [AlertKind::CaseArchiveDue]);
        assert_eq!(due[0].details["archive_by"], "2026-12-26T00:00:00.000Z");
        assert_eq!(kinds(&time_based(&snap(30 * 24), &th())), [AlertKind::CaseArchiveOverdue]);
    }
}
