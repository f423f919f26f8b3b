//! Typed reads of the index.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::index::db::{params, Db, OptionalExtension, Row};

use crate::domain::FileSig;

/// An original with everything the index knows about it.
#[derive(Debug, Clone)]
pub struct MediaRow {
    pub id: String,
    pub size: u64,
    pub kind: Option<String>,
    pub station: String,
    pub device: Option<String>,
    pub officer: Option<String>,
    pub seq: Option<i64>,
    pub case_ref: Option<String>,
    pub recorded_start: Option<i64>,
    pub recorded_end: Option<i64>,
    pub duration_secs: Option<f64>,
    pub start_source: Option<String>,
    pub clock_trusted: Option<bool>,
    pub first_seen: i64,
    pub ingested_at: i64,
    pub described_at: Option<i64>,
    pub probe_error: Option<String>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    pub deadline: Option<i64>,
    pub on_time: Option<bool>,
    pub late: Option<String>,
    /// Recording start as far as known (for ordering and pagination).
    pub start_at: i64,
    /// Every place it was seen.
    pub sightings: Vec<SightingRow>,
}

#[derive(Debug, Clone)]
pub struct SightingRow {
    pub station: String,
    /// Absolute dock path (station folder + relative path).
    pub path: PathBuf,
    pub first_seen: i64,
    pub disposition: String,
}

#[derive(Debug, Clone, Default)]
pub struct MediaFilter {
    pub device: Option<String>,
    pub officer: Option<String>,
    pub station: Option<String>,
    /// Recording start at or after (ms).
    pub from: Option<i64>,
    /// Recording start before (ms).
    pub to: Option<i64>,
    pub limit: Option<u32>,
}

const MEDIA_COLUMNS: &str = "o.id, o.size, o.kind, o.station, o.device, o.officer, o.seq, o.case_ref,
    coalesce(o.recorded_start, o.name_start), o.recorded_end, o.duration_secs, o.start_source,
    o.clock_trusted, o.first_seen, o.ingested_at, o.described_at, o.probe_error, o.container,
    o.video_codec, o.audio_codec, o.width, o.height, o.frame_rate, o.deadline, o.on_time, o.late, o.start_at";

fn media_row(r: &Row) -> crate::index::db::Result<MediaRow> {
    Ok(MediaRow {
        id: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        kind: r.get(2)?,
        station: r.get(3)?,
        device: r.get(4)?,
        officer: r.get(5)?,
        seq: r.get(6)?,
        case_ref: r.get(7)?,
        recorded_start: r.get(8)?,
        recorded_end: r.get(9)?,
        duration_secs: r.get(10)?,
        start_source: r.get(11)?,
        clock_trusted: r.get(12)?,
        first_seen: r.get(13)?,
        ingested_at: r.get(14)?,
        described_at: r.get(15)?,
        probe_error: r.get(16)?,
        container: r.get(17)?,
        video_codec: r.get(18)?,
        audio_codec: r.get(19)?,
        width: r.get(20)?,
        height: r.get(21)?,
        frame_rate: r.get(22)?,
        deadline: r.get(23)?,
        on_time: r.get(24)?,
        late: r.get(25)?,
        start_at: r.get(26)?,
        sightings: Vec::new(),
    })
}

fn station_paths(c: &Db) -> crate::index::db::Result<HashMap<String, PathBuf>> {
    let mut stmt = c.prepare_cached("SELECT id, path FROM stations")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, PathBuf::from(r.get::<_, String>(1)?))))?;
    rows.collect()
}

fn abs_path(stations: &HashMap<String, PathBuf>, station: &str, rel: &[u8]) -> PathBuf {
    under_station(stations.get(station).map(PathBuf::as_path), rel)
}

/// A dock path: `rel` under its station's folder (as stored, when the
/// station is no longer configured).
fn under_station(root: Option<&std::path::Path>, rel: &[u8]) -> PathBuf {
    let rel = std::ffi::OsStr::from_bytes(rel);
    match root {
        Some(root) => root.join(rel),
        None => PathBuf::from(rel),
    }
}

