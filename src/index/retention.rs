//! Retention in the index: what expires, what is kept and why, and the
//! marks a pass makes (trash, purge, restore), each re-checked in the
//! transaction that makes it. Files follow in `custody::retention`, only
//! after the commit.

use serde::Serialize;

use crate::config::RetentionConfig;
use crate::index::audit;
use crate::index::db::{params, Db, OptionalExtension};

pub const DAY_MS: i64 = 24 * 3600 * 1000;

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

/// What the files must become, as the index says (read on any connection).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// In the trash: the file belongs in `trash/`.
    pub to_trash: Vec<String>,
    /// Purged: no file may remain (original, renditions only it used).
    pub purged: Vec<String>,
    pub purged_renditions: Vec<String>,
    pub voided_exports: Vec<String>,
    /// Files in `trash/` whose rows say they are not trashed.
    pub to_archive: Vec<String>,
}

/// Read what must be repaired: files that disagree with the index.
pub fn placement(c: &Db, in_trash: &[String]) -> crate::index::db::Result<Placement> {
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
    for id in in_trash {
        let listed: Option<bool> = c
            .prepare_cached("SELECT trashed_at IS NOT NULL OR purged_at IS NOT NULL FROM originals WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if listed == Some(false) {
            p.to_archive.push(id.clone());
        }
    }
    Ok(p)
}

/// Take one original out of the trash in the index (by an administrator,
/// or because a reason to keep it appeared). Returns false if it is not in
/// the trash. The file follows with [`carry_out`] after the commit.
pub fn restore(c: &Db, id: &str, by: &str, why: &str, now_ms: i64) -> crate::index::db::Result<bool> {
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

/// Originals whose retention base lies in `(after, upto]`, described, and
/// neither trashed nor kept: one range scan of an index, never a full scan.
fn base_between(c: &Db, after: i64, upto: i64, limit: i64) -> crate::index::db::Result<Vec<(String, i64)>> {
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
pub fn plan(c: &Db, cfg: &RetentionConfig, now_ms: i64) -> crate::index::db::Result<PassReport> {
    const LIMIT: i64 = 100_000;
    let keep_ms = cfg.default.as_millis() as i64;
    let cut = now_ms - keep_ms;
    let ids = |sql: String, p: &[&dyn crate::index::db::ToValue]| -> crate::index::db::Result<Vec<String>> {
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
fn still_due(c: &Db, id: &str, cfg: &RetentionConfig, now_ms: i64, trash: bool) -> crate::index::db::Result<bool> {
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
pub fn apply(c: &Db, cfg: &RetentionConfig, now_ms: i64, planned: &PassReport) -> crate::index::db::Result<PassReport> {
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
            .prepare_cached(c.pick(
                "SELECT e.id FROM exports e WHERE e.voided_at IS NULL
                   AND EXISTS (SELECT 1 FROM json_each(e.media) j WHERE j.value = ?1)",
                "SELECT e.id FROM exports e WHERE e.voided_at IS NULL
                   AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(e.media::jsonb) j WHERE j = ?1)",
            ))?
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
pub fn pass(c: &Db, cfg: &RetentionConfig, now_ms: i64) -> crate::index::db::Result<PassReport> {
    let planned = plan(c, cfg, now_ms)?;
    let mut r = apply(c, cfg, now_ms, &planned)?;
    r.expiring_soon = planned.expiring_soon;
    Ok(r)
}

/// Why an original is kept, for `media show` and the API.
pub fn keep_reasons(c: &Db, id: &str) -> crate::index::db::Result<Vec<String>> {
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

/// An original whose bucket lock may need more than it was stored with:
/// one with a hold (placed or lifted), a case link or importance, or whose
/// retention counts from later than it was stored (a clock ahead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockTarget {
    pub id: String,
    /// Kept for a reason (hold, case, importance): locked on a rolling span.
    pub kept: bool,
    /// An active hold: the bucket's legal hold must be on.
    pub held: bool,
    pub retain_from: i64,
}

/// Every original whose bucket lock the retention pass checks.
/// `only`: just this original (after an API change), if it is one.
pub fn lock_targets(c: &Db, only: Option<&str>) -> crate::index::db::Result<Vec<LockTarget>> {
    let sql = format!(
        "SELECT o.id, CASE WHEN {KEEP} THEN 1 ELSE 0 END,
                CASE WHEN EXISTS (SELECT 1 FROM holds h WHERE h.media_id = o.id AND h.lifted_at IS NULL) THEN 1 ELSE 0 END,
                o.retain_from
           FROM originals o
          WHERE o.purged_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR o.id = ?1)
            AND (EXISTS (SELECT 1 FROM holds h WHERE h.media_id = o.id) OR {KEEP} OR o.retain_from > o.ingested_at)
          ORDER BY o.id"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([only], |r| {
        Ok(LockTarget {
            id: r.get(0)?,
            kept: r.get::<_, i64>(1)? == 1,
            held: r.get::<_, i64>(2)? == 1,
            retain_from: r.get(3)?,
        })
    })?;
    rows.collect()
}
