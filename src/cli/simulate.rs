use std::path::PathBuf;
use std::time::Duration;

use crate::clock::parse_time;
use crate::simulate::{self, SimOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to fill (a docking station's folder).
    #[arg(long)]
    out: PathBuf,
    /// Body cameras (H.264/AAC MP4, H.265 MP4 and MJPEG AVI in turn).
    #[arg(long, default_value_t = 3)]
    cameras: u32,
    /// Video clips per camera.
    #[arg(long, default_value_t = 2)]
    clips: u32,
    /// JPEG photos (with EXIF) per camera.
    #[arg(long, default_value_t = 1)]
    photos: u32,
    /// Audio recorders (a WAV and an MP3 each).
    #[arg(long, default_value_t = 1)]
    recorders: u32,
    /// Seconds per recording.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "320x240")]
    size: String,
    /// When the first recording started (default: two hours ago).
    #[arg(long, value_parser = parse_time)]
    start: Option<chrono::DateTime<chrono::Utc>>,
    /// The devices' time zone, used in file names and EXIF.
    #[arg(long, default_value = "UTC")]
    timezone: chrono_tz::Tz,
    /// Add a truncated clip, random bytes named .mp4 and an empty file.
    #[arg(long)]
    corrupt: bool,
    /// Also write one clip slowly, over this many seconds.
    #[arg(long)]
    slow: Option<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    let Some((w, h)) = a.size.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))) else {
        eprintln!("error: --size must be WIDTHxHEIGHT, like 320x240");
        return Ok(2);
    };
    if w < 16 || h < 16 || w > 7680 || h > 4320 || w % 2 != 0 || h % 2 != 0 {
        eprintln!("error: --size must be even and between 16x16 and 7680x4320");
        return Ok(2);
    }
    let mut o = SimOptions::new(&a.out);
    o.cameras = a.cameras;
    o.clips = a.clips;
    o.photos = a.photos;
    o.recorders = a.recorders;
    o.duration_secs = a.duration.clamp(0.1, 3600.0);
    o.width = w;
    o.height = h;
    if let Some(s) = a.start {
        o.start = s;
    }
    o.timezone = a.timezone;
    o.corrupt = a.corrupt;
    o.slow = a.slow.map(Duration::from_secs_f64);
    o.seed = a.seed;
    let files = simulate::run(&o).map_err(anyhow::Error::msg)?;
    for f in &files {
        println!("{}\t{}", f.path.display(), f.what);
    }
    eprintln!("wrote {} file(s) to {}", files.len(), a.out.display());
    Ok(0)
}
