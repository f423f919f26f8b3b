//! Renditions in the background: jobs are planned when an original is
//! described, and made by a bounded pool of workers in `render-worker`
//! child processes.
//!
//! **Invariant:** originals first. A worker starts a job only while no
//! original is waiting to be stored, and its child runs at the lowest CPU
//! and I/O priority; a rendition is written to `renditions/tmp/`, checked,
//! and only then renamed to its content address, so nothing partial is ever
//! visible.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::index::db::Db;
use serde_json::json;
use tokio::sync::Notify;

use super::Ctx;
use crate::config::RenditionConfig;
use crate::index::alerts as ax;
use crate::index::renditions::{self as rx, Job, RenditionRow};
use crate::media::render::{PlayableSpec, RenderError, RenderJob, RenderReport, StreamAction};
use crate::media::worker::RenderPool;
use crate::rules::alerts::{AlertKind, AlertSpec};
use crate::rules::renditions::{self as policy, Action, Playable, Policy, Source};
use crate::store::Archive;

/// What rendition workers share.
pub struct Runtime {
    pub cfg: RenditionConfig,
    /// The renditions' own content-addressed store (apart from originals).
    pub store: Archive,
    /// Long-lived render workers (`renditions.workers` of them).
    pub pool: RenderPool,
    pub wake: Notify,
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Copy => "copy",
        Action::Encode => "encode",
        Action::None => "none",
    }
}

/// Plan the rendition jobs of a described original (in the writer's
/// transaction). Does nothing if it has jobs already.
pub fn plan(c: &Db, id: &str, cfg: &RenditionConfig, now_ms: i64) -> crate::index::db::Result<()> {
    if !cfg.enabled {
        return Ok(());
    }
    let Some(rx::PlanInputs {
        kind: Some(kind),
        container,
        video_codec: vcodec,
        audio_codec: acodec,
        height,
        probe_error,
        device,
    }) = rx::plan_inputs(c, id)?
    else {
        return Ok(());
    };
    // A complete recording of a camera can supply the codec configuration
    // its cut-short recordings wait for.
    if kind == "video" && probe_error.is_none() && matches!(vcodec.as_deref(), Some("h264" | "hevc")) {
        if let Some(d) = &device {
            let n = rx::wake_waiting(c, d, now_ms)?;
            if n > 0 {
                tracing::info!(device = %d, count = n, "a complete recording arrived: recoveries waiting for a reference are tried again");
            }
        }
    }
    let src = Source {
        kind: &kind,
        container: container.as_deref(),
        video_codec: vcodec.as_deref(),
        audio_codec: acodec.as_deref(),
        height,
        unreadable: probe_error.is_some(),
    };
    let pol = Policy {
        max_height: cfg.max_height,
        transcode_video: cfg.transcode_video,
        transcode_audio: cfg.transcode_audio,
    };
    if policy::recoverable(&src) {
        // The thumbnail is planned once the recovered rendition exists.
        let p = json!({
            "method": "recover", "reference": null,
            "max_height": cfg.max_height, "preset": cfg.preset, "crf": cfg.crf, "audio_bitrate": cfg.audio_bitrate,
        });
        rx::plan(c, id, "playable", "queued", &p.to_string(), now_ms)?;
        return Ok(());
    }
    if matches!(kind.as_str(), "video" | "audio") {
        match policy::playable(&src, &pol) {
            Playable::Make { video, audio, method } => {
                // Cut short, but the container reads: the spoiled frames are
                // left out and the rendition says what was recovered.
                let salvage = probe_error.as_deref().is_some_and(|e| e.starts_with("truncated"));
                let p = json!({
                    "method": method.as_str(), "video": action(video), "audio": action(audio),
                    "max_height": cfg.max_height, "preset": cfg.preset, "crf": cfg.crf, "audio_bitrate": cfg.audio_bitrate,
                    "salvage": salvage,
                });
                rx::plan(c, id, "playable", "queued", &p.to_string(), now_ms)?;
            }
            Playable::Skip(reason) => {
                rx::plan(c, id, "playable", "skipped", &json!({ "skip": reason }).to_string(), now_ms)?;
            }
        }
    }
    if cfg.thumbnails && policy::thumbnail(&src) {
        let p =
            json!({ "method": "image", "max_size": cfg.thumbnail_size, "heic": container.as_deref() == Some("heif") });
        rx::plan(c, id, "thumbnail", "queued", &p.to_string(), now_ms)?;
    }
    Ok(())
}

