//! What the ingest pipeline writes. Each function runs inside the writer's
//! transaction (see [`super::Index::call`]).

use crate::index::db::{params, Db, OptionalExtension};

use crate::domain::{FileSig, MediaKind, RecordingTime};
use crate::naming::NameInfo;

/// How a sighting's dock file is handled after ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Keep,
    DeletePending,
    Deleted,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Keep => "keep",
            Disposition::DeletePending => "delete_pending",
            Disposition::Deleted => "deleted",
        }
    }
}

/// Pending-file states, as `status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingState {
    Waiting,
    Retrying,
    /// Waits for an outage of the archive or the index to clear.
    Blocked,
    Failed,
    Rejected,
    /// Unaccounted for: its station's folder was replaced or unmounted.
    Missing,
}

impl PendingState {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingState::Waiting => "waiting",
            PendingState::Retrying => "retrying",
            PendingState::Blocked => "blocked",
            PendingState::Failed => "failed",
            PendingState::Rejected => "rejected",
            PendingState::Missing => "missing",
        }
    }
}

/// One stored dock file, as the index records it.
#[derive(Debug, Clone)]
pub struct IngestRecord {
    pub media_id: String,
    pub size: u64,
    pub station: String,
    pub rel_path: Vec<u8>,
    pub sig: FileSig,
    pub first_seen_ms: i64,
    pub ingested_at_ms: i64,
    pub name: NameInfo,
    pub disposition: Disposition,
}

/// What the describer learnt about an original.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub kind: Option<MediaKind>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub duration_secs: Option<f64>,
    pub creation_time_ms: Option<i64>,
    pub recorded: Option<RecordingTime>,
    pub probe_error: Option<String>,
    /// How it stands against the 24-hour rule.
    pub assessment: Option<crate::rules::deadline::Assessment>,
}

pub fn upsert_station(c: &Db, id: &str, path: &str, watch_mode: &str, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "INSERT INTO stations (id, path, watch_mode, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET path = excluded.path, watch_mode = excluded.watch_mode,
             updated_at = excluded.updated_at",
    )?
    .execute(params![id, path, watch_mode, now_ms])?;
    Ok(())
}

/// Claim a station for `host`: station ids are unique across a district,
/// so a station another host runs is refused (`Err` names that host).
/// `take_over`: the embedded engine has one host, whatever its name.
pub fn claim_station(
    c: &Db,
    id: &str,
    path: &str,
    watch_mode: &str,
    host: &str,
    take_over: bool,
    now_ms: i64,
) -> crate::index::db::Result<Result<(), String>> {
    c.prepare_cached(
        "INSERT INTO stations (id, path, watch_mode, updated_at, host) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET path = excluded.path, watch_mode = excluded.watch_mode,
             updated_at = excluded.updated_at, host = excluded.host
         WHERE stations.host IS NULL OR stations.host = excluded.host OR ?6",
    )?
    .execute(params![id, path, watch_mode, now_ms, host, take_over])?;
    let owner: Option<String> = c.query_row("SELECT host FROM stations WHERE id = ?1", [id], |r| r.get(0))?;
    Ok(match owner {
        Some(o) if o != host => Err(o),
        _ => Ok(()),
    })
}

/// Give up a station (an operator moves it to another host).
pub fn release_station(c: &Db, id: &str) -> crate::index::db::Result<bool> {
    Ok(c.execute("UPDATE stations SET host = NULL WHERE id = ?1", [id])? == 1)
}

/// A host says it is alive, with the outages it meets now (JSON).
pub fn host_heartbeat(c: &Db, host: &str, faults: &str, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "INSERT INTO hosts (id, started_at, last_seen, faults) VALUES (?1, ?2, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, faults = excluded.faults",
    )?
    .execute(params![host, now_ms, faults])?;
    Ok(())
}

/// Record a station's availability and how many files wait on it.
pub fn set_station_state(
    c: &Db,
    id: &str,
    available: bool,
    error: Option<&str>,
    pending: usize,
    scanned: bool,
    now_ms: i64,
) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE stations SET
            available = ?2,
            unavailable_since = CASE WHEN CAST(?2 AS BIGINT) = 1 THEN NULL ELSE coalesce(unavailable_since, ?5) END,
            last_error = ?3,
            pending_files = ?4,
            last_scan_at = CASE WHEN CAST(?6 AS BIGINT) = 1 THEN ?5 ELSE last_scan_at END,
            updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![id, available, error, pending as i64, now_ms, scanned])?;
    Ok(())
}

