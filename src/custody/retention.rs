//! Retention: ordinary recordings expire `retention.default` after they
//! were recorded; important ones, those on hold and those linked to a case
//! are kept while any reason holds. Expiry never deletes directly: an
//! expired original moves to `state_dir/trash/` (recoverable) and is purged
//! only `retention.trash_days` later, after its reasons and its base are
//! checked again. Every move is audited.
//!
//! **Retention never shortens a recording's life.** It counts from the later
//! of the recording's start and when a station first showed it (a camera
//! whose clock reset to a plausible but wrong year cannot make its
//! recordings expire early), and an original that is not described yet is
//! never trashed.
//!
//! **The index decides, files follow.** A pass marks rows in small writer
//! transactions and moves files only after each commit, outside the writer
//! (which every audited API request waits on). A crash between a commit and
//! a move leaves files where the index no longer says they are; the next
//! pass's repair moves them (the index is the truth), so a failed commit
//! never leaves a purged file whose row says it exists.

use std::path::{Path, PathBuf};

use super::verify::original_path;
use crate::config::RetentionConfig;
use crate::domain::MediaId;
use crate::index::db::Db;
use crate::index::retention::{apply, placement};
pub use crate::index::retention::{keep_reasons, plan, restore, PassReport, Placement, BASE};
use crate::store::Archive;

fn archive_path(state: &Path, id: &str) -> Option<PathBuf> {
    id.parse::<MediaId>().ok().map(|m| original_path(state, &m, false))
}

fn trash_path(state: &Path, id: &str) -> Option<PathBuf> {
    id.parse::<MediaId>().ok().map(|m| original_path(state, &m, true))
}

fn rendition_path(state: &Path, id: &str) -> Option<PathBuf> {
    id.parse::<MediaId>().ok().map(|m| Archive::object_path_in(&state.join("renditions"), &m))
}

/// Where an export's archive is built.
pub fn export_path(state: &Path, export_id: &str) -> PathBuf {
    state.join("exports").join(format!("{export_id}.tar"))
}

