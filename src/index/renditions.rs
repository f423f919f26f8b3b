//! Rendition jobs and the renditions they made.

use crate::index::db::{params, Db, OptionalExtension};

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub original_id: String,
    /// `playable` or `thumbnail`.
    pub kind: String,
    /// JSON: how it is to be made.
    pub plan: String,
    /// Attempts including this one.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenditionRow {
    pub id: String,
    pub original_id: String,
    pub kind: String,
    pub method: String,
    pub mime: String,
    pub size: u64,
    pub settings: String,
    pub encoder: String,
    pub duration_secs: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: i64,
    /// A recovered rendition's provenance (JSON [`crate::media::recover::Recovery`]).
    pub recovery: Option<String>,
}

/// Queue a job (or record why there is none: `state = skipped`), unless
/// the original has one of this kind already.
pub fn plan(
    c: &Db,
    original: &str,
    kind: &str,
    state: &str,
    plan: &str,
    now_ms: i64,
) -> crate::index::db::Result<bool> {
    Ok(c.prepare_cached(
        "INSERT INTO rendition_jobs (original_id, kind, state, plan, next_try, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![original, kind, state, plan, now_ms])?
        == 1)
}

/// Take the most urgent due job: it becomes `running`, one attempt more.
/// Claim the most urgent due job for `host`, in one statement: with
/// PostgreSQL, hosts claiming at once skip each other's rows (`FOR UPDATE
/// SKIP LOCKED`), so a job is claimed once.
pub fn claim(c: &Db, host: &str, now_ms: i64) -> crate::index::db::Result<Option<Job>> {
    let sql = c.pick(
        "UPDATE rendition_jobs SET state = 'running', attempts = attempts + 1, updated_at = ?2, owner = ?1, heartbeat = ?2
         WHERE (original_id, kind) = (SELECT original_id, kind FROM rendition_jobs WHERE state = 'queued' AND next_try <= ?2
                                      ORDER BY next_try, original_id, kind LIMIT 1)
         RETURNING original_id, kind, plan, attempts",
        "UPDATE rendition_jobs SET state = 'running', attempts = attempts + 1, updated_at = ?2, owner = ?1, heartbeat = ?2
         WHERE (original_id, kind) = (SELECT original_id, kind FROM rendition_jobs WHERE state = 'queued' AND next_try <= ?2
                                      ORDER BY next_try, original_id, kind LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING original_id, kind, plan, attempts",
    );
    c.prepare_cached(sql)?
        .query_row(params![host, now_ms], |r| {
            Ok(Job { original_id: r.get(0)?, kind: r.get(1)?, plan: r.get(2)?, attempts: r.get(3)? })
        })
        .optional()
}

/// A running job's host is still at it.
pub fn heartbeat(c: &Db, host: &str, original: &str, kind: &str, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE rendition_jobs SET heartbeat = ?4 WHERE original_id = ?1 AND kind = ?2 AND owner = ?3 AND state = 'running'",
    )?
    .execute(params![original, kind, host, now_ms])?;
    Ok(())
}

/// Jobs left running by this host (a crash), or by any host that stopped
/// saying it is at them before `stale_before`, go back to the queue.
pub fn requeue_running(c: &Db, host: &str, stale_before: i64, now_ms: i64) -> crate::index::db::Result<usize> {
    c.prepare_cached(
        "UPDATE rendition_jobs SET state = 'queued', next_try = ?1, updated_at = ?1
         WHERE state = 'running' AND (owner = ?2 OR owner IS NULL OR coalesce(heartbeat, 0) < ?3)",
    )?
    .execute(params![now_ms, host, stale_before])
}

/// Record a made rendition and close its job.
pub fn done(c: &Db, r: &RenditionRow) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "INSERT INTO renditions (id, original_id, kind, method, mime, size, settings, encoder, duration_secs, width, height, created_at, recovery)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (original_id, kind) DO UPDATE SET id = excluded.id, method = excluded.method, mime = excluded.mime,
            size = excluded.size, settings = excluded.settings, encoder = excluded.encoder,
            duration_secs = excluded.duration_secs, width = excluded.width, height = excluded.height,
            created_at = excluded.created_at, recovery = excluded.recovery",
    )?
    .execute(params![
        r.id,
        r.original_id,
        r.kind,
        r.method,
        r.mime,
        r.size as i64,
        r.settings,
        r.encoder,
        r.duration_secs,
        r.width,
        r.height,
        r.created_at,
        r.recovery
    ])?;
    c.prepare_cached(
        "UPDATE rendition_jobs SET state = 'done', last_error = NULL, updated_at = ?3 WHERE original_id = ?1 AND kind = ?2",
    )?
    .execute(params![r.original_id, r.kind, r.created_at])?;
    Ok(())
}

