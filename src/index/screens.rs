//! Reads for the console's screens that the API has no endpoint for yet:
//! each a page on an index (never a scan of every original), each hiding
//! restricted records from callers without the grant exactly as the API's
//! queries do (the same `RESTRICTED` condition).

use crate::index::custody::{export_row, ExportRecord, EXPORT_COLUMNS};
use crate::index::db::{params, Db, OptionalExtension, Result};
use crate::index::query::{any_restricted, RESTRICTED};

/// `AND NOT <restricted>` over `o` when the caller must not see restricted
/// originals and any exist.
fn hide(c: &Db, see_restricted: bool) -> Result<String> {
    Ok(if !see_restricted && any_restricted(c)? { format!("AND NOT {RESTRICTED}") } else { String::new() })
}

/// What the stations screen shows of one station.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// The newest recording stored from it (its start).
    pub newest: Option<i64>,
    /// Originals it stored since the instant asked about.
    pub recent: u64,
    /// Originals from it whose camera clock was not trusted (skewed).
    pub clock_untrusted: u64,
}

pub fn station_activity(c: &Db, station: &str, since: i64) -> Result<Activity> {
    let newest: Option<i64> = c
        .prepare_cached("SELECT max(start_at) FROM originals WHERE station = ?1")?
        .query_row([station], |r| r.get(0))?;
    let recent: i64 = c
        .prepare_cached("SELECT count(*) FROM originals WHERE ingested_at >= ?1 AND station = ?2")?
        .query_row(params![since, station], |r| r.get(0))?;
    // On the partial index of untrusted clocks (a small set): SQLite would
    // rather walk the station's index, every original of the station.
    let skewed: i64 = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM originals {} WHERE clock_trusted = 0 AND station = ?1",
            c.pick("INDEXED BY originals_untrusted_first_seen", "")
        ))?
        .query_row([station], |r| r.get(0))?;
    Ok(Activity { newest, recent: recent as u64, clock_untrusted: skewed as u64 })
}

/// A file waiting on a dock, by its deadline.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub station: String,
    pub rel_path: Vec<u8>,
    pub first_seen: i64,
    pub size: Option<u64>,
    pub state: String,
    pub deadline: i64,
    pub reason: Option<String>,
}

/// Files waiting on the docks with a known deadline, nearest first, after
/// `(deadline, station, rel_path)`.
pub fn waiting_by_deadline(c: &Db, after: Option<(i64, String, Vec<u8>)>, limit: u32) -> Result<Vec<Waiting>> {
    let (t, st, rel) = after.unwrap_or((i64::MIN, String::new(), Vec::new()));
    c.prepare_cached(
        "SELECT station, rel_path, first_seen, size, state, deadline, reason FROM pending
         WHERE deadline IS NOT NULL AND state != 'rejected' AND (deadline, station, rel_path) > (?1, ?2, ?3)
         ORDER BY deadline, station, rel_path LIMIT ?4",
    )?
    .query_map(params![t, st, rel, i64::from(limit)], |r| {
        Ok(Waiting {
            station: r.get(0)?,
            rel_path: r.get(1)?,
            first_seen: r.get(2)?,
            size: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
            state: r.get(4)?,
            deadline: r.get(5)?,
            reason: r.get(6)?,
        })
    })?
    .collect()
}

/// Files waiting: in all, at risk (deadline within `warn_ms`), overdue.
pub fn waiting_counts(c: &Db, now: i64, warn_ms: i64) -> Result<(u64, u64, u64)> {
    c.prepare_cached(
        "SELECT count(*), count(*) FILTER (WHERE deadline > ?1 AND deadline <= ?2),
                count(*) FILTER (WHERE deadline <= ?1)
         FROM pending WHERE state != 'rejected'",
    )?
    .query_row(params![now, now + warn_ms], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
    })
}

