//! The settle tracker: which dock files are complete, which are being
//! stored, which wait for a retry. A pure state machine; the caller passes
//! the time in.
//!
//! A file is complete once its signature (size, mtime, ctime, inode) has not
//! changed for the station's settle time. ctime cannot be set by copy tools,
//! so on local disks a file whose ctime is already older than the settle
//! time has been still that long and is taken at once (at start-up, say);
//! network mounts (`trust_ctime = false`) take their ctime from another
//! clock and always wait for two observations.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::domain::FileSig;

#[derive(Debug, Clone, PartialEq)]
pub enum FileState {
    /// Waiting for the signature to stay unchanged since `since`.
    Settling { since: Instant },
    /// Handed to the store workers (attempt number `gen`).
    Queued { gen: u64 },
    /// A failed attempt; tried again at `until`.
    Backoff { until: Instant },
    /// Attempts exhausted; tried again at `retry_at` (a slow schedule), when
    /// the file changes, or when an administrator asks.
    Failed { retry_at: Instant },
}

#[derive(Debug, Clone)]
pub struct Tracked {
    pub sig: FileSig,
    /// When a station first showed this file (kept across restarts by the
    /// caller, who persists it).
    pub first_seen: DateTime<Utc>,
    pub state: FileState,
    /// Failed attempts so far (only failures that belong to the file).
    pub attempts: u32,
    /// Attempts in a row that met an outage of the archive or the index
    /// (they do not count as attempts; they set the next wait).
    pub blocked: u32,
    pub last_error: Option<String>,
}

/// What an observation meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Not known before (or known only as stored with other content).
    New,
    /// Known, and its signature changed.
    Changed,
    Same,
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Try again at this time.
    At(Instant),
    /// The file was changing: wait for it to settle again (with its new
    /// signature, when known).
    Resettle { sig: Option<FileSig>, now: Instant },
    /// Attempts are used up: try again only at this (late) time, when the
    /// file changes, or when an administrator asks.
    GiveUp(Instant),
    /// The same, for a file last seen changing (to `sig`).
    GiveUpChanged { sig: FileSig, retry_at: Instant },
}

/// A file that is ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub rel: PathBuf,
    pub sig: FileSig,
    pub first_seen: DateTime<Utc>,
    pub gen: u64,
    pub attempt: u32,
}

#[derive(Debug)]
pub struct Tracker {
    settle: Duration,
    trust_ctime: bool,
    /// Files not stored yet (small: what is on the way in).
    active: HashMap<PathBuf, Tracked>,
    /// Files whose current content is stored (large: everything a keeping
    /// dock still holds). Only their signatures are kept.
    stored: HashMap<PathBuf, FileSig>,
    /// Active files that wait on a timer (settling, backing off, or given up
    /// until a slow retry): the only ones `take_due` and `next_wakeup` need
    /// to look at.
    waiting: HashSet<PathBuf>,
    /// Active files given up.
    given_up: usize,
    next_gen: u64,
}

fn is_waiting(s: &FileState) -> bool {
    matches!(s, FileState::Settling { .. } | FileState::Backoff { .. } | FileState::Failed { .. })
}

fn is_failed(s: &FileState) -> bool {
    matches!(s, FileState::Failed { .. })
}

impl Tracker {
    pub fn new(settle: Duration, trust_ctime: bool) -> Self {
        Tracker {
            settle,
            trust_ctime,
            active: HashMap::new(),
            stored: HashMap::new(),
            waiting: HashSet::new(),
            given_up: 0,
            next_gen: 1,
        }
    }

    pub fn set_settle(&mut self, settle: Duration, trust_ctime: bool) {
        self.settle = settle;
        self.trust_ctime = trust_ctime;
    }

    /// Remember that this path's content, in this state, is already stored.
    pub fn insert_stored(&mut self, rel: PathBuf, sig: FileSig) {
        self.stored.insert(rel, sig);
    }

