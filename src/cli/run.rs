use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::{load_config, ConfigArg};
use crate::app::{self, RunOptions};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::index::{open_reader, query};
use crate::views::{human_bytes, StatusJson};

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LogFormatArg {
    Auto,
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Ingest everything on the stations now, wait until done, and exit
    /// (0 when it ran, even if some files failed; they are reported).
    #[arg(long)]
    once: bool,
    /// With --once: do not make renditions (they are made by the daemon
    /// later); without it, --once also finishes the rendition queue.
    #[arg(long)]
    no_renditions: bool,
    /// Log format (default: from the configuration, else text on a terminal
    /// and JSON lines otherwise).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

/// Cancel `token` at the first SIGTERM or SIGINT; exit at once on a second.
pub fn handle_signals(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        token.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// What the signal task asks of the run loop.
enum Next {
    Stop,
    Reload(Box<Config>),
}

/// The daemon's signals: SIGTERM/SIGINT stop (a second one exits at once);
/// SIGHUP reads and validates the configuration and, if it is valid (and
/// keeps the same state directory), stops the current run to start again
/// with it. An invalid configuration is logged and the running one kept.
fn daemon_signals(
    path: PathBuf,
    state_dir: PathBuf,
    current: Arc<Mutex<(CancellationToken, Arc<AtomicBool>)>>,
    tx: tokio::sync::mpsc::UnboundedSender<Next>,
) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    match Config::load(&path) {
                        Err(errors) => {
                            for e in &errors.0 {
                                tracing::error!(error = %e, "reload refused: the configuration is invalid; the running one is kept");
                            }
                        }
                        Ok(cfg) if cfg.state_dir != state_dir => tracing::error!(
                            old = %state_dir.display(), new = %cfg.state_dir.display(),
                            "reload refused: state_dir cannot change while running; restart the service instead"
                        ),
                        Ok(cfg) => {
                            tracing::info!("configuration valid: reloading (in-flight copies finish first)");
                            crate::pipeline::service::reloading();
                            let _ = tx.send(Next::Reload(Box::new(cfg)));
                            let (token, reloading) = current.lock().unwrap().clone();
                            reloading.store(true, Ordering::SeqCst);
                            token.cancel();
                        }
                    }
                }
            }
        }
        let _ = tx.send(Next::Stop);
        current.lock().unwrap().0.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// Raise the soft open-files limit to the hard one: docks, index readers,
/// API connections and child processes all need descriptors, and running
/// out stalls ingest (the unit sets `LimitNOFILE` high as well).
fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: l.maximum, maximum: l.maximum }) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    if now.is_some_and(|n| n < 4096) {
        tracing::warn!(limit = ?now, "the open-files limit is low; raise LimitNOFILE (many docks or API clients need more)");
    }
}

/// At most one malloc arena per CPU (at least 2). glibc's default allows
/// eight per CPU, and the daemon's threads (runtime workers, blocking-pool
/// threads that come and go, the index writer) each end up with one: memory
/// freed in one arena is not reused by another, and a dock of many small
/// files left the daemon some 20 MiB larger for it (BENCHMARKS.md, memory).
/// Set before the runtime starts any thread.
fn limit_malloc_arenas() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    // SAFETY: mallopt only changes allocator parameters; no other thread
    // exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cpus as libc::c_int);
    }
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    limit_malloc_arenas();
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let format = match a.log_format {
        Some(LogFormatArg::Auto) => LogFormat::Auto,
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => cfg.log.format,
    };
    crate::telemetry::init(&cfg.log.level, format);
    raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        if !a.once {
            return daemon(cfg, a.no_renditions).await;
        }
        let shutdown = CancellationToken::new();
        handle_signals(shutdown.clone());
        let mut opts = RunOptions::new(a.once)?;
        opts.renditions = !a.no_renditions;
        let report = app::run(cfg.clone(), opts, Arc::new(SystemClock), shutdown).await?;
        if a.once {
            println!(
                "Stored {} new original(s) ({}), {} duplicate sighting(s), {} described, {} removed from docks.",
                report.stored_new,
                human_bytes(report.bytes_stored),
                report.duplicates,
                report.described,
                report.deleted_from_dock
            );
            let reader = open_reader(&cfg.index)?;
            let c = reader.db();
            let status = StatusJson::build(&query::stations(&c)?, &query::counts(&c, true)?, &query::pending(&c, &[])?);
            print!("{}", status.render());
        }
        Ok(0)
    })
}

/// The daemon: run until stopped, starting again after each valid reload.
async fn daemon(mut cfg: Config, no_renditions: bool) -> anyhow::Result<i32> {
    let current = Arc::new(Mutex::new((CancellationToken::new(), Arc::new(AtomicBool::new(false)))));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    daemon_signals(cfg.source.clone(), cfg.state_dir.clone(), current.clone(), tx);
    let mut reloaded = false;
    loop {
        let (token, reloading) = current.lock().unwrap().clone();
        let mut opts = RunOptions::new(false)?;
        opts.renditions = !no_renditions;
        opts.reloading = reloading;
        opts.reloaded = reloaded;
        app::run(cfg.clone(), opts, Arc::new(SystemClock), token).await?;
        // Which signal ended the run? (A run only ends when cancelled.)
        match rx.try_recv() {
            Ok(Next::Reload(new)) => {
                // A stop that came right behind the reload wins.
                if matches!(rx.try_recv(), Ok(Next::Stop)) {
                    return Ok(0);
                }
                cfg = *new;
                crate::telemetry::set_level(&cfg.log.level);
                *current.lock().unwrap() = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
                reloaded = true;
                tracing::info!(config = %cfg.source.display(), "configuration reloaded; starting again");
            }
            _ => return Ok(0),
        }
    }
}