pub fn set_station_watch_mode(c: &Db, id: &str, mode: &str) -> crate::index::db::Result<()> {
    c.prepare_cached("UPDATE stations SET watch_mode = ?2 WHERE id = ?1")?.execute(params![id, mode])?;
    Ok(())
}

/// A file waiting on a station, as recorded in `pending`.
#[derive(Debug, Clone)]
pub struct PendingFile<'a> {
    pub station: &'a str,
    pub rel_path: &'a [u8],
    pub first_seen_ms: i64,
    pub size: Option<u64>,
    pub state: PendingState,
    pub attempts: u32,
    pub reason: Option<&'a str>,
    /// Its estimated storage deadline (see `rules::deadline`).
    pub deadline_ms: Option<i64>,
}

/// Insert or update a file waiting on a station. `first_seen` and the
/// deadline are kept from the first time the file was recorded.
///
/// A row is never brought back for a file stored at or after `now_ms` (a
/// station's write that lost the race with the store of the same file,
/// which engines with many writers allow).
pub fn upsert_pending(c: &Db, p: &PendingFile<'_>, now_ms: i64) -> crate::index::db::Result<()> {
    let sql = c.pick(
        "INSERT INTO pending (station, rel_path, first_seen, size, state, attempts, reason, updated_at, deadline)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
         WHERE NOT EXISTS (SELECT 1 FROM sightings WHERE station = ?1 AND rel_path = ?2 AND ingested_at >= ?8)
         ON CONFLICT (station, rel_path) DO UPDATE SET
            size = excluded.size, state = excluded.state, attempts = excluded.attempts,
            reason = excluded.reason, updated_at = excluded.updated_at,
            deadline = coalesce(pending.deadline, excluded.deadline)",
        "INSERT INTO pending (station, rel_path, first_seen, size, state, attempts, reason, updated_at, deadline)
         SELECT CAST(?1 AS TEXT), CAST(?2 AS BYTEA), CAST(?3 AS BIGINT), CAST(?4 AS BIGINT), CAST(?5 AS TEXT),
                CAST(?6 AS BIGINT), CAST(?7 AS TEXT), CAST(?8 AS BIGINT), CAST(?9 AS BIGINT)
         WHERE NOT EXISTS (SELECT 1 FROM sightings WHERE station = ?1 AND rel_path = ?2 AND ingested_at >= ?8)
         ON CONFLICT (station, rel_path) DO UPDATE SET
            size = excluded.size, state = excluded.state, attempts = excluded.attempts,
            reason = excluded.reason, updated_at = excluded.updated_at,
            deadline = coalesce(pending.deadline, excluded.deadline)",
    );
    c.prepare_cached(sql)?.execute(params![
        p.station,
        p.rel_path,
        p.first_seen_ms,
        p.size.map(|s| s as i64),
        p.state.as_str(),
        p.attempts,
        p.reason,
        now_ms,
        p.deadline_ms
    ])?;
    Ok(())
}

/// Record that a station's watch is degraded until `until` (`None` clears).
pub fn set_station_degraded(
    c: &Db,
    id: &str,
    why: Option<&str>,
    until_ms: Option<i64>,
) -> crate::index::db::Result<()> {
    c.prepare_cached("UPDATE stations SET degraded = ?2, degraded_until = ?3 WHERE id = ?1")?
        .execute(params![id, why, until_ms])?;
    Ok(())
}

/// A pending file turned out to be seen earlier (under another name).
pub fn set_pending_first_seen(
    c: &Db,
    station: &str,
    rel_path: &[u8],
    first_seen_ms: i64,
    deadline_ms: i64,
) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE pending SET first_seen = min(first_seen, ?3), deadline = min(coalesce(deadline, ?4), ?4)
         WHERE station = ?1 AND rel_path = ?2",
    )?
    .execute(params![station, rel_path, first_seen_ms, deadline_ms])?;
    Ok(())
}

pub fn delete_pending(c: &Db, station: &str, rel_path: &[u8]) -> crate::index::db::Result<()> {
    c.prepare_cached("DELETE FROM pending WHERE station = ?1 AND rel_path = ?2")?
        .execute(params![station, rel_path])?;
    Ok(())
}

fn touch_party(c: &Db, table: &str, key: &str, value: &str, now_ms: i64) -> crate::index::db::Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO {table} ({key}, first_seen, last_seen) VALUES (?1, ?2, ?2)
             ON CONFLICT ({key}) DO UPDATE SET last_seen = max({table}.last_seen, excluded.last_seen)"
    ))?
    .execute(params![value, now_ms])?;
    Ok(())
}

