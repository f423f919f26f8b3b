//! One task per station: discovery (events, scans, availability), the settle
//! tracker, and the station's pending files in the index.
//!
//! **Invariant:** absence is not deletion. A station folder that is missing
//! or unreadable makes the station unavailable; nothing it held is forgotten,
//! and nothing is removed from the index or the archive because a file is no
//! longer seen. A folder replaced under the station (a dock unmounted, even
//! lazily, or another file system mounted in its place) leaves the files it
//! showed *unaccounted for* (`missing`, with an alert) until they come back,
//! with their first-seen times. A single file that disappears before it was
//! stored (and was not renamed) is lost evidence: it is recorded as such with
//! a sticky `vanished_unstored` alert, never quietly forgotten.

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
use crate::index::ingest::{self as ix, PendingState, VanishedFile};
use crate::index::query::{self, PendingRecord};
use crate::rules::deadline::pending_deadline;
use crate::watch::events::{self, EventWatcher, Hint, WatchError};
use crate::watch::scan::{self, Entry, Listing, Probe, Rejected};
use crate::watch::settle::{Observed, Retry, Tracker};

/// How often an unavailable station is looked at again (at most).
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(2);

/// How often a station looks for retries an administrator asked for from
/// another process (`bodycamd retry`); the API's requests wake it at once.
const RETRY_REQUESTS_POLL: Duration = Duration::from_secs(2);

/// How long a disappeared file waits before it is judged lost: long enough
/// for the other half of a rename to be seen.
const VANISH_GRACE: Duration = Duration::from_secs(1);

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
#[derive(Clone)]
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
    /// Lost evidence: the file disappeared before it was stored.
    Vanished(VanishedFile),
    /// Its first-seen time is earlier than recorded (it was renamed from a
    /// path seen earlier).
    FirstSeen {
        rel: Vec<u8>,
        first_seen: i64,
        deadline: i64,
    },
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
    /// Pending files as recorded before a restart (until the first full
    /// listing has been applied).
    recorded: HashMap<PathBuf, PendingRecord>,
    /// Files unaccounted for after the station's folder was replaced: kept,
    /// with their first-seen times, until they come back.
    missing: HashMap<PathBuf, DateTime<Utc>>,
    /// Files that disappeared and are judged after [`VANISH_GRACE`] (a
    /// rename shows the new name meanwhile).
    vanishing: Vec<(PathBuf, crate::watch::settle::Tracked, Instant)>,
    /// Files that disappeared while a store attempt was under way: its
    /// outcome says whether they were stored first.
    gone_while_queued: HashSet<PathBuf>,
    available: bool,
    root_id: Option<(u64, u64)>,
    /// The folder's identity when the index last saw it listed (before a
    /// restart): a different one at start-up means the dock was replaced.
    recorded_root: Option<(u64, u64)>,
    next_retry_poll: Instant,
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
    /// Batches of pending-table writes, applied in order by one task; a
    /// batch the index refused (an outage) is kept and sent again.
    flusher: mpsc::UnboundedSender<Vec<PendingOp>>,
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

