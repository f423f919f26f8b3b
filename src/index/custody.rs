//! Custody in the index: importance, holds, restriction, case archiving,
//! export records, and the reads that `verify` and exports need. Each write
//! records its audit event in the same transaction.

use crate::index::audit;
use crate::index::db::{params, Db, OptionalExtension, Result};

/// When an original went to the trash or was purged, if it did:
/// `(instant, purged)`. `None` for an original in place (or none at all).
pub fn gone(c: &Db, id: &str) -> Result<Option<(i64, bool)>> {
    c.query_row(
        "SELECT coalesce(purged_at, trashed_at), purged_at IS NOT NULL FROM originals WHERE id = ?1",
        [id],
        |r| Ok(r.get::<_, Option<i64>>(0)?.map(|t| (t, r.get::<_, bool>(1).unwrap_or(false)))),
    )
    .optional()
    .map(Option::flatten)
}

/// An original's retention state.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionState {
    pub important: bool,
    pub restricted: bool,
    pub trashed_at: Option<i64>,
    pub purged_at: Option<i64>,
    /// What retention counts from (see `retention::BASE`).
    pub base: Option<i64>,
    pub kept_for: Vec<String>,
}

pub fn retention_state(c: &Db, id: &str) -> Result<RetentionState> {
    let (important, restricted, trashed_at, purged_at, base) = c.query_row(
        &format!(
            "SELECT o.important = 1, o.restricted = 1, o.trashed_at, o.purged_at, {} FROM originals o WHERE o.id = ?1",
            super::retention::BASE
        ),
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    Ok(RetentionState {
        important,
        restricted,
        trashed_at,
        purged_at,
        base,
        kept_for: super::retention::keep_reasons(c, id)?,
    })
}

/// Mark an original important (kept while so) or ordinary; an important
/// one comes back out of the trash. Returns whether it was restored.
pub fn set_important(c: &Db, id: &str, important: bool, by: &str, reason: &str, now: i64) -> Result<bool> {
    c.execute("UPDATE originals SET important = ?2 WHERE id = ?1", params![id, important])?;
    let what = if important { "retention.important" } else { "retention.ordinary" };
    audit::event_by(c, now, by, what, Some(id), Some(reason.to_string()))?;
    if important {
        return super::retention::restore(c, id, by, "marked important", now);
    }
    Ok(false)
}

/// Place a hold; the original comes back out of the trash. Returns the
/// hold's id and whether it was restored.
pub fn place_hold(c: &Db, id: &str, reason: &str, by: &str, now: i64) -> Result<(i64, bool)> {
    let hold: i64 = c.query_row(
        "INSERT INTO holds (media_id, reason, placed_by, placed_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![id, reason, by, now],
        |r| r.get(0),
    )?;
    audit::event_by(c, now, by, "retention.hold", Some(id), Some(format!("hold #{hold}: {reason}")))?;
    Ok((hold, super::retention::restore(c, id, by, "placed on hold", now)?))
}

/// Lift an active hold. False if there is no such active hold.
pub fn lift_hold(c: &Db, id: &str, hold: i64, by: &str, now: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE holds SET lifted_by = ?3, lifted_at = ?4 WHERE id = ?1 AND media_id = ?2 AND lifted_at IS NULL",
        params![hold, id, by, now],
    )?;
    if n == 1 {
        audit::event_by(c, now, by, "retention.lift_hold", Some(id), Some(format!("hold #{hold} lifted")))?;
    }
    Ok(n == 1)
}

pub fn set_media_restricted(c: &Db, id: &str, restricted: bool, by: &str, reason: &str, now: i64) -> Result<()> {
    c.execute("UPDATE originals SET restricted = ?2 WHERE id = ?1", params![id, restricted])?;
    let what = if restricted { "media.restrict" } else { "media.unrestrict" };
    audit::event_by(c, now, by, what, Some(id), Some(reason.to_string()))?;
    Ok(())
}

