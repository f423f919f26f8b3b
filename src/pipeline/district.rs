//! A district: many hosts, one PostgreSQL index.
//!
//! - Each host claims its stations at start; a station another host runs is
//!   refused, naming that host.
//! - Each host says it is alive every [`HEARTBEAT`], with the outages it
//!   meets (so the leader can alert them).
//! - One host holds the district's leadership (a PostgreSQL advisory lock on
//!   a session of its own) and runs the work that must happen once: the
//!   time-based alerts, webhook delivery, the retention pass, the signed
//!   audit head. When that host dies its session ends, and another host
//!   takes the lock at its next try, within [`LEADER_RETRY`].
//!
//! With the embedded SQLite index there is one host, always the leader.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use crate::clock::to_ms;
use crate::index::ingest as ix;

/// How often a host says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A host not heard from for this long is gone: its stations are
/// unattended, its rendition jobs are taken over.
pub const STALE_HOST: Duration = Duration::from_secs(60);
/// How often a host that is not the leader tries to become it.
pub const LEADER_RETRY: Duration = Duration::from_secs(2);

/// This host's place in the district.
pub struct District {
    /// This host's name.
    pub host: String,
    /// Several hosts share the index (PostgreSQL).
    pub shared: bool,
    leader: AtomicBool,
    /// Wakes the once-per-district work when this host becomes the leader.
    pub became_leader: tokio::sync::Notify,
}

impl District {
    pub fn new(host: String, shared: bool) -> District {
        District { host, shared, leader: AtomicBool::new(!shared), became_leader: tokio::sync::Notify::new() }
    }

    /// Whether this host runs the once-per-district work now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }
}

/// Claim this host's stations (at start).
pub async fn claim_stations(ctx: &Arc<Ctx>, config: &crate::config::Config) -> anyhow::Result<()> {
    let now = to_ms(ctx.clock.now());
    let (host, take_over) = (ctx.district.host.clone(), !ctx.district.shared);
    for st in &config.stations {
        let (id, path, mode, host) =
            (st.id.clone(), st.path.display().to_string(), format!("{:?}", st.watch).to_lowercase(), host.clone());
        let r = ctx.index.call(move |c| ix::claim_station(c, &id, &path, &mode, &host, take_over, now)).await?;
        if let Err(other) = r {
            anyhow::bail!(
                "station {:?} is run by host {other:?} in this district; station ids are unique across hosts \
                 (stop it there, or release it with `bodycamd station release {}` if that host is gone)",
                st.id,
                st.id
            );
        }
    }
    Ok(())
}

/// Say this host is alive, with its outages, every [`HEARTBEAT`].
pub async fn heartbeat(ctx: Arc<Ctx>) {
    loop {
        let faults: Vec<serde_json::Value> = ctx
            .faults
            .current()
            .into_iter()
            .map(|(k, since, reason)| {
                serde_json::json!({"kind": k.alert().as_str(), "subject": k.subject(), "since": to_ms(since), "reason": reason})
            })
            .collect();
        let (host, faults, now) =
            (ctx.district.host.clone(), serde_json::Value::from(faults).to_string(), to_ms(ctx.clock.now()));
        if let Err(e) = ctx.index.call(move |c| ix::host_heartbeat(c, &host, &faults, now)).await {
            tracing::debug!(error = %e, "host heartbeat not recorded");
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            // An outage that begins or ends is told at once.
            _ = ctx.faults.changed.notified() => {}
            _ = ctx.shutdown.cancelled() => return,
        }
    }
}

/// Hold (or wait for) the district's leadership, until shutdown.
pub async fn leadership(ctx: Arc<Ctx>) {
    let Some(url) = ctx.index.pg_url() else { return };
    let mut held: Option<crate::index::pg::Leadership> = None;
    loop {
        let was = held.is_some();
        let u = url.clone();
        held = tokio::task::spawn_blocking(move || {
            let mut held = held;
            let alive = held.as_mut().is_some_and(|l| l.alive());
            if alive {
                held
            } else {
                crate::index::pg::Leadership::try_acquire(&u).ok().flatten()
            }
        })
        .await
        .ok()
        .flatten();
        let now = held.is_some();
        ctx.district.leader.store(now, Ordering::SeqCst);
        if now && !was {
            tracing::info!(host = %ctx.district.host, "this host is the district's leader: it runs alerts, webhooks, retention and the audit head");
            ctx.district.became_leader.notify_waiters();
            ctx.alerting.poke();
        } else if was && !now {
            tracing::warn!(host = %ctx.district.host, "this host lost the district's leadership");
        }
        tokio::select! {
            _ = tokio::time::sleep(LEADER_RETRY) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
    }
}
