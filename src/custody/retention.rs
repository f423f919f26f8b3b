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
        .prepare("SELECT id, trashed_at IS NOT NULL, purged_at IS NOT NULL FROM originals WHERE trashed_at IS NOT NULL OR purged_at IS NOT NULL")?
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

/// What a pass at `now_ms` would do (changes nothing).
pub fn plan(c: &Connection, cfg: &RetentionConfig, now_ms: i64) -> rusqlite::Result<PassReport> {
    let keep_ms = cfg.default.as_millis() as i64;
    let ids = |sql: String, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<String>> {
        c.prepare(&sql)?.query_map(p, |row| row.get(0))?.collect()
    };
    // Trashed ones that gained a reason to be kept go back.
    let restored = ids(
        format!("SELECT o.id FROM originals o WHERE o.trashed_at IS NOT NULL AND o.purged_at IS NULL AND {KEEP}"),
        &[],
    )?;
    let trashed = ids(
        format!(
            "SELECT o.id FROM originals o WHERE o.trashed_at IS NULL AND o.purged_at IS NULL
               AND {BASE} + ?1 <= ?2 AND NOT {KEEP} ORDER BY {BASE}"
        ),
        &[&keep_ms, &now_ms],
    )?;
    let purge_before = now_ms - i64::from(cfg.trash_days) * DAY_MS;
    let purged = ids(
        format!(
            "SELECT o.id FROM originals o WHERE o.trashed_at IS NOT NULL AND o.purged_at IS NULL
               AND o.trashed_at <= ?1 AND NOT {KEEP}"
        ),
        &[&purge_before],
    )?;
    let soon: Vec<(String, i64)> = c
        .prepare(&format!(
            "SELECT o.id, {BASE} + ?1 FROM originals o WHERE o.trashed_at IS NULL AND o.purged_at IS NULL
               AND {BASE} + ?1 > ?2 AND {BASE} + ?1 <= ?3 AND NOT {KEEP} ORDER BY {BASE} LIMIT 10000"
        ))?
        .query_map(params![keep_ms, now_ms, now_ms + cfg.warn_within.as_millis() as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let expiring_soon = soon.into_iter().map(|(id, t)| (id, crate::clock::rfc3339(crate::clock::from_ms(t)))).collect();
    Ok(PassReport { trashed, purged, restored, expiring_soon, repaired: 0 })
}

/// One retention pass at `now_ms`, in the caller's transaction.
pub fn pass(c: &Connection, state: &Path, cfg: &RetentionConfig, now_ms: i64) -> rusqlite::Result<PassReport> {
    let repaired = repair(c, state)?;
    let planned = plan(c, cfg, now_ms)?;
    let mut r = PassReport { repaired, expiring_soon: planned.expiring_soon, ..Default::default() };
    for id in planned.restored {
        if restore(c, state, &id, "bodycamd", "a reason to keep it appeared (importance, hold or case link)", now_ms)? {
            r.restored.push(id);
        }
    }
    let keep_days = cfg.default.as_millis() as i64 / DAY_MS;
    for id in planned.trashed {
        c.execute("UPDATE originals SET trashed_at = ?2 WHERE id = ?1", params![id, now_ms])?;
        audit::event(
            c,
            now_ms,
            "retention.trash",
            Some(&id),
            None,
            Some(format!("retention ({keep_days} days) over; purged after {} days in the trash", cfg.trash_days)),
        )?;
        if let (Some(a), Some(t)) = (archive_path(state, &id), trash_path(state, &id)) {
            if a.exists() {
                mv(&a, &t).map_err(io_err)?;
            }
        }
        r.trashed.push(id);
    }
    // Long enough in the trash, still no reason to keep (checked again in
    // the same transaction): purge.
    for id in planned.purged {
        c.execute("UPDATE originals SET purged_at = ?2 WHERE id = ?1", params![id, now_ms])?;
        audit::event(
            c,
            now_ms,
            "retention.purge",
            Some(&id),
            None,
            Some("deleted after its time in the trash".into()),
        )?;
        if let Some(t) = trash_path(state, &id) {
            match std::fs::remove_file(&t) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        r.purged.push(id);
    }
    Ok(r)
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
