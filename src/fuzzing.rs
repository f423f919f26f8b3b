//! Entry points for the fuzz targets (`fuzz/`, libFuzzer through `cargo
//! fuzz`): each takes arbitrary bytes, feeds them to one parser of untrusted
//! input, and panics only when a property the daemon relies on is broken
//! (a panic is what the fuzzer reports). The same functions replay the
//! committed corpora and regression inputs in every `cargo test`
//! (`tests/fuzz.rs`), so a crash once found stays fixed.
//!
//! Not here: libav itself (it runs only in the confined prober and render
//! children; `tests/fuzz.rs` throws arbitrary bytes at those processes).

use std::path::Path;

/// A fuzz target: arbitrary bytes in; a panic is a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("naming", naming),
    ("exif", exif),
    ("mp4_boxes", mp4_boxes),
    ("recover_walk", recover_walk),
    ("worker_replies", worker_replies),
    ("http_headers", http_headers),
    ("receipt", receipt),
    ("export_manifest", export_manifest),
    ("api_requests", api_requests),
];

/// The configuration file: errors, never a panic, and every error names the
/// file (an administrator must know where to look).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(errors) = crate::config::Config::parse(Path::new("/fuzz/bodycamd.toml"), &text) {
        for e in &errors.0 {
            assert!(e.to_string().contains("bodycamd.toml"), "an error that does not name the file: {e}");
        }
    }
}

/// Station name patterns (from the configuration), file names matched
/// against them, local timestamps in a station's zone, and the times the
/// CLI and API accept. Lines: pattern, name, zone, stamp, time.
pub fn naming(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (pattern, name, tz, stamp, time) = (next(), next(), next(), next(), next());
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    if let Ok(p) = crate::naming::NamePattern::new(pattern, tz) {
        let _ = p.parse(name);
    }
    let _ = crate::naming::parse_local_timestamp(stamp, tz);
    if let Ok(t) = crate::clock::parse_time(time) {
        // What is accepted can be written back and read again.
        let again = crate::clock::parse_time(&crate::clock::rfc3339(t));
        assert_eq!(again.ok(), Some(t), "{time:?} does not survive a round trip");
    }
}

/// EXIF in JPEG, HEIC and PNG, and the format sniffer (both run in the
/// daemon, on the first bytes of every docked file).
pub fn exif(data: &[u8]) {
    let _ = crate::media::exif::read_photo_bytes(data);
    let _ = crate::media::sniff::sniff(data);
}

/// The MP4/MOV top-level box walk that finds a file cut short.
pub fn mp4_boxes(data: &[u8]) {
    let verdict = crate::media::probe::boxes_complete(std::io::Cursor::new(data), data.len() as u64);
    if let Some(why) = verdict {
        assert!(why.starts_with("truncated") || why.starts_with("damaged"), "{why}");
    }
}

/// Recovering a cut-short recording: finding `mdat` in what may be any
/// bytes, and walking sample data for H.264/H.265 access units (the first
/// byte picks the codec and NAL length size). Every unit found lies inside
/// the data, after the one before it, and is not empty.
pub fn recover_walk(data: &[u8]) {
    use crate::media::recover::{mdat_range, video_units};
    if let Ok(Some((start, end))) = mdat_range(&data, data.len() as u64) {
        assert!(start <= end && end <= data.len() as u64, "mdat {start}..{end} of {} bytes", data.len());
    }
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut last_end = 0u64;
    for (at, len, _) in video_units(rest, mode & 1 == 1, [4, 2, 1, 4][usize::from(mode >> 1 & 3)]) {
        assert!(len > 0 && at >= last_end && at + len <= rest.len() as u64, "unit {at}+{len} after {last_end}");
        last_end = at + len;
    }
}

