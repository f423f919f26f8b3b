//! Custody chores in the daemon: the signed audit head at intervals (and at
//! shutdown), and the retention pass (at start, then every
//! `retention.every`).

use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use crate::clock::to_ms;
use crate::config::Config;
use crate::custody::{key::HostKey, retention, verify};

/// Write the signed head, and say it in the log (a second, external copy).
pub async fn write_head(ctx: &Arc<Ctx>, state_dir: &std::path::Path, key: &HostKey) {
    let (index, dir, key) = (ctx.index.clone(), state_dir.to_path_buf(), key.clone());
    let r = tokio::task::spawn_blocking(move || -> anyhow::Result<verify::SignedHead> {
        index.read_any(|c| verify::write_head(&dir, c, &key))
    })
    .await;
    match r {
        Ok(Ok(h)) => tracing::info!(entry = h.entry, hash = %h.hash, "audit head"),
        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "cannot write the audit head"),
        Err(e) => tracing::error!(error = %e, "cannot write the audit head"),
    }
}

/// One retention pass now; logs what moved and what expires soon.
pub async fn retention_pass(ctx: &Arc<Ctx>, config: &Config) -> anyhow::Result<retention::PassReport> {
    let (dir, cfg, now) = (config.state_dir.clone(), config.retention.clone(), to_ms(ctx.clock.now()));
    let r = retention::pass_in_batches(&ctx.index, &dir, &cfg, now).await?;
    if let Some(s3) = ctx.archive.remote().cloned() {
        let (index, done, span) = (ctx.index.clone(), r.clone(), crate::store::lock_span(config));
        let sync = tokio::task::spawn_blocking(move || {
            retention::purge_from_bucket(&s3, &done);
            index.read_any(|c| retention::sync_bucket_locks(c, &s3, span, now, None))
        })
        .await?;
        match sync {
            Ok(s) if !(s.extended.is_empty() && s.holds_on.is_empty() && s.holds_off.is_empty()) => tracing::info!(
                extended = s.extended.len(),
                holds_on = s.holds_on.len(),
                holds_off = s.holds_off.len(),
                failed = s.failed.len(),
                "bucket locks brought in line with the index"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot check the bucket's locks; tried again next pass")
            }
        }
    }
    for id in &r.trashed {
        tracing::warn!(media_id = %id, "retention over: moved to the trash");
    }
    for id in &r.purged {
        tracing::warn!(media_id = %id, "purged after its time in the trash");
    }
    for id in &r.restored {
        tracing::info!(media_id = %id, "restored from the trash: a reason to keep it appeared");
    }
    if !r.expiring_soon.is_empty() {
        tracing::info!(
            count = r.expiring_soon.len(),
            first = %r.expiring_soon[0].0,
            at = %r.expiring_soon[0].1,
            "originals whose retention ends soon (bodycamd retention run --dry-run lists them)"
        );
    }
    Ok(r)
}

pub async fn run(ctx: Arc<Ctx>, config: Arc<Config>, key: HostKey) {
    let head_every = config.audit.head_every;
    // Not at start-up: recovery, the first scans and the backlog of a
    // restart come first; the pass is a daily chore.
    let mut next_retention = tokio::time::Instant::now() + config.retention.every.min(Duration::from_secs(600));
    let mut head_tick = tokio::time::interval(head_every);
    loop {
        tokio::select! {
            _ = head_tick.tick() => {
                if ctx.district.is_leader() {
                    write_head(&ctx, &config.state_dir, &key).await;
                }
            }
            // A host that becomes the leader signs the head at once, not
            // an interval later.
            _ = ctx.district.became_leader.notified() => {
                write_head(&ctx, &config.state_dir, &key).await;
            }
            _ = tokio::time::sleep_until(next_retention) => {
                if !ctx.district.is_leader() {
                    next_retention = tokio::time::Instant::now() + Duration::from_secs(60).min(config.retention.every);
                    continue;
                }
                if let Err(e) = retention_pass(&ctx, &config).await {
                    tracing::error!(error = %format!("{e:#}"), "retention pass failed; tried again in an hour");
                    next_retention = tokio::time::Instant::now() + Duration::from_secs(3600).min(config.retention.every);
                    continue;
                }
                next_retention = tokio::time::Instant::now() + config.retention.every;
            }
            _ = ctx.shutdown.cancelled() => break,
        }
    }
    if ctx.district.is_leader() {
        write_head(&ctx, &config.state_dir, &key).await;
    }
}