fn stream_action(v: &serde_json::Value) -> StreamAction {
    match v.as_str() {
        Some("copy") => StreamAction::Copy,
        Some("encode") => StreamAction::Encode,
        _ => StreamAction::None,
    }
}

/// Requeue jobs a crash left running and remove unfinished renditions
/// (fast: part of the start-up repairs).
pub async fn prepare(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let (host, stale) = (ctx.district.host.clone(), now - super::district::STALE_HOST.as_millis() as i64);
    let n = ctx.index.call(move |c| rx::requeue_running(c, &host, stale, now)).await?;
    if n > 0 {
        tracing::info!(count = n, "rendition jobs interrupted by a stop are queued again");
    }
    let removed = ctx.renditions.store.recover()?;
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed unfinished renditions");
    }
    Ok(())
}

/// Originals first: wait while files wait to be stored or are being
/// stored. False at shutdown.
async fn originals_first(ctx: &Ctx) -> bool {
    while !ctx.queue.is_empty() || ctx.storing.load(Ordering::SeqCst) > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = ctx.shutdown.cancelled() => return false,
        }
    }
    !ctx.shutdown.is_cancelled()
}

/// Plan jobs for originals that have none (stored before renditions
/// existed, or while they were off), in small batches that yield to
/// storing originals: on a large archive this runs in the background
/// after start-up, never in front of it. Returns how many were planned.
pub async fn backfill(ctx: Arc<Ctx>) -> u64 {
    const BATCH: u32 = 500;
    let mut planned = 0u64;
    let mut after = String::new();
    loop {
        if !originals_first(&ctx).await {
            break;
        }
        let (index, from) = (ctx.index.clone(), after.clone());
        let ids = match tokio::task::spawn_blocking(move || index.read(|c| rx::unplanned(c, &from, BATCH))).await {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "finding originals without renditions failed");
                break;
            }
            Err(_) => break,
        };
        if ids.is_empty() {
            break;
        }
        after = ids.last().cloned().unwrap_or_default();
        let (cfg, count, now) = (ctx.renditions.cfg.clone(), ids.len(), chrono::Utc::now().timestamp_millis());
        let r = ctx
            .index
            .call(move |c| {
                for id in &ids {
                    plan(c, id, &cfg, now)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "planning renditions failed");
            break;
        }
        planned += count as u64;
        ctx.renditions.wake.notify_one();
        if count < BATCH as usize {
            break;
        }
    }
    if planned > 0 {
        tracing::info!(count = planned, "renditions planned for originals stored before");
    }
    planned
}

fn backoff(cfg: &RenditionConfig, attempts: u32) -> Duration {
    let d = cfg.retry_base.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(20) as i32);
    Duration::from_secs_f64(d.min(3600.0))
}

