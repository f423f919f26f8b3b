//! Making renditions with libav: a browser-playable MP4/M4A (each stream
//! copied when it can be, encoded only when it must), and JPEG thumbnails.
//!
//! **Invariant:** like the prober, this parses untrusted files in C; it
//! only runs in a `bodycamd render-worker` child process, which writes to a
//! temporary file that the daemon checks and renames.

use std::path::{Path, PathBuf};

use ff::codec::packet::side_data::Type as SideDataType;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

/// What to do with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamAction {
    /// Stream copy: the packets as they are (no re-encoding).
    Copy,
    /// Decode and encode (H.264 for video, AAC for audio).
    Encode,
    /// The source has no such stream.
    None,
}

/// A playable rendition to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayableSpec {
    pub video: StreamAction,
    pub audio: StreamAction,
    /// Encoded video is scaled down to at most this height.
    pub max_height: u32,
    pub preset: String,
    pub crf: u32,
    pub audio_bitrate: u32,
    /// The original is cut short but its container still reads (an MP4
    /// whose last fragment is cut, a transport stream cut inside a
    /// packet): leave out the frames the cut spoiled, and report what was
    /// recovered.
    #[serde(default)]
    pub salvage: bool,
}

/// A rendition job for the render worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum RenderJob {
    Playable {
        input: PathBuf,
        output: PathBuf,
        spec: PlayableSpec,
    },
    Thumbnail {
        input: PathBuf,
        output: PathBuf,
        max_size: u32,
        heic: bool,
    },
    /// A playable rendition of a cut-short MP4/MOV, recovered from its
    /// sample data with the codec configuration of a reference recording
    /// (media id, stored copy), tried in order until one fits.
    Recover {
        input: PathBuf,
        output: PathBuf,
        references: Vec<(String, PathBuf)>,
        spec: PlayableSpec,
    },
}

/// What a finished rendition is (checked by reading it back).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenderReport {
    pub duration_secs: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// libavcodec's version, and the encoders used.
    pub encoder: String,
    /// A recovered rendition: what it holds and where it came from.
    #[serde(default)]
    pub recovery: Option<Box<super::recover::Recovery>>,
}

fn err(ctx: &'static str) -> impl Fn(ff::Error) -> String {
    move |e| format!("{ctx}: {e}")
}

/// Why a rendition could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderError {
    pub reason: String,
    /// Trying again cannot help: the original itself cannot be read (it
    /// does not open, has no stream to render, no picture decodes).
    pub permanent: bool,
    /// A recovery found no reference that fits: it can be made once a
    /// complete recording of the same camera arrives.
    #[serde(default)]
    pub waiting: bool,
}

impl RenderError {
    pub fn permanent(reason: impl Into<String>) -> RenderError {
        RenderError { reason: reason.into(), permanent: true, waiting: false }
    }

    pub fn waiting(reason: impl Into<String>) -> RenderError {
        RenderError { reason: reason.into(), permanent: false, waiting: true }
    }
}

/// Anything else may pass (a full disk, a worker killed): tried again.
impl From<String> for RenderError {
    fn from(reason: String) -> RenderError {
        RenderError { reason, permanent: false, waiting: false }
    }
}

