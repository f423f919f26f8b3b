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

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::verify::original_path;
use crate::config::RetentionConfig;
use crate::domain::MediaId;
use crate::index::audit;
use crate::store::Archive;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// When an original's retention is counted from (SQL over `o`): the later of
/// its recording start and when a station first showed it (a generated,
/// indexed column).
pub const BASE: &str = "o.retain_from";

/// Why an original is kept beyond its expiry (SQL over `o`).
const KEEP: &str = "(o.important = 1
    OR EXISTS (SELECT 1 FROM holds h WHERE h.media_id = o.id AND h.lifted_at IS NULL)
    OR EXISTS (SELECT 1 FROM case_links l WHERE l.media_id = o.id AND l.state = 'linked'))";

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub trashed: Vec<String>,
    pub purged: Vec<String>,
    /// Taken back out of the trash because a reason to keep it appeared.
    pub restored: Vec<String>,
    /// (id, expiry) of what expires within `warn_within`.
    pub expiring_soon: Vec<(String, String)>,
    pub repaired: usize,
    /// Rendition objects that went with purged originals (no other original
    /// uses them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purged_renditions: Vec<String>,
    /// Exports that held a purged original: voided, their archives removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub voided_exports: Vec<String>,
}

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

/// What the files must become, as the index says (read on any connection).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// In the trash: the file belongs in `trash/`.
    to_trash: Vec<String>,
    /// Purged: no file may remain (original, renditions only it used).
    purged: Vec<String>,
    purged_renditions: Vec<String>,
    voided_exports: Vec<String>,
    /// Files in `trash/` whose rows say they are not trashed.
    to_archive: Vec<String>,
}

/// Read what must be repaired: files that disagree with the index.
fn placement(c: &Connection, state: &Path) -> rusqlite::Result<Placement> {
    let mut p = Placement::default();
    let rows: Vec<(String, bool)> = c
        // A purged original keeps its trashed_at: one indexed condition.
        .prepare("SELECT id, purged_at IS NOT NULL FROM originals WHERE trashed_at IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, purged) in rows {
        if purged {
            p.purged.push(id);
        } else {
            p.to_trash.push(id);
        }
    }
    p.purged_renditions = c
        .prepare(
            "SELECT DISTINCT r.id FROM renditions r JOIN originals o ON o.id = r.original_id
             WHERE o.purged_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM renditions r2 JOIN originals o2
                ON o2.id = r2.original_id WHERE r2.id = r.id AND o2.purged_at IS NULL)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    p.voided_exports = c
        .prepare("SELECT id FROM exports WHERE voided_at IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if let Ok(dir) = std::fs::read_dir(state.join("trash")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let listed: Option<bool> = c
                .prepare_cached("SELECT trashed_at IS NOT NULL OR purged_at IS NOT NULL FROM originals WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            if listed == Some(false) {
                p.to_archive.push(id);
            }
        }
    }
    Ok(p)
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
pub fn repair(c: &Connection, state: &Path) -> anyhow::Result<usize> {
    let p = placement(c, state)?;
    Ok(place(state, &p)?)
}

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

/// Take one original out of the trash in the index (by an administrator,
/// or because a reason to keep it appeared). Returns false if it is not in
/// the trash. The file follows with [`carry_out`] after the commit.
pub fn restore(c: &Connection, id: &str, by: &str, why: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE originals SET trashed_at = NULL WHERE id = ?1 AND trashed_at IS NOT NULL AND purged_at IS NULL",
        [id],
    )?;
    if n == 0 {
        return Ok(false);
    }
    audit::event_by(c, now_ms, by, "retention.restore", Some(id), Some(why.to_string()))?;
    Ok(true)
}

/// A restored original's file back in the archive (after the commit).
pub fn restored(state: &Path, id: &str) -> std::io::Result<()> {
    carry_out(state, &PassReport { restored: vec![id.to_string()], ..Default::default() })
}

