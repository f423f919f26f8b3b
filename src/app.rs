//! The composition root: opens the state directory, repairs what a crash
//! left, starts the station, store and describe tasks, and owns shutdown.
//!
//! Only this module and [`crate::pipeline`] combine the leaf modules.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::clock::{to_ms, SharedClock};
use crate::config::Config;
use crate::custody::key::HostKey;
use crate::index::Index;
use crate::media::worker::{ProberPool, ProberSettings};
use crate::media::worker::{RenderLimits, RenderPool};
use crate::pipeline::station::Progress;
use crate::pipeline::{alerting, custody, describe, recovery, renditions, service, station, store, Ctx, Stats};
use crate::store::Archive;
use std::sync::atomic::{AtomicBool, Ordering};

/// How `run` behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Ingest what is on the stations now, wait until done, return.
    pub once: bool,
    /// The executable started as `EXE probe-worker` and `EXE render-worker`
    /// (`bodycamd-media`, beside bodycamd).
    pub prober_exe: PathBuf,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// Make renditions (with `once`: finish the rendition queue first).
    pub renditions: bool,
    /// Set when this run is being stopped to be started again with a
    /// reloaded configuration (so it says RELOADING, not STOPPING).
    pub reloading: Arc<AtomicBool>,
    /// This run follows a reload (audited as `config.reload`).
    pub reloaded: bool,
}

impl RunOptions {
    pub fn new(once: bool) -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            once,
            prober_exe: crate::cli::media_exe().context("cannot find the bodycamd executable")?,
            shutdown_grace: Duration::from_secs(30),
            renditions: true,
            reloading: Arc::new(AtomicBool::new(false)),
            reloaded: false,
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub stored_new: u64,
    pub duplicates: u64,
    pub failed_attempts: u64,
    pub given_up: u64,
    pub deleted_from_dock: u64,
    pub described: u64,
    pub bytes_stored: u64,
    pub recovered_tmp: usize,
    pub recovered_orphans: usize,
}

const CLEAN_MARKER: &str = "clean-shutdown";

/// Hold an exclusive lock on the state directory: two daemons (or two
/// pipelines of one daemon, across a reload) on one archive would race each
/// other's recovery. With `wait`, wait for the holder to let go (a reload
/// waits for the previous pipeline's abandoned work to stop).
async fn lock_state_dir(dir: &Path, wait: bool) -> anyhow::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .with_context(|| format!("cannot open {}", dir.join("lock").display()))?;
    let mut said = false;
    loop {
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::WOULDBLOCK) if wait => {
                if !said {
                    tracing::info!("waiting for the previous pipeline to stop before starting again");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                bail!("another bodycamd is already running with state_dir {}", dir.display())
            }
            Err(e) => return Err(e).context("cannot lock the state directory"),
        }
    }
}

fn all_settled(progress: &[watch::Receiver<Progress>]) -> bool {
    progress.iter().all(|p| {
        let p = p.borrow();
        p.scanned && (p.unresolved == 0 || !p.available)
    })
}