/// A failed attempt: retried at `retry_at`, or failed for good.
pub fn failed(
    c: &Db,
    original: &str,
    kind: &str,
    error: &str,
    retry_at: Option<i64>,
    now_ms: i64,
) -> crate::index::db::Result<()> {
    let (state, next) = match retry_at {
        Some(t) => ("queued", t),
        None => ("failed", now_ms),
    };
    c.prepare_cached(
        "UPDATE rendition_jobs SET state = ?3, next_try = ?4, last_error = ?5, updated_at = ?6
         WHERE original_id = ?1 AND kind = ?2",
    )?
    .execute(params![original, kind, state, next, error, now_ms])?;
    Ok(())
}

/// Jobs still to do (queued or running).
pub fn outstanding(c: &Db) -> crate::index::db::Result<u64> {
    c.prepare_cached("SELECT count(*) FROM rendition_jobs WHERE state IN ('queued', 'running')")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// When the next queued job is due.
/// Jobs running, or queued and due by `by_ms` (`run --once` waits for these,
/// not for retries due later).
pub fn due_or_running(c: &Db, by_ms: i64) -> crate::index::db::Result<u64> {
    c.prepare_cached(
        "SELECT count(*) FROM rendition_jobs WHERE state IN ('queued', 'running')
         AND (state = 'running' OR next_try <= ?1)",
    )?
    .query_row([by_ms], |r| r.get::<_, i64>(0).map(|n| n as u64))
}

pub fn next_due(c: &Db) -> crate::index::db::Result<Option<i64>> {
    c.prepare_cached("SELECT min(next_try) FROM rendition_jobs WHERE state = 'queued'")?.query_row([], |r| r.get(0))
}

fn row(r: &crate::index::db::Row) -> crate::index::db::Result<RenditionRow> {
    Ok(RenditionRow {
        id: r.get(0)?,
        original_id: r.get(1)?,
        kind: r.get(2)?,
        method: r.get(3)?,
        mime: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        settings: r.get(6)?,
        encoder: r.get(7)?,
        duration_secs: r.get(8)?,
        width: r.get(9)?,
        height: r.get(10)?,
        created_at: r.get(11)?,
        recovery: r.get(12)?,
    })
}

const COLUMNS: &str =
    "id, original_id, kind, method, mime, size, settings, encoder, duration_secs, width, height, created_at, recovery";

pub fn of_original(c: &Db, original: &str) -> crate::index::db::Result<Vec<RenditionRow>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM renditions WHERE original_id = ?1 ORDER BY kind"))?
        .query_map([original], row)?
        .collect()
}

pub fn get(c: &Db, original: &str, kind: &str) -> crate::index::db::Result<Option<RenditionRow>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM renditions WHERE original_id = ?1 AND kind = ?2"))?
        .query_row([original, kind], row)
        .optional()
}

/// A job's state, for `media show`.
#[derive(Debug, Clone)]
pub struct JobState {
    pub kind: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub plan: String,
}

pub fn jobs_of(c: &Db, original: &str) -> crate::index::db::Result<Vec<JobState>> {
    c.prepare_cached(
        "SELECT kind, state, attempts, last_error, plan FROM rendition_jobs WHERE original_id = ?1 ORDER BY kind",
    )?
    .query_map([original], |r| {
        Ok(JobState { kind: r.get(0)?, state: r.get(1)?, attempts: r.get(2)?, last_error: r.get(3)?, plan: r.get(4)? })
    })?
    .collect()
}

/// Described originals that have no rendition jobs yet (stored before
/// renditions existed, or while they were switched off).
/// Keyset by id (`after`), so a backfill over a large archive reads each
/// original once.
pub fn unplanned(c: &Db, after: &str, limit: u32) -> crate::index::db::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT o.id FROM originals o WHERE o.id > ?1 AND o.described_at IS NOT NULL
           AND o.kind IN ('video', 'audio', 'photo')
           AND NOT EXISTS (SELECT 1 FROM rendition_jobs j WHERE j.original_id = o.id) ORDER BY o.id LIMIT ?2",
    )?
    .query_map(params![after, limit], |r| r.get(0))?
    .collect()
}

/// Rendition jobs by kind, state and method: (kind, state, method, jobs,
/// bytes of the renditions made).
/// One line of [`summary`]: kind, state, method, jobs, bytes.
pub type SummaryLine = (String, String, String, i64, i64);

pub fn summary(c: &Db) -> crate::index::db::Result<Vec<SummaryLine>> {
    c.prepare(
        "SELECT j.kind, j.state, coalesce(r.method, ''), count(*), CAST(coalesce(sum(r.size), 0) AS BIGINT)
         FROM rendition_jobs j LEFT JOIN renditions r ON r.original_id = j.original_id AND r.kind = j.kind
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
    .collect()
}

/// What the rendition policy needs to know of an original.
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    pub kind: Option<String>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub height: Option<u32>,
    pub probe_error: Option<String>,
    pub device: Option<String>,
}