/// Apply a station's pending-table writes, batch after batch, in order. A
/// batch the index refuses (PostgreSQL unreachable, say) is kept and tried
/// again with the next one: a lost file's record is never dropped.
async fn write_pending(ctx: Arc<Ctx>, station: String, mut batches: mpsc::UnboundedReceiver<Vec<PendingOp>>) {
    let mut held: Vec<PendingOp> = Vec::new();
    let mut closed = false;
    loop {
        let more = tokio::select! {
            b = batches.recv(), if !closed => b,
            _ = tokio::time::sleep(Duration::from_secs(2)), if !held.is_empty() => Some(Vec::new()),
        };
        match more {
            Some(b) => held.extend(b),
            None if held.is_empty() => return,
            None => closed = true,
        }
        while let Ok(b) = batches.try_recv() {
            held.extend(b);
        }
        if held.is_empty() {
            continue;
        }
        let ops = std::mem::take(&mut held);
        let (st, hooks, now) = (station.clone(), ctx.alerting.hooks.clone(), to_ms(ctx.clock.now()));
        let sent = ops.clone();
        let r = ctx
            .index
            .call(move |c| {
                let mut transitions = Vec::new();
                for op in &sent {
                    match op {
                        PendingOp::Upsert { rel, first_seen, size, state, attempts, reason, deadline } => {
                            let p = ix::PendingFile {
                                station: &st,
                                rel_path: rel,
                                first_seen_ms: *first_seen,
                                size: *size,
                                state: *state,
                                attempts: *attempts,
                                reason: reason.as_deref(),
                                deadline_ms: *deadline,
                            };
                            ix::upsert_pending(c, &p, now)?
                        }
                        PendingOp::Delete(rel) => ix::delete_pending(c, &st, rel)?,
                        PendingOp::Vanished(v) => transitions.extend(ix::record_vanished(c, v, now, &hooks)?),
                        PendingOp::FirstSeen { rel, first_seen, deadline } => {
                            ix::set_pending_first_seen(c, &st, rel, *first_seen, *deadline)?
                        }
                    }
                }
                Ok(transitions)
            })
            .await;
        match r {
            Ok(t) => ctx.alerting.committed(&t),
            Err(e) if closed => {
                // Stopping: what is not recorded is found again at the next
                // start (the files are still on the dock).
                tracing::error!(station = %station, error = %e, "recording pending files failed at shutdown");
                return;
            }
            Err(e) => {
                tracing::error!(station = %station, error = %e, "recording pending files failed; tried again");
                held = ops;
            }
        }
    }
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
            index
                .read(|c| {
                    let stored = query::stored_sightings(c, &id)?;
                    let pending = query::pending_of_station(c, &id)?;
                    let root = query::station_root(c, &id)?;
                    Ok((stored, pending, root))
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| (cfg.id.clone(), e.to_string()))?
        .map_err(|e| (cfg.id.clone(), e))?;
        let (stored, pending, recorded_root) = loaded;
        let mode = match cfg.watch {
            WatchMode::Events => Mode::Events,
            WatchMode::Poll => Mode::Poll,
        };
        let mut tracker = Tracker::new(cfg.settle, mode == Mode::Events);
        for (rel, sig) in stored {
            tracker.insert_stored(PathBuf::from(std::ffi::OsString::from_vec(rel)), sig);
        }
        let recorded: HashMap<PathBuf, PendingRecord> =
            pending.into_iter().map(|(rel, p)| (PathBuf::from(std::ffi::OsString::from_vec(rel)), p)).collect();
        let missing = recorded
            .iter()
            .filter(|(_, p)| p.state == PendingState::Missing.as_str())
            .map(|(rel, p)| (rel.clone(), from_ms(p.first_seen_ms)))
            .collect();
        let (hints_tx, hints_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (flusher, batches) = mpsc::unbounded_channel();
        ctx.tasks.spawn(write_pending(ctx.clone(), cfg.id.clone(), batches));
        Ok(Station {
            ctx,
            cfg,
            tracker,
            rejected: HashMap::new(),
            recorded,
            missing,
            vanishing: Vec::new(),
            gone_while_queued: HashSet::new(),
            available: false,
            root_id: None,
            recorded_root,
            next_retry_poll: Instant::now() + RETRY_REQUESTS_POLL,
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
            flusher,
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
            self.decide_vanished().await;
            self.dispatch_due();
            self.flush();
            let wake =
                [self.tracker.next_wakeup(), self.vanishing.iter().map(|v| v.2).min()].into_iter().flatten().min();
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
                _ = sleep_until(self.next_retry_poll) => self.take_retry_requests().await,
                _ = self.ctx.retry_wake.notified() => self.take_retry_requests().await,
                _ = async { match wake { Some(w) => sleep_until(w).await, None => std::future::pending().await } } => {}
            }
        }
        self.flush();
    }

    /// Write batched pending-table changes and publish progress.
    fn flush(&mut self) {
        if !self.ops.is_empty() {
            let _ = self.flusher.send(std::mem::take(&mut self.ops));
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
                // Another folder than the one listed before (a dock unmounted,
                // lazily or not, or another file system mounted in its place):
                // what the old one showed is unaccounted for, not gone.
                let before = if self.listed_once { self.root_id } else { self.recorded_root };
                let replaced = before.is_some_and(|b| b != root_id);
                if !self.available || self.root_id != Some(root_id) {
                    self.become_available(root_id, replaced);
                    // Files written between the scan and the watch: rescan
                    // once the watch is in place.
                    self.next_scan = Instant::now();
                    self.reconcile(listing, replaced);
                    return;
                }
                self.reconcile(listing, false);
                self.next_scan = Instant::now() + self.scan_period();
            }
            Err(reason) => {
                self.become_unavailable(reason);
                self.next_scan = Instant::now() + UNAVAILABLE_RETRY.min(self.scan_period());
            }
        }
    }

    fn become_available(&mut self, root_id: (u64, u64), replaced: bool) {
        if replaced {
            tracing::warn!(
                station = %self.cfg.id, path = %self.cfg.path.display(), old = ?self.root_id.or(self.recorded_root), new = ?root_id,
                "station folder was replaced (unmounted or remounted?); files it showed and that are not here are unaccounted for, not gone"
            );
        } else if !self.available {
            if self.scanned_once {
                tracing::info!(station = %self.cfg.id, path = %self.cfg.path.display(), "station available again");
            } else {
                tracing::info!(station = %self.cfg.id, path = %self.cfg.path.display(), mode = self.mode_name(), "watching station");
            }
        }
        self.available = true;
        self.root_id = Some(root_id);
        self.recorded_root = Some(root_id);
        let (id, index) = (self.cfg.id.clone(), self.ctx.index.clone());
        self.ctx.tasks.spawn(async move {
            if let Err(e) = index.call(move |c| ix::set_station_root(c, &id, root_id.0, root_id.1)).await {
                tracing::error!(error = %e, "recording the station folder's identity failed");
            }
        });
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

    /// Apply a full listing: new and changed files, and what is gone (or,
    /// if the folder was `replaced`, unaccounted for).
    fn reconcile(&mut self, listing: Listing, replaced: bool) {
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
        let unreadable = listing.unreadable_dirs;
        let hidden = |rel: &Path| unreadable.iter().any(|d| rel.starts_with(d));
        for rel in self.tracker.known_paths() {
            if !present.contains(&rel) && !hidden(&rel) {
                if replaced {
                    self.unaccounted(&rel);
                } else {
                    self.gone(&rel);
                }
            }
        }
        let stale: Vec<PathBuf> = self.rejected.keys().filter(|r| !rejected_now.contains(*r)).cloned().collect();
        for rel in stale {
            self.rejected.remove(&rel);
            self.ops.push(PendingOp::Delete(rel_bytes(&rel)));
        }
        if !self.listed_once {
            self.listed_once = true;
            // Files pending before a restart that are not here now.
            for (rel, p) in std::mem::take(&mut self.recorded) {
                if present.contains(&rel) || rejected_now.contains(&rel) || hidden(&rel) {
                    continue;
                }
                match p.state.as_str() {
                    "missing" => {}
                    "rejected" => self.ops.push(PendingOp::Delete(rel_bytes(&rel))),
                    _ if replaced => {
                        self.missing.insert(rel.clone(), from_ms(p.first_seen_ms));
                        self.push_missing(&rel, from_ms(p.first_seen_ms), p.size);
                    }
                    _ => {
                        tracing::warn!(station = %self.cfg.id, path = %rel.display(), "file left the dock while bodycamd was stopped, before it was stored: recorded as lost");
                        let v = self.vanished_file(&rel, p.size, from_ms(p.first_seen_ms));
                        self.ops.push(PendingOp::Vanished(v));
                    }
                }
            }
        }
        if !unreadable.is_empty() {
            tracing::warn!(station = %self.cfg.id, dirs = ?unreadable, "folders could not be read; their files are not considered gone");
        }
        self.update_missing_state();
        self.scanned_once = true;
        self.save_station_state(true);
    }

    /// What is known of a file that disappeared.
    fn vanished_file(&self, rel: &Path, size: Option<u64>, first_seen: DateTime<Utc>) -> VanishedFile {
        VanishedFile {
            station: self.cfg.id.clone(),
            rel_path: rel_bytes(rel),
            size,
            first_seen_ms: to_ms(first_seen),
            name: self.cfg.pattern.as_ref().map(|p| p.parse(&rel.to_string_lossy())).unwrap_or_default(),
        }
    }

    fn push_missing(&mut self, rel: &Path, first_seen: DateTime<Utc>, size: Option<u64>) {
        self.ops.push(PendingOp::Upsert {
            rel: rel_bytes(rel),
            first_seen: to_ms(first_seen),
            size,
            state: PendingState::Missing,
            attempts: 0,
            reason: Some("the station's folder was replaced or unmounted while this file was not stored; kept until it comes back".into()),
            deadline: None,
        });
    }

    /// A file the old folder showed is not in the new one.
    fn unaccounted(&mut self, rel: &Path) {
        self.gone_while_queued.remove(rel);
        if let Some(t) = self.tracker.vanished(rel) {
            tracing::warn!(station = %self.cfg.id, path = %rel.display(), "file unaccounted for after the station folder was replaced");
            self.missing.insert(rel.to_path_buf(), t.first_seen);
            self.push_missing(rel, t.first_seen, Some(t.sig.size));
        }
        if self.rejected.remove(rel).is_some() {
            self.ops.push(PendingOp::Delete(rel_bytes(rel)));
        }
    }

    /// Keep the station's degraded note in step with its unaccounted files.
    fn update_missing_state(&mut self) {
        const NOTE: &str = "the station's folder was replaced or unmounted";
        let noted = self.degraded.as_deref().is_some_and(|d| d.starts_with(NOTE));
        if !self.missing.is_empty() {
            let why = format!("{NOTE}: {} file(s) it showed are unaccounted for", self.missing.len());
            if self.degraded.as_deref() != Some(why.as_str()) {
                self.set_degraded(why, None);
            }
        } else if noted {
            tracing::info!(station = %self.cfg.id, "every file the replaced folder showed is accounted for again");
            self.degraded = None;
            let (id, index) = (self.cfg.id.clone(), self.ctx.index.clone());
            self.ctx.tasks.spawn(async move {
                if let Err(e) = index.call(move |c| ix::set_station_degraded(c, &id, None, None)).await {
                    tracing::error!(error = %e, "recording a station's state failed");
                }
            });
            self.ctx.alerting.poke();
        }
    }

    /// When a station first showed a file: remembered from before a restart,
    /// else its ctime (when it was written to the dock, even while bodycamd
    /// was down) if that is earlier than now and plausible, else now.
    fn first_seen_of(&self, entry: &Entry, wall: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(t) = self.missing.get(&entry.rel) {
            return *t;
        }
        if let Some(p) = self.recorded.get(&entry.rel) {
            return from_ms(p.first_seen_ms);
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
                if self.missing.remove(&entry.rel).is_some() {
                    tracing::info!(station = %self.cfg.id, path = %entry.rel.display(), "an unaccounted-for file is back");
                    self.update_missing_state();
                }
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
        self.missing.remove(&r.rel);
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

    /// A path is no longer on the station.
    fn gone(&mut self, rel: &Path) {
        if self.tracker.is_queued(rel) {
            // A store attempt is under way: its outcome decides (it may have
            // stored the file and removed it from the dock itself).
            self.gone_while_queued.insert(rel.to_path_buf());
            return;
        }
        if let Some(t) = self.tracker.vanished(rel) {
            // Judged a moment later: the other half of a rename may follow.
            self.vanishing.push((rel.to_path_buf(), t, Instant::now() + VANISH_GRACE));
        }
        if self.rejected.remove(rel).is_some() {
            self.ops.push(PendingOp::Delete(rel_bytes(rel)));
        }
    }

    /// Judge the files that disappeared a grace period ago: renamed (the
    /// same inode is on the station under another name), replaced by a new
    /// file at the same path, empty, or lost evidence.
    async fn decide_vanished(&mut self) {
        let now = Instant::now();
        if !self.vanishing.iter().any(|v| v.2 <= now) {
            return;
        }
        // A folder replaced under the station is not a deletion: look first.
        let root = self.cfg.path.clone();
        let id_now =
            tokio::task::spawn_blocking(move || scan::check_root(&root)).await.unwrap_or_else(|e| Err(e.to_string()));
        if id_now.ok() != self.root_id {
            for v in &mut self.vanishing {
                v.2 = now + VANISH_GRACE;
            }
            self.next_scan = now;
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.vanishing).into_iter().partition(|v| v.2 <= now);
        self.vanishing = later;
        for (rel, t, _) in due {
            if self.tracker.is_known(&rel) {
                tracing::debug!(station = %self.cfg.id, path = %rel.display(), "file replaced by a new one at the same path");
                continue;
            }
            if let Some(to) = self.tracker.find_inode(t.sig.dev, t.sig.ino, &rel) {
                tracing::info!(station = %self.cfg.id, from = %rel.display(), to = %to.display(), "file renamed on the dock");
                if self.tracker.carry_first_seen(&to, t.first_seen) {
                    let deadline = self.estimated_deadline(&to, t.first_seen, t.sig.mtime_ns);
                    self.ops.push(PendingOp::FirstSeen {
                        rel: rel_bytes(&to),
                        first_seen: to_ms(t.first_seen),
                        deadline: to_ms(deadline),
                    });
                }
                self.ops.push(PendingOp::Delete(rel_bytes(&rel)));
                continue;
            }
            if t.sig.size == 0 {
                tracing::info!(station = %self.cfg.id, path = %rel.display(), "an empty file left the dock (nothing was lost)");
                self.ops.push(PendingOp::Delete(rel_bytes(&rel)));
                continue;
            }
            tracing::error!(
                station = %self.cfg.id, path = %rel.display(), size = t.sig.size,
                "file vanished from the dock before it could be stored: recorded as lost evidence"
            );
            let v = self.vanished_file(&rel, Some(t.sig.size), t.first_seen);
            self.ops.push(PendingOp::Vanished(v));
        }
        self.ctx.alerting.poke();
    }

    /// The estimated storage deadline of a file not stored yet.
    fn estimated_deadline(&self, rel: &Path, first_seen: DateTime<Utc>, mtime_ns: i64) -> DateTime<Utc> {
        let name_start = self.cfg.pattern.as_ref().and_then(|p| p.parse(&rel.to_string_lossy()).start);
        let mtime = DateTime::from_timestamp_nanos(mtime_ns);
        pending_deadline(name_start, Some(mtime), first_seen, self.ctx.storage_deadline())
    }

    /// Retries an administrator asked for (`bodycamd retry`, the API).
    async fn take_retry_requests(&mut self) {
        self.next_retry_poll = Instant::now() + RETRY_REQUESTS_POLL;
        let (index, id) = (self.ctx.index.clone(), self.cfg.id.clone());
        // A read first (cheap, on a partial index); the writer only when
        // there is something to take.
        let asked = tokio::task::spawn_blocking(move || index.read(|c| query::retry_requested(c, &id))).await;
        if !matches!(asked, Ok(Ok(true))) {
            return;
        }
        let id = self.cfg.id.clone();
        let rels = match self.ctx.index.call(move |c| ix::take_retry_requests(c, &id)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "taking retry requests failed");
                return;
            }
        };
        let now = Instant::now();
        for rel in rels {
            let rel = PathBuf::from(std::ffi::OsString::from_vec(rel));
            if self.tracker.retry_now(&rel, now) {
                tracing::info!(station = %self.cfg.id, path = %rel.display(), "trying again now, as an administrator asked");
            }
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
            // folder is gone or is another one now (removed, moved,
            // unmounted, even lazily).
            let root = self.cfg.path.clone();
            let now_id = tokio::task::spawn_blocking(move || scan::check_root(&root).ok()).await.ok().flatten();
            if now_id.is_none() || now_id != self.root_id {
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
        let gone_meanwhile = self.gone_while_queued.remove(&rel);
        let (reason, retry_sig) = match r.outcome {
            Outcome::Stored { sig, .. } => {
                self.tracker.stored_ok(&rel, r.gen, sig);
                // The ingest commit removed its pending row, but an upsert
                // of ours may still be on its way (pending writes are
                // batched, on another connection) and would bring the row
                // back: this delete comes after it in our own order.
                self.ops.push(PendingOp::Delete(rel_bytes(&rel)));
                if self.missing.remove(&rel).is_some() {
                    // Its copy finished before its folder was replaced.
                    self.update_missing_state();
                }
                return;
            }
            Outcome::Gone => {
                if self.tracker.is_queued(&rel) {
                    // Gone before it could be copied: judged like any
                    // disappearance (a rename, a lost file).
                    if let Some(t) = self.tracker.vanished(&rel) {
                        self.vanishing.push((rel, t, now + VANISH_GRACE));
                    }
                }
                return;
            }
            Outcome::Rejected(reason) => {
                self.reject(Rejected { rel, reason });
                return;
            }
            Outcome::Blocked(fault) => {
                self.on_blocked(rel, r.gen, fault, gone_meanwhile);
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
            match retry_sig.flatten() {
                // It keeps changing: reported as failed, and looked at again
                // once it has been still for the settle time (a file fixed
                // by someone, or still being written, is not left behind).
                Some(sig) => Retry::GiveUpChanged { sig, retry_at: now + self.cfg.settle },
                None => Retry::GiveUp(now + self.ctx.ingest.failed_retry),
            }
        } else if let Some(sig) = retry_sig {
            Retry::Resettle { sig, now }
        } else {
            Retry::At(now + self.ctx.backoff(attempts))
        };
        if self.tracker.failed(&rel, r.gen, reason.clone(), retry).is_none() {
            return; // a stale attempt: the file changed since
        }
        let state = if matches!(retry, Retry::GiveUp(_) | Retry::GiveUpChanged { .. }) {
            Stats::add(&self.ctx.stats.given_up, 1);
            tracing::error!(
                station = %self.cfg.id, path = %rel.display(), attempts, %reason,
                retry_in = ?self.ctx.ingest.failed_retry,
                "cannot store; the file stays on the dock and is tried again later (or now with `bodycamd retry`)"
            );
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
        if gone_meanwhile {
            self.gone(&rel);
        }
        self.ctx.alerting.poke();
    }

    /// An attempt met an outage: no attempt is counted; the file waits a
    /// short while (at most 30 s) and is tried again, so that it is stored
    /// by itself soon after the cause clears.
    fn on_blocked(&mut self, rel: PathBuf, gen: u64, fault: super::faults::Fault, gone_meanwhile: bool) {
        let now = Instant::now();
        if self.ctx.faults.report(&fault, self.ctx.clock.now()) {
            tracing::error!(
                fault = ?fault.kind, reason = %fault.reason,
                "outage: files wait on the docks and are stored once it clears (no attempt is counted against them)"
            );
        }
        self.ctx.alerting.poke();
        let Some(t) = self.tracker.get(&rel) else { return };
        let (first_seen, size) = (t.first_seen, t.sig.size);
        let wait = self.ctx.blocked_wait(self.tracker.blocked_count(&rel) + 1);
        let marked = if self.ctx.once {
            // `run --once` does not wait for an outage to end: the file is
            // left for the next run (or the daemon), still not charged.
            self.tracker.failed(&rel, gen, fault.reason.clone(), Retry::GiveUp(now + wait)).is_some()
        } else {
            self.tracker.blocked(&rel, gen, fault.reason.clone(), now + wait).is_some()
        };
        if !marked {
            return;
        }
        tracing::debug!(station = %self.cfg.id, path = %rel.display(), reason = %fault.reason, ?wait, "waiting for an outage to clear");
        self.ops.push(PendingOp::Upsert {
            rel: rel_bytes(&rel),
            first_seen: to_ms(first_seen),
            size: Some(size),
            state: PendingState::Blocked,
            attempts: 0,
            reason: Some(fault.reason),
            deadline: None,
        });
        if gone_meanwhile {
            self.gone(&rel);
        }
    }
}