/// What a compromised prober or render worker could send back, and what
/// the daemon makes of it: a description becomes recording times, a
/// deadline assessment and alerts; a render report is checked against the
/// job. The first byte picks which.
pub fn worker_replies(data: &[u8]) {
    use crate::index::ingest::DescribeInputs;
    let Some((&which, line)) = data.split_first() else { return };
    let line = String::from_utf8_lossy(line);
    if which % 2 == 0 {
        let Ok(d) = serde_json::from_str::<crate::media::Description>(&line) else { return };
        let inputs = DescribeInputs {
            station: "dock".into(),
            name_start_ms: Some(1_764_115_200_000),
            source_mtime_ms: Some(1_764_118_800_000),
            first_seen_ms: 1_764_120_000_000,
            ingested_at_ms: 1_764_120_001_000,
        };
        let tz = if which & 4 == 0 { chrono_tz::UTC } else { chrono_tz::Asia::Shanghai };
        let described = crate::pipeline::describe::to_described(&d, &inputs, tz, chrono::Duration::hours(24));
        let _ = crate::pipeline::describe::media_alerts(
            "0".repeat(64).as_str(),
            &described,
            &inputs,
            &serde_json::json!({}),
        );
    } else {
        let Ok(answer) = serde_json::from_str::<crate::media::worker::RenderAnswer>(&line) else { return };
        if let crate::media::worker::RenderAnswer::Ok(report) = answer {
            for kind in ["thumbnail", "playable"] {
                let job = crate::index::renditions::Job {
                    original_id: "0".repeat(64),
                    kind: kind.into(),
                    plan: String::new(),
                    attempts: 1,
                };
                let plan = serde_json::json!({"video": "transcode", "audio": "copy"});
                let _ = crate::pipeline::renditions::check(&job, &plan, &report, Some(12.5));
            }
        }
    }
}

/// `Range`, `If-Range` and `If-None-Match` on a download: lines are the
/// three headers' values; the last 8 bytes (if any) give the file's size.
/// A range sent is always inside the file.
pub fn http_headers(data: &[u8]) {
    use crate::api::media::{conditional, RangeReq};
    use axum::http::{header, HeaderMap, HeaderValue};
    let (text, size) = match data.len().checked_sub(8) {
        Some(n) => (&data[..n], u64::from_le_bytes(data[n..].try_into().expect("8 bytes"))),
        None => (data, 1000),
    };
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let mut headers = HeaderMap::new();
    for name in [header::RANGE, header::IF_RANGE, header::IF_NONE_MATCH] {
        if let Some(v) = lines.next().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    let etag = format!("\"{}\"", "ab".repeat(32));
    match conditional(&headers, &etag, size) {
        Some(RangeReq::Part(a, b)) => assert!(a <= b && b < size, "range {a}-{b} of a {size}-byte file"),
        Some(RangeReq::Full | RangeReq::Unsatisfiable) | None => {}
    }
}

/// A receipt given to `bodycamd receipt verify`: never a panic, and any
/// receipt body that parses, signed by this host's key, verifies (its
/// canonical form survives the round trip through JSON).
pub fn receipt(data: &[u8]) {
    use crate::custody::receipt::{verify, Receipt, FORMAT};
    let key = fuzz_key();
    let public = key.public_hex();
    let _ = verify(data, &public);
    let Ok(mut r) = serde_json::from_slice::<Receipt>(data) else { return };
    if r.receipt.format != FORMAT {
        return;
    }
    r.receipt.host_key = public.clone();
    r.signature = key.sign_hex(&r.receipt.canonical());
    let text = serde_json::to_vec_pretty(&r).expect("serializable");
    if let Err(e) = verify(&text, &public) {
        panic!("a receipt this key signed does not verify: {e}");
    }
}

/// The fixed host key the custody targets sign with (32 bytes of 7), so
/// that seeds can name it.
pub fn fuzz_key() -> &'static crate::custody::key::HostKey {
    use std::sync::OnceLock;
    static KEY: OnceLock<(tempfile::TempDir, crate::custody::key::HostKey)> = OnceLock::new();
    let (_, key) = KEY.get_or_init(|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join(crate::custody::key::FILE))
            .expect("a key file");
        std::io::Write::write_all(&mut f, &[7u8; 32]).expect("written");
        let key = crate::custody::key::HostKey::load_or_create(dir.path()).expect("a host key");
        (dir, key)
    });
    key
}