/// Record a stored dock file: the original (if new), its sighting, its
/// device and officer; the file stops being pending. Returns whether the
/// original is new to the index.
pub fn record_ingest(c: &Db, r: &IngestRecord) -> crate::index::db::Result<bool> {
    if let Some(d) = &r.name.device {
        touch_party(c, "devices", "serial", d, r.ingested_at_ms)?;
    }
    if let Some(o) = &r.name.officer {
        touch_party(c, "officers", "number", o, r.ingested_at_ms)?;
    }
    let inserted =
        c.prepare_cached(
            "INSERT INTO originals (id, size, station, device, officer, seq, case_ref, name_start, name_error,
                                source_mtime, first_seen, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            r.media_id,
            r.size as i64,
            r.station,
            r.name.device,
            r.name.officer,
            r.name.seq,
            r.name.case,
            r.name.start.map(|t| t.timestamp_millis()),
            r.name.start_error,
            r.sig.mtime_ns.div_euclid(1_000_000),
            r.first_seen_ms,
            r.ingested_at_ms,
        ])? == 1;
    if !inserted {
        // Another sighting of known bytes: it may have been seen earlier, and
        // may carry what the first one's name did not.
        c.prepare_cached(
            "UPDATE originals SET first_seen = min(first_seen, ?2),
                device = coalesce(device, ?3), officer = coalesce(officer, ?4),
                seq = coalesce(seq, ?5), case_ref = coalesce(case_ref, ?6),
                name_start = coalesce(name_start, ?7),
                -- Docked again after it expired: it is stored again, and its
                -- retention starts over from the trash's point of view.
                trashed_at = NULL, purged_at = NULL
             WHERE id = ?1",
        )?
        .execute(params![
            r.media_id,
            r.first_seen_ms,
            r.name.device,
            r.name.officer,
            r.name.seq,
            r.name.case,
            r.name.start.map(|t| t.timestamp_millis()),
        ])?;
    }
    c.prepare_cached(
        "INSERT INTO sightings (media_id, station, rel_path, size, mtime_ns, ctime_ns, ino, dev,
                                first_seen, ingested_at, disposition)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (media_id, station, rel_path) DO UPDATE SET
            size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
            ino = excluded.ino, dev = excluded.dev, disposition = excluded.disposition,
            disposed_at = NULL",
    )?
    .execute(params![
        r.media_id,
        r.station,
        r.rel_path,
        r.size as i64,
        r.sig.mtime_ns,
        r.sig.ctime_ns,
        r.sig.ino as i64,
        r.sig.dev as i64,
        r.first_seen_ms,
        r.ingested_at_ms,
        r.disposition.as_str(),
    ])?;
    delete_pending(c, &r.station, &r.rel_path)?;
    let path = String::from_utf8_lossy(&r.rel_path);
    super::audit::event(
        c,
        r.ingested_at_ms,
        if inserted { "media.ingest" } else { "media.sighting" },
        Some(&r.media_id),
        None,
        Some(format!("{} bytes from {}:{path}", r.size, r.station)),
    )?;
    Ok(inserted)
}

/// The dock file of a sighting was removed after verification.
pub fn mark_deleted(
    c: &Db,
    media_id: &str,
    station: &str,
    rel_path: &[u8],
    now_ms: i64,
) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE sightings SET disposition = 'deleted', disposed_at = ?4, dispose_error = NULL, dispose_retry_at = NULL
         WHERE media_id = ?1 AND station = ?2 AND rel_path = ?3",
    )?
    .execute(params![media_id, station, rel_path, now_ms])?;
    let path = String::from_utf8_lossy(rel_path);
    super::audit::event(
        c,
        now_ms,
        "dock.delete",
        Some(media_id),
        None,
        Some(format!("{station}:{path} removed from the dock after the stored copy was verified")),
    )?;
    Ok(())
}

/// A deletion that cannot be done now (the stored copy cannot be re-read,
/// the dock file cannot be removed): it stays `delete_pending` and is tried
/// again at `retry_at`.
pub fn mark_dispose_later(
    c: &Db,
    media_id: &str,
    station: &str,
    rel_path: &[u8],
    error: &str,
    retry_at_ms: i64,
) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE sightings SET disposition = 'delete_pending', dispose_error = ?4, dispose_retry_at = ?5
         WHERE media_id = ?1 AND station = ?2 AND rel_path = ?3",
    )?
    .execute(params![media_id, station, rel_path, error, retry_at_ms])?;
    Ok(())
}