/// Check a finished rendition against what was asked and the original.
pub fn check(
    job: &Job,
    plan: &serde_json::Value,
    r: &RenderReport,
    original_duration: Option<f64>,
) -> Result<(), String> {
    if job.kind == "thumbnail" {
        return match (r.width, r.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Ok(()),
            _ => Err("the thumbnail has no picture".into()),
        };
    }
    if plan["video"] != "none" && r.video_codec.as_deref() != Some("h264") {
        return Err(format!("the rendition's video is {:?}, not H.264", r.video_codec));
    }
    if let Some(rec) = &r.recovery {
        // What the recording held decides: audio only if audio was found.
        if rec.audio_codec.is_some() && r.audio_codec.as_deref() != Some("aac") {
            return Err(format!("the recovered rendition's audio is {:?}, not AAC", r.audio_codec));
        }
        if rec.video_frames + rec.audio_frames == 0 {
            return Err("the recovered rendition has no frame".into());
        }
        return Ok(());
    }
    if plan["audio"] != "none" && r.audio_codec.as_deref() != Some("aac") {
        return Err(format!("the rendition's audio is {:?}, not AAC", r.audio_codec));
    }
    if let (Some(want), Some(got)) = (original_duration, r.duration_secs) {
        if (want - got).abs() > 0.1 {
            return Err(format!("the rendition lasts {got:.3} s, the original {want:.3} s"));
        }
    }
    Ok(())
}

