//! Alerts at run time: the evaluator of time-based alerts, the webhook
//! deliverer, and the log line of every transition.
//!
//! Event-based alerts (late files, unreadable media, invalid clocks,
//! sequence gaps) are written by the store and describe steps in the same
//! transaction as what caused them; this module only logs them and wakes the
//! deliverer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Ctx;
use crate::clock::to_ms;
use crate::config::AlertConfig;
use crate::index::alerts::{self as ax, Transition};
use crate::index::query;
use crate::rules::evaluate::{self, Snapshot, Thresholds};

/// How often the deliverer looks for due deliveries even when not woken
/// (events written by another process: `bodycamd alerts ack`).
const DELIVERY_POLL: Duration = Duration::from_secs(2);

pub struct Alerting {
    pub cfg: AlertConfig,
    /// Webhook URLs, in configuration order.
    pub hooks: Arc<Vec<String>>,
    secrets: HashMap<String, String>,
    evaluate_now: Notify,
    deliver_now: Notify,
}

impl Alerting {
    pub fn new(cfg: AlertConfig) -> Alerting {
        Alerting {
            hooks: Arc::new(cfg.webhooks.iter().map(|w| w.url.clone()).collect()),
            secrets: cfg.webhooks.iter().map(|w| (w.url.clone(), w.secret.clone())).collect(),
            cfg,
            evaluate_now: Notify::new(),
            deliver_now: Notify::new(),
        }
    }

    /// Log committed transitions and wake the deliverer.
    pub fn committed(&self, transitions: &[Transition]) {
        for t in transitions {
            let details = t.details.to_string();
            match (t.event, t.severity.as_str()) {
                ("opened", "critical" | "violation" | "error") => tracing::warn!(
                    alert_id = t.alert_id, kind = %t.kind, severity = %t.severity, subject = %t.subject, %details, "alert opened"
                ),
                _ => tracing::info!(
                    alert_id = t.alert_id, kind = %t.kind, severity = %t.severity, subject = %t.subject,
                    event = t.event, "alert {}", t.event
                ),
            }
        }
        if !transitions.is_empty() && !self.hooks.is_empty() {
            self.deliver_now.notify_one();
        }
    }

    /// Something changed that time-based alerts depend on: evaluate soon.
    pub fn poke(&self) {
        self.evaluate_now.notify_one();
    }
}

/// Evaluate time-based alerts once (on the leader: the whole district).
pub async fn evaluate_once(ctx: &Arc<Ctx>) -> anyhow::Result<Vec<Transition>> {
    let now = ctx.clock.now();
    let ids: Vec<String> = ctx.stations.read().unwrap().keys().cloned().collect();
    let shared = ctx.district.shared;
    let stale_before = to_ms(now) - super::district::STALE_HOST.as_millis() as i64;
    let (pending, stations, unarchived, host_faults) = {
        let index = ctx.index.clone();
        tokio::task::spawn_blocking(move || {
            index.read(|c| {
                let unarchived = crate::index::custody::unarchived_closed_cases(c)?;
                let stations = if shared {
                    query::station_snapshot(c, None, Some(stale_before))?
                } else {
                    query::station_snapshot(c, Some(&ids), None)?
                };
                let host_faults = if shared { query::host_faults(c, stale_before)? } else { Vec::new() };
                Ok((query::pending_snapshot(c)?, stations, unarchived, host_faults))
            })
        })
        .await??
    };
    let unarchived = unarchived.into_iter().map(|(k, t)| (k, crate::clock::from_ms(t))).collect();
    // One host's outages are its own; in a district each host reports its
    // own (heartbeats), and the leader alerts them by host.
    // This host's own are read live, the others' from their heartbeats.
    let own: Vec<_> = ctx
        .faults
        .current()
        .into_iter()
        .map(|(k, since, reason)| (k.alert(), k.subject().to_string(), since, reason))
        .collect();
    let faults = if shared {
        let me = &ctx.district.host;
        own.into_iter()
            .map(|(k, subject, since, reason)| (k, format!("{me}/{subject}"), since, reason))
            .chain(host_faults.iter().filter(|(host, _)| host != me).flat_map(|(host, json)| {
                serde_json::from_str::<Vec<serde_json::Value>>(json)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| {
                        let kind = crate::rules::alerts::AlertKind::parse(f["kind"].as_str()?)?;
                        let since = crate::clock::from_ms(f["since"].as_i64()?);
                        Some((
                            kind,
                            format!("{host}/{}", f["subject"].as_str()?),
                            since,
                            f["reason"].as_str()?.to_string(),
                        ))
                    })
                    .collect::<Vec<_>>()
            }))
            .collect()
    } else {
        own
    };
    let snap = Snapshot { now, pending, stations, free_bytes: ctx.archive.free_bytes().ok(), unarchived, faults };
    let th = Thresholds {
        warn_before: chrono::Duration::from_std(ctx.deadlines.warn_before).unwrap_or(chrono::Duration::hours(2)),
        station_grace: chrono::Duration::from_std(ctx.alerting.cfg.station_grace)
            .unwrap_or(chrono::Duration::minutes(10)),
        storage_low_bytes: ctx.alerting.cfg.storage_low_bytes,
        archive_within: chrono::Duration::days(i64::from(ctx.case_archive_days)),
    };
    let desired = evaluate::time_based(&snap, &th);
    let hooks = ctx.alerting.hooks.clone();
    let now_ms = to_ms(now);
    // `now` was read before the snapshot: what was resolved since (a file
    // stored meanwhile) is not reopened from it.
    let transitions = ctx
        .index
        .call(move |c| ax::reconcile_snapshot(c, evaluate::TIME_BASED, &desired, Some(now_ms), now_ms, &hooks))
        .await?;
    ctx.alerting.committed(&transitions);
    Ok(transitions)
}