/// Files that need a person: failed, blocked, missing (a count).
pub fn problem_count(c: &Db) -> Result<u64> {
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM pending WHERE state IN ('failed', 'blocked', 'missing', 'rejected')")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

/// A webhook delivery, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub alert_id: i64,
    pub url: String,
    pub attempts: u32,
    pub next_try: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

pub fn recent_deliveries(c: &Db, limit: u32, hide_restricted: bool) -> Result<Vec<DeliveryRow>> {
    // The alert a delivery is about may be about a restricted record.
    let hide = if hide_restricted && any_restricted(c)? {
        format!(
            "AND NOT ((a.subject_type = 'media' AND a.subject IN {ids})
              OR (a.subject_type = 'case' AND a.subject IN (SELECT id FROM cases WHERE restricted = 1)))",
            ids = crate::index::query::RESTRICTED_IDS
        )
    } else {
        String::new()
    };
    c.prepare_cached(&format!(
        "SELECT d.id, e.alert_id, d.url, d.attempts, d.next_try, d.delivered_at, d.last_error
         FROM webhook_deliveries d JOIN alert_events e ON e.id = d.event_id JOIN alerts a ON a.id = e.alert_id
         WHERE TRUE {hide} ORDER BY d.id DESC LIMIT ?1"
    ))?
    .query_map([i64::from(limit)], |r| {
        Ok(DeliveryRow {
            id: r.get(0)?,
            alert_id: r.get(1)?,
            url: r.get(2)?,
            attempts: r.get(3)?,
            next_try: r.get(4)?,
            delivered_at: r.get(5)?,
            last_error: r.get(6)?,
        })
    })?
    .collect()
}