/// A deletion that could not be done safely (the dock file changed): keep it.
pub fn mark_kept(c: &Db, media_id: &str, station: &str, rel_path: &[u8]) -> crate::index::db::Result<()> {
    c.prepare_cached(
        "UPDATE sightings SET disposition = 'keep', dispose_error = NULL, dispose_retry_at = NULL
         WHERE media_id = ?1 AND station = ?2 AND rel_path = ?3",
    )?
    .execute(params![media_id, station, rel_path])?;
    Ok(())
}

pub fn record_description(c: &Db, id: &str, d: &Described, now_ms: i64) -> crate::index::db::Result<()> {
    let rec = d.recorded.as_ref();
    let a = d.assessment.as_ref();
    c.prepare_cached(
        "UPDATE originals SET kind = ?2, container = ?3, video_codec = ?4, audio_codec = ?5,
            width = ?6, height = ?7, frame_rate = ?8, duration_secs = ?9, creation_time = ?10,
            recorded_start = ?11, recorded_end = ?12, start_source = ?13, clock_trusted = ?14,
            probe_error = ?15, described_at = ?16, deadline = ?17, on_time = ?18, late = ?19
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        d.kind.unwrap_or(MediaKind::Other).as_str(),
        d.container,
        d.video_codec,
        d.audio_codec,
        d.width,
        d.height,
        d.frame_rate,
        d.duration_secs,
        d.creation_time_ms,
        rec.map(|r| r.start.timestamp_millis()),
        rec.map(|r| r.end.timestamp_millis()),
        rec.map(|r| r.source.as_str()),
        rec.map(|r| r.trusted),
        d.probe_error,
        now_ms,
        a.map(|a| a.deadline.timestamp_millis()),
        a.map(|a| a.on_time),
        a.and_then(|a| a.late).map(|l| l.as_str()),
    ])?;
    Ok(())
}

/// What the describer needs to know about an original besides its bytes.
#[derive(Debug, Clone)]
pub struct DescribeInputs {
    pub station: String,
    pub name_start_ms: Option<i64>,
    pub source_mtime_ms: Option<i64>,
    pub first_seen_ms: i64,
    pub ingested_at_ms: i64,
}

pub fn describe_inputs(c: &Db, id: &str) -> crate::index::db::Result<Option<DescribeInputs>> {
    c.query_row(
        "SELECT station, name_start, source_mtime, first_seen, ingested_at FROM originals WHERE id = ?1",
        [id],
        |r| {
            Ok(DescribeInputs {
                station: r.get(0)?,
                name_start_ms: r.get(1)?,
                source_mtime_ms: r.get(2)?,
                first_seen_ms: r.get(3)?,
                ingested_at_ms: r.get(4)?,
            })
        },
    )
    .optional()
}

/// The station that archive objects found without an index row are filed
/// under (ids starting with `_` are reserved; configs cannot use them).
pub const RECOVERED_STATION: &str = "_recovered";

