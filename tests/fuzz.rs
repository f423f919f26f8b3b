//! Coverage-free mutational fuzzing on the stable toolchain, for the parsers
//! that see untrusted input: the configuration, station name patterns and
//! time parsing, the EXIF reader (and format sniffing), and the media prober
//! on arbitrary bytes (through its child processes, as the daemon runs it).
//!
//! Each target runs for `FUZZ_SECS` (default 1 s, so `cargo test` stays
//! fast; `scripts/fuzz.sh` runs longer). Inputs that ever failed are kept
//! in `tests/fuzz-regressions/<target>/` and replayed first, every run. A
//! failing input is written there and the test fails naming it.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x00\x01",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"moov",
    b"mdat",
    b"Exif\x00\x00",
    b"MM\x00\x2a",
    b"II\x2a\x00",
    b"{",
    b"[[",
    b"\"",
    b"(?P<",
    b"9999999999999999",
    b"-",
    b"\n",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..1 + rng.below(6) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(i..i, v.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64) + 1);
                out.drain(i..i + n);
            }
            4 => {
                let cut = rng.below(len + 1);
                out.truncate(cut);
            }
            5 if len > 0 => {
                // Repeat a chunk (deep nesting, long runs).
                let i = rng.below(len);
                let n = rng.below((len - i).min(32) + 1);
                let chunk: Vec<u8> = out[i..i + n].to_vec();
                for _ in 0..rng.below(16) {
                    out.splice(i..i, chunk.iter().copied());
                }
            }
            6 => {
                // Splice in part of another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a);
                    let i = rng.below(len + 1);
                    out.splice(i..i, other[a..b].iter().copied());
                }
            }
            _ if len > 0 => {
                let i = rng.below(len);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                for (k, b) in v.iter().enumerate() {
                    if i + k < out.len() {
                        out[i + k] = *b;
                    }
                }
            }
            _ => {}
        }
    }
    out.truncate(1 << 20);
}

fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target)
}

/// Run `f` on the kept regressions, then on mutations of `seeds` for
/// `FUZZ_SECS`. `f` returns Err for a failure that is not a panic.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, mut f: impl FnMut(&[u8]) -> Result<(), String>) -> u64 {
    let secs: f64 = std::env::var("FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    let check = |input: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<(), String>| {
        let r = catch_unwind(AssertUnwindSafe(|| f(input)));
        let problem = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        let dir = regressions_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.bin", &blake3_hex(input)[..16]));
        std::fs::write(&file, input).unwrap();
        panic!("fuzz target {target} failed (seed {seed}) on {}: {problem}", file.display());
    };
    if let Ok(d) = std::fs::read_dir(regressions_dir(target)) {
        for e in d.flatten() {
            check(&std::fs::read(e.path()).unwrap(), &mut f);
        }
    }
    for s in &seeds {
        check(s, &mut f);
    }
    let mut rng = Rng(seed);
    let (t0, mut n, mut input) = (Instant::now(), 0u64, Vec::new());
    while t0.elapsed().as_secs_f64() < secs {
        mutate(&mut rng, &seeds, &mut input);
        check(&input, &mut f);
        n += 1;
    }
    eprintln!("fuzz {target}: {n} inputs in {secs} s (seed {seed}), no failure");
    n
}

#[test]
fn fuzz_config_parser() {
    let example = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/bodycamd.toml")).unwrap();
    let seeds = vec![
        example,
        b"state_dir = \"/x\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\nsettle_secs = 1\n".to_vec(),
        b"[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname=\"a\"\nrole=\"admin\"\ntoken_sha256=\"00\"\n".to_vec(),
        b"[retention]\ndefault = \"6months\"\ntrash_days = 7\n[renditions]\npreset = \"fast\"\n".to_vec(),
    ];
    let n = fuzz("config", seeds, |data| {
        let text = String::from_utf8_lossy(data);
        if let Err(errors) = bodycamd::config::Config::parse(Path::new("/fuzz/bodycamd.toml"), &text) {
            // Every error names the file.
            for e in &errors.0 {
                if !e.to_string().contains("bodycamd.toml") {
                    return Err(format!("an error that does not name the file: {e}"));
                }
            }
        }
        Ok(())
    });
    assert!(n > 0);
}

#[test]
fn fuzz_name_patterns_and_times() {
    let seeds = vec![
        b"^(?P<device>[^/]+)/[^/]*_(?P<officer>\\d{6})_(?P<start>\\d{14})_(?P<seq>\\d{4})\\.\\w+$\nCAM1/CAM1_004711_20261126093000_0001.mp4\nAsia/Shanghai\n20261126093000\n2026-11-26T09:30:00+08:00".to_vec(),
        b"(?P<start>\\d+)\n99999999999999\nUTC\n00000000000000\n2026-02-30".to_vec(),
        b"(?P<case>[A-Z]-\\d+)_(?P<seq>\\d+)\nK-1_18446744073709551616.mp4\nEurope/London\n20260329013000\n1970-01-01T00:00:00Z".to_vec(),
    ];
    let n = fuzz("naming", seeds, |data| {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split('\n');
        let (pattern, name, tz, stamp, time) = (
            lines.next().unwrap_or(""),
            lines.next().unwrap_or(""),
            lines.next().unwrap_or("UTC"),
            lines.next().unwrap_or(""),
            lines.next().unwrap_or(""),
        );
        let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
        if let Ok(p) = bodycamd::naming::NamePattern::new(pattern, tz) {
            let _ = p.parse(name);
        }
        let _ = bodycamd::naming::parse_local_timestamp(stamp, tz);
        let _ = bodycamd::clock::parse_time(time);
        Ok(())
    });
    assert!(n > 0);
}

#[test]
fn fuzz_exif_reader_and_sniffer() {
    use bodycamd::media::exif;
    let block = exif::exif_block("2026:11:26 09:30:00", "+08:00", "CAM0042");
    let jpeg = bodycamd::media::encode::encode_jpeg(16, 16, 1).unwrap();
    let seeds = vec![
        exif::jpeg_with_exif(&jpeg, &block),
        exif::heic_with_exif(64, 48, &block),
        exif::png_with_exif(64, 48, &block),
        jpeg,
    ];
    let n = fuzz("exif", seeds, |data| {
        let _ = exif::read_photo_bytes(data);
        let _ = bodycamd::media::sniff::sniff(data);
        Ok(())
    });
    assert!(n > 0);
}

#[test]
fn fuzz_prober_on_arbitrary_bytes() {
    use bodycamd::media::worker::{ProberPool, ProberSettings};
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![
        clip(dir.path(), 1),
        bodycamd::media::encode::encode_jpeg(16, 16, 2).unwrap(),
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00".to_vec(),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let pool = rt.block_on(async {
        ProberPool::start(ProberSettings {
            exe: media_bin().into(),
            workers: 2,
            timeout: Duration::from_secs(10),
            memory_limit_bytes: 1 << 30,
        })
    });
    let path = dir.path().join("input.bin");
    let n = fuzz("probe", seeds, |data| {
        std::fs::write(&path, data).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let d = rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), pool.describe(&path)).await });
        let d = d.map_err(|_| "the prober did not answer within 30 s".to_string())?;
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(format!("describing took {:?}", t0.elapsed()));
        }
        // Whatever it is, the answer is a clear one: a kind, and a reason
        // when it could not be read.
        if d.kind.is_empty() || d.probe_error.as_ref().is_some_and(|e| e.trim().is_empty()) {
            return Err(format!("an unclear description: {d:?}"));
        }
        Ok(())
    });
    assert!(n > 0);
}
