//! Synthetic clips for the simulated docking station (and the tests):
//! real encodes with libav through ffmpeg-next, small and fast.
//!
//! This encodes frames we generate ourselves; it never parses untrusted
//! input, so it may run in-process.

use std::path::Path;

use chrono::{DateTime, Utc};
use ff::format::Pixel;
use ff::util::channel_layout::ChannelLayout;
use ff::util::format::sample::{Sample, Type as SampleType};
use ffmpeg_next as ff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
    Mjpeg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    PcmS16,
    Mp3,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSpec {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioSpec {
    pub codec: AudioCodec,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    /// libav muxer name: `mp4`, `mov`, `avi`, `wav`, `mp3`, `matroska`, `mpegts`.
    pub format: &'static str,
    pub video: Option<VideoSpec>,
    pub audio: Option<AudioSpec>,
    pub duration_secs: f64,
    pub creation_time: Option<DateTime<Utc>>,
    /// Varies the picture and the tone, so clips differ in content.
    pub seed: u64,
}

fn err(ctx: &str) -> impl Fn(ff::Error) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

struct VideoOut {
    enc: ff::encoder::Video,
    frame: ff::frame::Video,
    stream: usize,
    fps: u32,
    next: i64,
    total: i64,
}

struct AudioOut {
    enc: ff::encoder::Audio,
    frame_size: usize,
    stream: usize,
    rate: u32,
    next_sample: i64,
    total: i64,
    format: Sample,
}

fn drain(
    enc: &mut ff::encoder::Encoder,
    stream: usize,
    from: ff::Rational,
    octx: &mut ff::format::context::Output,
) -> Result<(), String> {
    let to = octx.stream(stream).expect("stream exists").time_base();
    let mut pkt = ff::Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(stream);
        pkt.rescale_ts(from, to);
        pkt.write_interleaved(octx).map_err(err("writing a packet"))?;
    }
    Ok(())
}