/// Index an object found in the archive with no index row (a crash came
/// between storing it and indexing it, and its dock file is gone).
pub fn record_recovered(c: &Db, id: &str, size: u64, stored_ms: i64) -> crate::index::db::Result<bool> {
    c.prepare_cached(
        "INSERT INTO stations (id, path, available, updated_at) VALUES (?1, '', 0, ?2)
         ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![RECOVERED_STATION, stored_ms])?;
    let n = c
        .prepare_cached(
            "INSERT INTO originals (id, size, station, first_seen, ingested_at) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id, size as i64, RECOVERED_STATION, stored_ms])?;
    Ok(n == 1)
}

/// Where an original came from, for alert details: station, device,
/// officer and its first dock path.
pub fn media_context(c: &Db, id: &str) -> crate::index::db::Result<serde_json::Value> {
    c.prepare_cached(
        "SELECT o.station, o.device, o.officer, o.seq,
                (SELECT s.rel_path FROM sightings s WHERE s.media_id = o.id ORDER BY s.id LIMIT 1)
         FROM originals o WHERE o.id = ?1",
    )?
    .query_row([id], |r| {
        let rel: Option<Vec<u8>> = r.get(4)?;
        Ok(serde_json::json!({
            "station": r.get::<_, String>(0)?,
            "device": r.get::<_, Option<String>>(1)?,
            "officer": r.get::<_, Option<String>>(2)?,
            "seq": r.get::<_, Option<i64>>(3)?,
            "path": rel.map(|p| String::from_utf8_lossy(&p).into_owned()),
        }))
    })
    .optional()
    .map(|v| v.unwrap_or(serde_json::Value::Null))
}

/// A file a station showed that disappeared before it was stored.
#[derive(Debug, Clone)]
pub struct VanishedFile {
    pub station: String,
    pub rel_path: Vec<u8>,
    pub size: Option<u64>,
    pub first_seen_ms: i64,
    pub name: NameInfo,
}

/// Record lost evidence: a `vanished` row (kept for ever, counted in the
/// compliance report), a sticky critical `vanished_unstored` alert with what
/// was known, and an audit entry; the file stops being pending, and its
/// deadline alerts give way to the sticky one.
pub fn record_vanished(
    c: &Db,
    v: &VanishedFile,
    now_ms: i64,
    hooks: &[String],
) -> crate::index::db::Result<Vec<super::alerts::Transition>> {
    use crate::rules::alerts::{file_subject, AlertKind, AlertSpec};
    let deadline: Option<i64> = c
        .prepare_cached("SELECT deadline FROM pending WHERE station = ?1 AND rel_path = ?2")?
        .query_row(params![v.station, v.rel_path], |r| r.get(0))
        .optional()?
        .flatten();
    let start = v.name.start.map(|t| t.timestamp_millis());
    c.prepare_cached(
        "INSERT INTO vanished (station, rel_path, size, first_seen, vanished_at, deadline, device, officer, seq, name_start)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        v.station,
        v.rel_path,
        v.size.map(|s| s as i64),
        v.first_seen_ms,
        now_ms,
        deadline,
        v.name.device,
        v.name.officer,
        v.name.seq,
        start
    ])?;
    delete_pending(c, &v.station, &v.rel_path)?;
    let path = String::from_utf8_lossy(&v.rel_path).into_owned();
    let subject = file_subject(&v.station, &path);
    let ms = |t: Option<i64>| t.map(|t| crate::clock::rfc3339(crate::clock::from_ms(t)));
    super::audit::event(
        c,
        now_ms,
        "media.vanished",
        None,
        None,
        Some(format!(
            "{}:{path} ({} bytes) disappeared from the dock before it was stored",
            v.station,
            v.size.unwrap_or(0)
        )),
    )?;
    let mut out = Vec::new();
    for kind in [AlertKind::DeadlineAtRisk, AlertKind::Overdue, AlertKind::IngestFailed] {
        out.extend(super::alerts::resolve(c, kind, &subject, now_ms, hooks)?);
    }
    let spec = AlertSpec {
        kind: AlertKind::VanishedUnstored,
        subject,
        details: serde_json::json!({
            "station": v.station,
            "path": path,
            "size": v.size,
            "first_seen": ms(Some(v.first_seen_ms)),
            "vanished_at": ms(Some(now_ms)),
            "deadline": ms(deadline),
            "device": v.name.device,
            "officer": v.name.officer,
            "seq": v.name.seq,
            "recorded_start": ms(start),
            "what_to_do": "the recording was removed from the dock before bodycamd could store it: find the device or the dock's copy",
        }),
    };
    out.extend(super::alerts::open(c, &spec, now_ms, hooks)?);
    Ok(out)
}

/// Remember a station folder's identity (device, inode) as last listed.
pub fn set_station_root(c: &Db, id: &str, dev: u64, ino: u64) -> crate::index::db::Result<()> {
    c.prepare_cached("UPDATE stations SET root_dev = ?2, root_ino = ?3 WHERE id = ?1")?
        .execute(params![id, dev as i64, ino as i64])?;
    Ok(())
}

/// Ask for given-up files to be tried again at once: every one of a station
/// (or of every station), or one path. Returns how many were asked for.
pub fn request_retry(
    c: &Db,
    station: Option<&str>,
    rel_path: Option<&[u8]>,
    now_ms: i64,
) -> crate::index::db::Result<usize> {
    c.prepare_cached(
        "UPDATE pending SET retry_requested = ?3
         WHERE state IN ('failed', 'blocked', 'retrying') AND station = coalesce(?1, station) AND rel_path = coalesce(?2, rel_path)",
    )?
    .execute(params![station, rel_path, now_ms])
}

/// Take a station's retry requests (they are cleared).
pub fn take_retry_requests(c: &Db, station: &str) -> crate::index::db::Result<Vec<Vec<u8>>> {
    let rows: Vec<Vec<u8>> = c
        .prepare_cached("SELECT rel_path FROM pending WHERE station = ?1 AND retry_requested IS NOT NULL")?
        .query_map([station], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !rows.is_empty() {
        c.prepare_cached(
            "UPDATE pending SET retry_requested = NULL WHERE station = ?1 AND retry_requested IS NOT NULL",
        )?
        .execute([station])?;
    }
    Ok(rows)
}