impl From<&str> for RenderError {
    fn from(reason: &str) -> RenderError {
        RenderError::from(reason.to_string())
    }
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The original cannot be read at all.
fn unreadable(ctx: &'static str) -> impl Fn(ff::Error) -> RenderError {
    move |e| RenderError::permanent(format!("{ctx}: {e}"))
}

pub fn libav_version() -> String {
    let v = ff::codec::version();
    format!("libavcodec {}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Round down to an even number (at least 2): H.264 in 4:2:0 needs even sizes.
fn even(x: f64) -> u32 {
    ((x.max(0.0) as u32) / 2 * 2).max(2)
}

/// Output size for a source of `w`×`h` no taller than `max_h` (even, aspect kept).
pub fn fit_height(w: u32, h: u32, max_h: u32) -> (u32, u32) {
    if h <= max_h && w % 2 == 0 && h % 2 == 0 {
        return (w, h);
    }
    let out_h = even(f64::from(h.min(max_h)));
    let out_w = even(f64::from(w) * f64::from(out_h) / f64::from(h.max(1)));
    (out_w, out_h)
}

/// Copy a stream's display matrix (rotation) to an output stream.
fn copy_rotation(ist: &ff::format::stream::Stream<'_>, ost_index: usize, octx: &mut ff::format::context::Output) {
    for sd in ist.side_data() {
        if sd.kind() == SideDataType::DisplayMatrix {
            let data = sd.data();
            // SAFETY: the output stream exists (its index came from
            // add_stream); av_stream_new_side_data allocates `len` bytes we
            // fill completely before the header is written.
            unsafe {
                let st = *(*octx.as_mut_ptr()).streams.add(ost_index);
                let dst = ff::ffi::av_stream_new_side_data(
                    st,
                    ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                    data.len(),
                );
                if !dst.is_null() {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
                }
            }
        }
    }
}

/// A stream that is decoded, filtered (scale / resample) and encoded.
struct Encode {
    decoder: ff::decoder::Opened,
    /// Audio: the decoder's packet time base (1 / its sample rate); video
    /// packets keep the stream's time base.
    in_tb: Option<ff::Rational>,
    graph: ff::filter::Graph,
    encoder: ff::encoder::Encoder,
    tb: ff::Rational,
    ost: usize,
    video: bool,
}

enum Route {
    Copy { ost: usize, itb: ff::Rational },
    Encode(Box<Encode>),
}

fn best_video(ictx: &ff::format::context::Input) -> Option<usize> {
    ictx.streams()
        .filter(|s| s.parameters().medium() == MediaType::Video)
        .find(|s| !s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC))
        .map(|s| s.index())
}

fn best_audio(ictx: &ff::format::context::Input) -> Option<usize> {
    ictx.streams().best(MediaType::Audio).map(|s| s.index())
}

fn add_copy(
    ictx: &ff::format::context::Input,
    octx: &mut ff::format::context::Output,
    i: usize,
) -> Result<Route, String> {
    let ist = ictx.stream(i).ok_or("missing stream")?;
    let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).map_err(err("adding a stream"))?;
    ost.set_parameters(ist.parameters());
    ost.set_metadata(ist.metadata().to_owned());
    // SAFETY: the parameters belong to the stream just added; a zero tag
    // lets the MP4 muxer choose the right one.
    unsafe {
        (*ost.parameters().as_mut_ptr()).codec_tag = 0;
    }
    let index = ost.index();
    copy_rotation(&ist, index, octx);
    Ok(Route::Copy { ost: index, itb: ist.time_base() })
}

fn add_video_encode(
    ictx: &ff::format::context::Input,
    octx: &mut ff::format::context::Output,
    i: usize,
    spec: &PlayableSpec,
) -> Result<Route, String> {
    let ist = ictx.stream(i).ok_or("missing stream")?;
    let tb = ist.time_base();
    let mut dctx = ff::codec::context::Context::from_parameters(ist.parameters()).map_err(err("video decoder"))?;
    dctx.set_threading(ff::threading::Config { kind: ff::threading::Type::Frame, count: 0, ..Default::default() });
    let mut decoder = dctx.decoder().video().map_err(err("video decoder"))?;
    decoder.set_packet_time_base(tb);
    let (w, h) = fit_height(decoder.width(), decoder.height(), spec.max_height);
    let mut graph = ff::filter::Graph::new();
    let sar = decoder.aspect_ratio();
    let sar = if sar.numerator() > 0 { sar } else { ff::Rational(1, 1) };
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        decoder.width(),
        decoder.height(),
        ff::ffi::AVPixelFormat::from(decoder.format()) as i32,
        tb.numerator(),
        tb.denominator(),
        sar.numerator(),
        sar.denominator()
    );
    graph.add(&ff::filter::find("buffer").ok_or("no buffer filter")?, "in", &args).map_err(err("video filter"))?;
    graph
        .add(&ff::filter::find("buffersink").ok_or("no buffersink filter")?, "out", "")
        .map_err(err("video filter"))?;
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(&format!("scale={w}:{h}:flags=bicubic,format=yuv420p")))
        .map_err(err("video filter"))?;
    graph.validate().map_err(err("video filter"))?;
    let codec = ff::encoder::find_by_name("libx264").ok_or("libav has no libx264 encoder")?;
    let global = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let mut ost = octx.add_stream(codec).map_err(err("adding the video stream"))?;
    ost.set_metadata(ist.metadata().to_owned());
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(err("video encoder"))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(tb);
    let rate = ist.avg_frame_rate();
    if rate.numerator() > 0 {
        enc.set_frame_rate(Some(rate));
    }
    if global {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ff::Dictionary::new();
    opts.set("preset", &spec.preset);
    opts.set("crf", &spec.crf.to_string());
    let encoder = enc.open_with(opts).map_err(err("opening libx264"))?;
    ost.set_parameters(&encoder);
    ost.set_time_base(tb);
    let index = ost.index();
    copy_rotation(&ist, index, octx);
    Ok(Route::Encode(Box::new(Encode {
        decoder: decoder.0,
        in_tb: None,
        graph,
        encoder: encoder.0 .0,
        tb,
        ost: index,
        video: true,
    })))
}