/// An export archive (or its manifest) given to `bodycamd receipt verify`:
/// never a panic, and a manifest this key signed, whose files are all there
/// as it lists them, verifies.
pub fn export_manifest(data: &[u8]) {
    use crate::custody::export::{verify_archive, verify_manifest, ManifestIn};
    let key = fuzz_key();
    let public = key.public_hex();
    let _ = verify_archive(data, &public);
    let Ok(m) = serde_json::from_slice::<ManifestIn>(data) else { return };
    let files: std::collections::BTreeMap<String, (u64, String)> =
        m.files.iter().map(|f| (f.path.clone(), (f.size, f.blake3.clone()))).collect();
    if m.format != "bodycamd-export/1" || m.host_key != public || files.len() != m.files.len() {
        return;
    }
    let sig = key.sign_hex(data);
    if let Err(e) = verify_manifest(data, sig.as_bytes(), &public, &files) {
        panic!("a manifest this key signed, with its files as listed, does not verify: {e}");
    }
}

/// Every operation of the HTTP API, with arbitrary path parameters, query
/// and JSON body, as each role: never a 5xx, never a panic. The operations
/// are read from the API's own OpenAPI document. Bytes: the operation, the
/// role, then the path parameters (one per line), a NUL, and the body (or
/// the query of a GET).
pub fn api_requests(data: &[u8]) {
    api::request(data)
}

/// The operations `api_requests` picks from (its first byte, modulo their
/// number): (method, path template), in this order.
pub fn api_operations() -> Vec<(String, String)> {
    api::harness().ops.iter().map(|(m, p)| (m.to_string(), p.clone())).collect()
}

/// The tokens `api_requests` sends (its second byte, modulo one more than
/// their number: the last is no token): (role, token).
pub fn api_roles() -> Vec<(crate::config::Role, &'static str)> {
    api::ROLES.to_vec()
}

/// The OpenAPI document as the daemon serves it (`/api/v1/openapi.json`).
pub fn api_document() -> serde_json::Value {
    api::harness().doc.clone()
}