/// Originals whose retention base lies in `(after, upto]`, described, and
/// neither trashed nor kept: one range scan of an index, never a full scan.
fn base_between(c: &Connection, after: i64, upto: i64, limit: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let sql = format!(
        "SELECT o.id, o.retain_from FROM originals o WHERE o.retain_from > ?1 AND o.retain_from <= ?2
           AND o.trashed_at IS NULL AND o.purged_at IS NULL AND o.described_at IS NOT NULL AND NOT {KEEP}
         ORDER BY o.retain_from, o.id LIMIT ?3"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![after, upto, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// What a pass at `now_ms` would do (changes nothing). Read-only, so the
/// daemon runs it on a reader connection, not in the writer. At most
/// `limit` originals per list.
pub fn plan(c: &Connection, cfg: &RetentionConfig, now_ms: i64) -> rusqlite::Result<PassReport> {
    const LIMIT: i64 = 100_000;
    let keep_ms = cfg.default.as_millis() as i64;
    let cut = now_ms - keep_ms;
    let ids = |sql: String, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<String>> {
        c.prepare(&sql)?.query_map(p, |row| row.get(0))?.collect()
    };
    // Trashed ones that gained a reason to be kept go back.
    let restored = ids(
        format!("SELECT o.id FROM originals o WHERE o.trashed_at IS NOT NULL AND o.purged_at IS NULL AND {KEEP}"),
        &[],
    )?;
    let trashed = base_between(c, i64::MIN, cut, LIMIT)?.into_iter().map(|(id, _)| id).collect();
    let purge_before = now_ms - i64::from(cfg.trash_days) * DAY_MS;
    let purged = ids(
        format!(
            "SELECT o.id FROM originals o WHERE o.trashed_at IS NOT NULL AND o.purged_at IS NULL
               AND o.trashed_at <= ?1 AND {BASE} <= ?3 AND NOT {KEEP} LIMIT ?2"
        ),
        &[&purge_before, &LIMIT, &cut],
    )?;
    let expiring_soon = base_between(c, cut, cut + cfg.warn_within.as_millis() as i64, 10_000)?
        .into_iter()
        .map(|(id, t)| (id, crate::clock::rfc3339(crate::clock::from_ms(t + keep_ms))))
        .collect();
    Ok(PassReport { trashed, purged, restored, expiring_soon, ..Default::default() })
}

/// Whether `id` may move now (re-checked in the writer, in the transaction
/// that moves it): `trash` = expired, described and not trashed; else = in
/// the trash long enough to purge, and still expired (its base is checked
/// again). Nothing kept ever qualifies.
fn still_due(c: &Connection, id: &str, cfg: &RetentionConfig, now_ms: i64, trash: bool) -> rusqlite::Result<bool> {
    let expired = now_ms - cfg.default.as_millis() as i64;
    let sql = if trash {
        format!(
            "SELECT 1 FROM originals o WHERE o.id = ?1 AND o.trashed_at IS NULL AND o.purged_at IS NULL
               AND o.described_at IS NOT NULL AND {BASE} <= ?2 AND NOT {KEEP}"
        )
    } else {
        format!(
            "SELECT 1 FROM originals o WHERE o.id = ?1 AND o.trashed_at IS NOT NULL AND o.purged_at IS NULL
               AND o.trashed_at <= ?3 AND {BASE} <= ?2 AND NOT {KEEP}"
        )
    };
    let purge_before = now_ms - i64::from(cfg.trash_days) * DAY_MS;
    let mut st = c.prepare_cached(&sql)?;
    let q = if trash {
        st.query_row(params![id, expired], |_| Ok(()))
    } else {
        st.query_row(params![id, expired, purge_before], |_| Ok(()))
    };
    Ok(q.optional()?.is_some())
}

/// Mark (part of) a plan in the caller's (writer) transaction: every move
/// is re-checked first. Returns what was decided; the files follow with
/// [`carry_out`] once the transaction has committed.
pub fn apply(c: &Connection, cfg: &RetentionConfig, now_ms: i64, planned: &PassReport) -> rusqlite::Result<PassReport> {
    let mut r = PassReport::default();
    for id in &planned.restored {
        if restore(c, id, "bodycamd", "a reason to keep it appeared (importance, hold or case link)", now_ms)? {
            r.restored.push(id.clone());
        }
    }
    let keep_days = cfg.default.as_millis() as i64 / DAY_MS;
    for id in &planned.trashed {
        if !still_due(c, id, cfg, now_ms, true)? {
            continue;
        }
        c.execute("UPDATE originals SET trashed_at = ?2 WHERE id = ?1", params![id, now_ms])?;
        audit::event(
            c,
            now_ms,
            "retention.trash",
            Some(id),
            None,
            Some(format!("retention ({keep_days} days) over; purged after {} days in the trash", cfg.trash_days)),
        )?;
        r.trashed.push(id.clone());
    }
    for id in &planned.purged {
        if !still_due(c, id, cfg, now_ms, false)? {
            continue;
        }
        c.execute("UPDATE originals SET purged_at = ?2 WHERE id = ?1", params![id, now_ms])?;
        // Every copy goes: renditions no other original uses, and any export
        // archive that holds it (voided: it can no longer be downloaded).
        let renditions: Vec<String> = c
            .prepare_cached(
                "SELECT DISTINCT r.id FROM renditions r WHERE r.original_id = ?1 AND NOT EXISTS (
                    SELECT 1 FROM renditions r2 JOIN originals o2 ON o2.id = r2.original_id
                    WHERE r2.id = r.id AND r2.original_id != ?1 AND o2.purged_at IS NULL)",
            )?
            .query_map([id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        c.prepare_cached(
            "UPDATE rendition_jobs SET state = 'skipped', last_error = 'the original was purged', updated_at = ?2
             WHERE original_id = ?1 AND state IN ('queued', 'running', 'failed')",
        )?
        .execute(params![id, now_ms])?;
        let exports: Vec<String> = c
            .prepare_cached(
                "SELECT e.id FROM exports e WHERE e.voided_at IS NULL
                   AND EXISTS (SELECT 1 FROM json_each(e.media) j WHERE j.value = ?1)",
            )?
            .query_map([id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for e in &exports {
            c.prepare_cached("UPDATE exports SET voided_at = ?2, void_reason = ?3 WHERE id = ?1")?.execute(params![
                e,
                now_ms,
                format!("original {id} was purged")
            ])?;
        }
        audit::event(
            c,
            now_ms,
            "retention.purge",
            Some(id),
            None,
            Some(format!(
                "deleted after its time in the trash, with {} rendition(s); {} export(s) voided",
                renditions.len(),
                exports.len()
            )),
        )?;
        r.purged_renditions.extend(renditions);
        r.voided_exports.extend(exports);
        r.purged.push(id.clone());
    }
    Ok(r)
}

/// One whole retention pass at `now_ms` in one transaction (the CLI). The
/// caller carries out the result with [`carry_out`] after the commit.
pub fn pass(c: &Connection, cfg: &RetentionConfig, now_ms: i64) -> rusqlite::Result<PassReport> {
    let planned = plan(c, cfg, now_ms)?;
    let mut r = apply(c, cfg, now_ms, &planned)?;
    r.expiring_soon = planned.expiring_soon;
    Ok(r)
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
        let c = reader.reader()?;
        Ok((planned, repair(&c, &dir)?))
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

/// Why an original is kept, for `media show` and the API.
pub fn keep_reasons(c: &Connection, id: &str) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    let important: Option<bool> = c
        .prepare_cached("SELECT important = 1 FROM originals WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if important == Some(true) {
        out.push("important".to_string());
    }
    let holds: Vec<String> = c
        .prepare_cached("SELECT reason FROM holds WHERE media_id = ?1 AND lifted_at IS NULL ORDER BY id")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    out.extend(holds.into_iter().map(|h| format!("hold: {h}")));
    let cases: Vec<String> = c
        .prepare_cached("SELECT case_id FROM case_links WHERE media_id = ?1 AND state = 'linked' ORDER BY case_id")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    out.extend(cases.into_iter().map(|k| format!("case {k}")));
    Ok(out)
}