fn add_audio_encode(
    ictx: &ff::format::context::Input,
    octx: &mut ff::format::context::Output,
    i: usize,
    spec: &PlayableSpec,
) -> Result<Route, String> {
    let ist = ictx.stream(i).ok_or("missing stream")?;
    let dctx = ff::codec::context::Context::from_parameters(ist.parameters()).map_err(err("audio decoder"))?;
    let mut decoder = dctx.decoder().audio().map_err(err("audio decoder"))?;
    let rate = decoder.rate().max(1);
    let tb = ff::Rational(1, rate as i32);
    decoder.set_packet_time_base(tb);
    let channels = decoder.channels().max(1);
    let in_layout = match decoder.channel_layout() {
        l if l.bits() != 0 => l,
        _ => ff::ChannelLayout::default(i32::from(channels)),
    };
    let out_layout = if channels >= 2 { ff::ChannelLayout::STEREO } else { ff::ChannelLayout::MONO };
    let codec = ff::encoder::find_by_name("aac").ok_or("libav has no aac encoder")?;
    let global = octx.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
    let mut ost = octx.add_stream(codec).map_err(err("adding the audio stream"))?;
    ost.set_metadata(ist.metadata().to_owned());
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().audio().map_err(err("audio encoder"))?;
    let out_rate = if (8000..=96000).contains(&rate) { rate } else { 48000 };
    enc.set_rate(out_rate as i32);
    enc.set_channel_layout(out_layout);
    #[allow(deprecated)]
    enc.set_channels(out_layout.channels());
    enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
    enc.set_bit_rate(spec.audio_bitrate as usize);
    enc.set_time_base(ff::Rational(1, out_rate as i32));
    if global {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc.open_with(ff::Dictionary::new()).map_err(err("opening the aac encoder"))?;
    ost.set_parameters(&encoder);
    ost.set_time_base(ff::Rational(1, out_rate as i32));
    let mut graph = ff::filter::Graph::new();
    let args = format!(
        "time_base=1/{rate}:sample_rate={rate}:sample_fmt={}:channel_layout=0x{:x}",
        decoder.format().name(),
        in_layout.bits()
    );
    graph.add(&ff::filter::find("abuffer").ok_or("no abuffer filter")?, "in", &args).map_err(err("audio filter"))?;
    graph
        .add(&ff::filter::find("abuffersink").ok_or("no abuffersink filter")?, "out", "")
        .map_err(err("audio filter"))?;
    {
        let mut out = graph.get("out").ok_or("no sink")?;
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        out.set_sample_rate(encoder.rate());
    }
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse("anull"))
        .map_err(err("audio filter"))?;
    graph.validate().map_err(err("audio filter"))?;
    graph.get("out").ok_or("no sink")?.sink().set_frame_size(encoder.frame_size());
    let index = ost.index();
    Ok(Route::Encode(Box::new(Encode {
        decoder: decoder.0,
        in_tb: Some(tb),
        graph,
        encoder: encoder.0 .0,
        tb: ff::Rational(1, out_rate as i32),
        ost: index,
        video: false,
    })))
}

fn write_packets(
    enc: &mut ff::encoder::Encoder,
    ost: usize,
    from: ff::Rational,
    octx: &mut ff::format::context::Output,
) -> Result<(), String> {
    let to = octx.stream(ost).ok_or("missing output stream")?.time_base();
    let mut pkt = ff::Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(ost);
        pkt.rescale_ts(from, to);
        pkt.write_interleaved(octx).map_err(err("writing"))?;
    }
    Ok(())
}