fn attach_sightings(c: &Db, rows: &mut [MediaRow]) -> crate::index::db::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_media: HashMap<String, Vec<SightingRow>> = HashMap::new();
    // The station's path comes in the same query (one round trip).
    for_ids(
        c,
        "SELECT s.media_id, s.station, s.rel_path, s.first_seen, s.disposition, st.path
         FROM sightings s LEFT JOIN stations st ON st.id = s.station WHERE s.media_id IN ({ids}) ORDER BY s.id",
        &ids,
        |r| {
            let (rel, root): (Vec<u8>, Option<String>) = (r.get(2)?, r.get(5)?);
            let path = under_station(root.as_deref().map(std::path::Path::new), &rel);
            by_media.entry(r.get(0)?).or_default().push(SightingRow {
                path,
                station: r.get(1)?,
                first_seen: r.get(3)?,
                disposition: r.get(4)?,
            });
            Ok(())
        },
    )?;
    for row in rows.iter_mut() {
        row.sightings = by_media.remove(&row.id).unwrap_or_default();
    }
    Ok(())
}

/// Runs `sql` once per chunk of `ids` (its `{ids}` replaced by as many
/// placeholders) and hands `f` every row: one round trip for a page of
/// records instead of one per record, within every engine's parameter limit.
pub fn for_ids(
    c: &Db,
    sql: &str,
    ids: &[String],
    mut f: impl FnMut(&Row) -> crate::index::db::Result<()>,
) -> crate::index::db::Result<()> {
    const CHUNK: usize = 512;
    for chunk in ids.chunks(CHUNK) {
        // Padded to a power of two (repeating the last id, which `IN`
        // ignores) so that a query has at most ten shapes and the
        // statement caches of both engines stay small and hit.
        let width = chunk.len().next_power_of_two();
        let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
        let text = sql.replace("{ids}", &marks.join(","));
        let last = chunk.last().expect("chunks are never empty");
        let padded = chunk.iter().chain(std::iter::repeat(last)).take(width);
        let args = crate::index::db::params_from_iter(padded.map(|s| crate::index::db::Value::Text(s.clone())));
        c.prepare_cached(&text)?.for_each(args, |r| f(&r).map(|()| true))?;
    }
    Ok(())
}

/// Originals matching `f`, by recording start (then id).
pub fn media_list(c: &Db, f: &MediaFilter) -> crate::index::db::Result<Vec<MediaRow>> {
    let q = MediaQuery {
        officer: f.officer.clone(),
        device: f.device.clone(),
        station: f.station.clone(),
        from: f.from,
        to: f.to,
        limit: f.limit.unwrap_or(u32::MAX),
        ..Default::default()
    };
    media_page(c, &q)
}

pub fn media_get(c: &Db, id: &str) -> crate::index::db::Result<Option<MediaRow>> {
    let sql = format!("SELECT {MEDIA_COLUMNS} FROM originals o WHERE o.id = ?1");
    let mut rows: Vec<MediaRow> = c.prepare(&sql)?.query_map([id], media_row)?.collect::<Result<_, _>>()?;
    attach_sightings(c, &mut rows)?;
    Ok(rows.pop())
}

#[derive(Debug, Clone)]
pub struct StationRow {
    pub id: String,
    pub path: String,
    pub available: bool,
    pub unavailable_since: Option<i64>,
    pub last_error: Option<String>,
    pub last_scan_at: Option<i64>,
    pub watch_mode: Option<String>,
    /// Files seen and not stored yet (waiting, retrying or failed).
    pub pending: u64,
    pub failed: u64,
}

pub fn stations(c: &Db) -> crate::index::db::Result<Vec<StationRow>> {
    let mut stmt = c.prepare(
        "SELECT s.id, s.path, s.available, s.unavailable_since, s.last_error, s.last_scan_at, s.watch_mode,
            (SELECT count(*) FROM pending p WHERE p.station = s.id AND p.state != 'rejected'),
            (SELECT count(*) FROM pending p WHERE p.station = s.id AND p.state = 'failed')
         FROM stations s ORDER BY s.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StationRow {
            id: r.get(0)?,
            path: r.get(1)?,
            available: r.get(2)?,
            unavailable_since: r.get(3)?,
            last_error: r.get(4)?,
            last_scan_at: r.get(5)?,
            watch_mode: r.get(6)?,
            pending: r.get::<_, i64>(7)? as u64,
            failed: r.get::<_, i64>(8)? as u64,
        })
    })?;
    rows.collect()
}

