//! Repairs at start-up. A `kill -9` can stop the daemon between any two
//! steps; this is what each gap leaves and how it is closed:
//!
//! | interrupted between            | left behind                 | repair |
//! |--------------------------------|-----------------------------|--------|
//! | copy start and rename          | a file in `archive/tmp/`    | removed ([`crate::store::Archive::recover`]); the dock file is still there and is stored again |
//! | rename and index commit        | an object without a row     | the dock file is still there: storing it again finds the object (a duplicate) and indexes it; if the dock file is gone too, [`orphan_sweep`] indexes the object under `_recovered` |
//! | index commit and dock deletion | a `delete_pending` sighting | [`resume_deletions`] verifies and deletes |
//! | index commit and description   | a row without a description | [`redescribe`] queues it |
//!
//! SQLite's WAL makes each commit atomic; nothing here touches an object's
//! bytes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::Ctx;
use crate::config::AfterIngest;
use crate::domain::MediaId;
use crate::index::ingest as ix;
use crate::index::query;

/// Finish dock deletions that were decided before a crash.
pub async fn resume_deletions(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    finish_deletions(ctx, None).await
}

/// Try again, every [`Ctx::dispose_retry`], the dock deletions that
/// could not be done (the stored copy could not be re-read, the dock file
/// could not be removed): a stored file is never left on a deleting dock.
pub async fn retry_deletions(ctx: Arc<Ctx>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ctx.dispose_retry()) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
        let now = crate::clock::to_ms(ctx.clock.now());
        if let Err(e) = finish_deletions(&ctx, Some(now)).await {
            tracing::error!(error = %e, "retrying dock deletions failed");
        }
    }
}

async fn finish_deletions(ctx: &Arc<Ctx>, due: Option<i64>) -> anyhow::Result<usize> {
    let index = ctx.index.clone();
    let pending = tokio::task::spawn_blocking(move || index.read(|c| query::pending_deletions(c, due))).await??;
    let n = pending.len();
    for p in pending {
        let Ok(id) = p.media_id.parse::<MediaId>() else {
            continue;
        };
        let rel = PathBuf::from(OsString::from_vec(p.rel_path.clone()));
        match ctx.station(&p.station) {
            Some(st) if st.after_ingest == AfterIngest::Delete => {
                super::store::dispose(ctx, &st, rel, id, p.sig).await;
            }
            _ => {
                // The station was removed or now keeps its files.
                let (m, s, r) = (p.media_id, p.station, p.rel_path);
                ctx.index.call(move |c| ix::mark_kept(c, &m, &s, &r)).await?;
            }
        }
    }
    Ok(n)
}

/// Queue originals that were stored but not described.
pub fn redescribe(ctx: &Arc<Ctx>) -> anyhow::Result<usize> {
    let ids = ctx.index.read(query::undescribed)?;
    for id in &ids {
        if let Ok(id) = id.parse::<MediaId>() {
            ctx.describe_later(id);
        }
    }
    Ok(ids.len())
}

/// Index archive objects that have no row, written before `started` (so
/// never one that this run is about to index).
pub async fn orphan_sweep(ctx: &Arc<Ctx>, started: SystemTime) -> anyhow::Result<usize> {
    let ctx2 = ctx.clone();
    let orphans = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(MediaId, u64, i64)>> {
        let known = ctx2.index.read(query::all_ids)?;
        let mut out = Vec::new();
        let objects = ctx2.archive.root().join("objects");
        for shard in std::fs::read_dir(&objects)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for obj in std::fs::read_dir(shard.path())? {
                let obj = obj?;
                let name = obj.file_name();
                let Some(id) = name.to_str().and_then(|n| n.parse::<MediaId>().ok()) else {
                    continue;
                };
                if known.contains(name.to_str().unwrap_or_default()) {
                    continue;
                }
                let meta = obj.metadata()?;
                let mtime = meta.modified()?;
                if mtime >= started {
                    continue;
                }
                let ms = mtime.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
                out.push((id, meta.len(), ms));
            }
        }
        Ok(out)
    })
    .await??;
    let n = orphans.len();
    for (id, size, ms) in orphans {
        let hex = id.to_hex();
        tracing::warn!(media_id = %id, "archive object had no index row (crash between storing and indexing, dock file gone); indexed under station _recovered");
        if ctx.index.call(move |c| ix::record_recovered(c, &hex, size, ms)).await? {
            ctx.describe_later(id);
        }
    }
    Ok(n)
}