    pub fn get(&self, rel: &Path) -> Option<&Tracked> {
        self.active.get(rel)
    }

    pub fn active(&self) -> impl Iterator<Item = (&PathBuf, &Tracked)> {
        self.active.iter()
    }

    pub fn pending_count(&self) -> usize {
        self.active.len()
    }

    pub fn is_known(&self, rel: &Path) -> bool {
        self.active.contains_key(rel) || self.stored.contains_key(rel)
    }

    /// Keep `waiting` and `given_up` in step with a state change.
    fn reindex(&mut self, rel: &Path, old: Option<&FileState>, new: Option<&FileState>) {
        if old.is_some_and(is_failed) {
            self.given_up -= 1;
        }
        if new.is_some_and(is_failed) {
            self.given_up += 1;
        }
        match (old.is_some_and(is_waiting), new.is_some_and(is_waiting)) {
            (false, true) => {
                self.waiting.insert(rel.to_path_buf());
            }
            (true, false) => {
                self.waiting.remove(rel);
            }
            _ => {}
        }
    }

    fn set_state(&mut self, rel: &Path, state: FileState) {
        let Some(t) = self.active.get_mut(rel) else { return };
        let old = std::mem::replace(&mut t.state, state.clone());
        self.reindex(rel, Some(&old), Some(&state));
    }

    fn settle_start(&self, sig: &FileSig, now: Instant, wall: DateTime<Utc>) -> Instant {
        if self.trust_ctime {
            let age_ns = wall.timestamp_nanos_opt().unwrap_or(i64::MAX) - sig.ctime_ns;
            if age_ns >= 0 && Duration::from_nanos(age_ns as u64) >= self.settle {
                return now.checked_sub(self.settle).unwrap_or(now);
            }
        }
        now
    }

    /// Record what a scan or an event showed at `rel`. `first_seen` is used
    /// for a file not seen before (the caller passes a persisted time after a
    /// restart, or now).
    pub fn observe(
        &mut self,
        rel: &Path,
        sig: FileSig,
        now: Instant,
        wall: DateTime<Utc>,
        first_seen: DateTime<Utc>,
    ) -> Observed {
        if let Some(t) = self.active.get(rel) {
            if t.sig == sig {
                return Observed::Same;
            }
            let since = self.settle_start(&sig, now, wall);
            let t = self.active.get_mut(rel).expect("checked above");
            t.sig = sig;
            t.attempts = 0;
            t.blocked = 0;
            self.set_state(rel, FileState::Settling { since });
            return Observed::Changed;
        }
        if self.stored.get(rel) == Some(&sig) {
            return Observed::Same;
        }
        // New, or new content at a path whose earlier content is stored.
        self.stored.remove(rel);
        let since = self.settle_start(&sig, now, wall);
        let state = FileState::Settling { since };
        self.reindex(rel, None, Some(&state));
        self.active
            .insert(rel.to_path_buf(), Tracked { sig, first_seen, state, attempts: 0, blocked: 0, last_error: None });
        Observed::New
    }

    /// The path no longer exists. Returns what was pending there, if anything.
    pub fn vanished(&mut self, rel: &Path) -> Option<Tracked> {
        self.stored.remove(rel);
        let t = self.active.remove(rel)?;
        self.reindex(rel, Some(&t.state), None);
        Some(t)
    }

    /// Paths known below `prefix` (all of them for an empty prefix).
    pub fn known_paths(&self) -> Vec<PathBuf> {
        self.active.keys().chain(self.stored.keys()).cloned().collect()
    }

