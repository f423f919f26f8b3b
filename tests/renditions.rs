//! Playable renditions and thumbnails, checked with an independent tool
//! (`ffprobe`/`ffmpeg` from Debian), against the real daemon.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Make a source file with the `ffmpeg` CLI.
fn ffmpeg(args: &[&str], out: &Path) {
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    // A hidden name (ignored by the dock scanner) that keeps the extension
    // ffmpeg picks the format by.
    let tmp = out.with_file_name(format!(".{}", out.file_name().unwrap().to_string_lossy()));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg {args:?}");
    fs::rename(&tmp, out).unwrap();
}

fn video_src(size: &str, secs: u32) -> Vec<String> {
    vec!["-f".into(), "lavfi".into(), "-i".into(), format!("testsrc2=size={size}:rate=25:duration={secs}")]
}

fn audio_src(secs: u32) -> Vec<String> {
    vec!["-f".into(), "lavfi".into(), "-i".into(), format!("sine=frequency=440:sample_rate=44100:duration={secs}")]
}

fn make(out: &Path, inputs: Vec<String>, codec: &[&str]) {
    let mut a: Vec<&str> = inputs.iter().map(String::as_str).collect();
    a.extend_from_slice(codec);
    a.extend_from_slice(&["-metadata", "creation_time=2026-11-26T01:30:00Z"]);
    ffmpeg(&a, out);
}

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(p: &'a Value, kind: &str) -> Option<&'a Value> {
    p["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == kind)
}

fn duration(p: &Value) -> f64 {
    p["format"]["duration"].as_str().unwrap().parse().unwrap()
}

fn rotation(p: &Value) -> i64 {
    stream(p, "video")
        .and_then(|s| s["side_data_list"].as_array())
        .and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()))
        .unwrap_or(0)
}