pub fn set_case_restricted(c: &Db, case: &str, restricted: bool, by: &str, reason: &str, now: i64) -> Result<()> {
    c.execute("UPDATE cases SET restricted = ?2 WHERE id = ?1", params![case, restricted])?;
    let what = if restricted { "case.restrict" } else { "case.unrestrict" };
    audit::record(c, now, by, what, None, Some(case), Some(reason.to_string()))?;
    Ok(())
}

/// Mark a case's file archived (once); resolves its archive alerts at the
/// next evaluation. False if it was archived already.
pub fn archive_case_file(c: &Db, case: &str, by: &str, how: &str, now: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE cases SET archived_at = ?2, archived_by = ?3 WHERE id = ?1 AND archived_at IS NULL",
        params![case, now, by],
    )?;
    if n == 1 {
        audit::record(c, now, by, "case.archived", None, Some(case), Some(how.into()))?;
    }
    Ok(n == 1)
}

/// Closed cases whose file is not archived yet: (case id, closed at).
pub fn unarchived_closed_cases(c: &Db) -> Result<Vec<(String, i64)>> {
    c.prepare_cached(
        "SELECT id, closed_at FROM cases WHERE status = 'closed' AND closed_at IS NOT NULL AND archived_at IS NULL",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// An export record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRecord {
    pub id: String,
    /// `pending`, `approved` or `denied`.
    pub state: String,
    pub case_id: Option<String>,
    pub media: Vec<String>,
    pub case_file: bool,
    pub requester: String,
    pub reviewer: Option<String>,
    pub reason: String,
    pub approver: Option<String>,
    pub decision_note: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub void_reason: Option<String>,
}

/// The columns [`export_row`] reads.
pub const EXPORT_COLUMNS: &str = "id, state, case_id, media, case_file, requester, reviewer, reason, approver, \
     decision_note, created_at, decided_at, expires_at, void_reason";

pub fn export_row(r: &crate::index::db::Row) -> Result<ExportRecord> {
    Ok(ExportRecord {
        id: r.get(0)?,
        state: r.get(1)?,
        case_id: r.get(2)?,
        media: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        case_file: r.get(4)?,
        requester: r.get(5)?,
        reviewer: r.get(6)?,
        reason: r.get(7)?,
        approver: r.get(8)?,
        decision_note: r.get(9)?,
        created_at: r.get(10)?,
        decided_at: r.get(11)?,
        expires_at: r.get(12)?,
        void_reason: r.get(13)?,
    })
}

pub fn export(c: &Db, id: &str) -> Result<Option<ExportRecord>> {
    c.query_row(&format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = ?1"), [id], export_row).optional()
}

/// A new export request.
#[derive(Debug, Clone)]
pub struct NewExport<'a> {
    pub id: &'a str,
    pub case_id: Option<&'a str>,
    pub media: &'a [String],
    pub case_file: bool,
    pub requester: &'a str,
    pub reviewer: Option<&'a str>,
    pub reason: &'a str,
}

pub fn insert_export(c: &Db, e: &NewExport<'_>, now: i64) -> Result<()> {
    let media = serde_json::to_string(e.media).map_err(crate::index::db::Error::other)?;
    c.execute(
        "INSERT INTO exports (id, case_id, media, case_file, requester, reviewer, reason, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
        params![e.id, e.case_id, media, e.case_file, e.requester, e.reviewer, e.reason, now],
    )?;
    Ok(())
}

/// Approve (with an expiry) or deny a pending export.
pub fn decide_export(
    c: &Db,
    id: &str,
    approve: bool,
    by: &str,
    note: Option<&str>,
    now: i64,
    expires: Option<i64>,
) -> Result<()> {
    c.execute(
        "UPDATE exports SET state = ?2, approver = ?3, decision_note = ?4, decided_at = ?5, expires_at = ?6
         WHERE id = ?1",
        params![id, if approve { "approved" } else { "denied" }, by, note, now, expires],
    )?;
    Ok(())
}

/// The originals of a case that an export of it holds: linked, not
/// purged, and (without the grant) not restricted; in recording order.
pub fn exportable_case_media(c: &Db, case: &str, see_restricted: bool) -> Result<Vec<String>> {
    c.prepare(&format!(
        "SELECT o.id FROM case_links l JOIN originals o ON o.id = l.media_id
         WHERE l.case_id = ?1 AND l.state = 'linked' AND o.purged_at IS NULL
           AND (?2 OR NOT {}) ORDER BY o.start_at, o.id",
        super::query::RESTRICTED
    ))?
    .query_map(params![case, see_restricted], |r| r.get(0))?
    .collect()
}

/// Whether an original is in the trash.
pub fn in_trash(c: &Db, id: &str) -> Result<bool> {
    c.query_row("SELECT trashed_at IS NOT NULL FROM originals WHERE id = ?1", [id], |r| r.get(0))
}

/// The audit entries an export carries: those about its originals, and
/// those about its case that name no original, in chain order, as JSON
/// lines with their hashes.
pub fn audit_excerpt(c: &Db, media: &[String], case: Option<&str>) -> Result<String> {
    let ids = serde_json::to_string(media).map_err(crate::index::db::Error::other)?;
    let sql = c.pick(
        "SELECT id, at, actor, action, case_id, media_id, status, outcome, details, prev_hash, hash FROM audit
         WHERE media_id IN (SELECT value FROM json_each(?1))
            OR (?2 IS NOT NULL AND case_id = ?2 AND media_id IS NULL) ORDER BY id",
        "SELECT id, at, actor, action, case_id, media_id, status, outcome, details, prev_hash, hash FROM audit
         WHERE media_id IN (SELECT jsonb_array_elements_text(CAST(?1 AS TEXT)::jsonb))
            OR (CAST(?2 AS TEXT) IS NOT NULL AND case_id = ?2 AND media_id IS NULL) ORDER BY id",
    );
    let mut out = String::new();
    c.prepare(sql)?.for_each(params![ids, case], |r| {
        let line = serde_json::json!({
            "id": r.get::<_, i64>(0)?, "at": crate::clock::rfc3339(crate::clock::from_ms(r.get(1)?)),
            "actor": r.get::<_, String>(2)?, "action": r.get::<_, String>(3)?, "case_id": r.get::<_, Option<String>>(4)?,
            "media_id": r.get::<_, Option<String>>(5)?, "status": r.get::<_, Option<i64>>(6)?,
            "outcome": r.get::<_, String>(7)?, "details": r.get::<_, Option<String>>(8)?,
            "prev_hash": r.get::<_, Option<String>>(9)?, "hash": r.get::<_, Option<String>>(10)?,
        });
        out.push_str(&line.to_string());
        out.push('\n');
        Ok(true)
    })?;
    Ok(out)
}

/// Originals `verify` re-hashes: every one not purged (or `sample` of them
/// at random), with whether it is in the trash.
pub fn originals_to_verify(c: &Db, sample: Option<u32>) -> Result<Vec<(String, bool)>> {
    let (order, limit) = match sample {
        Some(n) => ("random()", i64::from(n)),
        None => ("id", i64::MAX),
    };
    c.prepare(&format!(
        "SELECT id, trashed_at IS NOT NULL FROM originals WHERE purged_at IS NULL ORDER BY {order} LIMIT ?1"
    ))?
    .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// Renditions `verify` re-hashes (of originals not purged).
pub fn renditions_to_verify(c: &Db, sample: Option<u32>) -> Result<Vec<String>> {
    let (order, limit) = match sample {
        Some(n) => ("random()", i64::from(n)),
        None => ("id", i64::MAX),
    };
    c.prepare(&format!(
        "SELECT id FROM (SELECT DISTINCT r.id FROM renditions r JOIN originals o ON o.id = r.original_id
         WHERE o.purged_at IS NULL) d ORDER BY {order} LIMIT ?1"
    ))?
    .query_map([limit], |r| r.get(0))?
    .collect()
}
