//! A corpus of broken media docked at once: truncated at many offsets,
//! random bytes behind valid headers, absurd dimensions and durations, deep
//! nesting. The daemon keeps running, stores every file, gives every
//! unreadable one a clear reason, and leaves no worker behind.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// An MP4 box.
fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = be32(8 + body.len() as u32).to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&be32(w));
    ihdr.extend_from_slice(&be32(h));
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    b.extend_from_slice(&be32(13));
    b.extend_from_slice(&ihdr);
    b.extend_from_slice(&be32(crc32(&ihdr)));
    b
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in data {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn probe_workers_of(pid: u32) -> usize {
    let mut n = 0;
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ppid: u32 = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid {
            n += 1;
        }
    }
    n
}

#[test]
fn a_corpus_of_broken_media_is_stored_with_clear_reasons_and_nothing_hangs() {
    let h = Harness::new("", "[renditions]\ntimeout = \"20s\"\nmax_attempts = 1\n");
    let d = &h.dock;
    let mut truncated = Vec::new();
    // A real clip, truncated at many offsets.
    let good = clip(h.dir.path(), 7);
    for (i, frac) in [1usize, 3, 7, 12, 20, 33, 50, 66, 80, 95, 99].iter().enumerate() {
        let cut = good.len() * frac / 100;
        let name = format!("trunc-{i:02}.mp4");
        fs::write(d.join(&name), &good[..cut]).unwrap();
        truncated.push(blake3_hex(&good[..cut]));
    }
    fs::write(d.join("trunc-header.mp4"), &good[..8]).unwrap();
    // A JPEG cut short.
    let jpeg = bodycamd::media::encode::encode_jpeg(64, 48, 3).unwrap();
    fs::write(d.join("trunc.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    // Valid headers, random bodies.
    let mut ftyp = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41");
    ftyp.extend(pseudo_random(64 << 10, 1));
    fs::write(d.join("random-ftyp.mp4"), ftyp).unwrap();
    let mut riff = b"RIFF\xff\xff\xff\x7fWAVEfmt ".to_vec();
    riff.extend(pseudo_random(32 << 10, 2));
    fs::write(d.join("random-riff.wav"), riff).unwrap();
    let mut soi = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec();
    soi.extend(pseudo_random(16 << 10, 3));
    fs::write(d.join("random-soi.jpg"), soi).unwrap();
    let mut ebml = b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x23".to_vec();
    ebml.extend(pseudo_random(16 << 10, 4));
    fs::write(d.join("random-ebml.mkv"), ebml).unwrap();
    // Absurd dimensions and durations.
    fs::write(d.join("huge.png"), png_header(0x7FFF_FFFF, 0x7FFF_FFFF)).unwrap();
    fs::write(d.join("zero.png"), png_header(0, 0)).unwrap();
    let mut sof = b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01".to_vec();
    sof.extend(pseudo_random(1024, 5));
    fs::write(d.join("huge-sof.jpg"), sof).unwrap();
    let mut mvhd_body = vec![0u8; 100];
    mvhd_body[12..16].copy_from_slice(&be32(1)); // timescale 1
    mvhd_body[16..20].copy_from_slice(&be32(u32::MAX)); // duration: 136 years
    let mut forever = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isom");
    forever.extend(mp4_box(b"moov", &mp4_box(b"mvhd", &mvhd_body)));
    fs::write(d.join("forever.mp4"), forever).unwrap();
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff".to_vec();
    wav.extend(pseudo_random(4096, 6));
    fs::write(d.join("rate-zero.wav"), wav).unwrap();
    // Deep nesting: 20,000 boxes inside each other.
    let mut nested = Vec::new();
    for _ in 0..20_000 {
        nested = mp4_box(b"moov", &nested);
        if nested.len() > 8 << 20 {
            break;
        }
    }
    let mut deep = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isom");
    deep.extend(nested);
    fs::write(d.join("deep.mp4"), deep).unwrap();
    // A box claiming to be larger than the file, and one of size 1 with a
    // 64-bit size of zero.
    let mut liar = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isom");
    liar.extend_from_slice(&be32(0xFFFF_FFF0));
    liar.extend_from_slice(b"moov");
    liar.extend(pseudo_random(1024, 7));
    fs::write(d.join("liar.mp4"), liar).unwrap();
    let names: Vec<String> =
        fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();

    let mut daemon = h.spawn_daemon();
    let pid = daemon.pid();
    wait_until("every file stored and described", Duration::from_secs(120), || {
        let m = h.media();
        m.len() == names.len() && m.iter().all(|x| x["described"] == true)
    });
    // Nothing pending, nothing failed.
    let status = h.status();
    assert_eq!(status["pending"].as_array().map(|a| a.len()).unwrap_or(0), 0, "{status:#}");
    let media = h.media();
    for m in &media {
        let name = m["source_paths"][0].as_str().unwrap();
        let size = m["size"].as_u64().unwrap();
        let stored = fs::read(m["stored_path"].as_str().unwrap()).unwrap();
        assert_eq!(stored.len() as u64, size, "{name}: stored exactly");
        assert_eq!(blake3_hex(&stored), m["id"], "{name}");
        if let Some(e) = m["probe_error"].as_str() {
            assert!(e.len() >= 10 && !e.contains("panicked"), "{name}: an unclear reason {e:?}");
        }
    }
    for id in &truncated {
        let m = find(&media, id);
        assert!(
            m["probe_error"].is_string() || m["duration_secs"].as_f64().is_some_and(|s| s < 1.0),
            "a truncated clip is not reported as whole: {m:#}"
        );
    }
    for name in [
        "random-ftyp.mp4",
        "huge.png",
        "zero.png",
        "huge-sof.jpg",
        "trunc.jpg",
        "forever.mp4",
        "deep.mp4",
        "liar.mp4",
        "trunc-header.mp4",
    ] {
        let m = media.iter().find(|m| m["source_paths"][0].as_str().unwrap().ends_with(name)).unwrap();
        assert!(m["probe_error"].is_string(), "{name} is not readable media: {m:#}");
    }
    // Renditions were tried (and failed or succeeded) without taking the
    // daemon down: it still ingests.
    let fresh = clip(h.dir.path(), 8);
    fs::write(d.join("after.mp4"), &fresh).unwrap();
    wait_until("a good clip after the corpus", Duration::from_secs(60), || {
        ids(&h.media()).contains(&blake3_hex(&fresh))
    });
    wait_until("the rendition queue to drain", Duration::from_secs(120), || {
        h.db()
            .query_row("SELECT count(*) FROM rendition_jobs WHERE state IN ('queued', 'running')", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            == 0
    });
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
    // No worker outlives the daemon.
    wait_until("no children left", Duration::from_secs(10), || probe_workers_of(pid) == 0);
}