    /// Files that are ready now; they move to `Queued`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Ready> {
        let mut out = Vec::new();
        let mut due_paths = Vec::new();
        for rel in &self.waiting {
            let t = &self.active[rel];
            let due = match t.state {
                FileState::Settling { since } => now.saturating_duration_since(since) >= self.settle,
                FileState::Backoff { until } | FileState::Failed { retry_at: until } => now >= until,
                _ => false,
            };
            if due {
                due_paths.push(rel.clone());
            }
        }
        for rel in due_paths {
            let gen = self.next_gen;
            self.next_gen += 1;
            self.set_state(&rel, FileState::Queued { gen });
            let t = &self.active[&rel];
            out.push(Ready { sig: t.sig, first_seen: t.first_seen, gen, attempt: t.attempts + 1, rel });
        }
        out
    }

    /// When the next file becomes due, if any is waiting.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .map(|rel| &self.active[rel])
            .filter_map(|t| match t.state {
                FileState::Settling { since } => Some(since + self.settle),
                FileState::Backoff { until } | FileState::Failed { retry_at: until } => Some(until),
                _ => None,
            })
            .min()
    }

    fn current(&mut self, rel: &Path, gen: u64) -> Option<&mut Tracked> {
        self.active.get_mut(rel).filter(|t| t.state == FileState::Queued { gen })
    }

    /// Attempt `gen` stored the file in state `sig`.
    pub fn stored_ok(&mut self, rel: &Path, gen: u64, sig: FileSig) -> bool {
        if self.current(rel, gen).is_some() {
            self.vanished(rel);
            self.stored.insert(rel.to_path_buf(), sig);
            true
        } else {
            // The file changed after this attempt began: its newer state is
            // tracked and will be stored as well.
            false
        }
    }

    /// Attempt `gen` failed (`reason`); `retry` says what happens next.
    /// Returns the failed attempts so far, or `None` for a stale attempt.
    pub fn failed(&mut self, rel: &Path, gen: u64, reason: String, retry: Retry) -> Option<u32> {
        let t = self.current(rel, gen)?;
        t.attempts += 1;
        t.blocked = 0;
        t.last_error = Some(reason);
        let attempts = t.attempts;
        let state = match retry {
            Retry::At(until) => FileState::Backoff { until },
            Retry::Resettle { sig, now } => {
                if let Some(sig) = sig {
                    t.sig = sig;
                }
                FileState::Settling { since: now }
            }
            Retry::GiveUp(retry_at) => FileState::Failed { retry_at },
            Retry::GiveUpChanged { sig, retry_at } => {
                // Keep its latest state, so that the next try copies that.
                t.sig = sig;
                FileState::Failed { retry_at }
            }
        };
        self.set_state(rel, state);
        Some(attempts)
    }

    /// Attempt `gen` met an outage that is not the file's fault (archive
    /// full or unwritable, index unavailable, descriptors exhausted): no
    /// attempt is counted; the file waits until `until`. Returns how many
    /// attempts in a row were blocked, or `None` for a stale attempt.
    pub fn blocked(&mut self, rel: &Path, gen: u64, reason: String, until: Instant) -> Option<u32> {
        let t = self.current(rel, gen)?;
        t.blocked += 1;
        t.last_error = Some(reason);
        let n = t.blocked;
        self.set_state(rel, FileState::Backoff { until });
        Some(n)
    }

    /// Blocked attempts in a row so far.
    pub fn blocked_count(&self, rel: &Path) -> u32 {
        self.active.get(rel).map(|t| t.blocked).unwrap_or(0)
    }

    /// Whether a store attempt of this file is under way.
    pub fn is_queued(&self, rel: &Path) -> bool {
        matches!(self.active.get(rel).map(|t| &t.state), Some(FileState::Queued { .. }))
    }

    /// Try a given-up or waiting file again now, with fresh attempts (an
    /// administrator asked). Returns false if it is neither.
    pub fn retry_now(&mut self, rel: &Path, now: Instant) -> bool {
        match self.active.get_mut(rel) {
            Some(t) if matches!(t.state, FileState::Failed { .. } | FileState::Backoff { .. }) => {
                t.attempts = 0;
                self.set_state(rel, FileState::Backoff { until: now });
                true
            }
            _ => false,
        }
    }

    /// Another known path (not `except`) holding the file with this device
    /// and inode: where a renamed file went.
    pub fn find_inode(&self, dev: u64, ino: u64, except: &Path) -> Option<PathBuf> {
        let same = |s: &FileSig| s.dev == dev && s.ino == ino;
        self.active
            .iter()
            .find(|(p, t)| same(&t.sig) && p.as_path() != except)
            .map(|(p, _)| p.clone())
            .or_else(|| self.stored.iter().find(|(p, s)| same(s) && p.as_path() != except).map(|(p, _)| p.clone()))
    }

    /// A file was seen earlier under another name: keep the earlier first
    /// sighting. Returns true if it changed (and the file is not stored yet).
    pub fn carry_first_seen(&mut self, rel: &Path, first_seen: DateTime<Utc>) -> bool {
        match self.active.get_mut(rel) {
            Some(t) if first_seen < t.first_seen => {
                t.first_seen = first_seen;
                true
            }
            _ => false,
        }
    }

    /// Attempts so far for a file being stored.
    pub fn attempts(&self, rel: &Path) -> u32 {
        self.active.get(rel).map(|t| t.attempts).unwrap_or(0)
    }

    /// Files not stored yet that are still being worked on (not given up).
    pub fn unresolved_count(&self) -> usize {
        self.active.len() - self.given_up
    }

    /// Try every failed file again (after a reload, say).
    pub fn retry_failed(&mut self, now: Instant) {
        let failed: Vec<PathBuf> =
            self.active.iter().filter(|(_, t)| is_failed(&t.state)).map(|(p, _)| p.clone()).collect();
        for rel in failed {
            self.retry_now(&rel, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(size: u64, ctime_s: i64) -> FileSig {
        FileSig { dev: 1, ino: 2, size, mtime_ns: ctime_s * 1_000_000_000, ctime_ns: ctime_s * 1_000_000_000 }
    }

    fn wall(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    const SETTLE: Duration = Duration::from_secs(5);

    #[test]
    fn a_growing_file_is_taken_only_after_it_stops_changing() {
        let mut t = Tracker::new(SETTLE, true);
        let t0 = Instant::now();
        let p = Path::new("a.mp4");
        // Written at 1000 s, 1002 s, 1004 s (wall clock = ctime).
        assert_eq!(t.observe(p, sig(10, 1000), t0, wall(1000), wall(1000)), Observed::New);
        assert!(t.take_due(t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(t.observe(p, sig(20, 1002), t0 + Duration::from_secs(2), wall(1002), wall(1002)), Observed::Changed);
        assert!(t.take_due(t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(t.observe(p, sig(30, 1004), t0 + Duration::from_secs(4), wall(1004), wall(1004)), Observed::Changed);
        assert_eq!(t.next_wakeup(), Some(t0 + Duration::from_secs(9)));
        assert!(t.take_due(t0 + Duration::from_secs(8)).is_empty());
        let ready = t.take_due(t0 + Duration::from_secs(9));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].sig.size, 30);
        assert_eq!(ready[0].first_seen, wall(1000));
        assert!(t.stored_ok(p, ready[0].gen, ready[0].sig));
        assert_eq!(t.pending_count(), 0);
        assert_eq!(t.observe(p, sig(30, 1004), t0 + Duration::from_secs(20), wall(1020), wall(1020)), Observed::Same);
    }

    #[test]
    fn old_ctime_is_taken_at_once_on_local_disks_only() {
        let t0 = Instant::now();
        let mut local = Tracker::new(SETTLE, true);
        local.observe(Path::new("old"), sig(1, 100), t0, wall(1000), wall(1000));
        assert_eq!(local.take_due(t0).len(), 1);
        let mut remote = Tracker::new(SETTLE, false);
        remote.observe(Path::new("old"), sig(1, 100), t0, wall(1000), wall(1000));
        assert!(remote.take_due(t0).is_empty());
        assert_eq!(remote.take_due(t0 + SETTLE).len(), 1);
    }

    #[test]
    fn a_change_during_a_copy_invalidates_that_attempt() {
        let mut t = Tracker::new(SETTLE, true);
        let t0 = Instant::now();
        let p = Path::new("a");
        t.observe(p, sig(1, 0), t0, wall(1000), wall(1000));
        let r = t.take_due(t0).remove(0);
        // The file grows while the copy runs; the event arrives first.
        t.observe(p, sig(2, 1001), t0 + Duration::from_secs(1), wall(1001), wall(1001));
        assert!(!t.stored_ok(p, r.gen, r.sig), "a stale attempt must not mark the new content stored");
        assert_eq!(t.pending_count(), 1);
        let r2 = t.take_due(t0 + Duration::from_secs(6)).remove(0);
        assert_eq!(r2.sig.size, 2);
    }

    #[test]
    fn failures_back_off_then_give_up_until_the_file_changes() {
        let mut t = Tracker::new(SETTLE, true);
        let t0 = Instant::now();
        let p = Path::new("a");
        t.observe(p, sig(1, 0), t0, wall(1000), wall(1000));
        let r = t.take_due(t0).remove(0);
        assert_eq!(t.failed(p, r.gen, "EIO".into(), Retry::At(t0 + Duration::from_secs(2))), Some(1));
        assert!(t.take_due(t0 + Duration::from_secs(1)).is_empty());
        let r = t.take_due(t0 + Duration::from_secs(2)).remove(0);
        assert_eq!(r.attempt, 2);
        let slow = t0 + Duration::from_secs(3600);
        assert_eq!(t.failed(p, r.gen, "EIO".into(), Retry::GiveUp(slow)), Some(2));
        assert_eq!(t.unresolved_count(), 0);
        assert!(t.take_due(t0 + Duration::from_secs(100)).is_empty());
        assert_eq!(t.get(p).unwrap().state, FileState::Failed { retry_at: slow });
        assert_eq!(t.next_wakeup(), Some(slow), "given up files come back on the slow schedule");
        let again = t.take_due(slow);
        assert_eq!(again.len(), 1, "tried again by itself");
        assert_eq!(t.failed(p, again[0].gen, "EIO".into(), Retry::GiveUp(slow + SETTLE)), Some(3));
        assert!(t.retry_now(p, t0), "an administrator can ask for it now");
        assert_eq!(t.get(p).unwrap().attempts, 0);
        let r = t.take_due(t0).remove(0);
        assert!(!t.retry_now(p, t0), "not while it is being stored");
        assert_eq!(t.failed(p, r.gen, "EIO".into(), Retry::GiveUp(slow)), Some(1));
        // A change of the file starts it over at once.
        assert_eq!(t.observe(p, sig(5, 0), t0, wall(1000), wall(1000)), Observed::Changed);
        let r = t.take_due(t0).remove(0);
        t.stored_ok(p, r.gen, r.sig);
        assert!(!t.retry_now(p, t0), "not once stored");
    }

    #[test]
    fn an_outage_costs_no_attempt() {
        let mut t = Tracker::new(SETTLE, true);
        let t0 = Instant::now();
        let p = Path::new("a");
        t.observe(p, sig(1, 0), t0, wall(1000), wall(1000));
        for i in 1..=20u32 {
            let r = t.take_due(t0 + Duration::from_secs(u64::from(i))).remove(0);
            assert_eq!(r.attempt, 1, "blocked attempts are not attempts");
            assert_eq!(t.blocked(p, r.gen, "ENOSPC".into(), t0 + Duration::from_secs(u64::from(i + 1))), Some(i));
        }
        assert_eq!(t.unresolved_count(), 1);
        let r = t.take_due(t0 + Duration::from_secs(21)).remove(0);
        assert_eq!(t.failed(p, r.gen, "EIO".into(), Retry::At(t0)), Some(1));
        assert_eq!(t.blocked_count(p), 0);
    }

    #[test]
    fn a_change_seen_by_the_copier_resettles_with_the_new_signature() {
        let mut t = Tracker::new(SETTLE, false);
        let t0 = Instant::now();
        let p = Path::new("a");
        t.observe(p, sig(1, 0), t0, wall(1000), wall(1000));
        let r = t.take_due(t0 + SETTLE).remove(0);
        let later = t0 + Duration::from_secs(10);
        t.failed(p, r.gen, "changed".into(), Retry::Resettle { sig: Some(sig(2, 0)), now: later });
        assert!(t.take_due(later + Duration::from_secs(1)).is_empty());
        let r = t.take_due(later + SETTLE).remove(0);
        assert_eq!((r.sig.size, r.attempt), (2, 2));
    }

    impl Tracker {
        fn check_indexes(&self) {
            let waiting: HashSet<PathBuf> =
                self.active.iter().filter(|(_, t)| is_waiting(&t.state)).map(|(p, _)| p.clone()).collect();
            assert_eq!(waiting, self.waiting);
            let failed = self.active.values().filter(|t| is_failed(&t.state)).count();
            assert_eq!(failed, self.given_up);
        }
    }

    /// Random sequences of what docks and workers do, checked against the
    /// invariants after every step: a file is either stored or tracked, a
    /// complete file always becomes due, and the indexes match the states.
    #[test]
    fn random_histories_keep_the_tracker_consistent() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut t = Tracker::new(SETTLE, rng.bool());
            let t0 = Instant::now();
            let mut now = t0;
            let mut queued: Vec<Ready> = Vec::new();
            let paths: Vec<PathBuf> = (0..6).map(|i| PathBuf::from(format!("f{i}"))).collect();
            for _ in 0..300 {
                now += Duration::from_millis(rng.u64(0..3000));
                let wall = wall(1_000_000 + (now - t0).as_secs() as i64);
                let p = &paths[rng.usize(..paths.len())];
                match rng.u8(0..8) {
                    0 | 1 => {
                        let s = sig(rng.u64(0..4), 1_000_000 + (now - t0).as_secs() as i64);
                        t.observe(p, s, now, wall, wall);
                    }
                    2 => {
                        t.vanished(p);
                    }
                    3 => queued.extend(t.take_due(now)),
                    4 if !queued.is_empty() => {
                        let r = queued.remove(rng.usize(..queued.len()));
                        t.stored_ok(&r.rel, r.gen, r.sig);
                    }
                    5 if !queued.is_empty() => {
                        let r = queued.remove(rng.usize(..queued.len()));
                        let retry = match rng.u8(0..3) {
                            0 => Retry::At(now + Duration::from_secs(1)),
                            1 => Retry::Resettle { sig: None, now },
                            _ => Retry::GiveUp(now + Duration::from_secs(600)),
                        };
                        t.failed(&r.rel, r.gen, "x".into(), retry);
                    }
                    6 => t.retry_failed(now),
                    7 if !queued.is_empty() => {
                        let r = queued.remove(rng.usize(..queued.len()));
                        t.blocked(&r.rel, r.gen, "ENOSPC".into(), now + Duration::from_secs(2));
                    }
                    _ => {}
                }
                t.check_indexes();
                for p in &paths {
                    assert!(!(t.active.contains_key(p) && t.stored.contains_key(p)), "{p:?} both stored and active");
                }
                assert_eq!(t.unresolved_count(), t.active.values().filter(|x| !is_failed(&x.state)).count());
            }
            // With time, every waiting file becomes due.
            let later = now + Duration::from_secs(3600);
            t.take_due(later);
            assert!(t.waiting.is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn new_content_at_a_stored_path_is_new() {
        let mut t = Tracker::new(SETTLE, true);
        t.insert_stored(PathBuf::from("a"), sig(1, 0));
        let t0 = Instant::now();
        assert_eq!(t.observe(Path::new("a"), sig(1, 0), t0, wall(1000), wall(1000)), Observed::Same);
        assert_eq!(t.observe(Path::new("a"), sig(9, 0), t0, wall(1000), wall(1000)), Observed::New);
    }
}
