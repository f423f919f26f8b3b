//! The service manager's view of the daemon (sd_notify): `READY=1` once
//! recovery and the first scan of every station are done, `WATCHDOG=1`
//! from the main loop only while it is healthy, `STATUS=` with pending
//! files and open alerts, `RELOADING=1` and `STOPPING=1`. Without
//! `NOTIFY_SOCKET` every call is a no-op.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use super::Ctx;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(t) => send(&[NotifyState::Reloading, t, NotifyState::Status("reloading the configuration")]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading the configuration")]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping: in-flight copies finish")]);
}

/// One health check: the index writer answers within `limit`, and the
/// counts for the status line.
async fn health(ctx: &Arc<Ctx>, limit: Duration) -> Result<String, String> {
    let q = ctx.index.call(crate::index::query::status_line);
    match tokio::time::timeout(limit, q).await {
        Ok(Ok((p, a, r))) => Ok(format!("{p} file(s) pending, {a} open alert(s), {r} rendition(s) queued")),
        Ok(Err(e)) => Err(format!("the index does not answer: {e}")),
        Err(_) => Err(format!("the index writer did not answer within {limit:?}")),
    }
}

/// Ping the watchdog (at half its interval) while healthy, and keep the
/// status line current. With no watchdog, only the status (every 10 s).
pub async fn watchdog(ctx: Arc<Ctx>, ready: Arc<AtomicBool>) {
    let wd = sd_notify::watchdog_enabled();
    let every = wd.map(|d| d / 2).unwrap_or(Duration::from_secs(10)).max(Duration::from_millis(10));
    let limit = wd.map(|d| d / 2).unwrap_or(Duration::from_secs(10));
    let mut last_bad = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.shutdown.cancelled() => break,
        }
        if !ready.load(Ordering::SeqCst) {
            // Until READY, systemd's start timeout applies, not the watchdog.
            continue;
        }
        match health(&ctx, limit).await {
            Ok(status) => {
                if wd.is_some() {
                    send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
                } else {
                    send(&[NotifyState::Status(&status)]);
                }
                if last_bad {
                    tracing::info!("healthy again");
                }
                last_bad = false;
            }
            Err(e) => {
                // No WATCHDOG=1: if this lasts, systemd restarts the daemon.
                if !last_bad {
                    tracing::error!(error = %e, "unhealthy: not pinging the watchdog");
                }
                send(&[NotifyState::Status(&format!("unhealthy: {e}"))]);
                last_bad = true;
            }
        }
    }
}