fn open_video(octx: &mut ff::format::context::Output, v: &VideoSpec, frames: i64) -> Result<VideoOut, String> {
    let (name, pix) = match v.codec {
        VideoCodec::H264 => ("libx264", Pixel::YUV420P),
        VideoCodec::Hevc => ("libx265", Pixel::YUV420P),
        VideoCodec::Mjpeg => ("mjpeg", Pixel::YUVJ420P),
    };
    let codec = ff::encoder::find_by_name(name).ok_or_else(|| format!("libav has no {name} encoder"))?;
    let global = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let mut ost = octx.add_stream(codec).map_err(err("adding a video stream"))?;
    let stream = ost.index();
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(err("video encoder"))?;
    enc.set_width(v.width);
    enc.set_height(v.height);
    enc.set_format(pix);
    enc.set_time_base(ff::Rational(1, v.fps as i32));
    enc.set_frame_rate(Some(ff::Rational(v.fps as i32, 1)));
    if global {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    match v.codec {
        VideoCodec::H264 => {
            opts.set("preset", "ultrafast");
            opts.set("crf", "30");
        }
        VideoCodec::Hevc => {
            opts.set("preset", "ultrafast");
            opts.set("crf", "32");
            opts.set("x265-params", "log-level=error");
        }
        VideoCodec::Mjpeg => {
            enc.set_quality(8);
            enc.set_global_quality(8 * ff::ffi::FF_QP2LAMBDA);
            enc.set_flags(ff::codec::Flags::QSCALE);
        }
    }
    let enc = enc.open_with(opts).map_err(err("opening the video encoder"))?;
    ost.set_parameters(&enc);
    ost.set_time_base(ff::Rational(1, v.fps as i32));
    let frame = ff::frame::Video::new(pix, v.width, v.height);
    Ok(VideoOut { enc, frame, stream, fps: v.fps, next: 0, total: frames })
}

fn open_audio(octx: &mut ff::format::context::Output, a: &AudioSpec, duration: f64) -> Result<AudioOut, String> {
    let (name, format) = match a.codec {
        AudioCodec::Aac => ("aac", Sample::F32(SampleType::Planar)),
        AudioCodec::PcmS16 => ("pcm_s16le", Sample::I16(SampleType::Packed)),
        AudioCodec::Mp3 => ("libmp3lame", Sample::F32(SampleType::Planar)),
    };
    let codec = ff::encoder::find_by_name(name).ok_or_else(|| format!("libav has no {name} encoder"))?;
    let global = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let mut ost = octx.add_stream(codec).map_err(err("adding an audio stream"))?;
    let stream = ost.index();
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().audio().map_err(err("audio encoder"))?;
    enc.set_rate(a.sample_rate as i32);
    enc.set_format(format);
    enc.set_channel_layout(ChannelLayout::MONO);
    #[allow(deprecated)]
    enc.set_channels(1);
    enc.set_time_base(ff::Rational(1, a.sample_rate as i32));
    if a.codec != AudioCodec::PcmS16 {
        enc.set_bit_rate(64_000);
    }
    if global {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let enc = enc.open_with(ff::Dictionary::new()).map_err(err("opening the audio encoder"))?;
    ost.set_parameters(&enc);
    ost.set_time_base(ff::Rational(1, a.sample_rate as i32));
    let frame_size = match enc.frame_size() {
        0 => 1024,
        n => n as usize,
    };
    Ok(AudioOut {
        enc,
        frame_size,
        stream,
        rate: a.sample_rate,
        next_sample: 0,
        total: (duration * f64::from(a.sample_rate)).round() as i64,
        format,
    })
}

/// Write all 64 bits of `seed` into the picture (blocks along its top
/// rows), so that two seeds never give the same picture.
fn stamp_seed(frame: &mut ff::frame::Video, seed: u64) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let y = frame.data_mut(0);
    // Two-pixel-wide blocks, 8 rows tall: they survive JPEG's quantising.
    let per_row = (w / 2).max(1);
    for bit in 0..64usize {
        let (band, col) = (bit / per_row, (bit % per_row) * 2);
        let v = if seed >> bit & 1 == 1 { 235 } else { 16 };
        for row in band * 8..(band * 8 + 8).min(h) {
            for c in col..(col + 2).min(w) {
                y[row * stride + c] = v;
            }
        }
    }
}

fn paint(frame: &mut ff::frame::Video, n: i64, seed: u64) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let bar = ((n as usize * 7) + seed as usize) % w.max(1);
    let stride = frame.stride(0);
    let y = frame.data_mut(0);
    for row in 0..h {
        for col in 0..w {
            let v = if col.abs_diff(bar) < w / 16 + 1 {
                235
            } else {
                (16 + (row * 200 / h.max(1)) + (seed as usize % 20)) as u8 as usize
            };
            y[row * stride + col] = v as u8;
        }
    }
    for plane in 1..3 {
        let stride = frame.stride(plane);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let base = (64 + (seed as usize * 37 + plane * 50) % 128) as u8;
        let data = frame.data_mut(plane);
        for row in 0..ch {
            data[row * stride..row * stride + cw].fill(base);
        }
    }
}

fn fill_tone(frame: &mut ff::frame::Audio, format: Sample, start: i64, rate: u32, seed: u64) {
    let freq = 300.0 + (seed % 700) as f64;
    let n = frame.samples();
    let sample = |i: usize| ((start + i as i64) as f64 * freq * std::f64::consts::TAU / f64::from(rate)).sin() * 0.3;
    match format {
        Sample::F32(_) => {
            let p = frame.plane_mut::<f32>(0);
            for (i, s) in p.iter_mut().take(n).enumerate() {
                *s = sample(i) as f32;
            }
        }
        _ => {
            let p = frame.plane_mut::<i16>(0);
            for (i, s) in p.iter_mut().take(n).enumerate() {
                *s = (sample(i) * 32767.0) as i16;
            }
        }
    }
}