#[derive(Debug, Clone)]
pub struct PendingRow {
    pub station: String,
    pub path: PathBuf,
    /// The path under the station's folder, as stored.
    pub rel_path: Vec<u8>,
    pub first_seen: i64,
    pub size: Option<u64>,
    pub state: String,
    pub attempts: u32,
    pub reason: Option<String>,
}

const PENDING_COLUMNS: &str = "station, rel_path, first_seen, size, state, attempts, reason";

fn pending_row(stations: &HashMap<String, PathBuf>, r: &Row) -> crate::index::db::Result<PendingRow> {
    let station: String = r.get(0)?;
    let rel: Vec<u8> = r.get(1)?;
    Ok(PendingRow {
        path: abs_path(stations, &station, &rel),
        station,
        rel_path: rel,
        first_seen: r.get(2)?,
        size: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
        state: r.get(4)?,
        attempts: r.get(5)?,
        reason: r.get(6)?,
    })
}

/// Pending files in the given states (all states when empty).
pub fn pending(c: &Db, states: &[&str]) -> crate::index::db::Result<Vec<PendingRow>> {
    let stations = station_paths(c)?;
    let mut stmt =
        c.prepare(&format!("SELECT {PENDING_COLUMNS} FROM pending ORDER BY station, first_seen, rel_path"))?;
    let rows = stmt.query_map([], |r| pending_row(&stations, r))?;
    let all: Vec<PendingRow> = rows.collect::<Result<_, _>>()?;
    Ok(all.into_iter().filter(|p| states.is_empty() || states.contains(&p.state.as_str())).collect())
}

/// Files that need a look (every state but `waiting`: retrying, failed,
/// blocked, missing, rejected), a page at a time in the order they were
/// first seen, after `(first_seen, station, rel_path)`: a range of the index
/// `pending_problems`, however many files wait.
pub fn problems(
    c: &Db,
    after: Option<(i64, String, Vec<u8>)>,
    limit: u32,
) -> crate::index::db::Result<Vec<PendingRow>> {
    let stations = station_paths(c)?;
    let (t, st, rel) = after.unwrap_or((i64::MIN, String::new(), Vec::new()));
    c.prepare_cached(&format!(
        "SELECT {PENDING_COLUMNS} FROM pending
         WHERE state != 'waiting' AND (first_seen, station, rel_path) > (?1, ?2, ?3)
         ORDER BY first_seen, station, rel_path LIMIT ?4"
    ))?
    .query_map(params![t, st, rel, i64::from(limit)], |r| pending_row(&stations, r))?
    .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub originals: u64,
    pub bytes: u64,
    pub sightings: u64,
    pub undescribed: u64,
    pub unreadable: u64,
    pub untrusted_clock: u64,
    /// Files that left a dock before they were stored (lost evidence).
    pub vanished: u64,
    pub by_kind: Vec<(String, u64)>,
}

/// Counts of the archive. Without `include_restricted` (what `/metrics`
/// shows, with no token), restricted originals are left out of every count.
pub fn counts(c: &Db, include_restricted: bool) -> crate::index::db::Result<Counts> {
    let hide = if !include_restricted && any_restricted(c)? {
        format!("WHERE id NOT IN {RESTRICTED_IDS}")
    } else {
        String::new()
    };
    let (originals, bytes, undescribed, unreadable, untrusted_clock) = c.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(size), 0),
                count(*) FILTER (WHERE described_at IS NULL),
                count(*) FILTER (WHERE probe_error IS NOT NULL),
                count(*) FILTER (WHERE clock_trusted = 0)
             FROM originals {hide}"
        ),
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    let sightings: i64 = c.query_row("SELECT count(*) FROM sightings", [], |r| r.get(0))?;
    let vanished: i64 = c.query_row("SELECT count(*) FROM vanished", [], |r| r.get(0))?;
    let mut stmt = c.prepare(&format!(
        "SELECT coalesce(kind, 'undescribed'), count(*) FROM originals {hide} GROUP BY 1 ORDER BY 1"
    ))?;
    let by_kind =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<_, _>>()?;
    Ok(Counts {
        originals: originals as u64,
        bytes: bytes as u64,
        sightings: sightings as u64,
        undescribed: undescribed as u64,
        unreadable: unreadable as u64,
        untrusted_clock: untrusted_clock as u64,
        vanished: vanished as u64,
        by_kind,
    })
}