impl Encode {
    fn what(&self) -> &'static str {
        if self.video {
            "video"
        } else {
            "audio"
        }
    }

    /// An empty frame of this stream's kind.
    fn frame(&self) -> Box<dyn std::ops::DerefMut<Target = ff::Frame>> {
        if self.video {
            Box::new(ff::frame::Video::empty())
        } else {
            Box::new(ff::frame::Audio::empty())
        }
    }

    fn filter_and_encode(&mut self, octx: &mut ff::format::context::Output) -> Result<(), String> {
        let mut filtered = self.frame();
        while self.graph.get("out").ok_or("no sink")?.sink().frame(&mut filtered).is_ok() {
            if self.video {
                // Let the encoder choose frame types (keep no I/P/B hints).
                // SAFETY: the frame is valid and owned here.
                unsafe { (*filtered.as_mut_ptr()).pict_type = ff::ffi::AVPictureType::AV_PICTURE_TYPE_NONE };
            }
            let what = self.what();
            self.encoder.send_frame(&filtered).map_err(|e| format!("encoding {what}: {e}"))?;
            write_packets(&mut self.encoder, self.ost, self.tb, octx)?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        pkt: &mut ff::Packet,
        itb: ff::Rational,
        octx: &mut ff::format::context::Output,
    ) -> Result<(), String> {
        if let Some(to) = self.in_tb {
            pkt.rescale_ts(itb, to);
        }
        if self.decoder.send_packet(pkt).is_ok() {
            self.decode(octx)?;
        }
        Ok(())
    }

    fn decode(&mut self, octx: &mut ff::format::context::Output) -> Result<(), String> {
        let mut frame = self.frame();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let ts = frame.timestamp();
            frame.set_pts(ts);
            let what = self.what();
            self.graph
                .get("in")
                .ok_or("no source")?
                .source()
                .add(&frame)
                .map_err(|e| format!("filtering {what}: {e}"))?;
            self.filter_and_encode(octx)?;
        }
        Ok(())
    }

    fn finish(&mut self, octx: &mut ff::format::context::Output) -> Result<(), String> {
        let _ = self.decoder.send_eof();
        self.decode(octx)?;
        let _ = self.graph.get("in").ok_or("no source")?.source().flush();
        self.filter_and_encode(octx)?;
        let _ = self.encoder.send_eof();
        write_packets(&mut self.encoder, self.ost, self.tb, octx)
    }
}

/// Make a playable MP4 (or audio-only MP4) from `input` at `output`.
pub fn playable(input: &Path, output: &Path, spec: &PlayableSpec) -> Result<RenderReport, RenderError> {
    super::probe::init();
    let mut ictx = ff::format::input(&input).map_err(unreadable("opening the original"))?;
    let mut octx = ff::format::output_as(&output, "mp4").map_err(err("creating the rendition"))?;
    let mut routes: Vec<(usize, Route)> = Vec::new();
    if let Some(i) = best_video(&ictx).filter(|_| spec.video != StreamAction::None) {
        let r = match spec.video {
            StreamAction::Copy => add_copy(&ictx, &mut octx, i)?,
            _ => add_video_encode(&ictx, &mut octx, i, spec)?,
        };
        routes.push((i, r));
    }
    if let Some(i) = best_audio(&ictx).filter(|_| spec.audio != StreamAction::None) {
        let r = match spec.audio {
            StreamAction::Copy => add_copy(&ictx, &mut octx, i)?,
            _ => add_audio_encode(&ictx, &mut octx, i, spec)?,
        };
        routes.push((i, r));
    }
    if routes.is_empty() {
        return Err(RenderError::permanent("the original has no audio or video stream to render"));
    }
    octx.set_metadata(ictx.metadata().to_owned());
    let mut opts = ff::Dictionary::new();
    opts.set("movflags", "+faststart");
    octx.write_header_with(opts).map_err(err("writing the header"))?;
    let mut errors = 0;
    let mut salvage = spec.salvage.then(|| Salvage::new(input, &ictx));
    loop {
        let mut pkt = ff::Packet::empty();
        match pkt.read(&mut ictx) {
            Ok(()) => errors = 0,
            Err(ff::Error::Eof) => break,
            Err(e) => {
                errors += 1;
                if errors >= 64 {
                    return Err(RenderError::permanent(format!("reading the original: {e}")));
                }
                continue;
            }
        }
        if !routes.iter().any(|(i, _)| *i == pkt.stream()) {
            continue;
        }
        let pkt = match salvage.as_mut() {
            // A cut original: each packet is held until the next of its
            // stream shows it was whole.
            Some(s) => match s.take(pkt) {
                Some(p) => p,
                None => continue,
            },
            None => pkt,
        };
        let mut pkt = pkt;
        let Some((_, route)) = routes.iter_mut().find(|(i, _)| *i == pkt.stream()) else { continue };
        let itb = ictx.stream(pkt.stream()).map(|s| s.time_base()).unwrap_or(ff::Rational(1, 1));
        match route {
            Route::Copy { ost, itb } => {
                let to = octx.stream(*ost).ok_or("missing output stream")?.time_base();
                pkt.rescale_ts(*itb, to);
                pkt.set_position(-1);
                pkt.set_stream(*ost);
                pkt.write_interleaved(&mut octx).map_err(err("writing"))?;
            }
            Route::Encode(e) => e.send(&mut pkt, itb, &mut octx)?,
        }
    }
    for (_, r) in routes.iter_mut() {
        match r {
            Route::Encode(e) => e.finish(&mut octx)?,
            Route::Copy { .. } => {}
        }
    }
    octx.write_trailer().map_err(err("writing the trailer"))?;
    let salvaged = salvage.map(|s| s.report(&ictx));
    drop(octx);
    let mut encoders = vec![libav_version()];
    if spec.video == StreamAction::Encode {
        encoders.push(format!("libx264 preset={} crf={}", spec.preset, spec.crf));
    }
    if spec.audio == StreamAction::Encode {
        encoders.push(format!("aac {} kb/s", spec.audio_bitrate / 1000));
    }
    let info = super::probe::probe_av(output)?;
    let recovery = salvaged.map(|mut r| {
        r.seconds = info.duration_secs.unwrap_or(0.0);
        Box::new(r)
    });
    Ok(RenderReport {
        duration_secs: info.duration_secs,
        width: info.video.as_ref().map(|v| v.width),
        height: info.video.as_ref().map(|v| v.height),
        video_codec: info.video.map(|v| v.codec),
        audio_codec: info.audio.map(|a| a.codec),
        encoder: encoders.join("; "),
        recovery,
    })
}