pub fn plan_inputs(c: &Db, id: &str) -> crate::index::db::Result<Option<PlanInputs>> {
    c.prepare_cached(
        "SELECT kind, container, video_codec, audio_codec, height, probe_error, device FROM originals WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(PlanInputs {
            kind: r.get(0)?,
            container: r.get(1)?,
            video_codec: r.get(2)?,
            audio_codec: r.get(3)?,
            height: r.get(4)?,
            probe_error: r.get(5)?,
            device: r.get(6)?,
        })
    })
    .optional()
}

/// An original's duration and kind (to check a rendition against).
pub fn duration_and_kind(c: &Db, id: &str) -> crate::index::db::Result<(Option<f64>, Option<String>)> {
    c.query_row("SELECT duration_secs, kind FROM originals WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// A recovery job that cannot run yet: no recording can supply the codec
/// configuration. It waits (not counted as outstanding work) until a
/// complete recording of the same camera arrives or an admin names one.
pub fn waiting(c: &Db, original: &str, kind: &str, why: &str, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE rendition_jobs SET state = 'waiting', last_error = ?3, updated_at = ?4, next_try = ?4
         WHERE original_id = ?1 AND kind = ?2",
    )?
    .execute(params![original, kind, why, now_ms])?;
    Ok(())
}

/// A complete recording of `device` was described: recovery jobs of that
/// camera waiting for a reference are queued again. Returns how many.
pub fn wake_waiting(c: &Db, device: &str, now_ms: i64) -> crate::index::db::Result<usize> {
    c.prepare_cached(
        "UPDATE rendition_jobs SET state = 'queued', next_try = ?2, updated_at = ?2
         WHERE state = 'waiting'
           AND EXISTS (SELECT 1 FROM originals o WHERE o.id = rendition_jobs.original_id AND o.device = ?1)",
    )?
    .execute(params![device, now_ms])
}

/// Recordings that may supply the codec configuration for recovering
/// `original`: complete (read without error) H.264/H.265 videos of the same
/// camera, the most recent first.
pub fn reference_candidates(c: &Db, original: &str, limit: u32) -> crate::index::db::Result<Vec<String>> {
    // Never a restricted recording: its id would show in the provenance to
    // callers without the grant.
    c.prepare_cached(&format!(
        "SELECT o.id FROM originals cut JOIN originals o ON o.device = cut.device
         WHERE cut.id = ?1 AND o.id != cut.id AND o.kind = 'video' AND o.probe_error IS NULL
           AND o.video_codec IN ('h264', 'hevc') AND o.described_at IS NOT NULL AND NOT {}
         ORDER BY o.start_at DESC, o.id LIMIT ?2",
        crate::index::query::RESTRICTED
    ))?
    .query_map(params![original, limit], |r| r.get(0))?
    .collect()
}

/// Why a recording cannot be named as a reference, if it cannot.
pub fn unfit_reference(c: &Db, reference: &str) -> crate::index::db::Result<Option<String>> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = c
        .query_row("SELECT kind, video_codec, probe_error FROM originals WHERE id = ?1", [reference], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match row {
        None => Some(format!("no original {reference}")),
        Some((_, _, Some(e))) => Some(format!("{reference} is not a complete recording itself ({e})")),
        Some((kind, codec, None))
            if kind.as_deref() != Some("video") || !matches!(codec.as_deref(), Some("h264" | "hevc")) =>
        {
            Some(format!("{reference} is not an H.264 or H.265 video"))
        }
        _ if crate::index::query::media_restricted(c, reference)? == Some(true) => {
            Some(format!("{reference} is restricted: its id would show in the provenance of the recovered rendition"))
        }
        _ => None,
    })
}

/// An admin names the reference for recovering `original` (or `None`: pick
/// one automatically): the recovery is planned again and queued now.
/// False when `original` has no recovery job.
pub fn set_reference(c: &Db, original: &str, reference: Option<&str>, now_ms: i64) -> crate::index::db::Result<bool> {
    let plan: Option<String> = c
        .query_row("SELECT plan FROM rendition_jobs WHERE original_id = ?1 AND kind = 'playable'", [original], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(mut plan) = plan.and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok()) else {
        return Ok(false);
    };
    if plan["method"] != "recover" {
        return Ok(false);
    }
    plan["reference"] = reference.map_or(serde_json::Value::Null, serde_json::Value::from);
    c.prepare_cached(
        "UPDATE rendition_jobs SET plan = ?2, state = 'queued', attempts = 0, next_try = ?3, last_error = NULL, updated_at = ?3
         WHERE original_id = ?1 AND kind = 'playable' AND state != 'running'",
    )?
    .execute(params![original, plan.to_string(), now_ms])
    .map(|n| n == 1)
}