/// Encode a clip to `path`.
pub fn write_clip(path: &Path, spec: &ClipSpec) -> Result<(), String> {
    super::probe::init();
    let mut octx = ff::format::output_as(&path, spec.format).map_err(err("creating the output"))?;
    let mut video = match &spec.video {
        Some(v) => Some(open_video(&mut octx, v, (spec.duration_secs * f64::from(v.fps)).round().max(1.0) as i64)?),
        None => None,
    };
    let mut audio = match &spec.audio {
        Some(a) => Some(open_audio(&mut octx, a, spec.duration_secs)?),
        None => None,
    };
    let mut meta = ff::Dictionary::new();
    if let Some(t) = spec.creation_time {
        meta.set("creation_time", &t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }
    meta.set("encoder", "bodycamd simulate");
    octx.set_metadata(meta);
    octx.write_header().map_err(err("writing the header"))?;
    loop {
        let vt = video.as_ref().filter(|v| v.next < v.total).map(|v| v.next as f64 / f64::from(v.fps));
        let at = audio.as_ref().filter(|a| a.next_sample < a.total).map(|a| a.next_sample as f64 / f64::from(a.rate));
        match (vt, at) {
            (None, None) => break,
            (Some(vt), at) if at.is_none_or(|at| vt <= at) => {
                let v = video.as_mut().expect("video is present");
                paint(&mut v.frame, v.next, spec.seed);
                v.frame.set_pts(Some(v.next));
                v.enc.send_frame(&v.frame).map_err(err("encoding video"))?;
                v.next += 1;
                let tb = ff::Rational(1, v.fps as i32);
                drain(&mut v.enc, v.stream, tb, &mut octx)?;
            }
            _ => {
                let a = audio.as_mut().expect("audio is present");
                let n = (a.frame_size as i64).min(a.total - a.next_sample) as usize;
                // Encoders with a fixed frame size take only whole frames.
                let n = if a.enc.frame_size() > 0 { a.frame_size } else { n };
                let mut frame = ff::frame::Audio::new(a.format, n, ChannelLayout::MONO);
                frame.set_rate(a.rate);
                fill_tone(&mut frame, a.format, a.next_sample, a.rate, spec.seed);
                frame.set_pts(Some(a.next_sample));
                a.enc.send_frame(&frame).map_err(err("encoding audio"))?;
                a.next_sample += n as i64;
                let tb = ff::Rational(1, a.rate as i32);
                drain(&mut a.enc, a.stream, tb, &mut octx)?;
            }
        }
    }
    if let Some(v) = video.as_mut() {
        v.enc.send_eof().map_err(err("flushing video"))?;
        drain(&mut v.enc, v.stream, ff::Rational(1, v.fps as i32), &mut octx)?;
    }
    if let Some(a) = audio.as_mut() {
        a.enc.send_eof().map_err(err("flushing audio"))?;
        drain(&mut a.enc, a.stream, ff::Rational(1, a.rate as i32), &mut octx)?;
    }
    octx.write_trailer().map_err(err("writing the trailer"))?;
    Ok(())
}

/// Encode one picture as a baseline JPEG (no EXIF).
pub fn encode_jpeg(width: u32, height: u32, seed: u64) -> Result<Vec<u8>, String> {
    super::probe::init();
    let codec = ff::encoder::find_by_name("mjpeg").ok_or("libav has no mjpeg encoder")?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(err("jpeg encoder"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(ff::Rational(1, 25));
    enc.set_global_quality(6 * ff::ffi::FF_QP2LAMBDA);
    enc.set_flags(ff::codec::Flags::QSCALE);
    let mut enc = enc.open_with(ff::Dictionary::new()).map_err(err("opening the jpeg encoder"))?;
    let mut frame = ff::frame::Video::new(Pixel::YUVJ420P, width, height);
    paint(&mut frame, seed as i64, seed);
    stamp_seed(&mut frame, seed);
    frame.set_pts(Some(0));
    enc.send_frame(&frame).map_err(err("encoding a picture"))?;
    enc.send_eof().map_err(err("flushing"))?;
    let mut pkt = ff::Packet::empty();
    enc.receive_packet(&mut pkt).map_err(err("receiving the picture"))?;
    Ok(pkt.data().ok_or("empty picture")?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::describe_file;

    fn clip(format: &'static str, video: Option<VideoCodec>, audio: Option<AudioCodec>) -> ClipSpec {
        ClipSpec {
            format,
            video: video.map(|codec| VideoSpec { codec, width: 160, height: 120, fps: 15 }),
            audio: audio.map(|codec| AudioSpec { codec, sample_rate: 16_000 }),
            duration_secs: 1.0,
            creation_time: Some("2026-11-26T01:30:00Z".parse().unwrap()),
            seed: 3,
        }
    }

    #[test]
    fn encodes_what_cameras_write_and_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("a.mp4", clip("mp4", Some(VideoCodec::H264), Some(AudioCodec::Aac)), "video", Some("h264"), Some("aac")),
            ("b.mp4", clip("mp4", Some(VideoCodec::Hevc), None), "video", Some("hevc"), None),
            (
                "c.avi",
                clip("avi", Some(VideoCodec::Mjpeg), Some(AudioCodec::PcmS16)),
                "video",
                Some("mjpeg"),
                Some("pcm_s16le"),
            ),
            ("d.wav", clip("wav", None, Some(AudioCodec::PcmS16)), "audio", None, Some("pcm_s16le")),
            ("e.mp3", clip("mp3", None, Some(AudioCodec::Mp3)), "audio", None, Some("mp3")),
        ];
        for (name, spec, kind, vcodec, acodec) in cases {
            let p = d.path().join(name);
            write_clip(&p, &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
            let desc = describe_file(&p);
            assert_eq!(desc.kind, kind, "{name}: {desc:?}");
            assert_eq!(desc.video_codec.as_deref(), vcodec, "{name}");
            assert_eq!(desc.audio_codec.as_deref(), acodec, "{name}");
            assert_eq!(desc.probe_error, None, "{name}: {desc:?}");
            let dur = desc.duration_secs.unwrap();
            assert!((dur - 1.0).abs() < 0.15, "{name}: duration {dur}");
            if vcodec.is_some() {
                assert_eq!((desc.width, desc.height), (Some(160), Some(120)), "{name}");
            }
        }
        let mp4 = describe_file(&d.path().join("a.mp4"));
        assert!(mp4.creation_time.unwrap().starts_with("2026-11-26T01:30:00"));
    }

    #[test]
    fn truncated_and_garbage_files_get_a_reason() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.mp4");
        write_clip(&p, &clip("mp4", Some(VideoCodec::H264), Some(AudioCodec::Aac))).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let cut = d.path().join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let desc = describe_file(&cut);
        assert_eq!(desc.kind, "video");
        assert!(desc.probe_error.is_some(), "{desc:?}");
        let junk = d.path().join("junk.bin");
        std::fs::write(&junk, vec![0x5Au8; 5000]).unwrap();
        let desc = describe_file(&junk);
        assert_eq!(desc.kind, "other");
        assert!(desc.probe_error.is_some());
        let empty = d.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(describe_file(&empty).probe_error.as_deref(), Some("empty file (0 bytes)"));
    }

    #[test]
    fn a_cut_short_fast_start_mp4_is_found_from_its_index() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.mp4");
        let mut spec = clip("mp4", Some(VideoCodec::H264), Some(AudioCodec::Aac));
        spec.duration_secs = 3.0;
        write_clip(&p, &spec).unwrap();
        // moov before mdat, as some cameras and every "fast start" file.
        let fast = d.path().join("fast.mp4");
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&p)
            .args(["-c", "copy", "-movflags", "+faststart"])
            .arg(&fast)
            .status()
            .expect("the ffmpeg CLI (a test tool) is installed");
        assert!(st.success());
        assert_eq!(describe_file(&fast).probe_error, None);
        let bytes = std::fs::read(&fast).unwrap();
        let cut = d.path().join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let desc = describe_file(&cut);
        let err = desc.probe_error.unwrap_or_default();
        assert!(err.contains("truncated: media data ends at"), "{err}");
        assert_eq!(desc.kind, "video");
        assert!((desc.duration_secs.unwrap() - 3.0).abs() < 0.2, "the header still declares the full length");
    }

    #[test]
    fn jpeg_with_exif_is_a_photo_with_its_time() {
        let d = tempfile::tempdir().unwrap();
        let jpeg = encode_jpeg(64, 48, 1).unwrap();
        let with = crate::media::exif::jpeg_with_exif(
            &jpeg,
            &crate::media::exif::exif_block("2026:11:26 09:30:00", "+08:00", "CAM1"),
        );
        let p = d.path().join("p.jpg");
        std::fs::write(&p, with).unwrap();
        let desc = describe_file(&p);
        assert_eq!(desc.kind, "photo");
        assert_eq!((desc.width, desc.height), (Some(64), Some(48)));
        assert_eq!(desc.exif_local.as_deref(), Some("2026-11-26T09:30:00"));
        assert_eq!(desc.exif_offset_minutes, Some(480));
    }
}