/// Reading a cut-short original whose container still reads: a packet is
/// passed on only once the next packet of its stream has been read (so the
/// last one of each stream, which the cut may have spoiled, is left out),
/// and only if it is whole (libav marks a sample that ends past the end of
/// the file corrupt).
struct Salvage {
    /// Hold packets back (a transport stream: its last packets may be cut
    /// inside; an MP4's samples say where they end).
    hold: bool,
    held: std::collections::HashMap<usize, ff::Packet>,
    video: Option<usize>,
    video_frames: u64,
    audio_frames: u64,
    dropped: u64,
    from: Option<u64>,
    to: u64,
    file_size: u64,
}

impl Salvage {
    fn new(input: &Path, ictx: &ff::format::context::Input) -> Salvage {
        Salvage {
            hold: ictx.format().name().contains("mpegts"),
            held: Default::default(),
            video: best_video(ictx),
            video_frames: 0,
            audio_frames: 0,
            dropped: 0,
            from: None,
            to: 0,
            file_size: std::fs::metadata(input).map(|m| m.len()).unwrap_or(0),
        }
    }

    fn whole(&self, p: &ff::Packet) -> bool {
        let end = u64::try_from(p.position()).ok().map(|pos| pos + p.size() as u64);
        !p.is_corrupt() && end.is_none_or(|e| e <= self.file_size)
    }

    /// The packet to pass on now, if any.
    fn take(&mut self, pkt: ff::Packet) -> Option<ff::Packet> {
        if !self.whole(&pkt) {
            self.dropped += 1;
            return None;
        }
        let out = if self.hold { self.held.insert(pkt.stream(), pkt)? } else { pkt };
        if let Ok(pos) = u64::try_from(out.position()) {
            self.from = Some(self.from.map_or(pos, |f| f.min(pos)));
            self.to = self.to.max(pos + out.size() as u64);
        }
        if Some(out.stream()) == self.video {
            self.video_frames += 1;
        } else {
            self.audio_frames += 1;
        }
        Some(out)
    }

    fn report(self, ictx: &ff::format::context::Input) -> super::recover::Recovery {
        let codec = |i: Option<usize>| i.and_then(|i| ictx.stream(i)).map(|s| s.parameters().id().name().to_string());
        super::recover::Recovery {
            reference: None,
            video_frames: self.video_frames,
            audio_frames: self.audio_frames,
            seconds: 0.0,
            bytes_from: self.from.unwrap_or(0),
            bytes_to: self.to,
            bytes_skipped: 0,
            undecodable: self.dropped + self.held.len() as u64,
            frames_damaged: 0,
            video_codec: codec(self.video).unwrap_or_default(),
            audio_codec: codec(best_audio(ictx)),
        }
    }
}

/// Make a JPEG thumbnail (at most `max_size` on its longer side) of a
/// video (a frame about 10% in) or a photo. HEIC photos are first decoded
/// with libheif's `heif-convert`, since this FFmpeg cannot read HEIF.
pub fn thumbnail(input: &Path, output: &Path, max_size: u32, heic: bool) -> Result<RenderReport, RenderError> {
    match thumbnail_at(input, output, max_size, heic, true) {
        // A still picture (or a stream that cannot seek) has nothing 10% in.
        Err(e) if e.reason == NO_FRAME => thumbnail_at(input, output, max_size, heic, false),
        r => r,
    }
}

