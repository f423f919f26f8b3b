//! Recovering cut-short recordings: a corpus of complete MP4s made with the
//! `ffmpeg` CLI, each cut at several points (one inside a frame), recovered
//! with another recording of the same "camera" as reference, and checked
//! frame by frame against the complete file with an independent decoder
//! (`ffmpeg -f framemd5`).

use std::fs;
use std::path::Path;
use std::process::Command;

use bodycamd::media::recover::recover;

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
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (b.trim().parse().unwrap(), a.trim().parse().unwrap())
        })
        .collect()
}

/// Video packets' presentation times in decode order.
fn video_pts(path: &Path) -> Vec<i64> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8(out).unwrap().lines().filter(|l| !l.is_empty()).map(|l| l.trim().parse().unwrap()).collect()
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
