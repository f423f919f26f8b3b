//! The describer: after an original is stored and indexed, a prober process
//! reads it and the index learns its kind, streams and recording times.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, Semaphore};

use super::{Ctx, Stats};
use crate::clock::rfc3339;
use crate::clock::{from_ms, to_ms};
use crate::domain::{resolve_recording_time, MediaId, MediaKind, RecordingTime, TimeEvidence};
use crate::index::alerts as ax;
use crate::index::ingest::{self as ix, DescribeInputs, Described};
use crate::media::exif::ExifTime;
use crate::media::Description;
use crate::rules::alerts::{AlertKind, AlertSpec};
use crate::rules::deadline::{assess, Lateness};
use serde_json::json;

/// Read a container's `creation_time` (`2026-11-26T01:30:00.000000Z`, or
/// `2026-11-26 01:30:00`, both UTC by the formats' definitions).
pub fn parse_creation_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok().map(|n| n.and_utc())
}

/// A container's `creation_time` is UTC by the format's definition, but many
/// cameras write their local time there. Read it both ways (as UTC, and as
/// the same wall clock in the station's time zone); where the two differ (by
/// the zone's offset), the deadline is judged on the earlier reading: it can
/// only make a deadline earlier, never let a late file pass as on time.
pub fn earlier_reading(utc: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    match tz.from_local_datetime(&utc.naive_utc()).earliest() {
        Some(local) => utc.min(local.with_timezone(&Utc)),
        None => utc,
    }
}

/// Combine what the prober found with what the index knew, and assess the
/// result against the storage deadline.
pub fn to_described(d: &Description, inputs: &DescribeInputs, tz: Tz, storage: chrono::Duration) -> Described {
    let kind = d.media_kind();
    let exif = d
        .exif_local
        .as_deref()
        .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
        .and_then(|local| ExifTime { local, offset_minutes: d.exif_offset_minutes }.to_utc(tz));
    let container = d.creation_time.as_deref().and_then(parse_creation_time);
    let duration = if kind == MediaKind::Photo { Some(0.0) } else { d.duration_secs };
    let ev = TimeEvidence {
        file_name: inputs.name_start_ms.map(from_ms),
        container,
        exif,
        file_mtime: inputs.source_mtime_ms.map(from_ms),
        duration_secs: duration,
    };
    let recorded = resolve_recording_time(&ev, from_ms(inputs.first_seen_ms));
    // The deadline is judged on the earlier of a container time's two
    // readings (UTC as written, or local time mislabelled as UTC); the
    // recording itself is placed by the format's own reading.
    let judged = recorded.as_ref().map(|r| match (r.source, container) {
        (crate::domain::StartSource::Container, Some(c)) => {
            let shift = c - earlier_reading(c, tz);
            RecordingTime { start: r.start - shift, end: r.end - shift, ..r.clone() }
        }
        _ => r.clone(),
    });
    let assessment =
        Some(assess(judged.as_ref(), from_ms(inputs.first_seen_ms), from_ms(inputs.ingested_at_ms), storage));
    Described {
        kind: Some(kind),
        container: d.format.clone(),
        video_codec: d.video_codec.clone(),
        audio_codec: d.audio_codec.clone(),
        width: d.width,
        height: d.height,
        frame_rate: d.frame_rate,
        duration_secs: duration,
        creation_time_ms: container.or(exif).map(to_ms),
        recorded,
        probe_error: d.probe_error.clone(),
        assessment,
    }
}

