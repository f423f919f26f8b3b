//! The ingest pipeline: candidate → store → index → dispose → describe.
//!
//! - [`station`]: one task per station; owns discovery and the settle
//!   tracker, hands complete files to the store queue.
//! - [`queue`]: the store queue, earliest deadline first.
//! - [`store`]: storing one dock file (copy + hash, verify, index, delete).
//! - [`describe`]: the describer, which runs after storing and never
//!   blocks it.
//! - [`recovery`]: what a start after a crash repairs.
//!
//! **Invariant:** storing never waits for describing. A file is indexed as
//! soon as its bytes are durable; its description follows from a separate
//! queue that a slow or hostile file can only delay for itself.

pub mod alerting;
pub mod commit;
pub mod custody;
pub mod describe;
pub mod district;
pub mod faults;
pub mod queue;
pub mod recovery;
pub mod renditions;
pub mod service;
pub mod station;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{Config, DeadlineConfig, IngestConfig, StationConfig};
use crate::domain::MediaId;
use crate::index::Index;
use crate::media::worker::ProberPool;
use crate::store::Archive;

/// Counters of one run (shown by `run --once` and the demo).
#[derive(Debug, Default)]
pub struct Stats {
    /// Originals new to the archive.
    pub stored_new: AtomicU64,
    /// Dock files whose bytes were already stored (a sighting was added).
    pub duplicates: AtomicU64,
    /// Store attempts that failed (each retry counts).
    pub failed_attempts: AtomicU64,
    /// Files given up after their last attempt.
    pub given_up: AtomicU64,
    pub deleted_from_dock: AtomicU64,
    pub described: AtomicU64,
    pub bytes_stored: AtomicU64,
}

impl Stats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What every pipeline task shares.
pub struct Ctx {
    pub archive: Archive,
    pub index: Index,
    pub prober: ProberPool,
    pub clock: SharedClock,
    pub ingest: IngestConfig,
    pub deadlines: DeadlineConfig,
    /// A closed case must be archived within this many days.
    pub case_archive_days: u32,
    pub alerting: alerting::Alerting,
    /// Station settings by id (the describer needs their time zones).
    pub stations: RwLock<HashMap<String, Arc<StationConfig>>>,
    pub queue: queue::DeadlineQueue<store::StoreJob>,
    describe_tx: mpsc::UnboundedSender<MediaId>,
    /// Descriptions queued or running.
    pub describing: AtomicUsize,
    /// Store jobs running.
    pub storing: AtomicUsize,
    /// Files copied and waiting for (or in) their commit, index write and
    /// upload: a store worker copies the next file meanwhile.
    pub finishing: Arc<tokio::sync::Semaphore>,
    /// Uploads to the bucket running at once, also `ingest.workers`: more
    /// at once would only share the link.
    pub persisting: tokio::sync::Semaphore,
    /// Staged copies are made durable and visible in groups...
    pub commits: commit::Batcher<crate::store::Staged, Result<crate::store::Stored, crate::store::StoreError>>,
    /// ...and the stored files indexed in groups.
    pub ingests: commit::Batcher<store::IngestItem, Result<bool, String>>,
    pub renditions: renditions::Runtime,
    /// Renditions being made.
    pub rendering: AtomicUsize,
    pub stats: Stats,
    /// Outages met by store attempts (archive, index, descriptors).
    pub faults: Arc<faults::Faults>,
    /// `run --once`: a file blocked by an outage is left for the next run
    /// instead of being waited for.
    pub once: bool,
    /// Wakes the stations to take retries an administrator asked for.
    pub retry_wake: Arc<tokio::sync::Notify>,
    /// Set when the shutdown grace ran out: copies still running stop.
    pub abandon: std::sync::atomic::AtomicBool,
    /// This host in its district (its name, whether it leads).
    pub district: district::District,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)] // the composition root hands over every part once
    pub fn new(
        archive: Archive,
        index: Index,
        prober: ProberPool,
        clock: SharedClock,
        config: &Config,
        renditions: renditions::Runtime,
        once: bool,
        shutdown: CancellationToken,
    ) -> (Arc<Ctx>, mpsc::UnboundedReceiver<MediaId>) {
        let (describe_tx, describe_rx) = mpsc::unbounded_channel();
        let index_shared = index.engine() == crate::index::Engine::Postgres;
        let ctx = Ctx {
            archive,
            index,
            prober,
            clock,
            ingest: config.ingest.clone(),
            deadlines: config.deadlines.clone(),
            case_archive_days: config.cases.archive_days,
            alerting: alerting::Alerting::new(config.alerts.clone()),
            stations: RwLock::new(config.stations.iter().map(|s| (s.id.clone(), Arc::new(s.clone()))).collect()),
            queue: queue::DeadlineQueue::default(),
            describe_tx,
            describing: AtomicUsize::new(0),
            storing: AtomicUsize::new(0),
            finishing: Arc::new(tokio::sync::Semaphore::new(store::FINISHING)),
            persisting: tokio::sync::Semaphore::new(config.ingest.workers.max(1)),
            commits: commit::Batcher::new(commit::MAX_COPIES),
            ingests: commit::Batcher::new(commit::MAX_ROWS),
            renditions,
            rendering: AtomicUsize::new(0),
            stats: Stats::default(),
            faults: Arc::new(faults::Faults::default()),
            once,
            retry_wake: Arc::new(tokio::sync::Notify::new()),
            abandon: std::sync::atomic::AtomicBool::new(false),
            district: district::District::new(config.host.clone(), index_shared),
            shutdown,
            tasks: TaskTracker::new(),
        };
        (Arc::new(ctx), describe_rx)
    }

    /// Queue an original for describing.
    pub fn describe_later(&self, id: MediaId) {
        self.describing.fetch_add(1, Ordering::SeqCst);
        if self.describe_tx.send(id).is_err() {
            self.describing.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub fn station(&self, id: &str) -> Option<Arc<StationConfig>> {
        self.stations.read().unwrap().get(id).cloned()
    }

    /// Nothing queued, stored or described right now.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.storing.load(Ordering::SeqCst) == 0 && self.describing.load(Ordering::SeqCst) == 0
    }

    /// The storage deadline as a chrono duration.
    pub fn storage_deadline(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.deadlines.storage).unwrap_or(chrono::Duration::hours(24))
    }

    /// How long a file waits after `blocked` attempts in a row met an
    /// outage: short, and never more than 30 s, so that waiting files are
    /// stored within a minute of the cause clearing.
    pub fn blocked_wait(&self, blocked: u32) -> std::time::Duration {
        let base = self.ingest.retry_base.as_secs_f64().max(0.05);
        let d = base * 2f64.powi(blocked.saturating_sub(1).min(20) as i32);
        std::time::Duration::from_secs_f64(d.min(self.ingest.retry_max.as_secs_f64().max(0.05)).min(30.0))
    }

    /// How long a dock deletion that could not be done waits before it is
    /// tried again (`ingest.retry_max_secs`, at least 0.1 s).
    pub fn dispose_retry(&self) -> std::time::Duration {
        self.ingest.retry_max.max(std::time::Duration::from_millis(100))
    }

    /// Backoff before attempt `attempts + 1`.
    pub fn backoff(&self, attempts: u32) -> std::time::Duration {
        let base = self.ingest.retry_base.as_secs_f64();
        let d = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        std::time::Duration::from_secs_f64(d.min(self.ingest.retry_max.as_secs_f64()))
    }
}