async fn process(ctx: &Arc<Ctx>, job: Job) {
    let rt = &ctx.renditions;
    let plan: serde_json::Value = serde_json::from_str(&job.plan).unwrap_or_default();
    let Ok(mid) = job.original_id.parse::<crate::domain::MediaId>() else { return };
    // A recovered recording's thumbnail is made from its recovered rendition.
    let from_rendition = if plan["from"] == "playable" {
        let (index, id) = (ctx.index.clone(), job.original_id.clone());
        let row = tokio::task::spawn_blocking(move || index.read(|c| rx::get(c, &id, "playable")))
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        row.and_then(|r| r.id.parse::<crate::domain::MediaId>().ok())
    } else {
        None
    };
    let input = match from_rendition {
        Some(rid) => crate::store::local_async(&rt.store, rid).await,
        None => crate::store::local_async(&ctx.archive, mid).await,
    };
    let input = match input {
        Ok(p) => p,
        Err(e) => {
            // The bucket could not give the original now: not the
            // original's fault; the job waits and is tried again.
            tracing::warn!(media_id = %job.original_id, error = %e, "cannot read the original for a rendition; tried again later");
            let now = chrono::Utc::now().timestamp_millis();
            let (id, kind, msg) = (job.original_id.clone(), job.kind.clone(), format!("cannot read the original: {e}"));
            let retry_at = now + backoff(&rt.cfg, job.attempts).as_millis() as i64;
            let _ = ctx.index.call(move |c| rx::failed(c, &id, &kind, &msg, Some(retry_at), now)).await;
            return;
        }
    };
    let (ext, mime) = if job.kind == "thumbnail" { ("jpg", "image/jpeg") } else { ("mp4", "") };
    let output = rt.store.tmp_path(ext);
    let render_job = if job.kind == "thumbnail" {
        RenderJob::Thumbnail {
            input,
            output: output.clone(),
            max_size: plan["max_size"].as_u64().unwrap_or(320) as u32,
            heic: plan["heic"].as_bool().unwrap_or(false),
        }
    } else {
        let spec = PlayableSpec {
            video: stream_action(&plan["video"]),
            audio: stream_action(&plan["audio"]),
            max_height: plan["max_height"].as_u64().unwrap_or(1080) as u32,
            preset: plan["preset"].as_str().unwrap_or("veryfast").to_string(),
            crf: plan["crf"].as_u64().unwrap_or(23) as u32,
            audio_bitrate: plan["audio_bitrate"].as_u64().unwrap_or(128_000) as u32,
            salvage: plan["salvage"].as_bool().unwrap_or(false),
        };
        if plan["method"] == "recover" {
            RenderJob::Recover { input, output: output.clone(), references: references(ctx, &job, &plan).await, spec }
        } else {
            RenderJob::Playable { input, output: output.clone(), spec }
        }
    };
    let (index, id) = (ctx.index.clone(), job.original_id.clone());
    let original = tokio::task::spawn_blocking(move || index.read(|c| rx::duration_and_kind(c, &id)))
        .await
        .ok()
        .and_then(|r| r.ok());
    let (original_duration, original_kind) = original.unwrap_or((None, None));
    let started = std::time::Instant::now();
    let result = rt
        .pool
        .render(render_job)
        .await
        // What the original yields does not change: a rendition that does not
        // match it will not match it next time either.
        .and_then(|r| check(&job, &plan, &r, original_duration).map(|()| r).map_err(RenderError::permanent))
        .and_then(|r| {
            let staged = rt.store.adopt(&output).map_err(|e| format!("cannot read the rendition: {e}"))?;
            if staged.size == 0 {
                return Err("the rendition is empty".into());
            }
            let stored = rt.store.persist(staged).map_err(|e| e.to_string())?;
            Ok((r, stored))
        });
    let now = chrono::Utc::now().timestamp_millis();
    match result {
        Ok((r, stored)) => {
            let mime = if mime.is_empty() {
                if original_kind.as_deref() == Some("audio") {
                    "audio/mp4"
                } else {
                    "video/mp4"
                }
            } else {
                mime
            };
            let row = RenditionRow {
                id: stored.id.to_hex(),
                original_id: job.original_id.clone(),
                kind: job.kind.clone(),
                method: match plan["method"].as_str() {
                    // Recovered from the sample data: copied when it could be.
                    Some("recover") if r.encoder.contains("stream copy") => "remux".to_string(),
                    Some("recover") => "transcode".to_string(),
                    m => m.unwrap_or("transcode").to_string(),
                },
                mime: mime.to_string(),
                size: stored.size,
                settings: job.plan.clone(),
                encoder: r.encoder.clone(),
                duration_secs: if job.kind == "thumbnail" { None } else { r.duration_secs },
                width: r.width,
                height: r.height,
                created_at: now,
                recovery: r.recovery.as_ref().map(|rec| serde_json::to_string(rec).unwrap_or_default()),
            };
            tracing::info!(
                media_id = %job.original_id, kind = %job.kind, method = %row.method, rendition = %row.id,
                secs = started.elapsed().as_secs_f64(), "rendition made"
            );
            let recovered = r.recovery.clone().map(|rec| (rec, rt.cfg.thumbnails, rt.cfg.thumbnail_size));
            let done = ctx
                .index
                .call(move |c| {
                    rx::done(c, &row)?;
                    let Some((rec, thumbnails, size)) = &recovered else { return Ok(()) };
                    if *thumbnails {
                        let p = json!({ "method": "image", "max_size": size, "heic": false, "from": "playable" });
                        rx::plan(c, &row.original_id, "thumbnail", "queued", &p.to_string(), now)?;
                    }
                    let mut v = serde_json::to_value(rec).unwrap_or_default();
                    v["state"] = "recovered".into();
                    ax::annotate(c, AlertKind::MediaUnreadable, &row.original_id, "recovery", v).map(|_| ())
                })
                .await;
            if done.is_ok() {
                rt.wake.notify_one();
            }
            if let Err(e) = done {
                tracing::error!(error = %e, "recording a rendition failed; it is made again later");
                // Never leave the job `running`: queue it again.
                let (id, kind, msg) = (job.original_id.clone(), job.kind.clone(), e.to_string());
                let retry_at = now + backoff(&rt.cfg, job.attempts).as_millis() as i64;
                let _ = ctx.index.call(move |c| rx::failed(c, &id, &kind, &msg, Some(retry_at), now)).await;
            }
        }
        Err(RenderError { reason, waiting: true, .. }) => {
            let _ = std::fs::remove_file(&output);
            tracing::info!(media_id = %job.original_id, reason = %reason, "recovery waits for a reference recording");
            let (id, kind) = (job.original_id.clone(), job.kind.clone());
            let r = ctx
                .index
                .call(move |c| {
                    rx::waiting(c, &id, &kind, &reason, now)?;
                    let v = json!({ "state": "waiting", "reason": reason });
                    ax::annotate(c, AlertKind::MediaUnreadable, &id, "recovery", v)
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "recording a waiting recovery failed");
            }
        }
        Err(RenderError { reason: e, permanent, .. }) => {
            let _ = std::fs::remove_file(&output);
            // An original that cannot be read at all is not tried again.
            let final_failure = permanent || job.attempts >= rt.cfg.max_attempts;
            let retry_at = (!final_failure).then(|| now + backoff(&rt.cfg, job.attempts).as_millis() as i64);
            tracing::warn!(media_id = %job.original_id, kind = %job.kind, attempts = job.attempts, error = %e, permanent, final_failure, "rendition failed");
            let hooks = ctx.alerting.hooks.clone();
            let (id, kind, attempts) = (job.original_id.clone(), job.kind.clone(), job.attempts);
            let r = ctx
                .index
                .call(move |c| {
                    rx::failed(c, &id, &kind, &e, retry_at, now)?;
                    if retry_at.is_none() {
                        let spec = AlertSpec {
                            kind: AlertKind::RenditionFailed,
                            subject: id.clone(),
                            details: json!({
                                "rendition": kind, "attempts": attempts, "reason": e,
                                "retried": !permanent,
                                "why_not_retried": permanent.then_some("the original itself cannot be read; trying again cannot help"),
                            }),
                        };
                        return ax::open(c, &spec, now, &hooks).map(|t| t.into_iter().collect::<Vec<_>>());
                    }
                    Ok(Vec::new())
                })
                .await;
            match r {
                Ok(t) => ctx.alerting.committed(&t),
                Err(e) => tracing::error!(error = %e, "recording a failed rendition failed"),
            }
        }
    }
}