/// The dock files of a station whose current content is stored (and still
/// on the dock), with the signature they had when stored.
pub fn stored_sightings(c: &Db, station: &str) -> crate::index::db::Result<Vec<(Vec<u8>, FileSig)>> {
    let mut stmt = c.prepare(
        "SELECT rel_path, dev, ino, size, mtime_ns, ctime_ns FROM sightings
         WHERE station = ?1 AND disposition != 'deleted' ORDER BY id",
    )?;
    let rows = stmt.query_map([station], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            FileSig {
                dev: r.get::<_, i64>(1)? as u64,
                ino: r.get::<_, i64>(2)? as u64,
                size: r.get::<_, i64>(3)? as u64,
                mtime_ns: r.get(4)?,
                ctime_ns: r.get(5)?,
            },
        ))
    })?;
    rows.collect()
}

/// A station's pending files as recorded (kept over restarts): first seen,
/// size and state, by path.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub first_seen_ms: i64,
    pub size: Option<u64>,
    pub state: String,
}

pub fn pending_of_station(c: &Db, station: &str) -> crate::index::db::Result<HashMap<Vec<u8>, PendingRecord>> {
    let mut stmt = c.prepare("SELECT rel_path, first_seen, size, state FROM pending WHERE station = ?1")?;
    let rows = stmt.query_map([station], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            PendingRecord {
                first_seen_ms: r.get(1)?,
                size: r.get::<_, Option<i64>>(2)?.map(|s| s as u64),
                state: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

/// The identity (device, inode) of a station's folder when last listed.
pub fn station_root(c: &Db, station: &str) -> crate::index::db::Result<Option<(u64, u64)>> {
    c.query_row("SELECT root_dev, root_ino FROM stations WHERE id = ?1", [station], |r| {
        Ok(match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
            (Some(d), Some(i)) => Some((d as u64, i as u64)),
            _ => None,
        })
    })
    .optional()
    .map(Option::flatten)
}

/// A stored dock file whose removal was decided but not done (a crash came
/// between the commit and the unlink).
#[derive(Debug, Clone)]
pub struct PendingDeletion {
    pub media_id: String,
    pub station: String,
    pub rel_path: Vec<u8>,
    pub sig: FileSig,
}

/// Dock deletions decided and not done: all of them (`due` = `None`, at
/// start-up), or those put off until `due` or before (they failed once).
pub fn pending_deletions(c: &Db, due: Option<i64>) -> crate::index::db::Result<Vec<PendingDeletion>> {
    let mut stmt = c.prepare_cached(
        "SELECT media_id, station, rel_path, dev, ino, size, mtime_ns, ctime_ns FROM sightings
         WHERE disposition = 'delete_pending' AND (CAST(?1 AS BIGINT) IS NULL OR dispose_retry_at <= ?1) ORDER BY id",
    )?;
    let rows = stmt.query_map([due], |r| {
        Ok(PendingDeletion {
            media_id: r.get(0)?,
            station: r.get(1)?,
            rel_path: r.get(2)?,
            sig: FileSig {
                dev: r.get::<_, i64>(3)? as u64,
                ino: r.get::<_, i64>(4)? as u64,
                size: r.get::<_, i64>(5)? as u64,
                mtime_ns: r.get(6)?,
                ctime_ns: r.get(7)?,
            },
        })
    })?;
    rows.collect()
}

/// Originals not described yet (a crash came between storing and describing).
pub fn undescribed(c: &Db) -> crate::index::db::Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT id FROM originals WHERE described_at IS NULL ORDER BY ingested_at")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Every original id (for the start-up orphan check).
pub fn all_ids(c: &Db) -> crate::index::db::Result<std::collections::HashSet<String>> {
    let mut stmt = c.prepare("SELECT id FROM originals")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Files waiting on stations, for the time-based alerts.
pub fn pending_snapshot(c: &Db) -> crate::index::db::Result<Vec<crate::rules::evaluate::PendingFile>> {
    let mut stmt =
        c.prepare_cached("SELECT station, rel_path, first_seen, deadline, state, attempts, reason FROM pending")?;
    let rows = stmt.query_map([], |r| {
        let rel: Vec<u8> = r.get(1)?;
        Ok(crate::rules::evaluate::PendingFile {
            station: r.get(0)?,
            rel: String::from_utf8_lossy(&rel).into_owned(),
            first_seen: crate::clock::from_ms(r.get(2)?),
            deadline: r.get::<_, Option<i64>>(3)?.map(crate::clock::from_ms),
            state: r.get(4)?,
            attempts: r.get(5)?,
            reason: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Stations as the time-based alerts see them (only configured ones).
/// Stations as the time-based alerts see them: the configured ones
/// (`Some(ids)`, one host), or every station some host runs (`None`, a
/// district). A station whose host stopped saying it is alive before
/// `stale_before` is unavailable: nobody watches it.
pub fn station_snapshot(
    c: &Db,
    ids: Option<&[String]>,
    stale_before: Option<i64>,
) -> crate::index::db::Result<Vec<crate::rules::evaluate::StationState>> {
    let mut stmt = c.prepare_cached(
        "SELECT s.id, s.available, s.unavailable_since, s.last_error, s.degraded, s.degraded_until, s.host, h.last_seen
         FROM stations s LEFT JOIN hosts h ON h.id = s.host ORDER BY s.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let mut st = crate::rules::evaluate::StationState {
            id: r.get(0)?,
            available: r.get(1)?,
            unavailable_since: r.get::<_, Option<i64>>(2)?.map(crate::clock::from_ms),
            last_error: r.get(3)?,
            degraded: r.get(4)?,
            degraded_until: r.get::<_, Option<i64>>(5)?.map(crate::clock::from_ms),
        };
        let (host, seen): (Option<String>, Option<i64>) = (r.get(6)?, r.get(7)?);
        if let (Some(stale), Some(host), Some(seen)) = (stale_before, &host, seen) {
            if seen < stale {
                st.available = false;
                st.unavailable_since = Some(crate::clock::from_ms(seen));
                st.last_error = Some(format!("its host {host} stopped reporting"));
            }
        }
        Ok((st, host))
    })?;
    let all: Vec<_> = rows.collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|(s, host)| match ids {
            Some(ids) => ids.contains(&s.id),
            None => host.is_some(),
        })
        .map(|(s, _)| s)
        .collect())
}

/// The outages each host reports: (host, faults JSON), for hosts seen
/// since `since`.
pub fn host_faults(c: &Db, since: i64) -> crate::index::db::Result<Vec<(String, String)>> {
    c.prepare_cached("SELECT id, faults FROM hosts WHERE last_seen >= ?1 ORDER BY id")?
        .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Per-station figures for metrics.
#[derive(Debug, Clone)]
pub struct StationPending {
    pub station: String,
    /// Files seen and not stored yet.
    pub files: u64,
    pub oldest_first_seen: Option<i64>,
    /// The nearest estimated deadline among them.
    pub nearest_deadline: Option<i64>,
}

pub fn pending_by_station(c: &Db) -> crate::index::db::Result<Vec<StationPending>> {
    let mut stmt = c.prepare_cached(
        "SELECT s.id, count(p.rel_path), min(p.first_seen), min(p.deadline) FROM stations s
         LEFT JOIN pending p ON p.station = s.id AND p.state != 'rejected' GROUP BY s.id ORDER BY s.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StationPending {
            station: r.get(0)?,
            files: r.get::<_, i64>(1)? as u64,
            oldest_first_seen: r.get(2)?,
            nearest_deadline: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Stored originals by lateness (`on_time`, `late_docking`, `late_processing`).
pub fn lateness_counts(c: &Db, include_restricted: bool) -> crate::index::db::Result<Vec<(String, u64)>> {
    let hide = if !include_restricted && any_restricted(c)? {
        format!("AND id NOT IN {RESTRICTED_IDS}")
    } else {
        String::new()
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT CASE WHEN on_time = 1 THEN 'on_time' ELSE late END, count(*) FROM originals
         WHERE on_time IS NOT NULL {hide} GROUP BY 1"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

/// Assessed originals whose recording started in `[from, to)` (or, with an
/// untrusted clock, that were first seen then), and how many in that range
/// are not assessed yet (not described), keyed by the group's column.
/// Restricted originals are left out (from the rows and the count) unless
/// `include_restricted`.
pub fn compliance_rows(
    c: &Db,
    from: i64,
    to: i64,
    by: crate::rules::compliance::GroupBy,
    include_restricted: bool,
) -> crate::index::db::Result<(Vec<crate::rules::compliance::Assessed>, Vec<crate::rules::compliance::Lost>, u64)> {
    use crate::rules::compliance::{Assessed, Lost};
    let hide = if !include_restricted && any_restricted(c)? {
        format!("AND id NOT IN {RESTRICTED_IDS}")
    } else {
        String::new()
    };
    // The group's name is its column in originals and vanished (a fixed
    // word: safe in SQL).
    let key = by.as_str();
    // A recording is placed by its start; one whose clock cannot be trusted,
    // by when a station first showed it. Three ranges, each on its own index
    // (a period of a year-old index reads only that period's rows): trusted
    // clocks by recording start (answered from the covering
    // `originals_compliance` alone), untrusted and unknown ones by first
    // sight. Only what the report needs crosses: the group's key, the
    // verdict, and the delay (trusted clocks only; the clock's trust is a
    // literal per range).
    let cols = |trusted: u8, delay: &str| {
        format!("SELECT {key}, on_time, late, CAST({trusted} AS BIGINT), {delay} FROM originals WHERE")
    };
    let (trusted, untrusted) = (cols(1, "ingested_at - recorded_end"), cols(0, "NULL"));
    let mut stmt = c.prepare_cached(&format!(
        "{trusted} clock_trusted = 1 AND recorded_start >= ?1 AND recorded_start < ?2 AND on_time IS NOT NULL {hide}
         UNION ALL
         {untrusted} clock_trusted = 0 AND first_seen >= ?1 AND first_seen < ?2 AND on_time IS NOT NULL {hide}
         UNION ALL
         {untrusted} clock_trusted IS NULL AND first_seen >= ?1 AND first_seen < ?2 AND on_time IS NOT NULL {hide}"
    ))?;
    let rows = stmt
        .query_map(params![from, to], |r| {
            Ok(Assessed {
                key: r.get(0)?,
                on_time: r.get(1)?,
                late: r.get(2)?,
                clock_trusted: r.get::<_, i64>(3)? == 1,
                delay_ms: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Lost files, placed by when a station first showed them.
    let lost = c
        .prepare(&format!("SELECT {key} FROM vanished WHERE first_seen >= ?1 AND first_seen < ?2"))?
        .query_map(params![from, to], |r| Ok(Lost { key: r.get(0)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    let unassessed: i64 = c.query_row(
        &format!("SELECT count(*) FROM originals WHERE start_at >= ?1 AND start_at < ?2 AND on_time IS NULL {hide}"),
        params![from, to],
        |r| r.get(0),
    )?;
    Ok((rows, lost, unassessed as u64))
}

/// An API media query: filters, and a keyset position.
#[derive(Debug, Clone, Default)]
pub struct MediaQuery {
    pub case: Option<String>,
    pub officer: Option<String>,
    pub device: Option<String>,
    pub station: Option<String>,
    pub kind: Option<String>,
    /// Recording start at or after (ms).
    pub from: Option<i64>,
    /// Recording start before (ms).
    pub to: Option<i64>,
    pub on_time: Option<bool>,
    /// Continue after this (start_at, id).
    pub after: Option<(i64, String)>,
    pub limit: u32,
    /// Whether restricted originals are included (callers with the grant).
    pub restricted: bool,
}

/// SQL over `o`: the original is restricted (itself, or through a
/// restricted case it is linked to).
pub const RESTRICTED: &str =
    "(o.restricted = 1 OR EXISTS (SELECT 1 FROM case_links rl JOIN cases rc ON rc.id = rl.case_id
    WHERE rl.media_id = o.id AND rl.state = 'linked' AND rc.restricted = 1))";

/// The ids of every restricted original (itself, or through a restricted
/// case), as a subquery: two indexed lookups, for `NOT IN` filters.
pub const RESTRICTED_IDS: &str = "(SELECT id FROM originals WHERE restricted = 1
    UNION SELECT l.media_id FROM cases k JOIN case_links l ON l.case_id = k.id AND l.state = 'linked'
    WHERE k.restricted = 1)";

/// The originals linked to a case that a caller may see (all of them with
/// the grant), in recording order.
pub fn visible_case_media(c: &Db, case_id: &str, see_restricted: bool) -> crate::index::db::Result<Vec<String>> {
    let mut ids: Vec<String> = crate::index::cases::case_media(c, case_id)?.into_iter().map(|l| l.media_id).collect();
    if let Some(hidden) = hidden_in_case(c, case_id, see_restricted)? {
        ids.retain(|m| !hidden.contains(m));
    }
    Ok(ids)
}

/// The restricted originals of a case that a caller without the grant must
/// not see; `None` when nothing needs hiding (the grant, or nothing
/// restricted anywhere).
fn hidden_in_case(
    c: &Db,
    case_id: &str,
    see_restricted: bool,
) -> crate::index::db::Result<Option<std::collections::HashSet<String>>> {
    if see_restricted || !any_restricted(c)? {
        return Ok(None);
    }
    restricted_in_case(c, case_id).map(Some)
}

/// Whether an original is restricted; `None` when there is no such original.
pub fn media_restricted(c: &Db, id: &str) -> crate::index::db::Result<Option<bool>> {
    use crate::index::db::OptionalExtension;
    c.prepare_cached(&format!("SELECT {RESTRICTED} FROM originals o WHERE o.id = ?1"))?
        .query_row([id], |r| r.get(0))
        .optional()
}

/// Whether anything at all is restricted (two indexed probes): lets the
/// common case skip per-record checks.
pub fn any_restricted(c: &Db) -> crate::index::db::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM originals WHERE restricted = 1) OR EXISTS (SELECT 1 FROM cases WHERE restricted = 1)",
    )?
    .query_row([], |r| r.get(0))
}

/// The restricted originals among a case's linked media.
pub fn restricted_in_case(c: &Db, case_id: &str) -> crate::index::db::Result<std::collections::HashSet<String>> {
    c.prepare_cached(&format!(
        "SELECT o.id FROM case_links l JOIN originals o ON o.id = l.media_id
         WHERE l.case_id = ?1 AND l.state = 'linked' AND {RESTRICTED}"
    ))?
    .query_map([case_id], |r| r.get(0))?
    .collect()
}

/// Whether a case is restricted; `None` when there is no such case.
pub fn case_restricted(c: &Db, id: &str) -> crate::index::db::Result<Option<bool>> {
    use crate::index::db::OptionalExtension;
    c.prepare_cached("SELECT restricted = 1 FROM cases WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()
}

/// The FROM and WHERE of a media query (without its keyset position and
/// limit) and its arguments: one filter for a page and for its count.
///
/// The WHERE clause holds only the filters given, so that the index can use
/// the (officer | device | station, start_at, id) indexes; `?x IS NULL OR`
/// guards would force a scan of every original.
fn media_filter(
    c: &Db,
    q: &MediaQuery,
) -> crate::index::db::Result<(String, Vec<String>, Vec<crate::index::db::Value>)> {
    use crate::index::db::Value;
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    let join = match &q.case {
        Some(case) => format!(
            "JOIN case_links l ON l.media_id = o.id AND l.case_id = {} AND l.state = 'linked'",
            arg(Value::Text(case.clone()))
        ),
        None => String::new(),
    };
    for (column, v) in
        [("o.officer", &q.officer), ("o.device", &q.device), ("o.station", &q.station), ("o.kind", &q.kind)]
    {
        if let Some(v) = v {
            conds.push(format!("{column} = {}", arg(Value::Text(v.clone()))));
        }
    }
    if let Some(from) = q.from {
        conds.push(format!("o.start_at >= {}", arg(Value::Int(from))));
    }
    if let Some(to) = q.to {
        conds.push(format!("o.start_at < {}", arg(Value::Int(to))));
    }
    if let Some(on_time) = q.on_time {
        conds.push(format!("o.on_time = {}", arg(Value::Int(i64::from(on_time)))));
    }
    if !q.restricted && any_restricted(c)? {
        conds.push(format!("NOT {RESTRICTED}"));
    }
    conds.push("o.purged_at IS NULL".into());
    Ok((format!("FROM originals o {join}"), conds, args))
}

/// One page of originals, by recording start then id.
pub fn media_page(c: &Db, q: &MediaQuery) -> crate::index::db::Result<Vec<MediaRow>> {
    use crate::index::db::Value;
    let (from, mut conds, mut args) = media_filter(c, q)?;
    if let Some((t, id)) = &q.after {
        args.push(Value::Int(*t));
        args.push(Value::Text(id.clone()));
        conds.push(format!("(o.start_at, o.id) > (?{}, ?{})", args.len() - 1, args.len()));
    }
    args.push(Value::Int(i64::from(q.limit)));
    let sql = format!(
        "SELECT {MEDIA_COLUMNS} {from} WHERE {} ORDER BY o.start_at, o.id LIMIT ?{}",
        conds.join(" AND "),
        args.len()
    );
    let mut rows: Vec<MediaRow> = c
        .prepare_cached(&sql)?
        .query_map(crate::index::db::params_from_iter(args), media_row)?
        .collect::<Result<_, _>>()?;
    attach_sightings(c, &mut rows)?;
    Ok(rows)
}

/// How many originals a media query matches in all (its keyset position
/// and limit ignored), as its caller may see them: a case's "Recordings (N)".
pub fn media_count(c: &Db, q: &MediaQuery) -> crate::index::db::Result<u64> {
    let (from, conds, args) = media_filter(c, q)?;
    let sql = format!("SELECT count(*) {from} WHERE {}", conds.join(" AND "));
    let n: i64 = c.prepare_cached(&sql)?.query_row(crate::index::db::params_from_iter(args), |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Originals by id, with their sightings, in the order given.
pub fn media_by_ids(c: &Db, ids: &[String]) -> crate::index::db::Result<Vec<MediaRow>> {
    let mut found: HashMap<String, MediaRow> = HashMap::with_capacity(ids.len());
    for_ids(c, &format!("SELECT {MEDIA_COLUMNS} FROM originals o WHERE o.id IN ({{ids}})"), ids, |r| {
        let row = media_row(r)?;
        found.insert(row.id.clone(), row);
        Ok(())
    })?;
    let mut out: Vec<MediaRow> = ids.iter().filter_map(|id| found.remove(id)).collect();
    attach_sightings(c, &mut out)?;
    Ok(out)
}

/// The originals linked to a case that a caller may see, in recording
/// order, with their sightings: one query for the rows (not one per
/// original), one for the sightings.
pub fn visible_case_rows(c: &Db, case_id: &str, see_restricted: bool) -> crate::index::db::Result<Vec<MediaRow>> {
    let mut rows: Vec<MediaRow> = c
        .prepare_cached(&format!(
            "SELECT {MEDIA_COLUMNS} FROM case_links l JOIN originals o ON o.id = l.media_id
             WHERE l.case_id = ?1 AND l.state = 'linked' ORDER BY o.start_at, o.id"
        ))?
        .query_map([case_id], media_row)?
        .collect::<Result<_, _>>()?;
    if let Some(hidden) = hidden_in_case(c, case_id, see_restricted)? {
        rows.retain(|m| !hidden.contains(&m.id));
    }
    attach_sightings(c, &mut rows)?;
    Ok(rows)
}

/// Which of `ids` are restricted cases.
pub fn restricted_cases_among(c: &Db, ids: &[String]) -> crate::index::db::Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for_ids(c, "SELECT id FROM cases WHERE restricted = 1 AND id IN ({ids})", ids, |r| {
        out.insert(r.get(0)?);
        Ok(())
    })?;
    Ok(out)
}

/// Files pending, open alerts, renditions queued (the service's status).
pub fn status_line(c: &Db) -> crate::index::db::Result<(i64, i64, i64)> {
    let pending: i64 = c.query_row("SELECT count(*) FROM pending WHERE state != 'rejected'", [], |r| r.get(0))?;
    let alerts: i64 = c.query_row("SELECT count(*) FROM alerts WHERE resolved_at IS NULL", [], |r| r.get(0))?;
    let renders: i64 =
        c.query_row("SELECT count(*) FROM rendition_jobs WHERE state IN ('queued', 'running')", [], |r| r.get(0))?;
    Ok((pending, alerts, renders))
}

/// Whether an administrator asked for a retry of any of a station's files.
pub fn retry_requested(c: &Db, station: &str) -> crate::index::db::Result<bool> {
    c.prepare_cached("SELECT 1 FROM pending WHERE station = ?1 AND retry_requested IS NOT NULL LIMIT 1")?
        .exists([station])
}