const NO_FRAME: &str = "no frame could be decoded";

fn thumbnail_at(
    input: &Path,
    output: &Path,
    max_size: u32,
    heic: bool,
    seek: bool,
) -> Result<RenderReport, RenderError> {
    super::probe::init();
    let converted;
    let input = if heic {
        let png = output.with_extension("heif.png");
        let out = std::process::Command::new("heif-convert")
            .arg(input)
            .arg(&png)
            .output()
            .map_err(|e| format!("cannot run heif-convert (libheif-examples): {e}"))?;
        if !out.status.success() || !png.exists() {
            return Err(RenderError::permanent(format!(
                "heif-convert could not decode the photo: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        converted = scopeguard(png);
        converted.0.as_path()
    } else {
        input
    };
    let mut ictx = ff::format::input(&input).map_err(unreadable("opening the original"))?;
    let vi = best_video(&ictx).ok_or_else(|| RenderError::permanent("no picture in the original"))?;
    let (tb, duration) = {
        let st = ictx.stream(vi).ok_or("missing stream")?;
        (st.time_base(), ictx.duration())
    };
    let dctx = ff::codec::context::Context::from_parameters(ictx.stream(vi).ok_or("missing stream")?.parameters())
        .map_err(err("video decoder"))?;
    let mut decoder = dctx.decoder().video().map_err(err("video decoder"))?;
    decoder.set_packet_time_base(tb);
    // About 10% in: past the usual black or shaky first frames.
    let mut target: Option<i64> = None;
    if seek && duration > 0 {
        let at = duration / 10;
        if ictx.seek(at, ..at).is_ok() {
            let secs = at as f64 / f64::from(ff::ffi::AV_TIME_BASE);
            target = Some((secs / f64::from(tb)).round() as i64);
        }
    }
    let mut frame = ff::frame::Video::empty();
    let mut picked: Option<ff::frame::Video> = None;
    let mut errors = 0;
    'read: loop {
        let mut pkt = ff::Packet::empty();
        match pkt.read(&mut ictx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => {
                let _ = decoder.send_eof();
                while decoder.receive_frame(&mut frame).is_ok() {
                    picked = Some(frame.clone());
                }
                break;
            }
            Err(_) => {
                errors += 1;
                if errors > 64 {
                    break;
                }
                continue;
            }
        }
        if pkt.stream() != vi {
            continue;
        }
        if decoder.send_packet(&pkt).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            let ts = frame.timestamp().unwrap_or(0);
            picked = Some(frame.clone());
            if target.is_none_or(|t| ts >= t) {
                break 'read;
            }
        }
    }
    let src = picked.ok_or_else(|| RenderError::permanent(NO_FRAME))?;
    let (w, h) = (src.width(), src.height());
    let scale = (f64::from(max_size) / f64::from(w.max(h).max(1))).min(1.0);
    let (tw, th) = (even(f64::from(w) * scale), even(f64::from(h) * scale));
    let mut sws = ff::software::scaling::Context::get(
        src.format(),
        w,
        h,
        ff::format::Pixel::YUVJ420P,
        tw,
        th,
        ff::software::scaling::Flags::BICUBIC,
    )
    .map_err(err("scaling"))?;
    let mut scaled = ff::frame::Video::empty();
    sws.run(&src, &mut scaled).map_err(err("scaling"))?;
    scaled.set_pts(Some(0));
    let codec = ff::encoder::find_by_name("mjpeg").ok_or("libav has no mjpeg encoder")?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(err("jpeg encoder"))?;
    enc.set_width(tw);
    enc.set_height(th);
    enc.set_format(ff::format::Pixel::YUVJ420P);
    enc.set_time_base(ff::Rational(1, 25));
    enc.set_global_quality(3 * ff::ffi::FF_QP2LAMBDA);
    enc.set_flags(ff::codec::Flags::QSCALE);
    let mut enc = enc.open_with(ff::Dictionary::new()).map_err(err("opening the jpeg encoder"))?;
    enc.send_frame(&scaled).map_err(err("encoding the thumbnail"))?;
    let _ = enc.send_eof();
    let mut pkt = ff::Packet::empty();
    enc.receive_packet(&mut pkt).map_err(err("encoding the thumbnail"))?;
    std::fs::write(output, pkt.data().ok_or("empty thumbnail")?).map_err(|e| format!("writing the thumbnail: {e}"))?;
    Ok(RenderReport {
        duration_secs: Some(0.0),
        width: Some(tw),
        height: Some(th),
        video_codec: Some("mjpeg".into()),
        audio_codec: None,
        encoder: format!("{}; mjpeg q=3", libav_version()),
        recovery: None,
    })
}

/// Removes a file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scopeguard(p: PathBuf) -> TempFile {
    TempFile(p)
}

/// The order of an MP4's top-level boxes: whether `moov` comes before
/// `mdat` ("fast start": playable while downloading).
pub fn moov_before_mdat(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        f.read_exact(&mut h[..8])?;
        let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        if size == 1 {
            f.read_exact(&mut h[8..16])?;
            size = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
        } else if size == 0 {
            size = len - pos;
        }
        match &h[4..8] {
            b"moov" => return Ok(true),
            b"mdat" => return Ok(false),
            _ => {}
        }
        if size < 8 {
            return Ok(false);
        }
        pos += size;
    }
    Ok(false)
}

