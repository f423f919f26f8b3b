//! Fuzzing in every `cargo test`: the committed seeds and regression inputs
//! of every libFuzzer target (`fuzz/`, `bodycamd::fuzzing`) are replayed, and
//! each target gets a short coverage-blind mutational run (`FUZZ_SECS`,
//! default 1 s) on the stable toolchain. The coverage-guided runs are
//! `scripts/cargo-fuzz.sh` (`make fuzz`). The media prober, which runs libav
//! in child processes and so cannot be a libFuzzer target, is fuzzed here on
//! arbitrary bytes, through its processes as the daemon runs it.
//!
//! A failing input is written to `fuzz/regressions/<target>/` and the test
//! fails naming it; once fixed, commit it and it is replayed from then on.

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

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target)
}

fn regressions_dir(target: &str) -> PathBuf {
    fuzz_dir("regressions", target)
}

/// The files of a committed corpus directory.
fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    paths.sort();
    paths.iter().filter(|p| p.is_file()).map(|p| std::fs::read(p).unwrap()).collect()
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
fn every_libfuzzer_target_replays_its_seeds_and_regressions_and_survives_mutations() {
    // fuzz/Cargo.toml has a target for every entry point, and no other.
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .filter(|n| *n != "bodycamd-fuzz")
        .collect();
    let mut known: Vec<&str> = bodycamd::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    declared.sort();
    known.sort();
    assert_eq!(declared, known, "fuzz/Cargo.toml and bodycamd::fuzzing::TARGETS differ");
    for (name, target) in bodycamd::fuzzing::TARGETS {
        let seeds = files(&fuzz_dir("seeds", name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ has no seed");
        let n = fuzz(name, seeds, |data| {
            target(data);
            Ok(())
        });
        assert!(n > 0);
    }
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

/// Writes the generated seeds (EXIF in JPEG/HEIC/PNG, and one well-formed
/// request per API operation, whose first byte depends on the operations'
/// order). Run by hand when the API's operations change:
/// An export archive signed by the fuzz key (one original, its receipt, the
/// manifest and its signature), and that manifest alone, for the
/// `export_manifest` target. `cargo test --test fuzz -- --ignored
/// write_export_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand"]
fn write_export_seeds() {
    let key = bodycamd::fuzzing::fuzz_key();
    let original = b"an original's bytes".to_vec();
    let id = blake3_hex(&original);
    let mut receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fuzz_dir("seeds", "receipt").join("receipt.json")).unwrap()).unwrap();
    receipt["receipt"]["host_key"] = key.public_hex().into();
    receipt["receipt"]["id"] = id.clone().into();
    let body: bodycamd::custody::receipt::ReceiptBody = serde_json::from_value(receipt["receipt"].clone()).unwrap();
    receipt["signature"] = key.sign_hex(&body.canonical()).into();
    let receipt = serde_json::to_vec_pretty(&receipt).unwrap();
    let listed =
        |path: &str, bytes: &[u8]| serde_json::json!({"path": path, "size": bytes.len(), "blake3": blake3_hex(bytes)});
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "format": "bodycamd-export/1",
        "export": {"id": "0123456789abcdef0123456789abcdef", "case_id": "K-1", "media": [id]},
        "host_key": key.public_hex(),
        "created_at": "2026-11-30T20:00:00Z",
        "files": [listed(&format!("originals/{id}"), &original), listed(&format!("receipts/{id}.json"), &receipt)],
    }))
    .unwrap();
    let sig = key.sign_hex(&manifest);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in [
        (format!("originals/{id}"), original.as_slice()),
        (format!("receipts/{id}.json"), receipt.as_slice()),
        ("manifest.json".to_string(), manifest.as_slice()),
        ("manifest.json.sig".to_string(), sig.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, bytes).unwrap();
    }
    let archive = tar.into_inner().unwrap();
    let dir = fuzz_dir("seeds", "export_manifest");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("export.tar"), &archive).unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
}

