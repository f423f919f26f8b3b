//! Outages that are not any one file's fault: the archive is full or cannot
//! be written, the index cannot commit, the process ran out of descriptors.
//!
//! A file that meets one is not charged an attempt: it waits (and is tried
//! again on a short schedule, so it is stored by itself soon after the
//! cause clears). The cause is reported here once, logged once, and turned
//! into one alert by the evaluator (`archive_unwritable`, `index_unwritable`,
//! `resources_exhausted`), which resolves when the cause is gone.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::rules::alerts::AlertKind;

/// What is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The archive is full or cannot be written.
    Archive,
    /// The index cannot commit.
    Index,
    /// The process ran out of file descriptors or memory.
    Resources,
}

impl FaultKind {
    pub fn alert(self) -> AlertKind {
        match self {
            FaultKind::Archive => AlertKind::ArchiveUnwritable,
            FaultKind::Index => AlertKind::IndexUnwritable,
            FaultKind::Resources => AlertKind::ResourcesExhausted,
        }
    }

    /// The alert's subject.
    pub fn subject(self) -> &'static str {
        match self {
            FaultKind::Archive => "archive",
            FaultKind::Index => "index",
            FaultKind::Resources => "process",
        }
    }
}

/// One outage, as a store attempt met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub reason: String,
}

impl Fault {
    pub fn new(kind: FaultKind, reason: impl Into<String>) -> Fault {
        Fault { kind, reason: reason.into() }
    }
}

/// Whether an I/O error says the process ran out of something (not the
/// file's fault, not the archive's either).
pub fn is_resource_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS))
}

/// Whether an I/O error says the file system is full.
pub fn is_full_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

#[derive(Debug, Clone)]
struct Active {
    since: DateTime<Utc>,
    last: Instant,
    reason: String,
}

/// The outages seen now.
#[derive(Debug, Default)]
pub struct Faults {
    active: Mutex<HashMap<FaultKind, Active>>,
    /// Wakes whoever publishes the outages (a district host's heartbeat)
    /// when one begins or ends.
    pub changed: tokio::sync::Notify,
}

/// How long an outage counts as current after it was last met, if nothing
/// clears it (every waiting file tries again well within this).
pub const STALE_AFTER: Duration = Duration::from_secs(120);

impl Faults {
    /// Record that an attempt met `f`. Returns true if it is a new outage
    /// (the caller logs it once).
    pub fn report(&self, f: &Fault, now: DateTime<Utc>) -> bool {
        let mut m = self.active.lock().unwrap();
        match m.get_mut(&f.kind) {
            Some(a) => {
                a.last = Instant::now();
                a.reason = f.reason.clone();
                false
            }
            None => {
                m.insert(f.kind, Active { since: now, last: Instant::now(), reason: f.reason.clone() });
                self.changed.notify_waiters();
                true
            }
        }
    }

    /// Something worked that `kinds` would have prevented. Returns the
    /// outages that ended, with when they began.
    pub fn clear(&self, kinds: &[FaultKind]) -> Vec<(FaultKind, DateTime<Utc>)> {
        let mut m = self.active.lock().unwrap();
        if m.is_empty() {
            return Vec::new();
        }
        let ended: Vec<_> = kinds.iter().filter_map(|k| m.remove(k).map(|a| (*k, a.since))).collect();
        if !ended.is_empty() {
            self.changed.notify_waiters();
        }
        ended
    }

    pub fn is_active(&self, kind: FaultKind) -> bool {
        self.active.lock().unwrap().get(&kind).is_some_and(|a| a.last.elapsed() < STALE_AFTER)
    }

    /// The outages still current: (kind, since, last reason).
    pub fn current(&self) -> Vec<(FaultKind, DateTime<Utc>, String)> {
        let mut m = self.active.lock().unwrap();
        m.retain(|_, a| a.last.elapsed() < STALE_AFTER);
        let mut v: Vec<_> = m.iter().map(|(k, a)| (*k, a.since, a.reason.clone())).collect();
        v.sort_by_key(|(k, _, _)| *k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_reported_once_and_cleared_by_success() {
        let f = Faults::default();
        let now = Utc::now();
        assert!(f.report(&Fault::new(FaultKind::Archive, "ENOSPC"), now));
        assert!(!f.report(&Fault::new(FaultKind::Archive, "ENOSPC again"), now));
        assert!(f.is_active(FaultKind::Archive));
        assert_eq!(f.current()[0].2, "ENOSPC again");
        assert_eq!(f.clear(&[FaultKind::Archive, FaultKind::Index]), vec![(FaultKind::Archive, now)]);
        assert!(f.current().is_empty());
        assert!(is_resource_error(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_full_error(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_full_error(&io::Error::from_raw_os_error(libc::EIO)));
    }
}