/// The alerts a description raises: a late file's violation, unreadable
/// content, an untrusted clock.
pub fn media_alerts(id: &str, d: &Described, inputs: &DescribeInputs, extra: &serde_json::Value) -> Vec<AlertSpec> {
    let mut out = Vec::new();
    let base = |mut v: serde_json::Value| {
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                o.insert(k.clone(), val.clone());
            }
        }
        v
    };
    if let Some(a) = &d.assessment {
        if let Some(late) = a.late {
            let kind = match late {
                Lateness::LateDocking => AlertKind::LateDocking,
                Lateness::LateProcessing => AlertKind::LateProcessing,
            };
            let end = d.recorded.as_ref().map(|r| rfc3339(r.end));
            out.push(AlertSpec {
                kind,
                subject: id.to_string(),
                details: base(json!({
                    "recorded_end": end,
                    "deadline": rfc3339(a.deadline),
                    "first_seen": rfc3339(from_ms(inputs.first_seen_ms)),
                    "ingested_at": rfc3339(from_ms(inputs.ingested_at_ms)),
                    "late_by_hours": ((inputs.ingested_at_ms - to_ms(a.deadline)) as f64 / 36_000.0).round() / 100.0,
                    "clock_invalid": a.clock_invalid,
                })),
            });
        }
    }
    if let Some(e) = &d.probe_error {
        out.push(AlertSpec {
            kind: AlertKind::MediaUnreadable,
            subject: id.to_string(),
            details: base({
                let mut v = json!({ "reason": e, "kind": d.kind.map(|k| k.as_str()) });
                let src = crate::rules::renditions::Source {
                    kind: d.kind.map(|k| k.as_str()).unwrap_or("other"),
                    container: d.container.as_deref(),
                    video_codec: d.video_codec.as_deref(),
                    unreadable: true,
                    ..Default::default()
                };
                if crate::rules::renditions::recoverable(&src) {
                    v["recovery"] = json!({
                        "state": "pending",
                        "reason": "a playable rendition will be recovered from the recorded frames, with the codec \
                                   configuration of a complete recording from the same camera",
                    });
                }
                v
            }),
        });
    }
    if d.assessment.is_some_and(|a| a.clock_invalid) {
        let claimed = d.recorded.as_ref().map(|r| (rfc3339(r.start), r.source.as_str()));
        let why = match claimed.as_ref().map(|c| c.1) {
            Some("file_mtime") => {
                "no camera clock: the start comes only from the dock file's modification time, which is when the dock wrote it"
            }
            Some(_) => "the camera clock is implausible (before 2000, or more than a day after a station first showed the file)",
            None => "no recording time could be read",
        };
        out.push(AlertSpec {
            kind: AlertKind::ClockInvalid,
            subject: id.to_string(),
            details: base(json!({
                "claimed_start": claimed.as_ref().map(|c| c.0.clone()),
                "source": claimed.map(|c| c.1),
                "why": why,
                "rule": "never on time; classified late_docking (see rules::deadline::assess)",
            })),
        });
    }
    out
}

/// Probe one original (in a prober child) and hand the description to the
/// writer. Returns without a description when the original cannot be read
/// now (it is described again later).
async fn probe_one(ctx: &Arc<Ctx>, id: MediaId) -> Option<Description> {
    let path = match crate::store::local_async(&ctx.archive, id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(media_id = %id, error = %e, "cannot read the original to describe it; tried again later");
            describe_again_later(ctx, id);
            return None;
        }
    };
    Some(ctx.prober.describe(&path).await)
}

/// Queue an original for describing again in 30 s (it could not be read,
/// or its description could not be recorded): an outage delays a
/// description, it does not lose it until the next start.
fn describe_again_later(ctx: &Arc<Ctx>, id: MediaId) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        ctx.describe_later(id);
    });
}

/// Descriptions written in one index transaction at most.
const WRITE_BATCH: usize = 256;
/// How long the first description of a batch waits for others: a
/// description is not on the storage deadline's path (the original is
/// stored and indexed already), and one commit for many descriptions
/// instead of one each is what lets a dock of photos be described as fast
/// as it is stored.
const WRITE_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Record descriptions, many per transaction: each with its recording
/// times, assessment, case links, rendition plan and alerts.
async fn write_descriptions(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<(MediaId, Description)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + WRITE_LINGER;
        while batch.len() < WRITE_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                _ => break,
            }
        }
        write_batch(&ctx, batch).await;
    }
}