/// Evaluate time-based alerts every `alerts.evaluate_every` and whenever
/// poked, until shutdown (on the district's leader only).
pub async fn evaluator(ctx: Arc<Ctx>) {
    loop {
        if ctx.district.is_leader() {
            if let Err(e) = evaluate_once(&ctx).await {
                tracing::error!(error = %e, "evaluating alerts failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.alerting.cfg.evaluate) => {}
            _ = ctx.alerting.evaluate_now.notified() => {
                // Let a burst of changes settle into one evaluation.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = ctx.shutdown.cancelled() => break,
        }
    }
}

fn backoff(cfg: &AlertConfig, attempts: u32) -> Duration {
    let d = cfg.webhook_retry.as_secs_f64() * 2f64.powi(attempts.min(30) as i32);
    Duration::from_secs_f64(d.min(cfg.webhook_retry_max.as_secs_f64()))
}

/// Deliver queued webhook events until shutdown: at least once, in order
/// per webhook attempt, retried with backoff; the outbox is in the index,
/// so deliveries survive restarts. Delivery times use the system clock (the
/// injectable clock is for the rules, not for network retries).
pub async fn deliverer(ctx: Arc<Ctx>) {
    if ctx.alerting.hooks.is_empty() {
        return;
    }
    let client = crate::webhook::client();
    loop {
        // Once per district: on the leader.
        if !ctx.district.is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(DELIVERY_POLL) => continue,
                _ = ctx.district.became_leader.notified() => continue,
                _ = ctx.shutdown.cancelled() => break,
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let index = ctx.index.clone();
        let due = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok(index.read(|c| Ok((ax::due_deliveries(c, now_ms, 100)?, ax::next_delivery(c)?)))?)
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        let (due, next) = match due {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "reading the webhook outbox failed");
                (Vec::new(), None)
            }
        };
        for d in &due {
            let Some(secret) = ctx.alerting.secrets.get(&d.url) else {
                // The webhook was removed from the configuration.
                let id = d.id;
                let _ =
                    ctx.index.call(move |c| ax::delivery_failed(c, id, i64::MAX, "webhook no longer configured")).await;
                continue;
            };
            let key = serde_json::from_str::<serde_json::Value>(&d.body)
                .ok()
                .and_then(|v| v["idempotency_key"].as_str().map(str::to_string))
                .unwrap_or_default();
            let result = crate::webhook::send(&client, &d.url, secret, &key, &d.event, &d.body).await;
            let (id, at) = (d.id, chrono::Utc::now().timestamp_millis());
            let write = match &result {
                Ok(()) => {
                    tracing::debug!(url = %d.url, %key, "webhook delivered");
                    ctx.index.call(move |c| ax::delivered(c, id, at)).await
                }
                Err(e) => {
                    let wait = backoff(&ctx.alerting.cfg, d.attempts);
                    tracing::warn!(url = %d.url, %key, error = %e, attempts = d.attempts + 1, retry_in = ?wait, "webhook delivery failed");
                    let (next, err) = (at + wait.as_millis() as i64, e.clone());
                    ctx.index.call(move |c| ax::delivery_failed(c, id, next, &err)).await
                }
            };
            if let Err(e) = write {
                tracing::error!(error = %e, "recording a webhook delivery failed");
            }
        }
        if due.len() == 100 {
            continue;
        }
        let wait = next
            .map(|n| Duration::from_millis((n - chrono::Utc::now().timestamp_millis()).max(0) as u64))
            .unwrap_or(DELIVERY_POLL)
            .min(DELIVERY_POLL);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.alerting.deliver_now.notified() => {}
            _ = ctx.shutdown.cancelled() => break,
        }
    }
}
