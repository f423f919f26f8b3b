//! One task per station: discovery (events, scans, availability), the settle
//! tracker, and the station's pending files in the index.
//!
//! **Invariant:** absence is not deletion. A station folder that is missing
//! or unreadable makes the station unavailable; nothing it held is forgotten,
//! and nothing is removed from the index or the archive because a file is no
//! longer seen.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::store::{Outcome, Report, StoreJob};
use super::{Ctx, Stats};
use crate::clock::{from_ms, to_ms};
use crate::config::{StationConfig, WatchMode};
use crate::index::ingest::{self as ix, PendingState};
use crate::index::query;
use crate::rules::deadline::pending_deadline;
use crate::watch::events::{self, EventWatcher, Hint, WatchError};
use crate::watch::scan::{self, Entry, Listing, Probe, Rejected};
use crate::watch::settle::{FileState, Observed, Retry, Tracker};

/// How often an unavailable station is looked at again (at most).
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(2);

/// What a station reports about itself (for `run --once` and `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// A full scan has completed (or the station was found unavailable).
    pub scanned: bool,
    pub available: bool,
    /// Files not stored yet that are still being worked on.
    pub unresolved: usize,
    pub watch_mode: String,
    /// Why discovery is degraded (events lost, watch limit), if it is.
    pub degraded: Option<String>,
}