async fn write_batch(ctx: &Arc<Ctx>, batch: Vec<(MediaId, Description)>) {
    let n = batch.len();
    let ids: Vec<MediaId> = batch.iter().map(|(id, _)| *id).collect();
    let tzs: std::collections::HashMap<String, Tz> =
        ctx.stations.read().unwrap().iter().map(|(k, v)| (k.clone(), v.timezone)).collect();
    let now = to_ms(ctx.clock.now());
    let storage = ctx.storage_deadline();
    let hooks = ctx.alerting.hooks.clone();
    let rcfg = ctx.renditions.cfg.clone();
    let result = ctx
        .index
        .call(move |c| {
            let mut out = Vec::with_capacity(batch.len());
            for (id, desc) in &batch {
                let hex = id.to_hex();
                let Some(inputs) = ix::describe_inputs(c, &hex)? else {
                    out.push(None);
                    continue;
                };
                let tz = tzs.get(&inputs.station).copied().unwrap_or(chrono_tz::UTC);
                let described = to_described(desc, &inputs, tz, storage);
                ix::record_description(c, &hex, &described, now)?;
                // Its start may have changed: the cases it belongs to may too.
                crate::index::cases::match_media(c, &hex, now)?;
                super::renditions::plan(c, &hex, &rcfg, now)?;
                // The alerts it raises commit with it.
                let extra = ix::media_context(c, &hex)?;
                let mut transitions = Vec::new();
                for spec in media_alerts(&hex, &described, &inputs, &extra) {
                    transitions.extend(ax::open(c, &spec, now, &hooks)?);
                }
                out.push(Some((described, transitions)));
            }
            Ok(out)
        })
        .await;
    match result {
        Ok(out) => {
            ctx.renditions.wake.notify_one();
            for (id, r) in ids.iter().zip(out) {
                let Some((d, transitions)) = r else {
                    tracing::warn!(media_id = %id, "described an original the index does not know");
                    continue;
                };
                ctx.alerting.committed(&transitions);
                Stats::add(&ctx.stats.described, 1);
                match &d.probe_error {
                    Some(e) => {
                        tracing::warn!(media_id = %id, kind = ?d.kind, reason = %e, "stored, but the content could not be fully read")
                    }
                    None => tracing::debug!(media_id = %id, kind = ?d.kind, "described"),
                }
                if let Some(r) = &d.recorded {
                    if !r.trusted {
                        tracing::warn!(media_id = %id, start = %r.start, source = r.source.as_str(), "recording clock is implausible; time not trusted");
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(originals = n, error = %e, "recording descriptions failed; tried again in 30 s");
            for id in &ids {
                describe_again_later(ctx, *id);
            }
        }
    }
    ctx.describing.fetch_sub(n, Ordering::SeqCst);
}

/// Describe originals as they arrive, a few at a time (as many as there are
/// prober processes, so the queue sits here rather than in the pool), and
/// record the descriptions in batches.
pub async fn run(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<MediaId>, parallel: usize) {
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let (written_tx, written_rx) = mpsc::unbounded_channel();
    ctx.tasks.spawn(write_descriptions(ctx.clone(), written_rx));
    loop {
        let id = tokio::select! {
            id = rx.recv() => id,
            _ = ctx.shutdown.cancelled() => None,
        };
        let Some(id) = id else { break };
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (ctx2, written_tx) = (ctx.clone(), written_tx.clone());
        ctx.tasks.spawn(async move {
            let desc = probe_one(&ctx2, id).await;
            drop(permit);
            let sent = desc.is_some_and(|d| written_tx.send((id, d)).is_ok());
            if !sent {
                ctx2.describing.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> DescribeInputs {
        DescribeInputs {
            station: "s".into(),
            name_start_ms: None,
            source_mtime_ms: Some(to_ms("2026-11-26T05:00:00Z".parse().unwrap())),
            first_seen_ms: to_ms("2026-11-26T06:00:00Z".parse().unwrap()),
            ingested_at_ms: to_ms("2026-11-26T06:00:01Z".parse().unwrap()),
        }
    }

    #[test]
    fn container_time_places_a_video_without_a_parsed_name() {
        let d = Description {
            kind: "video".into(),
            duration_secs: Some(60.0),
            creation_time: Some("2026-11-26T01:30:00.000000Z".into()),
            ..Default::default()
        };
        let out = to_described(&d, &inputs(), chrono_tz::UTC, chrono::Duration::hours(24));
        let r = out.recorded.unwrap();
        assert_eq!(r.source, crate::domain::StartSource::Container);
        assert_eq!(crate::clock::rfc3339(r.end), "2026-11-26T01:31:00.000Z");
    }

    #[test]
    fn photo_time_comes_from_exif_in_the_station_zone_and_ends_when_taken() {
        let d =
            Description { kind: "photo".into(), exif_local: Some("2026-11-26T09:30:00".into()), ..Default::default() };
        let out = to_described(&d, &inputs(), chrono_tz::Asia::Shanghai, chrono::Duration::hours(24));
        let r = out.recorded.unwrap();
        assert_eq!(r.source, crate::domain::StartSource::Exif);
        assert_eq!(r.start, r.end);
        assert_eq!(crate::clock::rfc3339(r.start), "2026-11-26T01:30:00.000Z");
        assert_eq!(out.duration_secs, Some(0.0));
    }

    #[test]
    fn container_time_in_local_time_never_makes_a_deadline_later() {
        // A camera in UTC+8 writes 09:30 local as "09:30Z": read as local, it
        // is 01:30Z, eight hours earlier; that reading is taken.
        let d = Description {
            kind: "video".into(),
            duration_secs: Some(60.0),
            creation_time: Some("2026-11-26T09:30:00.000000Z".into()),
            ..Default::default()
        };
        let out = to_described(&d, &inputs(), chrono_tz::Asia::Shanghai, chrono::Duration::hours(24));
        assert_eq!(crate::clock::rfc3339(out.recorded.unwrap().start), "2026-11-26T09:30:00.000Z", "placed as written");
        let a = out.assessment.unwrap();
        assert_eq!(crate::clock::rfc3339(a.deadline), "2026-11-27T01:31:00.000Z", "judged on the earlier reading");
        // West of UTC the UTC reading is the earlier one.
        let out = to_described(&d, &inputs(), chrono_tz::America::New_York, chrono::Duration::hours(24));
        let deadline = out.assessment.unwrap().deadline;
        // (and first seen at 06:00Z clamps the end: 06:00Z + 24 h).
        assert_eq!(crate::clock::rfc3339(deadline), "2026-11-27T06:00:00.000Z");
    }

    #[test]
    fn creation_time_formats() {
        assert!(parse_creation_time("2026-11-26 01:30:00").is_some());
        assert!(parse_creation_time("garbage").is_none());
    }
}
