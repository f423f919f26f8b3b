//! Retention: ordinary recordings expire `retention.default` after they
//! were recorded; important ones, those on hold and those linked to a case
//! are kept while any reason holds. Expiry never deletes directly: an
//! expired original moves to `state_dir/trash/` (recoverable) and is purged
//! only `retention.trash_days` later, after its reasons are checked again.
//! Every move is audited. A pass first repairs what a crash between the
//! index and the file system left (the index is the truth).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::verify::original_path;
use crate::config::RetentionConfig;
use crate::domain::MediaId;
use crate::index::audit;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// When an original's retention is counted from (SQL over `o`): its
/// recording date, or when a station first showed it if its clock cannot
/// be trusted (a camera set to 1970 must not expire its recordings at once).
pub const BASE: &str = "(CASE WHEN o.clock_trusted = 0 THEN o.first_seen ELSE max(o.start_at, 0) END)";

/// Why an original is kept beyond its expiry (SQL over `o`).
const KEEP: &str = "(o.important = 1
    OR EXISTS (SELECT 1 FROM holds h WHERE h.media_id = o.id AND h.lifted_at IS NULL)
    OR EXISTS (SELECT 1 FROM case_links l WHERE l.media_id = o.id AND l.state = 'linked'))";

#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub trashed: Vec<String>,
    pub purged: Vec<String>,
    /// Taken back out of the trash because a reason to keep them appeared.
    pub restored: Vec<String>,
    /// (id, expiry) of what expires within `warn_within`.
    pub expiring_soon: Vec<(String, String)>,
    pub repaired: usize,
}

fn archive_path(state: &Path, id: &str) -> Option<PathBuf> {
    id.parse::<MediaId>().ok().map(|m| original_path(state, &m, false))
}

