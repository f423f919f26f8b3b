//! Recognising a file's format from its first bytes (never its extension).
//! Pure and cheap: it runs in the daemon itself, as the fall-back when the
//! prober process crashes or hangs.

use crate::domain::MediaKind;

/// How many leading bytes [`sniff`] looks at.
pub const HEAD_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: MediaKind,
    /// A short format name (`mp4`, `jpeg`, `wav`, …).
    pub format: &'static str,
}

fn s(kind: MediaKind, format: &'static str) -> Option<Sniffed> {
    Some(Sniffed { kind, format })
}

/// Recognise a format from the leading bytes of a file.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::*;
    let at = |off: usize, magic: &[u8]| head.len() >= off + magic.len() && &head[off..off + magic.len()] == magic;
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        return s(Photo, "jpeg");
    }
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return s(Photo, "png");
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return s(Photo, "gif");
    }
    if at(0, b"II*\0") || at(0, b"MM\0*") {
        return s(Photo, "tiff");
    }
    if at(4, b"ftyp") && head.len() >= 12 {
        return match &head[8..12] {
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"hevm" | b"hevs" | b"mif1" | b"msf1" => s(Photo, "heif"),
            b"avif" | b"avis" => s(Photo, "avif"),
            b"M4A " | b"M4B " | b"M4P " | b"F4A " => s(Audio, "mp4"),
            b"3gp4" | b"3gp5" | b"3gp6" | b"3g2a" => s(Video, "3gp"),
            b"qt  " => s(Video, "mov"),
            _ => s(Video, "mp4"),
        };
    }
    // QuickTime files without ftyp start with a moov/mdat/wide/free atom.
    if head.len() >= 8 && (at(4, b"moov") || at(4, b"mdat") || at(4, b"wide")) {
        return s(Video, "mov");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return s(Video, "avi");
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return s(Audio, "wav");
    }
    if at(0, b"RF64") || at(0, b"BW64") {
        return s(Audio, "wav");
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return s(Video, "matroska");
    }
    if at(0, b"#!AMR") {
        return s(Audio, "amr");
    }
    if at(0, b"ID3") {
        return s(Audio, "mp3");
    }
    if at(0, b"OggS") {
        return s(Audio, "ogg");
    }
    if at(0, b"fLaC") {
        return s(Audio, "flac");
    }
    if head.len() >= 189 && head[0] == 0x47 && head[188] == 0x47 && (head.len() < 377 || head[376] == 0x47) {
        return s(Video, "mpegts");
    }
    if at(0, &[0x00, 0x00, 0x01, 0xBA]) {
        return s(Video, "mpeg");
    }
    if head.len() >= 2 && head[0] == 0xFF {
        // ADTS AAC: 12-bit sync, layer 0. MPEG audio: 11-bit sync, layer != 0.
        if head[1] & 0xF6 == 0xF0 {
            return s(Audio, "aac");
        }
        if head[1] & 0xE0 == 0xE0 && head[1] & 0x06 != 0 {
            return s(Audio, "mp3");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_what_cameras_and_recorders_write() {
        let ftyp = |brand: &[u8]| [&[0, 0, 0, 24][..], b"ftyp", brand, &[0; 12]].concat();
        let cases: Vec<(Vec<u8>, MediaKind, &str)> = vec![
            (vec![0xFF, 0xD8, 0xFF, 0xE1], MediaKind::Photo, "jpeg"),
            (b"\x89PNG\r\n\x1a\n....".to_vec(), MediaKind::Photo, "png"),
            (ftyp(b"heic"), MediaKind::Photo, "heif"),
            (ftyp(b"isom"), MediaKind::Video, "mp4"),
            (ftyp(b"qt  "), MediaKind::Video, "mov"),
            (ftyp(b"M4A "), MediaKind::Audio, "mp4"),
            ([b"RIFF", &[0; 4][..], b"AVI LIST"].concat(), MediaKind::Video, "avi"),
            ([b"RIFF", &[0; 4][..], b"WAVEfmt "].concat(), MediaKind::Audio, "wav"),
            (b"#!AMR\n".to_vec(), MediaKind::Audio, "amr"),
            (b"ID3\x04\x00".to_vec(), MediaKind::Audio, "mp3"),
            (vec![0xFF, 0xFB, 0x90, 0x64], MediaKind::Audio, "mp3"),
            (vec![0xFF, 0xF1, 0x50, 0x80], MediaKind::Audio, "aac"),
            (vec![0x1A, 0x45, 0xDF, 0xA3, 0x01], MediaKind::Video, "matroska"),
        ];
        for (head, kind, format) in cases {
            assert_eq!(sniff(&head), Some(Sniffed { kind, format }), "{format}");
        }
        let mut ts = vec![0u8; 400];
        ts[0] = 0x47;
        ts[188] = 0x47;
        ts[376] = 0x47;
        assert_eq!(sniff(&ts).unwrap().format, "mpegts");
    }

    #[test]
    fn unknown_and_empty_are_none() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello world, not media"), None);
        assert_eq!(sniff(&[0xFF]), None);
    }
}