mod api {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, OnceLock};

    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Method, Request};
    use tower::ServiceExt as _;

    use crate::api::ApiState;
    use crate::config::{Role, TokenConfig};

    pub(super) struct Harness {
        rt: tokio::runtime::Runtime,
        router: axum::Router,
        /// (method, path template) of every operation.
        pub(super) ops: Vec<(Method, String)>,
        pub(super) doc: serde_json::Value,
        _dir: tempfile::TempDir,
    }

    pub(super) const ROLES: [(Role, &str); 4] = [
        (Role::CaseSystem, "fuzz-case-system"),
        (Role::Admin, "fuzz-admin"),
        (Role::Auditor, "fuzz-auditor"),
        (Role::Approver, "fuzz-approver"),
    ];

    pub(super) fn harness() -> &'static Harness {
        static H: OnceLock<Harness> = OnceLock::new();
        H.get_or_init(|| {
            // Memory-backed where there is one: the index's fsyncs are not
            // what is fuzzed.
            let shm = Path::new("/dev/shm");
            let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
                .expect("a temporary directory");
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
            let state = rt.block_on(async { state(dir.path()) });
            let router = crate::api::router(state);
            let doc: serde_json::Value = rt.block_on(async {
                let r = router
                    .clone()
                    .oneshot(with_remote(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()))
                    .await
                    .unwrap();
                let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
                serde_json::from_slice(&bytes).expect("the OpenAPI document")
            });
            let mut ops = Vec::new();
            for (path, item) in doc["paths"].as_object().expect("paths") {
                for m in ["get", "put", "post", "delete", "patch"] {
                    if item.get(m).is_some() {
                        ops.push((m.to_uppercase().parse::<Method>().unwrap(), path.clone()));
                    }
                }
            }
            ops.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
            Harness { rt, router, ops, doc, _dir: dir }
        })
    }

    fn state(dir: &Path) -> ApiState {
        let tokens = ROLES
            .iter()
            .map(|(role, token)| TokenConfig {
                name: token.to_string(),
                role: *role,
                sha256: <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into(),
                restricted: *role == Role::Admin,
            })
            .collect();
        let state_dir = dir.join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        ApiState {
            index: crate::index::Index::open(&state_dir.join("index.sqlite3")).expect("an index"),
            archive: crate::store::Archive::open(&state_dir.join("archive")).expect("an archive"),
            renditions: crate::store::Archive::open(&state_dir.join("renditions")).expect("a renditions store"),
            clock: Arc::new(crate::clock::SystemClock),
            ready: Arc::new(AtomicBool::new(true)),
            stations: Arc::new(vec!["dock".into()]),
            tokens: Arc::new(tokens),
            max_window: chrono::Duration::hours(24),
            max_body_bytes: 64 * 1024,
            hooks: Arc::new(Vec::new()),
            key: crate::custody::key::HostKey::load_or_create(&state_dir).expect("a host key"),
            state_dir,
            export_expire: 7 * day,
            retention_default: 365 * day,
            lock_span: 372 * day,
            retry_wake: Arc::new(tokio::sync::Notify::new()),
            export_builds: Arc::new(tokio::sync::Mutex::new(())),
            unauthenticated: Arc::new(crate::api::auth::Unauthenticated::new(1_000_000)),
            faults: Arc::new(crate::pipeline::faults::Faults::default()),
            console: Arc::new(crate::console::Shared::new(day, std::time::Duration::from_secs(7200), 30 * day)),
        }
    }

    fn with_remote(mut r: Request<Body>) -> Request<Body> {
        r.extensions_mut().insert(ConnectInfo::<SocketAddr>(([127, 0, 0, 1], 40000).into()));
        r
    }

    /// Percent-encode a path segment or query (everything but unreserved
    /// characters, and `=`/`&` in a query).
    fn encode(raw: &[u8], query: bool) -> String {
        let mut out = String::new();
        for &b in raw {
            let keep = b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (query && b"=&".contains(&b));
            if keep {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub(super) fn request(data: &[u8]) {
        let h = harness();
        let [op, role, rest @ ..] = data else { return };
        let (method, template) = &h.ops[usize::from(*op) % h.ops.len()];
        let (params, body) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let mut values = params.split(|&b| b == b'\n');
        let mut path = String::new();
        for (i, part) in template.split('{').enumerate() {
            if i == 0 {
                path.push_str(part);
                continue;
            }
            let (_, tail) = part.split_once('}').unwrap_or(("", part));
            path.push_str(&encode(values.next().unwrap_or(b"x"), false));
            path.push_str(tail);
        }
        let is_get = *method == Method::GET;
        if is_get && !body.is_empty() {
            path.push('?');
            path.push_str(&encode(body, true));
        }
        let mut req = Request::builder().method(method.clone()).uri(&path);
        if let Some((_, token)) = ROLES.get(usize::from(*role) % (ROLES.len() + 1)) {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = if is_get {
            req.body(Body::empty())
        } else {
            req.header("content-type", "application/json").body(Body::from(body.to_vec()))
        };
        let Ok(req) = req else { return };
        let status = h.rt.block_on(async {
            let r = h.router.clone().oneshot(with_remote(req)).await.expect("infallible");
            let status = r.status();
            // Read the whole answer: streaming bodies fail here too.
            let _ = axum::body::to_bytes(r.into_body(), 1 << 26).await;
            status
        });
        assert!(
            !status.is_server_error(),
            "{method} {path} answered {status} (body {:?})",
            String::from_utf8_lossy(body)
        );
    }
}
