//! Recovering cut-short recordings: a corpus of complete MP4s made with the
//! `ffmpeg` CLI, each cut at several points (one inside a frame), recovered
//! with another recording of the same "camera" as reference, and checked
//! frame by frame against the complete file with an independent decoder
//! (`ffmpeg -f framemd5`).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use bodycamd::media::recover::recover;
use browser::*;
use common::*;
use serde_json::json;
use std::time::Duration;

struct Camera {
    name: &'static str,
    container: &'static str,
    video: &'static [&'static str],
    audio: Option<&'static [&'static str]>,
    fps: u32,
    size: &'static str,
}

const CAMERAS: &[Camera] = &[
    Camera {
        name: "h264-aac-30fps-gop30-bframes",
        container: "mp4",
        video: &["-c:v", "libx264", "-preset", "veryfast", "-g", "30"],
        audio: Some(&["-c:a", "aac", "-b:a", "64k"]),
        fps: 30,
        size: "320x240",
    },
    Camera {
        name: "hevc-aac-25fps-gop50",
        container: "mp4",
        video: &["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=50:log-level=error"],
        audio: Some(&["-c:a", "aac", "-b:a", "48k", "-ac", "1"]),
        fps: 25,
        size: "320x180",
    },
    Camera {
        name: "h264-silent-24fps-gop12-no-bframes",
        container: "mp4",
        video: &["-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-bf", "0"],
        audio: None,
        fps: 24,
        size: "256x144",
    },
    Camera {
        name: "h264-pcm-15fps-gop60-mov",
        container: "mov",
        video: &["-c:v", "libx264", "-preset", "fast", "-g", "60"],
        audio: Some(&["-c:a", "pcm_s16le", "-ar", "16000"]),
        fps: 15,
        size: "320x240",
    },
];

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A recording of `secs` seconds from this camera, of a test picture.
fn record(cam: &Camera, out: &Path, picture: &str, secs: u32) {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]);
    c.arg(format!("{picture}=size={}:rate={}", cam.size, cam.fps));
    if cam.audio.is_some() {
        c.args(["-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate=48000:duration={secs}")]);
    }
    c.args(["-t", &secs.to_string()]).args(cam.video).args(["-pix_fmt", "yuv420p"]);
    if let Some(a) = cam.audio {
        c.args(a);
    }
    c.arg(out);
    run(&mut c);
}

/// Video packets in decode order: (position, size).
fn video_packets(path: &Path) -> Vec<(u64, u64)> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',').map(str::trim);
            let (size, pos) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            Some((pos, size))
        })
        .collect()
}

/// Video packets' presentation times in decode order.
fn video_pts(path: &Path) -> Vec<i64> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8(out).unwrap().lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// Decoded video frames, hashed, in presentation order: (pts, md5).
fn frame_hashes(path: &Path) -> Vec<(i64, String)> {
    let out = run(Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args([
        "-map",
        "0:v:0",
        "-vsync",
        "passthrough",
        "-f",
        "framemd5",
        "-",
    ]));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f[2].parse().unwrap(), f[5].to_string())
        })
        .collect()
}

fn probe(path: &Path, entries: &str) -> serde_json::Value {
    let out =
        run(Command::new("ffprobe").args(["-v", "error", "-print_format", "json", "-show_entries", entries]).arg(path));
    serde_json::from_slice(&out).unwrap()
}

/// The first presentation time of a stream, in seconds.
fn first_pts(path: &Path, stream: &str) -> f64 {
    let p = probe_packets(path, stream);
    p.iter().map(|x| x.0).fold(f64::INFINITY, f64::min)
}

/// Packets of a stream: (pts, duration in seconds, position, size).
fn probe_packets(path: &Path, stream: &str) -> Vec<(f64, f64, u64, u64)> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time,duration_time,pos,size",
            "-of",
            "json",
        ])
        .arg(path));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let f = |x: &serde_json::Value, k: &str| x[k].as_str().unwrap().parse::<f64>().unwrap();
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (f(x, "pts_time"), f(x, "duration_time"), f(x, "pos") as u64, f(x, "size") as u64))
        .collect()
}