/// `cargo test --test fuzz -- --ignored write_generated_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand"]
fn write_generated_seeds() {
    use bodycamd::media::exif;
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir("seeds", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let block = exif::exif_block("2026:11:26 09:30:00", "+08:00", "CAM0042");
    let jpeg = bodycamd::media::encode::encode_jpeg(16, 16, 1).unwrap();
    put("exif", "exif.jpg", &exif::jpeg_with_exif(&jpeg, &block));
    put("exif", "exif.heic", &exif::heic_with_exif(64, 48, &block));
    put("exif", "exif.png", &exif::png_with_exif(64, 48, &block));
    put("exif", "plain.jpg", &jpeg);

    // A receipt naming the `receipt` target's fixed key (32 bytes of 7), so
    // that mutations reach the signature check.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join(bodycamd::custody::key::FILE);
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = bodycamd::custody::key::HostKey::load_or_create(dir.path()).unwrap();
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fuzz_dir("seeds", "receipt").join("receipt.json")).unwrap()).unwrap();
    r["receipt"]["host_key"] = key.public_hex().into();
    put("receipt", "fuzz-key.json", &serde_json::to_vec_pretty(&r).unwrap());

    write_export_seeds();

    let id = "ab".repeat(32);
    let roles = bodycamd::fuzzing::api_roles();
    let role = |r: bodycamd::config::Role| roles.iter().position(|(x, _)| *x == r).unwrap() as u8;
    use bodycamd::config::Role::*;
    for (i, (method, path)) in bodycamd::fuzzing::api_operations().iter().enumerate() {
        let (who, body) = match (method.as_str(), path.as_str()) {
            ("PUT", "/api/v1/cases/{case_id}") => (CaseSystem, r#"{"title":"burglary","officers":["004711"],"devices":["CAM1"],"windows":[{"start":"2026-11-26T09:30:00Z","end":"2026-11-26T11:00:00Z"}],"buffer_minutes":5}"#.to_string()),
            ("POST", "/api/v1/cases/{case_id}/media") => (CaseSystem, format!(r#"{{"media_id":"{id}","note":"seen on the footage"}}"#)),
            ("PUT", p) if p.ends_with("/restriction") => (Admin, r#"{"restricted":true,"reason":"internal affairs"}"#.into()),
            ("PUT", p) if p.ends_with("/retention") => (Admin, r#"{"important":true,"reason":"use of force"}"#.into()),
            ("POST", p) if p.ends_with("/holds") => (Admin, r#"{"reason":"litigation hold"}"#.into()),
            ("POST", "/api/v1/exports") => (Approver, r#"{"case_id":"K-1","reason":"prosecutor's office","case_file":false}"#.into()),
            ("POST", p) if p.ends_with("/approve") || p.ends_with("/deny") => (Approver, r#"{"note":"checked"}"#.into()),
            ("POST", p) if p.ends_with("/ack") || p.ends_with("/archive") => (Admin, r#"{"note":"seen"}"#.into()),
            ("POST", p) if p.ends_with("/retry") => (Admin, r#"{"path":"CAM1/a.mp4"}"#.into()),
            ("POST", p) if p.ends_with("/restore") => (Admin, r#"{"reason":"deleted by mistake"}"#.into()),
            ("POST", p) if p.ends_with("/recover") => (Admin, format!(r#"{{"reference":"{}","reason":"same camera"}}"#, "cd".repeat(32))),
            ("GET", "/api/v1/media") => (CaseSystem, "officer=004711&from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z&limit=10".into()),
            ("GET", "/api/v1/audit") => (Auditor, "actor=fuzz-admin&limit=5".into()),
            ("GET", "/api/v1/alerts") => (Admin, "state=open&kind=overdue".into()),
            ("GET", p) if p.starts_with("/api/v1/exports") => (Approver, String::new()),
            ("GET", p) if p.starts_with("/api/v1/stations") => (Admin, String::new()),
            (_, p) if p.contains("/holds/") => (Admin, r#"{"reason":"released"}"#.into()),
            _ => (CaseSystem, String::new()),
        };
        let params: Vec<&str> = path
            .split('{')
            .skip(1)
            .map(|p| match p.split('}').next().unwrap() {
                "case_id" => "K-1",
                "station" => "dock",
                "media_id" | "id" if path.starts_with("/api/v1/alerts") => "1",
                "media_id" | "id" => id.as_str(),
                _ => "1",
            })
            .collect();
        let mut seed = vec![i as u8, role(who)];
        seed.extend_from_slice(params.join("\n").as_bytes());
        seed.push(0);
        seed.extend_from_slice(body.as_bytes());
        let name: String =
            format!("{method}{path}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        put("api_requests", &name, &seed);
    }
}