/// The recordings that may supply the codec configuration for recovering
/// `job`'s original: the one an admin named, or the camera's most recent
/// complete recordings; each with its stored copy.
async fn references(ctx: &Arc<Ctx>, job: &Job, plan: &serde_json::Value) -> Vec<(String, std::path::PathBuf)> {
    let ids = match plan["reference"].as_str() {
        Some(r) => vec![r.to_string()],
        None => {
            let (index, id) = (ctx.index.clone(), job.original_id.clone());
            tokio::task::spawn_blocking(move || index.read(|c| rx::reference_candidates(c, &id, 5)))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default()
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let Ok(mid) = id.parse::<crate::domain::MediaId>() else { continue };
        match crate::store::local_async(&ctx.archive, mid).await {
            Ok(p) => out.push((id, p)),
            Err(e) => {
                tracing::warn!(media_id = %job.original_id, reference = %id, error = %e, "cannot read a reference recording")
            }
        }
    }
    out
}

/// Make renditions until shutdown, one job at a time, yielding to
/// originals.
pub async fn worker(ctx: Arc<Ctx>) {
    let rt = &ctx.renditions;
    loop {
        if !originals_first(&ctx).await {
            break;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let host = ctx.district.host.clone();
        let claimed = ctx.index.call(move |c| rx::claim(c, &host, now)).await;
        match claimed {
            Ok(Some(job)) => {
                ctx.rendering.fetch_add(1, Ordering::SeqCst);
                // The job's host says it is at it (other hosts take over a
                // job whose host stopped saying so).
                let beat = {
                    let (ctx, original, kind) = (ctx.clone(), job.original_id.clone(), job.kind.clone());
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(super::district::HEARTBEAT).await;
                            let (host, o, k, now) = (
                                ctx.district.host.clone(),
                                original.clone(),
                                kind.clone(),
                                chrono::Utc::now().timestamp_millis(),
                            );
                            let _ = ctx.index.call(move |c| rx::heartbeat(c, &host, &o, &k, now)).await;
                        }
                    })
                };
                process(&ctx, job).await;
                beat.abort();
                ctx.rendering.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) => {
                let index = ctx.index.clone();
                let next = tokio::task::spawn_blocking(move || index.read(rx::next_due))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten();
                let wait = next
                    .map(|t| Duration::from_millis((t - chrono::Utc::now().timestamp_millis()).max(10) as u64))
                    .unwrap_or(Duration::from_secs(2))
                    .min(Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = rt.wake.notified() => {}
                    _ = ctx.shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a rendition job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