/// The packets of a file's video stream, hashed (`-c copy`): equal for a
/// remux, different for a re-encode.
fn video_packets_md5(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-c", "copy", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Top-level MP4 boxes in order, read independently of bodycamd.
fn top_boxes(path: &Path) -> Vec<String> {
    let b = fs::read(path).unwrap();
    let (mut at, mut names) = (0usize, Vec::new());
    while at + 8 <= b.len() {
        let mut size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as u64;
        names.push(String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned());
        if size == 1 {
            size = u64::from_be_bytes(b[at + 8..at + 16].try_into().unwrap());
        } else if size == 0 {
            break;
        }
        at += size as usize;
    }
    names
}

fn fast_start(path: &Path) -> bool {
    let boxes = top_boxes(path);
    let moov = boxes.iter().position(|b| b == "moov");
    let mdat = boxes.iter().position(|b| b == "mdat");
    matches!((moov, mdat), (Some(m), Some(d)) if m < d)
}

fn show(h: &Harness, id: &str) -> Value {
    let out = h.cmd(&["media", "show", id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rendition<'a>(shown: &'a Value, kind: &str) -> &'a Value {
    shown["renditions"].as_array().unwrap().iter().find(|r| r["kind"] == kind).unwrap_or_else(|| {
        panic!("no {kind} rendition in {shown:#}");
    })
}

fn id_of(path: &Path) -> String {
    blake3_hex(&fs::read(path).unwrap())
}

/// Check a playable rendition against its source; returns its ffprobe.
fn check_playable(h: &Harness, src: &Path, method: &str) -> (Value, PathBuf) {
    let shown = show(h, &id_of(src));
    let r = rendition(&shown, "playable");
    assert_eq!(r["state"], "done", "{r:#}");
    assert_eq!(r["method"], method, "{}: {r:#}", src.display());
    let path = PathBuf::from(r["path"].as_str().unwrap());
    let bytes = fs::read(&path).unwrap();
    assert!(!bytes.is_empty());
    assert_eq!(r["hash"], blake3_hex(&bytes), "a rendition is stored under its own BLAKE3");
    assert_eq!(r["size"], bytes.len());
    assert!(r["encoder"].as_str().unwrap().contains("libavcodec"), "{r:#}");
    assert!(fast_start(&path), "moov before mdat: {:?}", top_boxes(&path));
    let (p, o) = (ffprobe(&path), ffprobe(src));
    assert!(p["format"]["format_name"].as_str().unwrap().contains("mp4"), "{p:#}");
    assert!(
        (duration(&p) - duration(&o)).abs() <= 0.1,
        "{}: rendition lasts {} s, source {} s",
        src.display(),
        duration(&p),
        duration(&o)
    );
    if stream(&o, "video").is_some() {
        assert_eq!(stream(&p, "video").unwrap()["codec_name"], "h264");
    }
    if stream(&o, "audio").is_some() {
        assert_eq!(stream(&p, "audio").unwrap()["codec_name"], "aac");
    } else {
        assert!(stream(&p, "audio").is_none());
    }
    (p, path)
}

fn check_thumbnail(h: &Harness, src: &Path, max: u64) -> Value {
    let shown = show(h, &id_of(src));
    let r = rendition(&shown, "thumbnail");
    assert_eq!(r["state"], "done", "{r:#}");
    let path = PathBuf::from(r["path"].as_str().unwrap());
    // It decodes: ffmpeg reads every pixel of it.
    let st = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&path).args(["-f", "null", "-"]).status().unwrap();
    assert!(st.success(), "thumbnail of {} does not decode", src.display());
    let p = ffprobe(&path);
    let v = stream(&p, "video").unwrap();
    assert_eq!(v["codec_name"], "mjpeg");
    let (w, hh) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
    assert!(w.max(hh) <= max && w > 0 && hh > 0, "thumbnail {w}x{hh} for max {max}");
    p
}

#[test]
fn remux_transcode_and_thumbnails_are_right() {
    let h = Harness::new("", "[renditions]\nmax_height = 360\nthumbnail_size = 160\npreset = \"ultrafast\"\n");
    let d = &h.dock;
    // H.264 + AAC, rotated: remuxed, rotation kept.
    let h264 = d.join("cam/h264.mp4");
    let mut src = video_src("320x240", 2);
    src.extend(audio_src(2));
    let unrotated = h.dir.path().join("unrotated.mp4");
    make(&unrotated, src, &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]);
    // FFmpeg 5.1 writes the display matrix only on a stream copy.
    let u = unrotated.to_string_lossy().into_owned();
    ffmpeg(&["-i", &u, "-c", "copy", "-metadata:s:v:0", "rotate=90"], &h264);
    // H.264 without audio: remuxed.
    let silent = d.join("cam/silent.mp4");
    make(&silent, video_src("320x240", 2), &["-c:v", "libx264", "-preset", "ultrafast"]);
    // H.265 + AAC: video transcoded.
    let hevc = d.join("cam/hevc.mp4");
    let mut src = video_src("320x240", 2);
    src.extend(audio_src(2));
    make(
        &hevc,
        src,
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
            "-x265-params",
            "log-level=error",
        ],
    );
    // MJPEG + PCM in AVI: both transcoded.
    let mjpeg = d.join("cam/mjpeg.avi");
    let mut src = video_src("320x240", 2);
    src.extend(audio_src(2));
    make(&mjpeg, src, &["-c:v", "mjpeg", "-c:a", "pcm_s16le"]);
    // H.264 above max_height: scaled down, so transcoded.
    let big = d.join("cam/big.mp4");
    make(&big, video_src("1280x720", 1), &["-c:v", "libx264", "-preset", "ultrafast"]);
    // PCM audio: an AAC .m4a; MP3 is playable already.
    let wav = d.join("rec/voice.wav");
    make(&wav, audio_src(3), &["-c:a", "pcm_s16le"]);
    let mp3 = d.join("rec/voice.mp3");
    make(&mp3, audio_src(2), &["-c:a", "libmp3lame"]);
    // Photos: PNG and HEIC.
    let png = d.join("cam/photo.png");
    ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=640x480", "-frames:v", "1"], &png);
    let heic = d.join("cam/photo.heic");
    let st = Command::new("heif-enc").args(["-q", "50", "-o"]).arg(&heic).arg(&png).output().unwrap();
    assert!(st.status.success(), "heif-enc: {}", String::from_utf8_lossy(&st.stderr));

    h.run_once();

    let (p, path) = check_playable(&h, &h264, "remux");
    assert_eq!(video_packets_md5(&path), video_packets_md5(&h264), "a remux copies the video packets");
    assert_eq!(rotation(&p), rotation(&ffprobe(&h264)));
    assert_ne!(rotation(&p), 0, "the source is rotated");
    check_playable(&h, &silent, "remux");
    let (p, path) = check_playable(&h, &hevc, "transcode");
    assert_ne!(video_packets_md5(&path), video_packets_md5(&hevc));
    assert_eq!(stream(&p, "video").unwrap()["width"], 320);
    check_playable(&h, &mjpeg, "transcode");
    let (p, _) = check_playable(&h, &big, "transcode");
    let v = stream(&p, "video").unwrap();
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(640), Some(360)), "capped at max_height");
    let (p, path) = check_playable(&h, &wav, "transcode");
    assert!(stream(&p, "video").is_none());
    assert!(p["format"]["format_name"].as_str().unwrap().contains("m4a"));
    assert!(path.exists());
    let shown = show(&h, &id_of(&mp3));
    assert_eq!(rendition(&shown, "playable")["state"], "skipped", "MP3 plays in browsers as it is");

    for src in [&h264, &hevc, &mjpeg, &big, &png, &heic] {
        check_thumbnail(&h, src, 160);
    }
    // HEIC photo thumbnails keep the picture's proportions.
    let p = check_thumbnail(&h, &heic, 160);
    assert_eq!(stream(&p, "video").unwrap()["width"], 160);
    assert_eq!(stream(&p, "video").unwrap()["height"], 120);

    // The originals were not touched, and nothing partial is left.
    assert_eq!(fs::read_dir(h.state.join("renditions/tmp")).unwrap().count(), 0);
    for src in [&h264, &hevc, &mjpeg, &big, &wav, &mp3, &png, &heic] {
        let id = id_of(src);
        assert_eq!(blake3_hex(&fs::read(h.state.join("archive/objects").join(&id[..2]).join(&id)).unwrap()), id);
    }
    // Text form of `media show` names the renditions too.
    let out = h.cmd(&["media", "show", &id_of(&hevc)]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rendition playable: done by transcode"), "{text}");
    assert!(text.contains("libx264"), "{text}");
}