/// A write to the pending table, batched per loop turn.
enum PendingOp {
    Upsert {
        rel: Vec<u8>,
        first_seen: i64,
        size: Option<u64>,
        state: PendingState,
        attempts: u32,
        reason: Option<String>,
        deadline: Option<i64>,
    },
    Delete(Vec<u8>),
    Retain(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Events,
    Poll,
    /// Events were configured but inotify watches ran out.
    PollFallback,
}

struct Station {
    ctx: Arc<Ctx>,
    cfg: Arc<StationConfig>,
    tracker: Tracker,
    /// Things on the station that are never ingested, with the reason.
    rejected: HashMap<PathBuf, String>,
    /// first_seen of files pending before a restart.
    first_seen: HashMap<PathBuf, DateTime<Utc>>,
    available: bool,
    root_id: Option<(u64, u64)>,
    last_error: Option<String>,
    mode: Mode,
    watcher: Option<EventWatcher>,
    hints_tx: mpsc::UnboundedSender<Hint>,
    hints_rx: mpsc::UnboundedReceiver<Hint>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    next_scan: Instant,
    scanned_once: bool,
    /// A full listing has been applied (unlike `scanned_once`, which an
    /// unavailable station also sets).
    listed_once: bool,
    degraded: Option<String>,
    ops: Vec<PendingOp>,
    progress: watch::Sender<Progress>,
}

fn rel_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// Run a station until shutdown.
pub async fn run(ctx: Arc<Ctx>, cfg: Arc<StationConfig>, progress: watch::Sender<Progress>) {
    let mut st = match Station::load(ctx, cfg, progress).await {
        Ok(st) => st,
        Err((id, e)) => {
            tracing::error!(station = %id, error = %e, "cannot load the station's state from the index");
            return;
        }
    };
    st.main_loop().await;
}

impl Station {
    async fn load(
        ctx: Arc<Ctx>,
        cfg: Arc<StationConfig>,
        progress: watch::Sender<Progress>,
    ) -> Result<Station, (String, String)> {
        let id = cfg.id.clone();
        let index = ctx.index.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let c = index.reader().map_err(|e| e.to_string())?;
            let stored = query::stored_sightings(&c, &id).map_err(|e| e.to_string())?;
            let pending = query::pending_first_seen(&c, &id).map_err(|e| e.to_string())?;
            Ok((stored, pending))
        })
        .await
        .map_err(|e| (cfg.id.clone(), e.to_string()))?
        .map_err(|e| (cfg.id.clone(), e))?;
        let (stored, pending) = loaded;
        let mode = match cfg.watch {
            WatchMode::Events => Mode::Events,
            WatchMode::Poll => Mode::Poll,
        };
        let mut tracker = Tracker::new(cfg.settle, mode == Mode::Events);
        for (rel, sig) in stored {
            tracker.insert_stored(PathBuf::from(std::ffi::OsString::from_vec(rel)), sig);
        }
        let first_seen = pending
            .into_iter()
            .map(|(rel, ms)| (PathBuf::from(std::ffi::OsString::from_vec(rel)), from_ms(ms)))
            .collect();
        let (hints_tx, hints_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Ok(Station {
            ctx,
            cfg,
            tracker,
            rejected: HashMap::new(),
            first_seen,
            available: false,
            root_id: None,
            last_error: None,
            mode,
            watcher: None,
            hints_tx,
            hints_rx,
            reports_tx,
            reports_rx,
            next_scan: Instant::now(),
            scanned_once: false,
            listed_once: false,
            degraded: None,
            ops: Vec::new(),
            progress,
        })
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Events => "events",
            Mode::Poll => "poll",
            Mode::PollFallback => "poll (fallback: inotify watch limit reached)",
        }
    }

    async fn main_loop(&mut self) {
        let shutdown = self.ctx.shutdown.clone();
        loop {
            self.dispatch_due();
            self.flush();
            let wake = self.tracker.next_wakeup();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(r) = self.reports_rx.recv() => {
                    self.on_report(r);
                    while let Ok(r) = self.reports_rx.try_recv() {
                        self.on_report(r);
                    }
                }
                Some(h) = self.hints_rx.recv() => {
                    let mut hints = vec![h];
                    while let Ok(h) = self.hints_rx.try_recv() {
                        hints.push(h);
                    }
                    self.on_hints(hints).await;
                }
                _ = sleep_until(self.next_scan) => self.periodic().await,
                _ = async { match wake { Some(w) => sleep_until(w).await, None => std::future::pending().await } } => {}
            }
        }
        self.flush();
    }

    /// Write batched pending-table changes and publish progress.
    fn flush(&mut self) {
        if !self.ops.is_empty() {
            let ops = std::mem::take(&mut self.ops);
            let station = self.cfg.id.clone();
            let now = to_ms(self.ctx.clock.now());
            let index = self.ctx.index.clone();
            // Not awaited: the writer keeps the order of requests, so these
            // land before any later record of the same files.
            self.ctx.tasks.spawn(async move {
                let r = index
                    .call(move |c| {
                        for op in ops {
                            match op {
                                PendingOp::Upsert { rel, first_seen, size, state, attempts, reason, deadline } => {
                                    let p = ix::PendingFile {
                                        station: &station,
                                        rel_path: &rel,
                                        first_seen_ms: first_seen,
                                        size,
                                        state,
                                        attempts,
                                        reason: reason.as_deref(),
                                        deadline_ms: deadline,
                                    };
                                    ix::upsert_pending(c, &p, now)?
                                }
                                PendingOp::Delete(rel) => ix::delete_pending(c, &station, &rel)?,
                                PendingOp::Retain(keep) => {
                                    ix::retain_pending(c, &station, &keep)?;
                                }
                            }
                        }
                        Ok(())
                    })
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "recording pending files failed");
                }
            });
        }
        let p = Progress {
            scanned: self.scanned_once,
            available: self.available,
            unresolved: self.tracker.unresolved_count(),
            watch_mode: self.mode_name().to_string(),
            degraded: self.degraded.clone(),
        };
        self.progress.send_if_modified(|old| {
            if *old != p {
                *old = p;
                true
            } else {
                false
            }
        });
    }

    fn save_station_state(&self, scanned: bool) {
        let (id, available, err, pending, mode) = (
            self.cfg.id.clone(),
            self.available,
            self.last_error.clone(),
            self.tracker.pending_count(),
            self.mode_name().to_string(),
        );
        let now = to_ms(self.ctx.clock.now());
        let index = self.ctx.index.clone();
        self.ctx.tasks.spawn(async move {
            let r = index
                .call(move |c| {
                    ix::set_station_state(c, &id, available, err.as_deref(), pending, scanned, now)?;
                    ix::set_station_watch_mode(c, &id, &mode)
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "recording station state failed");
            }
        });
    }

    fn scan_period(&self) -> Duration {
        match self.mode {
            Mode::Events => self.cfg.rescan,
            Mode::Poll | Mode::PollFallback => self.cfg.poll,
        }
    }

    async fn periodic(&mut self) {
        let root = self.cfg.path.clone();
        let ignore = self.cfg.ignore.clone();
        let scan = tokio::task::spawn_blocking(move || {
            let id = scan::check_root(&root)?;
            scan::scan(&root, &ignore).map(|l| (id, l))
        })
        .await
        .unwrap_or_else(|e| Err(format!("scan failed: {e}")));
        match scan {
            Ok((root_id, listing)) => {
                if !self.available || self.root_id != Some(root_id) {
                    self.become_available(root_id);
                    // Files written between the scan and the watch: rescan
                    // once the watch is in place.
                    self.next_scan = Instant::now();
                    self.reconcile(listing);
                    return;
                }
                self.reconcile(listing);
                self.next_scan = Instant::now() + self.scan_period();
            }
            Err(reason) => {
                self.become_unavailable(reason);
                self.next_scan = Instant::now() + UNAVAILABLE_RETRY.min(self.scan_period());
            }
        }
    }

    fn become_available(&mut self, root_id: (u64, u64)) {
        if !self.available {
            if self.scanned_once {
                tracing::info!(station = %self.cfg.id, path = %self.cfg.path.display(), "station available again");
            } else {
                tracing::info!(station = %self.cfg.id, path = %self.cfg.path.display(), mode = self.mode_name(), "watching station");
            }
        } else {
            tracing::warn!(station = %self.cfg.id, "station folder was replaced (remounted?); watching the new one");
        }
        self.available = true;
        self.root_id = Some(root_id);
        self.last_error = None;
        self.ctx.alerting.poke();
        self.start_watcher();
        self.save_station_state(false);
    }

    fn start_watcher(&mut self) {
        self.watcher = None;
        if self.mode != Mode::Events {
            return;
        }
        match events::watch(&self.cfg.path, self.hints_tx.clone()) {
            Ok(w) => self.watcher = Some(w),
            Err(WatchError::LimitReached) => self.fall_back_to_polling(),
            Err(e) => {
                tracing::warn!(station = %self.cfg.id, error = %e, "cannot watch for events; scans continue");
                self.set_degraded(format!("cannot watch for events ({e}); rescans cover"), None);
            }
        }
    }

    fn fall_back_to_polling(&mut self) {
        tracing::warn!(
            station = %self.cfg.id, poll_secs = self.cfg.poll.as_secs_f64(),
            "inotify watch limit reached (raise fs.inotify.max_user_watches); polling this station instead"
        );
        self.watcher = None;
        self.mode = Mode::PollFallback;
        self.set_degraded("inotify watch limit reached; polling instead".into(), None);
        self.tracker.set_settle(self.cfg.settle, true);
        self.next_scan = Instant::now();
        self.save_station_state(false);
    }

    /// Report a degraded watch: for `hold` (events lost once), or until
    /// the station is reloaded (`None`: watches ran out, polling instead).
    fn set_degraded(&mut self, why: String, hold: Option<chrono::Duration>) {
        self.degraded = Some(why.clone());
        let until = hold.map_or(i64::MAX, |h| to_ms(self.ctx.clock.now() + h));
        let (id, index) = (self.cfg.id.clone(), self.ctx.index.clone());
        self.ctx.tasks.spawn(async move {
            if let Err(e) = index.call(move |c| ix::set_station_degraded(c, &id, Some(&why), Some(until))).await {
                tracing::error!(error = %e, "recording a degraded watch failed");
            }
        });
        self.ctx.alerting.poke();
    }

    fn become_unavailable(&mut self, reason: String) {
        if self.available || !self.scanned_once {
            tracing::warn!(
                station = %self.cfg.id, %reason, pending = self.tracker.pending_count(),
                "station unavailable; nothing on it is treated as deleted"
            );
        }
        self.available = false;
        self.watcher = None;
        self.last_error = Some(reason);
        self.ctx.alerting.poke();
        // Counts as the first scan for `run --once`: there is nothing to wait for.
        self.scanned_once = true;
        self.save_station_state(false);
    }

    /// Apply a full listing: new and changed files, and what is gone.
    fn reconcile(&mut self, listing: Listing) {
        let mut present: HashSet<PathBuf> = HashSet::with_capacity(listing.files.len());
        for entry in listing.files {
            present.insert(entry.rel.clone());
            self.observe(entry);
        }
        let mut rejected_now = HashSet::new();
        for r in listing.rejected {
            rejected_now.insert(r.rel.clone());
            self.reject(r);
        }
        let hidden = |rel: &Path| listing.unreadable_dirs.iter().any(|d| rel.starts_with(d));
        for rel in self.tracker.known_paths() {
            if !present.contains(&rel) && !hidden(&rel) {
                self.gone(&rel);
            }
        }
        let stale: Vec<PathBuf> = self.rejected.keys().filter(|r| !rejected_now.contains(*r)).cloned().collect();
        for rel in stale {
            self.rejected.remove(&rel);
            self.ops.push(PendingOp::Delete(rel_bytes(&rel)));
        }
        if !self.listed_once {
            self.listed_once = true;
            // Pending rows of files that left while the daemon was down.
            let keep = present.iter().chain(rejected_now.iter()).map(|p| rel_bytes(p)).collect();
            self.ops.push(PendingOp::Retain(keep));
            self.first_seen.clear();
        }
        if !listing.unreadable_dirs.is_empty() {
            tracing::warn!(station = %self.cfg.id, dirs = ?listing.unreadable_dirs, "folders could not be read; their files are not considered gone");
        }
        self.scanned_once = true;
        self.save_station_state(true);
    }

    /// When a station first showed a file: remembered from before a restart,
    /// else its ctime (when it was written to the dock, even while bodycamd
    /// was down) if that is earlier than now and plausible, else now.
    fn first_seen_of(&self, entry: &Entry, wall: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(t) = self.first_seen.get(&entry.rel) {
            return *t;
        }
        let ctime = DateTime::from_timestamp_nanos(entry.sig.ctime_ns);
        if crate::domain::clock_plausible(ctime, wall) && ctime < wall {
            ctime
        } else {
            wall
        }
    }

    fn observe(&mut self, entry: Entry) {
        let wall = self.ctx.clock.now();
        let first_seen = self.first_seen_of(&entry, wall);
        let size = entry.sig.size;
        match self.tracker.observe(&entry.rel, entry.sig, Instant::now(), wall, first_seen) {
            Observed::New => {
                tracing::debug!(station = %self.cfg.id, path = %entry.rel.display(), size, "new file");
                let name_start = self.cfg.pattern.as_ref().and_then(|p| p.parse(&entry.rel.to_string_lossy()).start);
                let mtime = DateTime::from_timestamp_nanos(entry.sig.mtime_ns);
                let deadline = pending_deadline(name_start, Some(mtime), first_seen, self.ctx.storage_deadline());
                self.ops.push(PendingOp::Upsert {
                    rel: rel_bytes(&entry.rel),
                    first_seen: to_ms(first_seen),
                    size: Some(size),
                    state: PendingState::Waiting,
                    attempts: 0,
                    reason: None,
                    deadline: Some(to_ms(deadline)),
                });
            }
            Observed::Changed | Observed::Same => {}
        }
    }

    fn reject(&mut self, r: Rejected) {
        if self.rejected.get(&r.rel) == Some(&r.reason) {
            return;
        }
        tracing::warn!(station = %self.cfg.id, path = %r.rel.display(), reason = %r.reason, "not ingested");
        self.tracker.vanished(&r.rel);
        let first_seen = to_ms(self.ctx.clock.now());
        self.ops.push(PendingOp::Upsert {
            rel: rel_bytes(&r.rel),
            first_seen,
            size: None,
            state: PendingState::Rejected,
            attempts: 0,
            reason: Some(r.reason.clone()),
            deadline: None,
        });
        self.rejected.insert(r.rel, r.reason);
    }

    fn gone(&mut self, rel: &Path) {
        if let Some(t) = self.tracker.vanished(rel) {
            self.ops.push(PendingOp::Delete(rel_bytes(rel)));
            if matches!(t.state, FileState::Settling { .. }) && t.attempts == 0 {
                tracing::debug!(station = %self.cfg.id, path = %rel.display(), "file left before it settled");
            } else {
                tracing::warn!(station = %self.cfg.id, path = %rel.display(), "file vanished from the dock before it could be stored");
            }
        }
        if self.rejected.remove(rel).is_some() {
            self.ops.push(PendingOp::Delete(rel_bytes(rel)));
        }
    }

    async fn on_hints(&mut self, hints: Vec<Hint>) {
        let mut paths = Vec::new();
        let mut rescan = false;
        for h in hints {
            match h {
                Hint::Paths(ps) => paths.extend(ps),
                Hint::Overflow => {
                    tracing::warn!(station = %self.cfg.id, "inotify events were lost (queue overflow); rescanning");
                    let hold = chrono::Duration::from_std(self.ctx.alerting.cfg.degraded_hold).unwrap_or_default();
                    self.set_degraded("inotify events were lost (queue overflow); rescans cover".into(), Some(hold));
                    rescan = true;
                }
                Hint::LimitReached => {
                    self.fall_back_to_polling();
                    return;
                }
                Hint::Error(e) => {
                    tracing::warn!(station = %self.cfg.id, error = %e, "watch error; rescanning");
                    rescan = true;
                }
            }
        }
        if !self.available {
            return;
        }
        let root = self.cfg.path.clone();
        let mut rels: Vec<PathBuf> =
            paths.into_iter().filter_map(|p| p.strip_prefix(&root).ok().map(Path::to_path_buf)).collect();
        rels.sort();
        rels.dedup();
        if rels.iter().any(|r| r.as_os_str().is_empty()) {
            // An event on the station folder itself: it matters only if the
            // folder is gone (removed, moved, unmounted).
            let root = self.cfg.path.clone();
            let gone = tokio::task::spawn_blocking(move || scan::check_root(&root).is_err()).await.unwrap_or(true);
            if gone {
                rescan = true;
            }
            rels.retain(|r| !r.as_os_str().is_empty());
        }
        if rescan {
            self.next_scan = Instant::now();
            return;
        }
        let ignore = self.cfg.ignore.clone();
        let probed = tokio::task::spawn_blocking(move || {
            rels.into_iter()
                .map(|rel| {
                    let probe = scan::probe_path(&root, &rel, &ignore);
                    let sub = if probe == Probe::Dir {
                        let mut l = Listing::default();
                        scan::scan_dir(&root, &rel, &ignore, &mut l);
                        Some(l)
                    } else {
                        None
                    };
                    (rel, probe, sub)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (rel, probe, sub) in probed {
            match probe {
                Probe::File(e) => self.observe(e),
                Probe::Rejected(r) => self.reject(r),
                Probe::Gone => {
                    // A file, or a whole folder moved away.
                    let below: Vec<PathBuf> =
                        self.tracker.known_paths().into_iter().filter(|p| p.starts_with(&rel)).collect();
                    for p in below {
                        self.gone(&p);
                    }
                    self.gone(&rel);
                }
                Probe::Dir => {
                    if let Some(l) = sub {
                        for e in l.files {
                            self.observe(e);
                        }
                        for r in l.rejected {
                            self.reject(r);
                        }
                    }
                }
                Probe::Excluded | Probe::Error(_) => {}
            }
        }
    }

    fn dispatch_due(&mut self) {
        if !self.available {
            return;
        }
        for ready in self.tracker.take_due(Instant::now()) {
            let name = match &self.cfg.pattern {
                Some(p) => p.parse(&ready.rel.to_string_lossy()),
                None => Default::default(),
            };
            // Earliest deadline first: the start in the name bounds it; a
            // file without one is ordered by when it was first seen.
            let key = name.start.map(to_ms).unwrap_or_else(|| to_ms(ready.first_seen));
            self.ctx
                .queue
                .push(key, StoreJob { station: self.cfg.clone(), ready, name, reply: self.reports_tx.clone() });
        }
    }

    fn on_report(&mut self, r: Report) {
        let rel = r.rel;
        let now = Instant::now();
        let max = self.ctx.ingest.max_attempts;
        let (reason, retry_sig) = match r.outcome {
            Outcome::Stored { sig, .. } => {
                self.tracker.stored_ok(&rel, r.gen, sig);
                return;
            }
            Outcome::Gone => {
                self.gone(&rel);
                return;
            }
            Outcome::Rejected(reason) => {
                self.reject(Rejected { rel, reason });
                return;
            }
            Outcome::Changed(sig) => ("the file changed while it was being copied".to_string(), Some(sig)),
            Outcome::Failed(reason) => (reason, None),
        };
        let Some(t) = self.tracker.get(&rel) else { return };
        let (first_seen, size) = (t.first_seen, t.sig.size);
        let attempts = self.tracker.attempts(&rel) + 1;
        Stats::add(&self.ctx.stats.failed_attempts, 1);
        let retry = if attempts >= max {
            Retry::GiveUp
        } else if let Some(sig) = retry_sig {
            Retry::Resettle { sig, now }
        } else {
            Retry::At(now + self.ctx.backoff(attempts))
        };
        if self.tracker.failed(&rel, r.gen, reason.clone(), retry).is_none() {
            return; // a stale attempt: the file changed since
        }
        let state = if retry == Retry::GiveUp {
            Stats::add(&self.ctx.stats.given_up, 1);
            tracing::error!(station = %self.cfg.id, path = %rel.display(), attempts, %reason, "cannot store; the file stays on the dock");
            PendingState::Failed
        } else {
            tracing::warn!(station = %self.cfg.id, path = %rel.display(), attempts, %reason, "store attempt failed; will retry");
            PendingState::Retrying
        };
        self.ops.push(PendingOp::Upsert {
            rel: rel_bytes(&rel),
            first_seen: to_ms(first_seen),
            size: Some(size),
            state,
            attempts,
            reason: Some(reason),
            deadline: None,
        });
        self.ctx.alerting.poke();
    }
}