/// Wait until every station has been scanned and nothing is pending,
/// storing or describing (seen twice in a row, so that work handed between
/// tasks is not missed).
async fn until_idle(ctx: &Ctx, progress: &[watch::Receiver<Progress>]) {
    let mut quiet = 0;
    loop {
        if all_settled(progress) && ctx.is_idle() {
            quiet += 1;
            if quiet >= 3 {
                return;
            }
        } else {
            quiet = 0;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
    }
}

/// Wait until no rendition job is running or due now. Jobs that wait for a
/// retry later (after a failure that may pass) stay queued for the daemon or
/// the next run: `run --once` never sits idle waiting for a backoff.
async fn until_rendered(ctx: &Ctx) -> anyhow::Result<()> {
    loop {
        let index = ctx.index.clone();
        let soon = chrono::Utc::now().timestamp_millis() + 1000;
        let left =
            tokio::task::spawn_blocking(move || index.read(|c| crate::index::renditions::due_or_running(c, soon)))
                .await??;
        if left == 0 && ctx.rendering.load(Ordering::SeqCst) == 0 {
            let index = ctx.index.clone();
            let later =
                tokio::task::spawn_blocking(move || index.read(crate::index::renditions::outstanding)).await??;
            if later > 0 {
                tracing::warn!(
                    jobs = later,
                    "rendition jobs wait for a retry later; the daemon (or the next run) makes them"
                );
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = ctx.shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Run the daemon until `shutdown` is cancelled (or, with `once`, until
/// everything on the stations is stored and described).
pub async fn run(
    config: Config,
    opts: RunOptions,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("cannot create state_dir {}", config.state_dir.display()))?;
    let lock = lock_state_dir(&config.state_dir, opts.reloaded).await?;
    let marker = config.state_dir.join(CLEAN_MARKER);
    let was_clean = marker.exists();
    if was_clean {
        fs::remove_file(&marker).context("cannot remove the clean-shutdown marker")?;
    }
    let started = SystemTime::now();

    let archive = Archive::open(&config.archive_dir())
        .with_context(|| format!("cannot open the archive at {}", config.archive_dir().display()))?;
    let removed = archive.recover().context("cannot clean the archive's tmp folder")?;
    if !removed.is_empty() {
        tracing::warn!(count = removed.len(), "removed interrupted copies from the archive (their dock files remain)");
    }
    let bucket = crate::store::open_bucket(&config)?;
    let archive = match &bucket {
        Some(b) => {
            // Interrupted multipart uploads: everything begun before this
            // start on a single host; in a district only what is a day old
            // (another host may be uploading now).
            let before = to_ms(clock.now())
                - if matches!(config.index, crate::config::IndexLocation::Postgres(_)) { 86_400_000 } else { 0 };
            match b.abort_stale_uploads(before) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(count = n, "aborted interrupted uploads to the bucket (their dock files remain)")
                }
                Err(e) => tracing::warn!(error = %e, "cannot list interrupted uploads in the bucket"),
            }
            tracing::info!(bucket = %b.bucket(), "archive: S3 bucket (the local folder is this host's cache)");
            archive.with_remote(b.clone(), crate::store::s3::Tree::Originals, Some(crate::store::lock_span(&config)))
        }
        None => archive,
    };
    let index = Index::connect(&config.index).with_context(|| match &config.index {
        crate::index::Location::Sqlite(p) => format!("cannot open the index at {}", p.display()),
        crate::index::Location::Postgres(u) => {
            format!("cannot open the index at {}", crate::index::pg::redact(u))
        }
    })?;
    if index.engine() == crate::index::Engine::Postgres && !config.archive.shared && bucket.is_none() {
        bail!(
            "index.url is a PostgreSQL district index, but the archive is this host's own folder ({}): any host \
             must be able to serve any original. Use an S3 archive ([archive.s3] bucket = ...) or a folder every \
             host mounts at the same path ([archive] shared = true)",
            config.archive_dir().display()
        );
    }
    let key = HostKey::load_or_create(&config.state_dir).context("cannot load the host key")?;
    let now = to_ms(clock.now());
    let loaded = format!(
        "{} (BLAKE3 {}); host key {}",
        config.source.display(),
        fs::read(&config.source).map(|b| blake3::hash(&b).to_hex().to_string()).unwrap_or_else(|_| "-".into()),
        key.public_hex()
    );
    let action = if opts.reloaded { "config.reload" } else { "config.load" };
    index.call(move |c| crate::index::audit::event(c, now, action, None, None, Some(loaded.clone()))).await?;
    // Bind early: a port in use is a start-up error, before any work.
    let listener = match config.api.listen {
        Some(addr) => {
            let l = api::bind(addr).await?;
            tracing::info!(addr = %l.local_addr()?, "api listening");
            Some(l)
        }
        None => None,
    };
    let prober = ProberPool::start(ProberSettings {
        exe: opts.prober_exe.clone(),
        workers: config.probe.workers,
        timeout: config.probe.timeout,
        memory_limit_bytes: config.probe.memory_limit_bytes,
    });
    let rendition_store = Archive::open(&config.renditions_dir())
        .with_context(|| format!("cannot open the renditions store in {}", config.state_dir.display()))?;
    let rendition_store = match &bucket {
        Some(b) => rendition_store.with_remote(b.clone(), crate::store::s3::Tree::Renditions, None),
        None => rendition_store,
    };
    let runtime = renditions::Runtime {
        cfg: config.renditions.clone(),
        store: rendition_store,
        pool: RenderPool::start(RenderLimits {
            exe: opts.prober_exe.clone(),
            workers: config.renditions.workers,
            timeout: config.renditions.timeout,
            memory_limit_bytes: config.renditions.memory_limit_bytes,
        }),
        wake: tokio::sync::Notify::new(),
    };
    let (ctx, describe_rx) =
        Ctx::new(archive, index, prober, clock, &config, runtime, opts.once, shutdown.child_token());
    crate::pipeline::district::claim_stations(&ctx, &config).await?;
    renditions::prepare(&ctx).await?;

    let deletions = recovery::resume_deletions(&ctx).await?;
    if deletions > 0 {
        tracing::info!(count = deletions, "finished dock deletions interrupted by a crash");
    }
    let undescribed = recovery::redescribe(&ctx)?;
    if undescribed > 0 {
        tracing::info!(count = undescribed, "describing originals stored before a restart");
    }
    ctx.tasks.spawn(describe::run(ctx.clone(), describe_rx, config.probe.workers));
    // Each worker copies one file at a time; what follows the copy (commit,
    // index, upload) runs beside the next copy.
    for _ in 0..config.ingest.workers.max(1) {
        ctx.tasks.spawn(store::worker(ctx.clone()));
    }
    let mut progress = Vec::new();
    for st in &config.stations {
        let (tx, rx) = watch::channel(Progress::default());
        progress.push(rx);
        ctx.tasks.spawn(station::run(ctx.clone(), Arc::new(st.clone()), tx));
    }

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listener) = listener {
        let state = ApiState {
            index: ctx.index.clone(),
            archive: ctx.archive.clone(),
            renditions: ctx.renditions.store.clone(),
            clock: ctx.clock.clone(),
            ready: ready.clone(),
            stations: Arc::new(config.stations.iter().map(|s| s.id.clone()).collect()),
            tokens: Arc::new(config.api.tokens.clone()),
            max_window: chrono::Duration::from_std(config.cases.max_window).unwrap_or(chrono::Duration::hours(24)),
            max_body_bytes: config.api.max_body_bytes,
            hooks: ctx.alerting.hooks.clone(),
            state_dir: config.state_dir.clone(),
            key: key.clone(),
            export_expire: config.exports.expire,
            retention_default: config.retention.default,
            lock_span: crate::store::lock_span(&config),
            retry_wake: ctx.retry_wake.clone(),
            export_builds: Arc::new(tokio::sync::Mutex::new(())),
            unauthenticated: Arc::new(api::auth::Unauthenticated::new(config.api.auth_failures_per_minute)),
            faults: ctx.faults.clone(),
            console: Arc::new(crate::console::Shared::new(
                config.deadlines.storage,
                config.deadlines.warn_before,
                std::time::Duration::from_secs(u64::from(config.cases.archive_days) * 86_400),
            )),
        };
        let limits = api::listener::Limits {
            max_connections: config.api.max_connections,
            header_timeout: config.api.header_timeout,
            body_timeout: config.api.body_timeout,
        };
        ctx.tasks.spawn(api::serve(listener, state, limits, ctx.shutdown.clone()));
    }
    if opts.renditions && config.renditions.enabled {
        for _ in 0..config.renditions.workers {
            ctx.tasks.spawn(renditions::worker(ctx.clone()));
        }
        if opts.once {
            renditions::backfill(ctx.clone()).await;
        } else {
            ctx.tasks.spawn(renditions::backfill(ctx.clone()));
        }
    }
    ctx.tasks.spawn(crate::pipeline::district::heartbeat(ctx.clone()));
    ctx.tasks.spawn(crate::pipeline::district::leadership(ctx.clone()));
    ctx.tasks.spawn(alerting::evaluator(ctx.clone()));
    ctx.tasks.spawn(recovery::retry_deletions(ctx.clone()));
    ctx.tasks.spawn(service::watchdog(ctx.clone(), ready.clone()));
    ctx.tasks.spawn(alerting::deliverer(ctx.clone()));
    {
        let (progress, ready, shutdown) = (progress.clone(), ready.clone(), ctx.shutdown.clone());
        ctx.tasks.spawn(async move {
            while !progress.iter().all(|p| p.borrow().scanned) {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            ready.store(true, Ordering::SeqCst);
            tracing::info!("ready: recovery and the first scan of every station are done");
            service::ready("ready: recovery and the first scan of every station are done");
        });
    }

    let mut report = RunReport { recovered_tmp: removed.len(), ..Default::default() };
    if opts.once {
        until_idle(&ctx, &progress).await;
        if !was_clean {
            report.recovered_orphans = recovery::orphan_sweep(&ctx, started).await?;
            until_idle(&ctx, &progress).await;
        }
        if opts.renditions && config.renditions.enabled {
            until_rendered(&ctx).await?;
        }
        // Leave the alerts as the state now is.
        alerting::evaluate_once(&ctx).await?;
        custody::write_head(&ctx, &config.state_dir, &key).await;
    } else {
        if !was_clean {
            let (ctx2, progress2) = (ctx.clone(), progress.clone());
            ctx.tasks.spawn(async move {
                until_idle(&ctx2, &progress2).await;
                if !ctx2.shutdown.is_cancelled() {
                    if let Err(e) = recovery::orphan_sweep(&ctx2, started).await {
                        tracing::error!(error = %e, "orphan sweep failed");
                    }
                }
            });
        }
        ctx.tasks.spawn(custody::run(ctx.clone(), Arc::new(config.clone()), key.clone()));
        tracing::info!(stations = config.stations.len(), "bodycamd running");
        shutdown.cancelled().await;
        tracing::info!("shutting down: no new files are taken; in-flight copies finish");
        if !opts.reloading.load(Ordering::SeqCst) {
            service::stopping();
        }
    }
    ctx.shutdown.cancel();
    ctx.tasks.close();
    let grace = opts.shutdown_grace.min(config.ingest.shutdown_grace);
    let clean = tokio::time::timeout(grace, ctx.tasks.wait()).await.is_ok();
    if clean {
        drop(lock);
    } else {
        ctx.abandon.store(true, Ordering::SeqCst);
        // Work still runs (a copy the grace did not cover): the state
        // directory stays locked until it has stopped, so that a reload's
        // next pipeline never runs beside it (and never sweeps its files).
        let tasks = ctx.tasks.clone();
        tokio::spawn(async move {
            tasks.wait().await;
            drop(lock);
        });
    }
    let s = &ctx.stats;
    report.stored_new = Stats::get(&s.stored_new);
    report.duplicates = Stats::get(&s.duplicates);
    report.failed_attempts = Stats::get(&s.failed_attempts);
    report.given_up = Stats::get(&s.given_up);
    report.deleted_from_dock = Stats::get(&s.deleted_from_dock);
    report.described = Stats::get(&s.described);
    report.bytes_stored = Stats::get(&s.bytes_stored);
    let (archive, rendition_store) = (ctx.archive.clone(), ctx.renditions.store.clone());
    match Arc::try_unwrap(ctx) {
        Ok(ctx) if clean => {
            let Ctx { index, .. } = ctx;
            index.close();
            fs::write(&marker, b"").context("cannot write the clean-shutdown marker")?;
        }
        _ => {
            // Abandon copies still running: their temporary files go now
            // (the dock files are untouched and are stored at the next
            // start); anything else left is repaired by the next start.
            match archive.recover() {
                Ok(removed) if !removed.is_empty() => tracing::warn!(
                    count = removed.len(),
                    "shutdown grace ran out: unfinished copies abandoned and their temporary files removed"
                ),
                _ => {}
            }
            let _ = rendition_store.recover();
            tracing::warn!("work was still running when the shutdown grace ran out; the next start repairs it");
        }
    }
    Ok(report)
}
