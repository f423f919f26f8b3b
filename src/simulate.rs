//! A simulated docking station: a folder laid out as real stations leave
//! it, with real media (encoded with libav) and, on request, the bad files
//! real docks also produce. Used by `bodycamd simulate`, the demo, the tests
//! and the benchmarks.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::media::encode::{self, AudioCodec, AudioSpec, ClipSpec, VideoCodec, VideoSpec};
use crate::media::exif;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub out: PathBuf,
    /// Body cameras (each its own folder and officer); they cycle through
    /// H.264/AAC MP4, H.265 MP4 and (older units) MJPEG/PCM AVI.
    pub cameras: u32,
    /// Video clips per camera.
    pub clips: u32,
    /// Photos per camera (JPEG with EXIF).
    pub photos: u32,
    /// Audio recorders (WAV and MP3).
    pub recorders: u32,
    pub duration_secs: f64,
    pub width: u32,
    pub height: u32,
    /// When the first recording started.
    pub start: DateTime<Utc>,
    /// The zone the devices' clocks (and so the file names) are in.
    pub timezone: Tz,
    /// Add a truncated clip, random bytes named `.mp4`, and an empty file.
    pub corrupt: bool,
    /// Write one extra clip slowly, over this long.
    pub slow: Option<Duration>,
    pub seed: u64,
}

impl SimOptions {
    pub fn new(out: &Path) -> SimOptions {
        SimOptions {
            out: out.to_path_buf(),
            cameras: 3,
            clips: 2,
            photos: 1,
            recorders: 1,
            duration_secs: 2.0,
            width: 320,
            height: 240,
            start: Utc::now() - chrono::Duration::hours(2),
            timezone: chrono_tz::UTC,
            corrupt: false,
            slow: None,
            seed: 1,
        }
    }
}

/// One file the simulator wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SimFile {
    pub path: PathBuf,
    /// What it is (`h264/aac mp4`, `truncated mp4`, …).
    pub what: String,
    /// Whether a describer should be able to read it fully.
    pub readable: bool,
    pub device: String,
    pub officer: String,
    pub start: DateTime<Utc>,
}

fn name_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y%m%d%H%M%S").to_string()
}

/// Write `bytes` to `path` as a docking station does: under a temporary
/// name first, then renamed into place.
fn place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let part = path.with_file_name(format!("{}.part", path.file_name().unwrap_or_default().to_string_lossy()));
    fs::write(&part, bytes)?;
    fs::rename(&part, path)
}

/// Write `bytes` straight to `path` in pieces over `over` (a slow dock).
pub fn write_slowly(path: &Path, bytes: &[u8], over: Duration) -> std::io::Result<()> {
    let pieces = 10usize;
    let mut f = fs::File::create(path)?;
    let chunk = bytes.len().div_ceil(pieces).max(1);
    for (i, c) in bytes.chunks(chunk).enumerate() {
        f.write_all(c)?;
        f.flush()?;
        if i + 1 < pieces {
            std::thread::sleep(over / pieces as u32);
        }
    }
    f.sync_all()
}

/// Encode a clip into memory (through a scratch file next to `dir`).
pub fn clip_bytes(dir: &Path, spec: &ClipSpec, ext: &str) -> Result<Vec<u8>, String> {
    let scratch = dir.join(format!(".sim-{}-{}.{ext}", std::process::id(), fastrand::u64(..)));
    let r = encode::write_clip(&scratch, spec).and_then(|()| fs::read(&scratch).map_err(|e| e.to_string()));
    let _ = fs::remove_file(&scratch);
    r
}