/// Run one job (in the render worker).
pub fn run_job(job: &RenderJob) -> Result<RenderReport, RenderError> {
    match job {
        RenderJob::Playable { input, output, spec } => {
            let report = playable(input, output, spec)?;
            if !moov_before_mdat(output).map_err(|e| e.to_string())? {
                return Err("the rendition is not fast-start (mdat before moov)".into());
            }
            Ok(report)
        }
        RenderJob::Thumbnail { input, output, max_size, heic } => thumbnail(input, output, *max_size, *heic),
        RenderJob::Recover { input, output, references, spec } => {
            let report = recover_playable(input, output, references, spec)?;
            if !moov_before_mdat(output).map_err(|e| e.to_string())? {
                return Err("the rendition is not fast-start (mdat before moov)".into());
            }
            Ok(report)
        }
    }
}

/// Recover a cut-short recording with the first reference that fits, then
/// make it playable: kept as recovered when it is H.264 with AAC (or no
/// audio), otherwise what a browser cannot play is encoded.
fn recover_playable(
    input: &Path,
    output: &Path,
    references: &[(String, PathBuf)],
    spec: &PlayableSpec,
) -> Result<RenderReport, RenderError> {
    use super::recover::{recover, RecoverError};
    if references.is_empty() {
        // Without sample data no reference can help: say so now.
        let f = std::fs::File::open(input).map_err(|e| format!("opening the original: {e}"))?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        if super::recover::mdat_range(&f, len).map_err(|e| e.to_string())?.is_none() {
            return Err(RenderError::permanent("not recoverable: the file has no mdat box, so no recorded frames"));
        }
        return Err(RenderError::waiting(
            "waiting for a complete recording of the same camera to supply the codec configuration",
        ));
    }
    let recovered = scopeguard(output.with_extension("recovered.mp4"));
    let mut unfit = Vec::new();
    for (id, reference) in references {
        let mut rec = match recover(input, reference, &recovered.0) {
            Ok(r) => r,
            Err(RecoverError::NotRecoverable(why)) => {
                return Err(RenderError::permanent(format!("not recoverable: {why}")))
            }
            Err(RecoverError::Unsuitable(why)) => {
                unfit.push(format!("{}: {why}", &id[..id.len().min(12)]));
                continue;
            }
            Err(RecoverError::Io(e)) => return Err(RenderError::from(e)),
        };
        rec.reference = Some(id.clone());
        let video = if rec.video_codec == "h264" { StreamAction::Copy } else { StreamAction::Encode };
        let audio = match rec.audio_codec.as_deref() {
            None => StreamAction::None,
            Some("aac") => StreamAction::Copy,
            Some(_) => StreamAction::Encode,
        };
        let mut report = if video == StreamAction::Copy && audio != StreamAction::Encode {
            std::fs::rename(&recovered.0, output).map_err(|e| format!("keeping the recovered rendition: {e}"))?;
            let info = super::probe::probe_av(output)?;
            RenderReport {
                duration_secs: info.duration_secs,
                width: info.video.as_ref().map(|v| v.width),
                height: info.video.as_ref().map(|v| v.height),
                video_codec: info.video.map(|v| v.codec),
                audio_codec: info.audio.map(|a| a.codec),
                encoder: format!("{}; recovered, stream copy", libav_version()),
                recovery: None,
            }
        } else {
            let mut r = playable(&recovered.0, output, &PlayableSpec { video, audio, ..spec.clone() })?;
            r.encoder = format!("{}; recovered", r.encoder);
            r
        };
        report.recovery = Some(Box::new(rec));
        return Ok(report);
    }
    Err(RenderError::waiting(format!("no recording of the same camera fits as a reference yet ({})", unfit.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encode::*;

    fn spec(video: StreamAction, audio: StreamAction) -> PlayableSpec {
        PlayableSpec {
            video,
            audio,
            max_height: 1080,
            preset: "ultrafast".into(),
            crf: 28,
            audio_bitrate: 96_000,
            salvage: false,
        }
    }

    fn clip(dir: &Path, name: &str, format: &'static str, v: Option<VideoCodec>, a: Option<AudioCodec>) -> PathBuf {
        let p = dir.join(name);
        write_clip(
            &p,
            &ClipSpec {
                format,
                video: v.map(|codec| VideoSpec { codec, width: 320, height: 240, fps: 15 }),
                audio: a.map(|codec| AudioSpec { codec, sample_rate: 16_000 }),
                duration_secs: 2.0,
                creation_time: Some("2026-11-26T01:30:00Z".parse().unwrap()),
                seed: 9,
            },
        )
        .unwrap();
        p
    }

    #[test]
    fn remux_copies_and_transcode_encodes_with_durations_kept() {
        let d = tempfile::tempdir().unwrap();
        let h264 = clip(d.path(), "a.mp4", "mp4", Some(VideoCodec::H264), Some(AudioCodec::Aac));
        let hevc = clip(d.path(), "b.mp4", "mp4", Some(VideoCodec::Hevc), Some(AudioCodec::Aac));
        let mjpeg = clip(d.path(), "c.avi", "avi", Some(VideoCodec::Mjpeg), Some(AudioCodec::PcmS16));
        let wav = clip(d.path(), "d.wav", "wav", None, Some(AudioCodec::PcmS16));
        for (src, v, a) in [
            (&h264, StreamAction::Copy, StreamAction::Copy),
            (&hevc, StreamAction::Encode, StreamAction::Copy),
            (&mjpeg, StreamAction::Encode, StreamAction::Encode),
            (&wav, StreamAction::None, StreamAction::Encode),
        ] {
            let out = d.path().join(format!("{}.out.mp4", src.file_name().unwrap().to_string_lossy()));
            let job = RenderJob::Playable { input: src.clone(), output: out.clone(), spec: spec(v, a) };
            let r = run_job(&job).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
            let want_v = if v == StreamAction::None { None } else { Some("h264") };
            assert_eq!(r.video_codec.as_deref(), want_v, "{}", src.display());
            assert_eq!(r.audio_codec.as_deref(), Some("aac"), "{}", src.display());
            let src_dur = crate::media::probe::probe_av(src).unwrap().duration_secs.unwrap();
            assert!(
                (r.duration_secs.unwrap() - src_dur).abs() <= 0.1,
                "{}: {} vs {src_dur}",
                src.display(),
                r.duration_secs.unwrap()
            );
            assert!(moov_before_mdat(&out).unwrap());
        }
    }

    #[test]
    fn video_is_scaled_to_the_height_cap() {
        let d = tempfile::tempdir().unwrap();
        let src = clip(d.path(), "a.mp4", "mp4", Some(VideoCodec::Hevc), None);
        let out = d.path().join("o.mp4");
        let mut s = spec(StreamAction::Encode, StreamAction::None);
        s.max_height = 120;
        let r = playable(&src, &out, &s).unwrap();
        assert_eq!((r.width, r.height), (Some(160), Some(120)));
        assert_eq!(r.audio_codec, None);
    }

    #[test]
    fn thumbnails_of_video_and_photos_decode() {
        let d = tempfile::tempdir().unwrap();
        let src = clip(d.path(), "a.mp4", "mp4", Some(VideoCodec::H264), None);
        let out = d.path().join("t.jpg");
        let r = thumbnail(&src, &out, 100, false).unwrap();
        assert_eq!((r.width, r.height), (Some(100), Some(74)));
        let back = crate::media::describe_file(&out);
        assert_eq!(back.kind, "photo");
        assert_eq!((back.width, back.height), (Some(100), Some(74)));
        let jpg = d.path().join("p.jpg");
        std::fs::write(&jpg, encode_jpeg(640, 480, 1).unwrap()).unwrap();
        let r = thumbnail(&jpg, &d.path().join("pt.jpg"), 160, false).unwrap();
        assert_eq!((r.width, r.height), (Some(160), Some(120)));
    }

    #[test]
    fn fit_keeps_the_aspect_and_even_sizes() {
        assert_eq!(fit_height(1920, 1080, 1080), (1920, 1080));
        assert_eq!(fit_height(3840, 2160, 1080), (1920, 1080));
        assert_eq!(fit_height(1440, 1080, 720), (960, 720));
        assert_eq!(fit_height(321, 241, 1080), (318, 240));
    }
}
