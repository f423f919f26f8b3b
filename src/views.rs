//! Boundary representations: the JSON objects that `media list --json` and
//! `status --json` print (and that the HTTP API will serve), and their text
//! renderings. Built from index rows; no IO.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::clock::{from_ms, rfc3339};
use crate::domain::MediaId;
use crate::index::query::{Counts, MediaRow, PendingRow, StationRow};
use crate::index::renditions::{JobState, RenditionRow};
use crate::store::Archive;

fn t(ms: Option<i64>) -> Option<String> {
    ms.map(|m| rfc3339(from_ms(m)))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MediaJson {
    pub id: String,
    pub size: u64,
    pub kind: Option<String>,
    pub station: String,
    pub device: Option<String>,
    pub officer: Option<String>,
    pub seq: Option<i64>,
    pub case: Option<String>,
    pub recorded_start: Option<String>,
    pub recorded_end: Option<String>,
    pub duration_secs: Option<f64>,
    pub start_source: Option<String>,
    pub clock_trusted: Option<bool>,
    pub first_seen: String,
    pub ingested_at: String,
    pub described: bool,
    pub probe_error: Option<String>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// The storage deadline (recording end + storage_deadline).
    pub deadline: Option<String>,
    pub on_time: Option<bool>,
    /// `null`, `late_docking` or `late_processing`.
    pub late: Option<String>,
    pub stored_path: String,
    pub source_paths: Vec<String>,
}

impl MediaJson {
    pub fn from_row(r: &MediaRow, archive_dir: &Path) -> MediaJson {
        let stored_path = match r.id.parse::<MediaId>() {
            Ok(id) => Archive::object_path_in(archive_dir, &id).display().to_string(),
            Err(_) => String::new(),
        };
        MediaJson {
            id: r.id.clone(),
            size: r.size,
            kind: r.kind.clone(),
            station: r.station.clone(),
            device: r.device.clone(),
            officer: r.officer.clone(),
            seq: r.seq,
            case: r.case_ref.clone(),
            recorded_start: t(r.recorded_start),
            recorded_end: t(r.recorded_end),
            duration_secs: r.duration_secs,
            start_source: r.start_source.clone(),
            clock_trusted: r.clock_trusted,
            first_seen: rfc3339(from_ms(r.first_seen)),
            ingested_at: rfc3339(from_ms(r.ingested_at)),
            described: r.described_at.is_some(),
            probe_error: r.probe_error.clone(),
            container: r.container.clone(),
            video_codec: r.video_codec.clone(),
            audio_codec: r.audio_codec.clone(),
            width: r.width,
            height: r.height,
            frame_rate: r.frame_rate,
            deadline: t(r.deadline),
            on_time: r.on_time,
            late: r.late.clone(),
            stored_path,
            source_paths: r.sightings.iter().map(|s| s.path.display().to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationJson {
    pub id: String,
    pub path: String,
    pub available: bool,
    pub unavailable_since: Option<String>,
    pub last_error: Option<String>,
    pub last_scan_at: Option<String>,
    pub watch_mode: Option<String>,
    pub pending_files: u64,
    pub failed_files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileProblemJson {
    pub station: String,
    pub path: String,
    pub reason: String,
    pub attempts: u32,
    pub first_seen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CountsJson {
    pub originals: u64,
    pub bytes: u64,
    pub sightings: u64,
    pub undescribed: u64,
    pub unreadable: u64,
    pub untrusted_clock: u64,
    /// Files that left a dock before they were stored (lost evidence).
    pub vanished_unstored: u64,
    pub by_kind: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusJson {
    pub stations: Vec<StationJson>,
    pub counts: CountsJson,
    /// Files that could not be stored after every attempt (still on the dock).
    pub failed: Vec<FileProblemJson>,
    /// Files whose last attempt failed and that will be tried again.
    pub retrying: Vec<FileProblemJson>,
    /// Things on a dock that are never ingested (links, pipes…).
    pub rejected: Vec<FileProblemJson>,
    /// Files waiting for an outage of the archive or the index to clear
    /// (no attempt is counted against them).
    pub blocked: Vec<FileProblemJson>,
    /// Files unaccounted for: their station's folder was replaced or
    /// unmounted before they were stored.
    pub missing: Vec<FileProblemJson>,
}

fn problem(p: &PendingRow) -> FileProblemJson {
    FileProblemJson {
        station: p.station.clone(),
        path: p.path.display().to_string(),
        reason: p.reason.clone().unwrap_or_default(),
        attempts: p.attempts,
        first_seen: rfc3339(from_ms(p.first_seen)),
    }
}

impl StationJson {
    pub fn from_row(s: &StationRow) -> StationJson {
        StationJson {
            id: s.id.clone(),
            path: s.path.clone(),
            available: s.available,
            unavailable_since: t(s.unavailable_since),
            last_error: s.last_error.clone(),
            last_scan_at: t(s.last_scan_at),
            watch_mode: s.watch_mode.clone(),
            pending_files: s.pending,
            failed_files: s.failed,
        }
    }
}

impl StatusJson {
    pub fn build(stations: &[StationRow], counts: &Counts, pending: &[PendingRow]) -> StatusJson {
        let of = |state: &str| pending.iter().filter(|p| p.state == state).map(problem).collect::<Vec<_>>();
        StatusJson {
            stations: stations.iter().map(StationJson::from_row).collect(),
            counts: CountsJson {
                originals: counts.originals,
                bytes: counts.bytes,
                sightings: counts.sightings,
                undescribed: counts.undescribed,
                unreadable: counts.unreadable,
                untrusted_clock: counts.untrusted_clock,
                vanished_unstored: counts.vanished,
                by_kind: counts.by_kind.iter().cloned().collect(),
            },
            failed: of("failed"),
            retrying: of("retrying"),
            rejected: of("rejected"),
            blocked: of("blocked"),
            missing: of("missing"),
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Stations");
        for st in &self.stations {
            let state = if st.available {
                "available".to_string()
            } else {
                format!(
                    "UNAVAILABLE since {} ({})",
                    st.unavailable_since.as_deref().unwrap_or("?"),
                    st.last_error.as_deref().unwrap_or("?")
                )
            };
            let _ = writeln!(
                s,
                "  {:<12} {:<40} {}  pending {}  failed {}  [{}]",
                st.id,
                st.path,
                state,
                st.pending_files,
                st.failed_files,
                st.watch_mode.as_deref().unwrap_or("-")
            );
        }
        let c = &self.counts;
        let kinds: Vec<String> = c.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            s,
            "Originals: {} ({}), sightings {}, {}; unreadable content {}, untrusted clock {}, not yet described {}",
            c.originals,
            human_bytes(c.bytes),
            c.sightings,
            if kinds.is_empty() { "none".into() } else { kinds.join(", ") },
            c.unreadable,
            c.untrusted_clock,
            c.undescribed
        );
        if c.vanished_unstored > 0 {
            let _ = writeln!(
                s,
                "LOST: {} file(s) left a dock before they were stored (see `bodycamd alerts list`, kind vanished_unstored)",
                c.vanished_unstored
            );
        }
        for (title, list) in [
            ("Failed (still on the dock; tried again later, or now with `bodycamd retry`)", &self.failed),
            ("Retrying", &self.retrying),
            ("Waiting for an outage to clear (archive or index)", &self.blocked),
            ("Unaccounted for (the station's folder was replaced or unmounted)", &self.missing),
            ("Not ingested", &self.rejected),
        ] {
            if !list.is_empty() {
                let _ = writeln!(s, "{title}:");
                for p in list {
                    let _ = writeln!(s, "  {}: {}", p.path.escape_debug(), p.reason);
                }
            }
        }
        s
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A table of originals for a terminal.
pub fn render_media_table(rows: &[MediaJson]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:<6} {:<9} {:<8} {:<7} {:<24} {:>8} {:>10}  NOTE",
        "ID", "KIND", "DEVICE", "OFFICER", "SEQ", "RECORDED (UTC)", "SECS", "SIZE"
    );
    for r in rows {
        let mut note = Vec::new();
        if let Some(e) = &r.probe_error {
            note.push(format!("unreadable: {e}"));
        }
        if r.clock_trusted == Some(false) {
            note.push("clock untrusted".into());
        }
        if let Some(l) = &r.late {
            note.push(l.replace('_', " "));
        }
        if r.source_paths.len() > 1 {
            note.push(format!("{} sightings", r.source_paths.len()));
        }
        if !r.described {
            note.push("not described yet".into());
        }
        let _ = writeln!(
            s,
            "{:<12} {:<6} {:<9} {:<8} {:<7} {:<24} {:>8} {:>10}  {}",
            &r.id[..12.min(r.id.len())],
            r.kind.as_deref().unwrap_or("?"),
            r.device.as_deref().unwrap_or("-"),
            r.officer.as_deref().unwrap_or("-"),
            r.seq.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            r.recorded_start.as_deref().unwrap_or("-"),
            r.duration_secs.map(|d| format!("{d:.1}")).unwrap_or_else(|| "-".into()),
            human_bytes(r.size),
            note.join("; ")
        );
    }
    s
}

/// One rendition of an original (made or not yet), for `media show`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RenditionJson {
    /// `playable` or `thumbnail`.
    pub kind: String,
    /// `queued`, `running`, `done`, `failed`, `skipped`, or `waiting` (a
    /// recovery waiting for a reference recording).
    pub state: String,
    /// `remux`, `transcode` or `image` once made.
    pub method: Option<String>,
    /// BLAKE3 of the rendition's bytes.
    pub hash: Option<String>,
    pub path: Option<String>,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub duration_secs: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// libavcodec version and the encoders used.
    pub encoder: Option<String>,
    /// What was asked of the encoder (or why nothing was made).
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Option<String>,
    /// A rendition recovered from a cut-short recording: how many video and
    /// audio frames and seconds, from which byte range of the original, and
    /// `reference`, the media id of the recording whose codec configuration
    /// was used.
    #[schema(value_type = Option<Object>)]
    pub recovered: Option<serde_json::Value>,
}

impl RenditionJson {
    /// Join jobs with the renditions they made.
    pub fn join(jobs: &[JobState], made: &[RenditionRow], dir: &Path) -> Vec<RenditionJson> {
        jobs.iter()
            .map(|j| {
                let r = made.iter().find(|r| r.kind == j.kind);
                let path = r.and_then(|r| r.id.parse::<MediaId>().ok()).map(|id| Archive::object_path_in(dir, &id));
                RenditionJson {
                    kind: j.kind.clone(),
                    state: j.state.clone(),
                    method: r.map(|r| r.method.clone()),
                    hash: r.map(|r| r.id.clone()),
                    path: path.map(|p| p.display().to_string()),
                    mime: r.map(|r| r.mime.clone()),
                    size: r.map(|r| r.size),
                    duration_secs: r.and_then(|r| r.duration_secs),
                    width: r.and_then(|r| r.width),
                    height: r.and_then(|r| r.height),
                    encoder: r.map(|r| r.encoder.clone()),
                    settings: serde_json::from_str(r.map(|r| r.settings.as_str()).unwrap_or(&j.plan))
                        .unwrap_or_default(),
                    attempts: j.attempts,
                    last_error: j.last_error.clone(),
                    created_at: t(r.map(|r| r.created_at)),
                    recovered: r.and_then(|r| r.recovery.as_deref()).and_then(|j| serde_json::from_str(j).ok()),
                }
            })
            .collect()
    }
}

/// Text lines for `media show`.
pub fn render_renditions(rs: &[RenditionJson]) -> String {
    let mut out = String::new();
    if rs.is_empty() {
        out.push_str("renditions: none planned\n");
    }
    for r in rs {
        let _ = write!(out, "rendition {}: {}", r.kind, r.state);
        if let Some(m) = &r.method {
            let _ = write!(out, " by {m}");
        }
        if let (Some(w), Some(h)) = (r.width, r.height) {
            let _ = write!(out, ", {w}x{h}");
        }
        if let Some(d) = r.duration_secs {
            let _ = write!(out, ", {d:.3} s");
        }
        if r.attempts > 0 {
            let _ = write!(out, ", {} attempt(s)", r.attempts);
        }
        out.push('\n');
        for (k, v) in [("hash", &r.hash), ("path", &r.path), ("encoder", &r.encoder), ("error", &r.last_error)] {
            if let Some(v) = v {
                let _ = writeln!(out, "    {k}: {v}");
            }
        }
        if let Some(rec) = &r.recovered {
            let _ = writeln!(
                out,
                "    recovered: {} video and {} audio frames, {:.2} s, from bytes {}..{} of the original ({} skipped)",
                rec["video_frames"],
                rec["audio_frames"],
                rec["seconds"].as_f64().unwrap_or(0.0),
                rec["bytes_from"],
                rec["bytes_to"],
                rec["bytes_skipped"]
            );
            if let Some(reference) = rec["reference"].as_str() {
                let _ = writeln!(out, "    codec configuration from: {reference}");
            }
        }
        if r.state == "waiting" {
            let _ = writeln!(out, "    waiting: {}", r.last_error.as_deref().unwrap_or("for a reference recording"));
        }
        if r.state == "skipped" {
            let _ = writeln!(out, "    why: {}", r.settings["skip"].as_str().unwrap_or("not needed"));
        }
    }
    out
}