/// Populate `opts.out`. Returns what was written, in order.
pub fn run(opts: &SimOptions) -> Result<Vec<SimFile>, String> {
    fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let mut out = Vec::new();
    let gap = chrono::Duration::milliseconds((opts.duration_secs * 1000.0) as i64) + chrono::Duration::minutes(3);
    let video = |codec| VideoSpec { codec, width: opts.width, height: opts.height, fps: 15 };
    for cam in 0..opts.cameras {
        let device = format!("CAM{:04}", 42 + cam);
        let officer = format!("{:06}", 4711 + cam);
        let dir = opts.out.join(&device);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (what, ext, format, spec_v, spec_a) = match cam % 3 {
            0 => ("h264/aac mp4", "mp4", "mp4", video(VideoCodec::H264), Some(AudioCodec::Aac)),
            1 => ("h265 mp4", "mp4", "mp4", video(VideoCodec::Hevc), Some(AudioCodec::Aac)),
            _ => ("mjpeg/pcm avi", "avi", "avi", video(VideoCodec::Mjpeg), Some(AudioCodec::PcmS16)),
        };
        let mut seq = 1;
        let mut t = opts.start + chrono::Duration::minutes(i64::from(cam) * 7);
        let file = |ext: &str, start: DateTime<Utc>, seq: u32| {
            dir.join(format!("{device}_{officer}_{}_{seq:04}.{ext}", name_time(start, opts.timezone)))
        };
        for _ in 0..opts.clips {
            let spec = ClipSpec {
                format,
                video: Some(spec_v),
                audio: spec_a.map(|codec| AudioSpec { codec, sample_rate: 16_000 }),
                duration_secs: opts.duration_secs,
                creation_time: Some(t),
                seed: opts.seed.wrapping_mul(1000) + u64::from(cam) * 100 + u64::from(seq),
            };
            let bytes = clip_bytes(&opts.out, &spec, ext)?;
            let path = file(ext, t, seq);
            place(&path, &bytes).map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: what.into(),
                readable: true,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
            seq += 1;
            t += gap;
        }
        for _ in 0..opts.photos {
            let jpeg = encode::encode_jpeg(opts.width, opts.height, opts.seed + u64::from(seq))?;
            let local = t.with_timezone(&opts.timezone);
            let offset = local.format("%:z").to_string();
            let block = exif::exif_block(&local.format("%Y:%m:%d %H:%M:%S").to_string(), &offset, &device);
            let path = file("jpg", t, seq);
            place(&path, &exif::jpeg_with_exif(&jpeg, &block)).map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: "jpeg photo with exif".into(),
                readable: true,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
            seq += 1;
            t += chrono::Duration::minutes(1);
        }
        if opts.corrupt && cam == 0 {
            let spec = ClipSpec {
                format: "mp4",
                video: Some(spec_v),
                audio: Some(AudioSpec { codec: AudioCodec::Aac, sample_rate: 16_000 }),
                duration_secs: opts.duration_secs,
                creation_time: Some(t),
                seed: opts.seed + 999,
            };
            let bytes = clip_bytes(&opts.out, &spec, "mp4")?;
            // A battery died: the camera never wrote the index at the end.
            let path = file("mp4", t, seq);
            place(&path, &bytes[..bytes.len() * 2 / 3]).map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: "truncated mp4 (battery died)".into(),
                readable: false,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
            seq += 1;
            t += gap;
            let mut rng = fastrand::Rng::with_seed(opts.seed);
            let junk: Vec<u8> = (0..64 * 1024).map(|_| rng.u8(..)).collect();
            let path = file("mp4", t, seq);
            place(&path, &junk).map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: "random bytes named .mp4".into(),
                readable: false,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
            seq += 1;
            t += gap;
            let path = file("mp4", t, seq);
            place(&path, b"").map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: "empty file".into(),
                readable: false,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
        }
    }
    for rec in 0..opts.recorders {
        let device = format!("REC{:04}", 7 + rec);
        let officer = format!("{:06}", 4711 + opts.cameras + rec);
        let dir = opts.out.join(&device);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut t = opts.start + chrono::Duration::minutes(30 + i64::from(rec) * 5);
        for (seq, (format, ext, codec, what)) in
            [("wav", "wav", AudioCodec::PcmS16, "pcm wav"), ("mp3", "mp3", AudioCodec::Mp3, "mp3")]
                .into_iter()
                .enumerate()
        {
            let spec = ClipSpec {
                format,
                video: None,
                audio: Some(AudioSpec { codec, sample_rate: 16_000 }),
                duration_secs: opts.duration_secs,
                creation_time: Some(t),
                seed: opts.seed + 500 + seq as u64,
            };
            let bytes = clip_bytes(&opts.out, &spec, ext)?;
            let path = dir.join(format!("{device}_{officer}_{}_{:04}.{ext}", name_time(t, opts.timezone), seq + 1));
            place(&path, &bytes).map_err(|e| e.to_string())?;
            out.push(SimFile {
                path,
                what: what.into(),
                readable: true,
                device: device.clone(),
                officer: officer.clone(),
                start: t,
            });
            t += chrono::Duration::minutes(10);
        }
    }
    if let Some(over) = opts.slow {
        let device = "CAM0099".to_string();
        let officer = "004799".to_string();
        let dir = opts.out.join(&device);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let t = opts.start + chrono::Duration::minutes(50);
        let spec = ClipSpec {
            format: "mp4",
            video: Some(video(VideoCodec::H264)),
            audio: Some(AudioSpec { codec: AudioCodec::Aac, sample_rate: 16_000 }),
            duration_secs: opts.duration_secs,
            creation_time: Some(t),
            seed: opts.seed + 777,
        };
        let bytes = clip_bytes(&opts.out, &spec, "mp4")?;
        let path = dir.join(format!("{device}_{officer}_{}_0001.mp4", name_time(t, opts.timezone)));
        write_slowly(&path, &bytes, over).map_err(|e| e.to_string())?;
        out.push(SimFile {
            path,
            what: "h264/aac mp4 written slowly".into(),
            readable: true,
            device,
            officer,
            start: t,
        });
    }
    Ok(out)
}