/// Rendition jobs that are queued, running or failed, by kind: (kind,
/// state, jobs), on the partial indexes of those states (the done ones
/// are counted on `/metrics`).
pub fn open_jobs(c: &Db, see_restricted: bool) -> Result<Vec<(String, String, u64)>> {
    let hide = hide(c, see_restricted)?;
    let mut out = Vec::new();
    for states in ["'queued', 'running'", "'failed'"] {
        out.extend(
            c.prepare_cached(&format!(
                "SELECT j.kind, j.state, count(*) FROM rendition_jobs j JOIN originals o ON o.id = j.original_id
                 WHERE j.state IN ({states}) {hide} GROUP BY 1, 2"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<Result<Vec<_>>>()?,
        );
    }
    out.sort();
    Ok(out)
}

/// A failed rendition job.
#[derive(Debug, Clone)]
pub struct FailedJob {
    pub original_id: String,
    pub kind: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Failed rendition jobs, most recent first, before `(updated_at, id)`.
pub fn failed_jobs(c: &Db, before: Option<(i64, String)>, limit: u32, see_restricted: bool) -> Result<Vec<FailedJob>> {
    let hide = hide(c, see_restricted)?;
    let (t, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}".into()));
    c.prepare_cached(&format!(
        "SELECT j.original_id, j.kind, j.attempts, j.last_error, j.updated_at
         FROM rendition_jobs j JOIN originals o ON o.id = j.original_id
         WHERE j.state = 'failed' AND (j.updated_at, j.original_id) < (?1, ?2) {hide}
         ORDER BY j.updated_at DESC, j.original_id DESC LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], |r| {
        Ok(FailedJob {
            original_id: r.get(0)?,
            kind: r.get(1)?,
            attempts: r.get(2)?,
            last_error: r.get(3)?,
            updated_at: r.get(4)?,
        })
    })?
    .collect()
}

/// Queue failed rendition jobs again (one original's, or all of them);
/// how many.
pub fn retry_failed_jobs(c: &Db, original: Option<&str>, by: &str, now: i64) -> Result<usize> {
    let n = match original {
        Some(id) => c.execute(
            "UPDATE rendition_jobs SET state = 'queued', next_try = ?2, attempts = 0, updated_at = ?2
             WHERE original_id = ?1 AND state = 'failed'",
            params![id, now],
        )?,
        None => c.execute(
            "UPDATE rendition_jobs SET state = 'queued', next_try = ?1, attempts = 0, updated_at = ?1
             WHERE state = 'failed'",
            [now],
        )?,
    };
    if n > 0 {
        let what = original.map(|o| format!("of {o}")).unwrap_or_else(|| "of every original".into());
        crate::index::audit::event_by(
            c,
            now,
            by,
            "renditions.retry",
            original,
            Some(format!("{n} failed rendition job(s) {what} queued again")),
        )?;
    }
    Ok(n)
}

/// An original and when its retention counts from.
#[derive(Debug, Clone)]
pub struct Expiring {
    pub id: String,
    pub station: String,
    pub officer: Option<String>,
    pub retain_from: i64,
    pub trashed_at: Option<i64>,
}

/// Originals whose retention started earliest (they expire first, unless
/// something keeps them), after `(retain_from, id)`.
pub fn expiring(c: &Db, after: Option<(i64, String)>, limit: u32, see_restricted: bool) -> Result<Vec<Expiring>> {
    let hide = hide(c, see_restricted)?;
    let (t, id) = after.unwrap_or((i64::MIN, String::new()));
    c.prepare_cached(&format!(
        "SELECT o.id, o.station, o.officer, o.retain_from, o.trashed_at FROM originals o
         WHERE o.trashed_at IS NULL AND o.purged_at IS NULL AND (o.retain_from, o.id) > (?1, ?2) {hide}
         ORDER BY o.retain_from, o.id LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], expiring_row)?
    .collect()
}

fn expiring_row(r: &crate::index::db::Row) -> Result<Expiring> {
    Ok(Expiring {
        id: r.get(0)?,
        station: r.get(1)?,
        officer: r.get(2)?,
        retain_from: r.get(3)?,
        trashed_at: r.get(4)?,
    })
}

/// Originals in the trash (not purged), most recently trashed first,
/// before `(trashed_at, id)`.
pub fn in_trash(c: &Db, before: Option<(i64, String)>, limit: u32, see_restricted: bool) -> Result<Vec<Expiring>> {
    let hide = hide(c, see_restricted)?;
    let (t, id) = before.unwrap_or((i64::MAX, String::new()));
    c.prepare_cached(&format!(
        "SELECT o.id, o.station, o.officer, o.retain_from, o.trashed_at FROM originals o
         WHERE o.trashed_at IS NOT NULL AND o.purged_at IS NULL AND (o.trashed_at, o.id) < (?1, ?2) {hide}
         ORDER BY o.trashed_at DESC, o.id DESC LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], expiring_row)?
    .collect()
}

/// A legal hold in force.
#[derive(Debug, Clone)]
pub struct HoldRow {
    pub id: i64,
    pub media_id: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
}

/// Holds in force, most recently placed first, before `(placed_at, id)`.
pub fn active_holds(c: &Db, before: Option<(i64, i64)>, limit: u32, see_restricted: bool) -> Result<Vec<HoldRow>> {
    let hide = hide(c, see_restricted)?;
    let (t, id) = before.unwrap_or((i64::MAX, i64::MAX));
    c.prepare_cached(&format!(
        "SELECT h.id, h.media_id, h.reason, h.placed_by, h.placed_at FROM holds h JOIN originals o ON o.id = h.media_id
         WHERE h.lifted_at IS NULL AND (h.placed_at, h.id) < (?1, ?2) {hide}
         ORDER BY h.placed_at DESC, h.id DESC LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], hold_row)?
    .collect()
}

fn hold_row(r: &crate::index::db::Row) -> Result<HoldRow> {
    Ok(HoldRow { id: r.get(0)?, media_id: r.get(1)?, reason: r.get(2)?, placed_by: r.get(3)?, placed_at: r.get(4)? })
}

/// One original's holds in force.
pub fn holds_of(c: &Db, media_id: &str) -> Result<Vec<HoldRow>> {
    c.prepare_cached(
        "SELECT id, media_id, reason, placed_by, placed_at FROM holds WHERE media_id = ?1 AND lifted_at IS NULL
         ORDER BY id",
    )?
    .query_map([media_id], hold_row)?
    .collect()
}

/// A case in a list.
#[derive(Debug, Clone)]
pub struct CaseLine {
    pub id: String,
    pub title: Option<String>,
    pub status: String,
    pub closed_at: Option<i64>,
    pub updated_at: i64,
    pub restricted: bool,
    pub archived_at: Option<i64>,
}

const CASE_LINE: &str = "id, title, status, closed_at, updated_at, restricted = 1, archived_at";

fn case_line(r: &crate::index::db::Row) -> Result<CaseLine> {
    Ok(CaseLine {
        id: r.get(0)?,
        title: r.get(1)?,
        status: r.get(2)?,
        closed_at: r.get(3)?,
        updated_at: r.get(4)?,
        restricted: r.get(5)?,
        archived_at: r.get(6)?,
    })
}

/// Cases, most recently changed first, before `(updated_at, id)`.
pub fn cases_page(c: &Db, before: Option<(i64, String)>, limit: u32, see_restricted: bool) -> Result<Vec<CaseLine>> {
    let hide = if see_restricted { "" } else { "AND restricted = 0" };
    let (t, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}".into()));
    c.prepare_cached(&format!(
        "SELECT {CASE_LINE} FROM cases
         WHERE (updated_at, id) < (?1, ?2) {hide} ORDER BY updated_at DESC, id DESC LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], case_line)?
    .collect()
}

/// One case as the lists show it (restriction, archive state).
pub fn case_line_of(c: &Db, id: &str) -> Result<Option<CaseLine>> {
    c.prepare_cached(&format!("SELECT {CASE_LINE} FROM cases WHERE id = ?1"))?.query_row([id], case_line).optional()
}

/// The holds in force on the recordings linked to case `?1` (with the
/// original as `o`, for the restricted filter): one FROM and WHERE for the
/// page and its count.
const CASE_HOLDS: &str = "FROM case_links l
    JOIN holds h ON h.media_id = l.media_id AND h.lifted_at IS NULL JOIN originals o ON o.id = h.media_id
    WHERE l.case_id = ?1 AND l.state = 'linked'";

/// Holds in force on the recordings linked to a case, newest first.
pub fn holds_of_case(
    c: &Db,
    case_id: &str,
    before: Option<(i64, i64)>,
    limit: u32,
    see_restricted: bool,
) -> Result<Vec<HoldRow>> {
    let hide = hide(c, see_restricted)?;
    let (t, id) = before.unwrap_or((i64::MAX, i64::MAX));
    c.prepare_cached(&format!(
        "SELECT h.id, h.media_id, h.reason, h.placed_by, h.placed_at {CASE_HOLDS}
         AND (h.placed_at, h.id) < (?2, ?3) {hide} ORDER BY h.placed_at DESC, h.id DESC LIMIT ?4"
    ))?
    .query_map(params![case_id, t, id, i64::from(limit)], hold_row)?
    .collect()
}

/// How many holds are in force on a case's recordings, as [`holds_of_case`]
/// shows them.
pub fn holds_of_case_count(c: &Db, case_id: &str, see_restricted: bool) -> Result<u64> {
    let hide = hide(c, see_restricted)?;
    let n: i64 =
        c.prepare_cached(&format!("SELECT count(*) {CASE_HOLDS} {hide}"))?.query_row([case_id], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Exports, newest first (only those awaiting a decision with
/// `pending_only`), before `(created_at, id)`.
pub fn exports_page(
    c: &Db,
    pending_only: bool,
    before: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<ExportRecord>> {
    let state = if pending_only { "AND state = 'pending'" } else { "" };
    let (t, id) = before.unwrap_or((i64::MAX, "\u{10FFFF}".into()));
    c.prepare_cached(&format!(
        "SELECT {EXPORT_COLUMNS} FROM exports WHERE (created_at, id) < (?1, ?2) {state}
         ORDER BY created_at DESC, id DESC LIMIT ?3"
    ))?
    .query_map(params![t, id, i64::from(limit)], export_row)?
    .collect()
}

/// Exports awaiting a decision (a count).
pub fn exports_pending(c: &Db) -> Result<u64> {
    let n: i64 =
        c.prepare_cached("SELECT count(*) FROM exports WHERE state = 'pending'")?.query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

/// Stored originals by lateness (`on_time`, `late_docking`,
/// `late_processing`) among those stored since `since` (on the index of
/// storage times: the board's recent picture, not the whole archive).
pub fn lateness_since(c: &Db, since: i64, see_restricted: bool) -> Result<Vec<(String, u64)>> {
    let hide = if !see_restricted && any_restricted(c)? {
        format!("AND id NOT IN {}", crate::index::query::RESTRICTED_IDS)
    } else {
        String::new()
    };
    c.prepare_cached(&format!(
        "SELECT CASE WHEN on_time = 1 THEN 'on_time' ELSE late END, count(*) FROM originals
         WHERE ingested_at >= ?1 AND on_time IS NOT NULL {hide} GROUP BY 1"
    ))?
    .query_map([since], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
    .collect()
}