#[test]
fn transcoding_can_be_switched_off_per_kind() {
    let h = Harness::new("", "[renditions]\ntranscode_video = false\n");
    let hevc = h.dock.join("hevc.mp4");
    make(
        &hevc,
        video_src("160x120", 1),
        &["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
    );
    let h264 = h.dock.join("h264.mp4");
    make(&h264, video_src("160x120", 1), &["-c:v", "libx264", "-preset", "ultrafast"]);
    let wav = h.dock.join("a.wav");
    make(&wav, audio_src(1), &["-c:a", "pcm_s16le"]);
    h.run_once();
    let r = show(&h, &id_of(&hevc));
    assert_eq!(rendition(&r, "playable")["state"], "skipped");
    assert!(rendition(&r, "playable")["settings"]["skip"].as_str().unwrap().contains("transcod"), "{r:#}");
    assert_eq!(rendition(&r, "thumbnail")["state"], "done", "thumbnails are still made");
    check_playable(&h, &h264, "remux");
    check_playable(&h, &wav, "transcode");
}

#[test]
fn an_unreadable_source_fails_once_with_an_alert_and_is_not_retried() {
    let h = Harness::new("", "[renditions]\nmax_attempts = 3\nretry_base = \"50ms\"\n");
    // A real clip cut before its sample data (its header boxes only): the
    // original is stored as it is, but nothing can be made of it, not even
    // a recovered rendition (a clip cut later is recovered: tests/recovery.rs).
    let good = h.dock.join("whole.mp4");
    make(&good, video_src("160x120", 2), &["-c:v", "libx264", "-preset", "ultrafast"]);
    let bytes = fs::read(&good).unwrap();
    fs::remove_file(&good).unwrap();
    let head = &bytes[..40];
    assert_eq!(&head[36..40], b"free", "ftyp and free, then mdat");
    fs::write(h.dock.join("cut.mp4"), head).unwrap();
    let out = h.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    let id = blake3_hex(head);
    let shown = show(&h, &id);
    let r = rendition(&shown, "playable");
    assert_eq!(r["state"], "failed", "{r:#}");
    assert_eq!(r["attempts"], 1, "the original cannot be read: trying again cannot help");
    assert!(r["last_error"].as_str().unwrap().contains("no mdat"), "{r:#}");
    assert!(r["path"].is_null());
    assert!(shown["renditions"].as_array().unwrap().iter().all(|r| r["kind"] != "thumbnail"), "{shown:#}");
    assert!(log.contains("rendition failed"), "{log}");
    let out = h.cmd(&["alerts", "list", "--json"]).output().unwrap();
    let alerts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a =
        alerts.as_array().unwrap().iter().find(|a| a["kind"] == "rendition_failed").expect("rendition_failed alert");
    assert_eq!(a["subject"], id);
    assert!(a["details"]["reason"].as_str().unwrap().len() > 5, "{a:#}");
    assert_eq!(a["details"]["retried"], false, "{a:#}");
    // A second run does not try again: bounded, not a loop.
    h.run_once();
    assert_eq!(rendition(&show(&h, &id), "playable")["attempts"], 1);
    assert_eq!(fs::read_dir(h.state.join("renditions/tmp")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(h.state.join("renditions/objects")).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn run_once_does_not_wait_for_a_retry_that_is_due_later() {
    // Every job times out (a failure that may pass): it is retried, but an
    // hour later, and `run --once` leaves it queued instead of waiting.
    // (A 4 s 640x480 H.265 clip takes far longer than 100 ms to transcode.)
    let h = Harness::new("", "[renditions]\ntimeout = \"100ms\"\nretry_base = \"1h\"\nthumbnails = false\n");
    let src = h.dock.join("clip.mp4");
    make(&src, video_src("640x480", 4), &["-c:v", "libx265", "-preset", "ultrafast"]);
    let id = blake3_hex(&fs::read(&src).unwrap());
    let t0 = std::time::Instant::now();
    let out = h.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    let shown = show(&h, &id);
    let r = rendition(&shown, "playable");
    assert_eq!((r["state"].clone(), r["attempts"].clone()), ("queued".into(), 1.into()), "{r:#}\n{log}");
    assert!(log.contains("wait for a retry later"), "{log}");
    // Not a timing assertion on the work, only that it did not wait the hour.
    assert!(t0.elapsed() < std::time::Duration::from_secs(600));
}

fn render_workers() -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains("render-worker") {
                if let Ok(pid) = e.file_name().to_string_lossy().parse() {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

#[test]
fn a_kill_during_a_transcode_leaves_nothing_partial_and_the_job_completes_after_restart() {
    // A slow preset on a longer H.265 clip keeps the transcode running
    // long enough to kill the daemon in the middle of it.
    let h = Harness::new("", "[renditions]\npreset = \"veryslow\"\nthumbnails = false\n");
    let src = h.dock.join("long.mp4");
    make(
        &src,
        video_src("640x480", 8),
        &["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
    );
    let id = id_of(&src);
    let before = render_workers();
    let mut d = h.spawn_daemon();
    let tmp = h.state.join("renditions/tmp");
    wait_until("a transcode writing its output", Duration::from_secs(60), || {
        fs::read_dir(&tmp)
            .map(|r| r.flatten().any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false)))
            .unwrap_or(false)
    });
    let state: String = h
        .db()
        .query_row("SELECT state FROM rendition_jobs WHERE original_id = ?1 AND kind = 'playable'", [&id], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "running");
    d.kill9();
    // The worker dies with the daemon.
    wait_until("the render worker to exit", Duration::from_secs(10), || {
        render_workers().iter().all(|p| before.contains(p))
    });
    // Nothing partial is visible: no rendition recorded, no object stored.
    let shown = show(&h, &id);
    assert!(rendition(&shown, "playable")["path"].is_null());
    assert_eq!(fs::read_dir(h.state.join("renditions/objects")).map(|d| d.count()).unwrap_or(0), 0);

    // Restart (faster now): the job is requeued, the leftover removed, and
    // the rendition made.
    h.write_config("", "[renditions]\npreset = \"ultrafast\"\nthumbnails = false\n");
    let out = h.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("queued again"), "{log}");
    check_playable(&h, &src, "transcode");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "no leftover temporary file");
}

#[test]
fn no_renditions_skips_the_queue() {
    let h = Harness::new("", "");
    let src = h.dock.join("a.mp4");
    make(&src, video_src("160x120", 1), &["-c:v", "libx264", "-preset", "ultrafast"]);
    let out = h.cmd(&["run", "--once", "--no-renditions"]).output().unwrap();
    assert!(out.status.success());
    let r = show(&h, &id_of(&src));
    assert_eq!(rendition(&r, "playable")["state"], "queued");
    h.run_once();
    check_playable(&h, &src, "remux");
}

#[test]
fn originals_stored_while_renditions_were_off_get_them_later() {
    let h = Harness::new("", "[renditions]\nenabled = false\n");
    let src = h.dock.join("a.mp4");
    make(&src, video_src("160x120", 1), &["-c:v", "libx264", "-preset", "ultrafast"]);
    h.run_once();
    assert!(show(&h, &id_of(&src))["renditions"].as_array().unwrap().is_empty());
    h.write_config("", "");
    let out = h.run_once();
    assert!(String::from_utf8_lossy(&out.stderr).contains("renditions planned for originals stored before"));
    check_playable(&h, &src, "remux");
    assert_eq!(rendition(&show(&h, &id_of(&src)), "thumbnail")["state"], "done");
}