fn mv(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::rename(from, to)?;
    for d in [from.parent(), to.parent()].into_iter().flatten() {
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

fn remove(p: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Make the files agree with a placement. Returns how many were moved or
/// removed.
fn place(state: &Path, p: &Placement) -> std::io::Result<usize> {
    let mut n = 0;
    for id in &p.to_trash {
        if let (Some(a), Some(t)) = (archive_path(state, id), trash_path(state, id)) {
            if a.exists() && !t.exists() {
                mv(&a, &t)?;
                n += 1;
            }
        }
    }
    for id in &p.purged {
        if let Some(t) = trash_path(state, id) {
            n += usize::from(remove(&t)?);
        }
    }
    for id in &p.purged_renditions {
        if let Some(r) = rendition_path(state, id) {
            n += usize::from(remove(&r)?);
        }
    }
    for id in &p.voided_exports {
        n += usize::from(remove(&export_path(state, id))?);
    }
    for id in &p.to_archive {
        if let (Some(a), Some(t)) = (archive_path(state, id), trash_path(state, id)) {
            if !a.exists() {
                mv(&t, &a)?;
            } else {
                // Stored again since (docked again): the archive holds the
                // same verified bytes.
                remove(&t)?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Make the files agree with the index (after a crash between a commit and
/// a move). Reads on `c`, moves files; never writes the index.
pub fn repair(c: &Db, state: &Path) -> anyhow::Result<usize> {
    let in_trash: Vec<String> = match std::fs::read_dir(state.join("trash")) {
        Ok(dir) => dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    let p = placement(c, &in_trash)?;
    Ok(place(state, &p)?)
}

/// One whole retention pass at `now_ms` in one transaction (the CLI). The
/// caller carries out the result with [`carry_out`] after the commit.
pub use crate::index::retention::pass;

/// Carry out on disk what a committed pass (or restore) decided.
pub fn carry_out(state: &Path, done: &PassReport) -> std::io::Result<()> {
    let p = Placement {
        to_trash: done.trashed.clone(),
        purged: done.purged.clone(),
        purged_renditions: done.purged_renditions.clone(),
        voided_exports: done.voided_exports.clone(),
        to_archive: done.restored.clone(),
    };
    place(state, &p).map(|_| ())
}

/// A restored original's file back in the archive (after the commit).
pub fn restored(state: &Path, id: &str) -> std::io::Result<()> {
    carry_out(state, &PassReport { restored: vec![id.to_string()], ..Default::default() })
}

/// The daemon's pass: plan and repair on a reader, then mark in small
/// writer transactions, moving each batch's files after its commit, so the
/// writer (and every API request, which is audited through it) never waits
/// on file moves.
pub async fn pass_in_batches(
    index: &crate::index::Index,
    state: &Path,
    cfg: &RetentionConfig,
    now_ms: i64,
) -> anyhow::Result<PassReport> {
    const BATCH: usize = 200;
    let (reader, c2, dir) = (index.clone(), cfg.clone(), state.to_path_buf());
    let (planned, repaired) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let planned = reader.read(|c| plan(c, &c2, now_ms))?;
        let repaired = reader.read_any(|c| repair(c, &dir))?;
        Ok((planned, repaired))
    })
    .await??;
    let mut done = PassReport { repaired, expiring_soon: planned.expiring_soon.clone(), ..Default::default() };
    let chunks = |v: &[String]| v.chunks(BATCH).map(<[String]>::to_vec).collect::<Vec<_>>();
    let mut parts = Vec::new();
    for part in chunks(&planned.restored) {
        parts.push(PassReport { restored: part, ..Default::default() });
    }
    for part in chunks(&planned.trashed) {
        parts.push(PassReport { trashed: part, ..Default::default() });
    }
    for part in chunks(&planned.purged) {
        parts.push(PassReport { purged: part, ..Default::default() });
    }
    for part in parts {
        let c2 = cfg.clone();
        let r = index.call(move |c| apply(c, &c2, now_ms, &part)).await?;
        // Committed: now the files follow, outside the writer.
        let (dir, r2) = (state.to_path_buf(), r.clone());
        tokio::task::spawn_blocking(move || carry_out(&dir, &r2)).await??;
        // Leave the writer to others between batches.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        done.restored.extend(r.restored);
        done.trashed.extend(r.trashed);
        done.purged.extend(r.purged);
        done.purged_renditions.extend(r.purged_renditions);
        done.voided_exports.extend(r.voided_exports);
    }
    Ok(done)
}

/// What a bucket lock sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LockSync {
    pub extended: Vec<String>,
    pub holds_on: Vec<String>,
    pub holds_off: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// Make the bucket's locks agree with the index: a hold in the index is a
/// legal hold in the bucket (and a lifted one is lifted there once no hold
/// is left); a kept original's lock always reaches a whole retention span
/// plus the trash period ahead; an original whose retention counts from
/// later than it was stored is locked until that retention ends. Locks are
/// only ever extended ([`crate::store::S3Store::extend_lock`]).
///
/// `span`: retention plus the trash period; `only`: one original.
pub fn sync_bucket_locks(
    c: &Db,
    s3: &crate::store::S3Store,
    span: std::time::Duration,
    now_ms: i64,
    only: Option<&str>,
) -> anyhow::Result<LockSync> {
    let span = span.as_millis() as i64;
    let mut out = LockSync::default();
    for t in crate::index::retention::lock_targets(c, only)? {
        let Ok(id) = t.id.parse::<MediaId>() else { continue };
        let r = (|| -> Result<(), crate::store::S3Error> {
            let Some(head) = s3.head(crate::store::s3::Tree::Originals, &id)? else {
                return Err(crate::store::S3Error::Request {
                    op: "HeadObject",
                    key: crate::store::s3::key(crate::store::s3::Tree::Originals, &id),
                    msg: "not in the bucket".into(),
                });
            };
            let have = head.retain_until_ms.unwrap_or(0);
            // Kept: extended once less than half a span is left, to a full
            // span ahead (so a pass does not touch every kept object).
            let want = if t.kept {
                if have < now_ms + span / 2 {
                    now_ms + span
                } else {
                    have
                }
            } else {
                t.retain_from + span
            };
            if want > have {
                s3.extend_lock(&id, want)?;
                out.extended.push(t.id.clone());
            }
            if t.held != head.legal_hold {
                s3.set_legal_hold(&id, t.held)?;
                if t.held { &mut out.holds_on } else { &mut out.holds_off }.push(t.id.clone());
            }
            Ok(())
        })();
        if let Err(e) = r {
            tracing::warn!(media_id = %t.id, error = %e, "cannot bring the bucket's lock in line; tried again next pass");
            out.failed.push((t.id.clone(), e.to_string()));
        }
    }
    Ok(out)
}

/// Remove purged originals' (and renditions') copies from the bucket. A
/// version whose lock has not passed is refused by the bucket and stays
/// (kept longer, never lost); it is logged.
pub fn purge_from_bucket(s3: &crate::store::S3Store, done: &PassReport) {
    use crate::store::s3::Tree;
    let items = done
        .purged
        .iter()
        .map(|i| (Tree::Originals, i))
        .chain(done.purged_renditions.iter().map(|i| (Tree::Renditions, i)));
    for (tree, id) in items {
        let Ok(mid) = id.parse::<MediaId>() else { continue };
        match s3.delete_all_versions(tree, &mid) {
            Ok(n) => tracing::info!(media_id = %id, versions = n, "purged from the bucket"),
            Err(e) => {
                tracing::warn!(media_id = %id, error = %e, "the bucket keeps this purged object (its lock has not passed)")
            }
        }
    }
}
