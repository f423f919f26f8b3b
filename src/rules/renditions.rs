//! Which renditions an original gets, and how they are made: remux (stream
//! copy) when the codecs are already browser-playable, transcode only what
//! needs it.

/// What happens to one stream of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Copy,
    Encode,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every stream is copied as it is.
    Remux,
    /// At least one stream is re-encoded.
    Transcode,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Remux => "remux",
            Method::Transcode => "transcode",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playable {
    Make {
        video: Action,
        audio: Action,
        method: Method,
    },
    /// No new file: why.
    Skip(String),
}

/// What the describer found about an original.
#[derive(Debug, Clone, Default)]
pub struct Source<'a> {
    pub kind: &'a str,
    pub container: Option<&'a str>,
    pub video_codec: Option<&'a str>,
    pub audio_codec: Option<&'a str>,
    pub height: Option<u32>,
    /// The content could not be read fully.
    pub unreadable: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_height: u32,
    pub transcode_video: bool,
    pub transcode_audio: bool,
}

/// The playable rendition of an original.
pub fn playable(s: &Source<'_>, p: &Policy) -> Playable {
    let audio = match s.audio_codec {
        None => Action::None,
        Some("aac") => Action::Copy,
        Some(_) => Action::Encode,
    };
    match s.kind {
        "video" => {
            let video = match (s.video_codec, s.height) {
                (Some("h264"), Some(h)) if h <= p.max_height => Action::Copy,
                (Some("h264"), None) => Action::Copy,
                _ => Action::Encode,
            };
            let method =
                if video == Action::Encode || audio == Action::Encode { Method::Transcode } else { Method::Remux };
            if method == Method::Transcode && !p.transcode_video {
                return Playable::Skip("transcoding video is switched off (renditions.transcode_video)".into());
            }
            Playable::Make { video, audio, method }
        }
        "audio" => {
            let in_mp4 = s.container.is_some_and(|c| c.contains("mp4") || c.contains("m4a"));
            match (s.audio_codec, in_mp4) {
                (Some("aac"), true) => Playable::Skip("already browser-playable (AAC in MP4)".into()),
                (Some("mp3"), _) => Playable::Skip("already browser-playable (MP3)".into()),
                (Some("aac"), false) => {
                    Playable::Make { video: Action::None, audio: Action::Copy, method: Method::Remux }
                }
                (Some(_), _) if !p.transcode_audio => {
                    Playable::Skip("transcoding audio is switched off (renditions.transcode_audio)".into())
                }
                (Some(_), _) => {
                    Playable::Make { video: Action::None, audio: Action::Encode, method: Method::Transcode }
                }
                (None, _) => Playable::Skip("no audio stream".into()),
            }
        }
        _ => Playable::Skip(format!("{} originals get no playable rendition", s.kind)),
    }
}

/// Whether an original is a cut-short MP4/MOV whose frames can be
/// recovered: the describer recognised the container from its first bytes
/// but libav could not open it (no usable `moov` index), so no stream is
/// known. Its playable rendition is recovered from the sample data.
pub fn recoverable(s: &Source<'_>) -> bool {
    s.kind == "video" && s.unreadable && s.video_codec.is_none() && matches!(s.container, Some("mp4" | "mov" | "3gp"))
}

/// Whether an original gets a thumbnail.
pub fn thumbnail(s: &Source<'_>) -> bool {
    matches!(s.kind, "video" | "photo")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy { max_height: 1080, transcode_video: true, transcode_audio: true };

    fn video(v: &'static str, a: Option<&'static str>, h: u32) -> Source<'static> {
        Source {
            kind: "video",
            container: Some("mov,mp4,m4a,3gp,3g2,mj2"),
            video_codec: Some(v),
            audio_codec: a,
            height: Some(h),
            unreadable: false,
        }
    }

    #[test]
    fn h264_with_aac_or_silence_is_remuxed() {
        let m = |v, a| Playable::Make { video: v, audio: a, method: Method::Remux };
        assert_eq!(playable(&video("h264", Some("aac"), 1080), &P), m(Action::Copy, Action::Copy));
        assert_eq!(playable(&video("h264", None, 720), &P), m(Action::Copy, Action::None));
    }

    #[test]
    fn only_what_needs_it_is_transcoded() {
        let t = |v, a| Playable::Make { video: v, audio: a, method: Method::Transcode };
        assert_eq!(playable(&video("hevc", Some("aac"), 1080), &P), t(Action::Encode, Action::Copy));
        assert_eq!(playable(&video("mjpeg", Some("pcm_s16le"), 480), &P), t(Action::Encode, Action::Encode));
        assert_eq!(playable(&video("h264", Some("pcm_s16le"), 480), &P), t(Action::Copy, Action::Encode));
        assert_eq!(playable(&video("h264", Some("aac"), 2160), &P), t(Action::Encode, Action::Copy), "too tall");
        let off = Policy { transcode_video: false, ..P };
        assert!(matches!(playable(&video("hevc", None, 480), &off), Playable::Skip(_)));
        assert!(matches!(playable(&video("h264", None, 480), &off), Playable::Make { .. }), "remux still happens");
    }

    #[test]
    fn audio() {
        let a = |c: &'static str, codec: &'static str| Source {
            kind: "audio",
            container: Some(c),
            audio_codec: Some(codec),
            ..Default::default()
        };
        assert!(matches!(playable(&a("mp3", "mp3"), &P), Playable::Skip(_)));
        assert!(matches!(playable(&a("mov,mp4,m4a,3gp,3g2,mj2", "aac"), &P), Playable::Skip(_)));
        assert_eq!(
            playable(&a("aac", "aac"), &P),
            Playable::Make { video: Action::None, audio: Action::Copy, method: Method::Remux }
        );
        assert_eq!(
            playable(&a("wav", "pcm_s16le"), &P),
            Playable::Make { video: Action::None, audio: Action::Encode, method: Method::Transcode }
        );
        assert_eq!(
            playable(&a("amr", "amr_nb"), &P),
            Playable::Make { video: Action::None, audio: Action::Encode, method: Method::Transcode }
        );
        assert!(thumbnail(&Source { kind: "photo", ..Default::default() }));
        assert!(!thumbnail(&a("wav", "pcm_s16le")));
    }
}