fn trash_path(state: &Path, id: &str) -> Option<PathBuf> {
    id.parse::<MediaId>().ok().map(|m| original_path(state, &m, true))
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

fn io_err(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Make the files agree with the index.
fn repair(c: &Connection, state: &Path) -> rusqlite::Result<usize> {
    let mut n = 0;
    let rows: Vec<(String, bool, bool)> = c
        // A purged original keeps its trashed_at: one indexed condition.
        .prepare(
            "SELECT id, trashed_at IS NOT NULL, purged_at IS NOT NULL FROM originals WHERE trashed_at IS NOT NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, trashed, purged) in rows {
        let (Some(a), Some(t)) = (archive_path(state, &id), trash_path(state, &id)) else { continue };
        if purged {
            if t.exists() {
                std::fs::remove_file(&t).map_err(io_err)?;
                n += 1;
            }
        } else if trashed && a.exists() && !t.exists() {
            mv(&a, &t).map_err(io_err)?;
            n += 1;
        }
    }
    // In the trash, but the index says it is not (a restore cut short).
    if let Ok(dir) = std::fs::read_dir(state.join("trash")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let listed: Option<bool> = c
                .prepare_cached("SELECT trashed_at IS NOT NULL OR purged_at IS NOT NULL FROM originals WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            if listed == Some(false) {
                if let Some(a) = archive_path(state, &id) {
                    if !a.exists() {
                        mv(&e.path(), &a).map_err(io_err)?;
                    } else {
                        // Stored again since (docked again): the archive
                        // holds the same verified bytes.
                        std::fs::remove_file(e.path()).map_err(io_err)?;
                    }
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// Restore one original from the trash (by an administrator, or because a
/// reason to keep it appeared). Returns false if it is not in the trash.
pub fn restore(c: &Connection, state: &Path, id: &str, by: &str, why: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE originals SET trashed_at = NULL WHERE id = ?1 AND trashed_at IS NOT NULL AND purged_at IS NULL",
        [id],
    )?;
    if n == 0 {
        return Ok(false);
    }
    audit::event_by(c, now_ms, by, "retention.restore", Some(id), Some(why.to_string()))?;
    if let (Some(t), Some(a)) = (trash_path(state, id), archive_path(state, id)) {
        if t.exists() {
            mv(&t, &a).map_err(io_err)?;
        }
    }
    Ok(true)
}

/// Originals whose retention base lies in `(after, upto]` and that are
/// neither trashed nor kept: two index range scans (recording start for
/// trusted clocks, first seen for untrusted ones), never a full scan.
fn base_between(c: &Connection, after: i64, upto: i64, limit: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for sql in [
        format!(
            "SELECT o.id, o.start_at FROM originals o WHERE o.start_at > ?1 AND o.start_at <= ?2
               AND coalesce(o.clock_trusted, 1) != 0 AND o.trashed_at IS NULL AND o.purged_at IS NULL AND NOT {KEEP}
             ORDER BY o.start_at, o.id LIMIT ?3"
        ),
        format!(
            "SELECT o.id, o.first_seen FROM originals o WHERE o.clock_trusted = 0 AND o.first_seen > ?1 AND o.first_seen <= ?2
               AND o.trashed_at IS NULL AND o.purged_at IS NULL AND NOT {KEEP}
             ORDER BY o.first_seen, o.id LIMIT ?3"
        ),
    ] {
        let mut st = c.prepare_cached(&sql)?;
        for r in st.query_map(params![after, upto, limit], |r| Ok((r.get(0)?, r.get(1)?)))? {
            out.push(r?);
        }
    }
    out.sort_by_key(|(id, t)| (*t, id.clone()));
    out.truncate(limit.max(0) as usize);
    Ok(out)
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
               AND o.trashed_at <= ?1 AND NOT {KEEP} LIMIT ?2"
        ),
        &[&purge_before, &LIMIT],
    )?;
    let expiring_soon = base_between(c, cut, cut + cfg.warn_within.as_millis() as i64, 10_000)?
        .into_iter()
        .map(|(id, t)| (id, crate::clock::rfc3339(crate::clock::from_ms(t + keep_ms))))
        .collect();
    Ok(PassReport { trashed, purged, restored, expiring_soon, repaired: 0 })
}

/// Whether `id` may move now (re-checked in the writer, in the transaction
/// that moves it): `trash` = expired and not trashed; else = in the trash
/// long enough to purge. Nothing kept ever qualifies.
fn still_due(c: &Connection, id: &str, cfg: &RetentionConfig, now_ms: i64, trash: bool) -> rusqlite::Result<bool> {
    let sql = if trash {
        format!(
            "SELECT 1 FROM originals o WHERE o.id = ?1 AND o.trashed_at IS NULL AND o.purged_at IS NULL
               AND {BASE} <= ?2 AND NOT {KEEP}"
        )
    } else {
        format!(
            "SELECT 1 FROM originals o WHERE o.id = ?1 AND o.trashed_at IS NOT NULL AND o.purged_at IS NULL
               AND o.trashed_at <= ?2 AND NOT {KEEP}"
        )
    };
    let limit =
        if trash { now_ms - cfg.default.as_millis() as i64 } else { now_ms - i64::from(cfg.trash_days) * DAY_MS };
    Ok(c.prepare_cached(&sql)?.query_row(params![id, limit], |_| Ok(())).optional()?.is_some())
}

/// Carry out (part of) a plan in the caller's (writer) transaction: every
/// move is re-checked first. Returns what was done.
pub fn apply(
    c: &Connection,
    state: &Path,
    cfg: &RetentionConfig,
    now_ms: i64,
    planned: &PassReport,
) -> rusqlite::Result<PassReport> {
    let mut r = PassReport::default();
    for id in &planned.restored {
        if restore(c, state, id, "bodycamd", "a reason to keep it appeared (importance, hold or case link)", now_ms)? {
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
        if let (Some(a), Some(t)) = (archive_path(state, id), trash_path(state, id)) {
            if a.exists() {
                mv(&a, &t).map_err(io_err)?;
            }
        }
        r.trashed.push(id.clone());
    }
    for id in &planned.purged {
        if !still_due(c, id, cfg, now_ms, false)? {
            continue;
        }
        c.execute("UPDATE originals SET purged_at = ?2 WHERE id = ?1", params![id, now_ms])?;
        audit::event(c, now_ms, "retention.purge", Some(id), None, Some("deleted after its time in the trash".into()))?;
        if let Some(t) = trash_path(state, id) {
            match std::fs::remove_file(&t) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        r.purged.push(id.clone());
    }
    Ok(r)
}

/// One whole retention pass at `now_ms` in one transaction (the CLI).
pub fn pass(c: &Connection, state: &Path, cfg: &RetentionConfig, now_ms: i64) -> rusqlite::Result<PassReport> {
    let repaired = repair(c, state)?;
    let planned = plan(c, cfg, now_ms)?;
    let mut r = apply(c, state, cfg, now_ms, &planned)?;
    r.repaired = repaired;
    r.expiring_soon = planned.expiring_soon;
    Ok(r)
}

/// The daemon's pass: plan on a reader, then repair and apply in small
/// writer transactions, so the writer (and every API request, which is
/// audited through it) never waits long.
pub async fn pass_in_batches(
    index: &crate::index::Index,
    state: &Path,
    cfg: &RetentionConfig,
    now_ms: i64,
) -> anyhow::Result<PassReport> {
    const BATCH: usize = 200;
    let (reader, c2) = (index.clone(), cfg.clone());
    let planned = tokio::task::spawn_blocking(move || reader.read(|c| plan(c, &c2, now_ms))).await??;
    let dir = state.to_path_buf();
    let repaired = index.call(move |c| repair(c, &dir)).await?;
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
        let (dir, c2) = (state.to_path_buf(), cfg.clone());
        let r = index.call(move |c| apply(c, &dir, &c2, now_ms, &part)).await?;
        // Leave the writer to others between batches.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        done.restored.extend(r.restored);
        done.trashed.extend(r.trashed);
        done.purged.extend(r.purged);
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