/// Where the audio a cut leaves ends, in the complete file's time: at least
/// the end of the last whole audio packet before the cut, at most that plus
/// the part of the packet the cut runs through.
fn audio_left(full: &Path, cut: u64) -> (f64, f64) {
    let packets = probe_packets(full, "a:0");
    let lo = packets.iter().filter(|p| p.2 + p.3 <= cut).map(|p| p.0 + p.1).fold(0.0, f64::max);
    let hi = packets
        .iter()
        .filter(|p| p.2 < cut)
        .map(|p| p.0 + p.1 * ((cut.min(p.2 + p.3) - p.2) as f64 / p.3 as f64))
        .fold(0.0, f64::max);
    (lo, hi)
}

/// Cut points: a few seeded random ones, and one in the middle of a frame.
fn cuts(len: u64, mdat_start: u64, packets: &[(u64, u64)], seed: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let span = len - mdat_start;
    let mut v: Vec<u64> = (0..3).map(|_| mdat_start + span / 5 + next() % (span * 3 / 4)).collect();
    let (pos, size) = packets[packets.len() * 2 / 3];
    v.push(pos + size / 2);
    v
}

#[test]
fn cut_recordings_are_recovered_frame_for_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (ci, cam) in CAMERAS.iter().enumerate() {
        let full = dir.path().join(format!("{}.{}", cam.name, cam.container));
        let reference = dir.path().join(format!("{}-ref.{}", cam.name, cam.container));
        record(cam, &full, "testsrc2", 6);
        record(cam, &reference, "testsrc", 3);
        let bytes = fs::read(&full).unwrap();
        let packets = video_packets(&full);
        let pts = video_pts(&full);
        let hashes = frame_hashes(&full);
        let f = fs::File::open(&full).unwrap();
        let (mdat_start, _) = bodycamd::media::recover::mdat_range(&f, bytes.len() as u64).unwrap().unwrap();
        // The moov box sits after mdat: everything past mdat is the index.
        for (k, cut) in cuts(bytes.len() as u64, mdat_start, &packets, ci as u64 + 1).into_iter().enumerate() {
            let cut_file = dir.path().join(format!("{}-cut{k}.{}", cam.name, cam.container));
            fs::write(&cut_file, &bytes[..cut as usize]).unwrap();
            let out = dir.path().join(format!("{}-cut{k}.recovered.mp4", cam.name));
            let r = recover(&cut_file, &reference, &out).unwrap_or_else(|e| panic!("{} cut at {cut}: {e}", cam.name));
            // The frames complete before the cut (file order is decode order).
            let complete = packets.iter().filter(|(p, s)| p + s <= cut).count();
            let got = frame_hashes(&out);
            assert_eq!(got.len() as u64, r.video_frames, "{}: frames reported", cam.name);
            assert!(
                got.len() <= complete,
                "{} cut at {cut}: {} frames recovered, only {complete} complete",
                cam.name,
                got.len()
            );
            let share = got.len() as f64 / complete as f64;
            assert!(share >= 0.95, "{} cut at {cut}: {}/{complete} frames recovered", cam.name, got.len());
            // The recovered frames are the first ones in decode order,
            // shown in presentation order: the same pictures, bit for bit.
            let mut want_pts: Vec<i64> = pts[..got.len()].to_vec();
            want_pts.sort_unstable();
            // framemd5 lists the complete file's frames in presentation order.
            let mut all_pts = pts.clone();
            all_pts.sort_unstable();
            assert_eq!(all_pts.len(), hashes.len(), "{}: every packet decodes to one frame", cam.name);
            let want: Vec<&str> =
                want_pts.iter().map(|p| hashes[all_pts.binary_search(p).unwrap()].1.as_str()).collect();
            let got_h: Vec<&str> = got.iter().map(|(_, h)| h.as_str()).collect();
            assert_eq!(got_h, want, "{} cut at {cut}: pictures differ", cam.name);
            // Timing: the frame rate is the camera's, and audio lies within
            // one frame of the video.
            let p = probe(&out, "stream=codec_type,start_time,duration,avg_frame_rate,nb_frames");
            let streams = p["streams"].as_array().unwrap();
            let v = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
            assert_eq!(v["avg_frame_rate"], format!("{}/1", cam.fps), "{}", cam.name);
            let secs = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap().parse::<f64>().unwrap();
            if cam.audio.is_some() {
                let a = streams.iter().find(|s| s["codec_type"] == "audio").expect("recovered audio");
                let frame = 1.0 / f64::from(cam.fps);
                let vs = secs(v, "start_time");
                let (as_, ae) = (secs(a, "start_time"), secs(a, "start_time") + secs(a, "duration"));
                // In sync: audio starts where it starts in the complete file
                // against the video, and ends with the audio the cut left
                // (whole frames before it; PCM samples up to it), within a
                // video frame.
                let (full_vs, full_as) = (first_pts(&full, "v:0"), first_pts(&full, "a:0"));
                assert!(
                    ((as_ - vs) - (full_as - full_vs)).abs() <= frame,
                    "{}: audio starts at {as_}, video at {vs}",
                    cam.name
                );
                let (lo, hi) = audio_left(&full, cut);
                let ae = ae - vs + full_vs;
                assert!(
                    ae >= lo - frame && ae <= hi + frame,
                    "{} cut at {cut}: audio ends at {ae}, {lo}..{hi} expected",
                    cam.name
                );
                assert!(r.audio_frames > 0);
            } else {
                assert!(!streams.iter().any(|s| s["codec_type"] == "audio"));
            }
            // An independent decoder reads it without a single error.
            let errs = Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&out)
                .args(["-f", "null", "-"])
                .output()
                .unwrap();
            assert!(
                errs.status.success() && errs.stderr.is_empty(),
                "{}: {}",
                cam.name,
                String::from_utf8_lossy(&errs.stderr)
            );
            assert!(r.bytes_to <= cut && r.bytes_from == mdat_start);
            report.push(format!(
                "{} cut {k} at {cut}: {}/{complete} frames, {:.2} s, {} audio frames",
                cam.name,
                got.len(),
                r.seconds,
                r.audio_frames
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_reference_of_another_camera_setting_is_refused_and_a_file_without_samples_is_not_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let cam = &CAMERAS[0];
    let full = dir.path().join("a.mp4");
    record(cam, &full, "testsrc2", 3);
    let bytes = fs::read(&full).unwrap();
    let cut = dir.path().join("cut.mp4");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // Another resolution: the slices do not fit its parameter sets.
    let other = Camera { size: "640x360", ..*cam };
    let wrong = dir.path().join("wrong.mp4");
    record(&other, &wrong, "testsrc", 2);
    let err = recover(&cut, &wrong, &dir.path().join("o.mp4")).unwrap_err();
    assert!(matches!(err, bodycamd::media::recover::RecoverError::Unsuitable(_)), "{err}");
    // An HEVC reference for an H.264 recording finds nothing that decodes.
    let hevc = dir.path().join("hevc.mp4");
    record(&CAMERAS[1], &hevc, "testsrc", 2);
    let err = recover(&cut, &hevc, &dir.path().join("o2.mp4")).unwrap_err();
    assert!(!matches!(err, bodycamd::media::recover::RecoverError::Io(_)), "{err}");
    // No mdat at all.
    let empty = dir.path().join("empty.mp4");
    fs::write(&empty, &bytes[..40]).unwrap();
    let err = recover(&empty, &full, &dir.path().join("o3.mp4")).unwrap_err();
    assert!(matches!(err, bodycamd::media::recover::RecoverError::NotRecoverable(_)), "{err}");
    // A camera recording MJPEG: not recoverable, with the reason.
    let mjpeg = dir.path().join("mjpeg.mov");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=1", "-c:v", "mjpeg"])
        .arg(&mjpeg));
    let err = recover(&cut, &mjpeg, &dir.path().join("o4.mp4")).unwrap_err();
    assert!(err.to_string().contains("only H.264 and H.265"), "{err}");
}

// ------------------------------------------------------------ in the daemon

const OPS: &str = "ops-token-for-recovery-tests";
const CMS: &str = "cms-token-for-recovery-tests";
const CHIEF: &str = "chief-token-for-recovery-tests";

fn get_json(addr: std::net::SocketAddr, path: &str, token: &str) -> serde_json::Value {
    let r = call(addr, "GET", path, &format!("Bearer {token}"), None);
    assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn playable(addr: std::net::SocketAddr, id: &str) -> serde_json::Value {
    let r = call(addr, "GET", &format!("/api/v1/media/{id}/renditions"), &format!("Bearer {CMS}"), None);
    if r.status == 404 {
        // Not stored yet.
        return serde_json::Value::Null;
    }
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    v["renditions"].as_array().unwrap().iter().find(|r| r["kind"] == "playable").cloned().unwrap_or_default()
}

fn unreadable_alert(h: &Harness, id: &str) -> serde_json::Value {
    alert(&h.alerts(), "media_unreadable", id, None)
        .cloned()
        .unwrap_or_else(|| panic!("no media_unreadable alert for {id}"))
}

/// A cut recording docked before any complete one of its camera waits;
/// the camera's next recording supplies the configuration and the frames
/// are recovered; the API, `media show`, the alert and a real browser show
/// the result; an admin can name another reference.
#[test]
fn a_cut_recording_waits_for_its_camera_is_recovered_and_plays_in_a_browser() {
    let tokens = format!(
        "[renditions]\npreset = \"ultrafast\"\n\
         [[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"cms\"\nrole = \"case_system\"\ntoken_sha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"chief\"\nrole = \"admin\"\nrestricted = true\ntoken_sha256 = \"{}\"\n",
        sha256_hex(OPS),
        sha256_hex(CMS),
        sha256_hex(CHIEF)
    );
    let h = Harness::new("", &tokens);
    let cam = &CAMERAS[0];
    let work = h.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let (full, reference, other) = (work.join("full.mp4"), work.join("ref.mp4"), work.join("other.mp4"));
    record(cam, &full, "testsrc2", 6);
    record(cam, &reference, "testsrc", 3);
    record(cam, &other, "smptebars", 2);
    let bytes = fs::read(&full).unwrap();
    let cut = &bytes[..bytes.len() * 3 / 4];
    let cut_id = blake3_hex(cut);
    // Docked under a hidden name, then renamed: the dock sees it whole.
    let dock = |name: &str, data: &[u8]| {
        let tmp = h.dock.join(format!(".{name}"));
        fs::write(&tmp, data).unwrap();
        fs::rename(&tmp, h.dock.join(name)).unwrap();
    };
    dock("BC0042_004711_20261130081500_0001.mp4", cut);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("the recovery to wait for a reference", Duration::from_secs(60), || {
        playable(addr, &cut_id)["state"] == "waiting"
    });
    let p = playable(addr, &cut_id);
    assert!(p["last_error"].as_str().unwrap().contains("same camera"), "{p:#}");
    let a = unreadable_alert(&h, &cut_id);
    assert_eq!(a["details"]["recovery"]["state"], "waiting", "{a:#}");
    let receipt_before = call(addr, "GET", &format!("/api/v1/media/{cut_id}/receipt"), &format!("Bearer {CMS}"), None);
    assert_eq!(receipt_before.status, 200);
    // The camera's next recording arrives: the recovery runs with it.
    let ref_bytes = fs::read(&reference).unwrap();
    let ref_id = blake3_hex(&ref_bytes);
    dock("BC0042_004711_20261130093000_0002.mp4", &ref_bytes);
    wait_until("the recovered rendition", Duration::from_secs(90), || playable(addr, &cut_id)["state"] == "done");
    let p = playable(addr, &cut_id);
    let rec = &p["recovered"];
    assert_eq!(rec["reference"], ref_id.as_str(), "{p:#}");
    assert_eq!(p["method"], "remux", "H.264 with AAC is kept as recovered: {p:#}");
    let complete = video_packets(&full).iter().filter(|(pos, size)| pos + size <= cut.len() as u64).count() as u64;
    let frames = rec["video_frames"].as_u64().unwrap();
    assert!(frames <= complete && frames * 100 >= complete * 95, "{frames} of {complete} frames: {p:#}");
    assert!(rec["audio_frames"].as_u64().unwrap() > 0 && rec["bytes_to"].as_u64().unwrap() <= cut.len() as u64);
    // The rendition a case system downloads decodes without an error.
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/media/{cut_id}/rendition"),
        &[("Authorization", &format!("Bearer {CMS}"))],
        None,
    );
    assert_eq!(r.status, 200);
    let got = work.join("recovered.mp4");
    fs::write(&got, &r.body).unwrap();
    assert_eq!(frame_hashes(&got).len() as u64, frames);
    let errs = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&got).args(["-f", "null", "-"]).output().unwrap();
    assert!(errs.status.success() && errs.stderr.is_empty(), "{}", String::from_utf8_lossy(&errs.stderr));
    // The original and its receipt are as they were.
    let receipt_after = call(addr, "GET", &format!("/api/v1/media/{cut_id}/receipt"), &format!("Bearer {CMS}"), None);
    assert_eq!(receipt_after.body, receipt_before.body, "the original's receipt is unchanged");
    let original = http(
        addr,
        "GET",
        &format!("/api/v1/media/{cut_id}/original"),
        &[("Authorization", &format!("Bearer {CMS}"))],
        None,
    );
    assert_eq!(blake3_hex(&original.body), cut_id, "the original is unchanged");
    // The alert says what was recovered; the thumbnail comes from it.
    let a = unreadable_alert(&h, &cut_id);
    assert_eq!(a["details"]["recovery"]["state"], "recovered", "{a:#}");
    assert_eq!(a["details"]["recovery"]["reference"], ref_id.as_str());
    wait_until("the thumbnail", Duration::from_secs(60), || {
        let v = get_json(addr, &format!("/api/v1/media/{cut_id}/renditions"), CMS);
        v["renditions"].as_array().unwrap().iter().any(|r| r["kind"] == "thumbnail" && r["state"] == "done")
    });
    // `media show` says the same in words.
    let out = h.cmd(&["media", "show", &cut_id]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("recovered: {frames} video")) && text.contains(&ref_id), "{text}");

    // It plays in a real browser, in the console's player.
    if let Some(driver) = chromedriver() {
        add_user(&h, "ann", "admin", false);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let b = Browser::start(&driver, addr).await;
            b.login("ann").await;
            let src = b
                .until("the player", &format!("/console/media/{cut_id}"), Duration::from_secs(30), |s| {
                    s.contains("id=\"player\"")
                })
                .await;
            assert!(src.contains("recovered"), "the media page says the rendition is recovered");
            let played =
                b.c.execute_async(
                    "const done = arguments[arguments.length - 1]; const v = document.getElementById('player');
                     v.muted = true;
                     v.play().then(() => setTimeout(() => done({t: v.currentTime, d: v.duration}), 1500))
                             .catch(e => done({error: String(e)}));",
                    vec![],
                )
                .await
                .unwrap();
            assert!(played["t"].as_f64().unwrap_or(0.0) > 0.2, "the recovered video did not play: {played}");
            b.shot("recovered-player").await;
            b.c.clone().close().await.unwrap();
        });
    }

    // An admin names another recording as the reference: refused when it
    // is not a complete recording, taken and recovered again when it is.
    let ops = format!("Bearer {OPS}");
    let url = format!("/api/v1/media/{cut_id}/recover");
    let r = call(addr, "POST", &url, &ops, Some(json!({"reference": cut_id, "reason": "use itself"})));
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let r = call(addr, "POST", &url, &ops, Some(json!({"reference": ref_id})));
    assert_eq!(r.status, 400, "a reason is required: {}", String::from_utf8_lossy(&r.body));
    let r = call(addr, "POST", &format!("/api/v1/media/{ref_id}/recover"), &ops, Some(json!({"reason": "not cut"})));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    let r = call(addr, "POST", &url, &format!("Bearer {CMS}"), Some(json!({"reason": "x"})));
    assert_eq!(r.status, 403, "a case system may not: {}", String::from_utf8_lossy(&r.body));
    let other_bytes = fs::read(&other).unwrap();
    let other_id = blake3_hex(&other_bytes);
    dock("BC0042_004711_20261130100000_0003.mp4", &other_bytes);
    wait_until("the other recording to be described", Duration::from_secs(60), || {
        h.media().iter().any(|m| m["id"] == other_id.as_str() && m["kind"] == "video")
    });
    let r = call(
        addr,
        "POST",
        &url,
        &ops,
        Some(json!({"reference": other_id, "reason": "the later clip is the same camera"})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_until("the recovery with the named reference", Duration::from_secs(60), || {
        let p = playable(addr, &cut_id);
        p["state"] == "done" && p["recovered"]["reference"] == other_id.as_str()
    });
    // The CLI does the same (back to the automatic choice), and both are audited.
    let out = h.cmd(&["media", "recover", &cut_id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = h.cmd(&["media", "recover", &ref_id]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a complete recording has nothing to recover");
    wait_until("the automatic recovery again", Duration::from_secs(60), || {
        let p = playable(addr, &cut_id);
        p["state"] == "done" && p["recovered"]["reference"] == other_id.as_str()
    });
    // A restricted recording is never a reference, named or chosen: its id
    // would show in the provenance to callers without the grant.
    restrict_media(addr, &ops, &other_id);
    let named = json!({"reference": other_id, "reason": "try the restricted one"});
    let r = call(addr, "POST", &url, &ops, Some(named.clone()));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(r.status == 422 && text.contains("no original"), "unknown to an admin without the grant: {text}");
    let r = http(
        addr,
        "POST",
        &url,
        &[
            ("Authorization", &format!("Bearer {CHIEF}")),
            ("Content-Type", "application/json"),
            ("X-Bodycamd-Reason", "internal affairs review"),
        ],
        Some(named.to_string().as_bytes()),
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(r.status == 422 && text.contains("is restricted"), "refused to an admin with the grant too: {text}");
    let out = h.cmd(&["media", "recover", &cut_id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the recovery without the restricted recording", Duration::from_secs(60), || {
        let p = playable(addr, &cut_id);
        p["state"] == "done" && p["recovered"]["reference"] == ref_id.as_str()
    });
    let shown = serde_json::to_string(&get_json(addr, &format!("/api/v1/media/{cut_id}/renditions"), CMS)).unwrap();
    assert!(!shown.contains(&other_id), "a case system without the grant never sees the restricted id: {shown}");
    let db = h.db();
    let recovers: Vec<(String, String, Option<String>)> = db
        .query_all("SELECT actor, outcome, details FROM audit WHERE action = 'media.recover' ORDER BY id", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let who: Vec<&str> = recovers.iter().map(|r| r.0.as_str()).collect();
    assert!(who.contains(&"ops") && who.contains(&"cli"), "{recovers:?}");
    assert!(
        recovers.iter().any(|r| r.2.as_deref().is_some_and(|d| d.contains("the later clip is the same camera"))),
        "the reason is audited: {recovers:?}"
    );
    d.stop();
}

/// The frames of `out` are the first `n` frames (in decode order) of
/// `full`, shown in presentation order, bit for bit.
fn assert_first_frames(full: &Path, out: &Path, what: &str) -> usize {
    let got = frame_hashes(out);
    let pts = video_pts(full);
    let hashes = frame_hashes(full);
    let mut all = pts.clone();
    all.sort_unstable();
    let mut want_pts = pts[..got.len()].to_vec();
    want_pts.sort_unstable();
    let want: Vec<&str> = want_pts.iter().map(|p| hashes[all.binary_search(p).unwrap()].1.as_str()).collect();
    let got_h: Vec<&str> = got.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(got_h, want, "{what}: pictures differ");
    let errs = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(out).args(["-f", "null", "-"]).output().unwrap();
    assert!(errs.status.success() && errs.stderr.is_empty(), "{what}: {}", String::from_utf8_lossy(&errs.stderr));
    got.len()
}

/// An MP4 whose last fragment is cut and a transport stream cut inside a
/// packet still open in libav; their renditions leave out what the cut
/// spoiled and say what they hold.
#[test]
fn a_cut_fragmented_mp4_and_a_cut_transport_stream_are_salvaged_without_spoiled_frames() {
    use bodycamd::media::render::{playable, PlayableSpec, StreamAction};
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.mp4");
    record(&CAMERAS[0], &full, "testsrc2", 6);
    let frag = dir.path().join("frag.mp4");
    let ts = dir.path().join("full.ts");
    for (out, extra) in [(&frag, &["-movflags", "+frag_keyframe+empty_moov"][..]), (&ts, &[][..])] {
        run(Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&full).args(["-c", "copy"]).args(extra).arg(out));
    }
    let spec = PlayableSpec {
        video: StreamAction::Copy,
        audio: StreamAction::Copy,
        max_height: 1080,
        preset: "ultrafast".into(),
        crf: 23,
        audio_bitrate: 96_000,
        salvage: true,
    };
    for src in [&frag, &ts] {
        let bytes = fs::read(src).unwrap();
        let packets = video_packets(src);
        for (k, cut) in [bytes.len() * 2 / 3, bytes.len() * 4 / 5 + 77].into_iter().enumerate() {
            let what = format!("{} cut at {cut}", src.display());
            let cut_file = dir.path().join(format!("cut{k}.{}", src.extension().unwrap().to_string_lossy()));
            fs::write(&cut_file, &bytes[..cut]).unwrap();
            let d = bodycamd::media::describe_file(&cut_file);
            assert!(d.probe_error.as_deref().is_some_and(|e| e.starts_with("truncated")), "{what}: {d:?}");
            let out = dir.path().join(format!("salvaged{k}.mp4"));
            let r = playable(&cut_file, &out, &spec).unwrap_or_else(|e| panic!("{what}: {e}"));
            let rec = r.recovery.expect("a salvaged rendition reports what it holds");
            let n = assert_first_frames(src, &out, &what);
            assert_eq!(n as u64, rec.video_frames, "{what}");
            // Frames whole before the cut: a sample that ends before it (an
            // MP4), a PES whose next one of the stream starts before it (TS).
            let whole = packets
                .windows(2)
                .filter(|w| if src == &ts { w[1].0 <= cut as u64 } else { w[0].0 + w[0].1 <= cut as u64 })
                .count();
            assert!(n <= whole + 1 && n * 100 >= whole * 95, "{what}: {n} frames of {whole}");
            assert!(rec.audio_frames > 0 && rec.bytes_to <= cut as u64, "{what}: {rec:?}");
        }
    }
}
