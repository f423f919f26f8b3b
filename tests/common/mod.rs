//! Shared test harness: a temporary dock and state directory, a config, and
//! the real `bodycamd` binary run against them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bodycamd")
}

/// The executable that does the media work (probe and render workers).
pub fn media_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bodycamd-media")
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub dock: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// The test's own PostgreSQL database, when the suite runs against
    /// PostgreSQL (`BODYCAMD_TEST_ENGINE=postgres`).
    pub pg: Option<PgDb>,
}

/// The PostgreSQL server the tests use (every development and CI machine
/// has one).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Whether this run of the suite is against PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("BODYCAMD_TEST_ENGINE").is_ok_and(|v| v == "postgres")
}

/// A database created for one test and dropped after it.
/// The host name tests on PostgreSQL run as.
pub const PG_HOST: &str = "host-a";

pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "bodycamd_t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            fastrand::u32(..)
        );
        let mut c = postgres::Client::connect(&format!("{PG_SERVER}/postgres"), postgres::NoTls).unwrap_or_else(|e| {
            panic!("BODYCAMD_TEST_ENGINE=postgres, but no PostgreSQL server answers at {PG_SERVER}: {e}")
        });
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        PgDb { url: format!("{PG_SERVER}/{name}"), name }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&format!("{PG_SERVER}/postgres"), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

impl Harness {
    /// A dock `docks/dock-01`, a state dir, and a config with `station_extra`
    /// lines added to the station and `top_extra` to the file.
    pub fn new(station_extra: &str, top_extra: &str) -> Harness {
        let dir = tempfile::Builder::new().prefix("bodycamd-test-").tempdir().unwrap();
        let dock = dir.path().join("docks/dock-01");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&dock).unwrap();
        let config = dir.path().join("bodycamd.toml");
        let pg = on_postgres().then(PgDb::create);
        let h = Harness { dir, dock, state, config, pg };
        h.write_config(station_extra, top_extra);
        h
    }

    pub fn write_config(&self, station_extra: &str, top_extra: &str) {
        let mut defaults = String::new();
        for (k, v) in [("settle_secs", "0.3"), ("rescan_secs", "2"), ("poll_secs", "0.2")] {
            if !station_extra.contains(&format!("{k} =")) {
                defaults.push_str(&format!("{k} = {v}\n"));
            }
        }
        let engine = match &self.pg {
            Some(pg) => {
                format!("[index]\nurl = \"{}\"\n[archive]\nshared = true\n[host]\nname = \"{PG_HOST}\"\n", pg.url)
            }
            None => String::new(),
        };
        let text = format!(
            "state_dir = \"{}\"\n{engine}\
             [ingest]\nretry_base_secs = 0.05\nretry_max_secs = 0.5\nmin_free_mb = 0\n\
             [probe]\ntimeout_secs = 20\n\
             [api]\nlisten = \"127.0.0.1:0\"\n\
             {top_extra}\n\
             [[stations]]\nid = \"dock-01\"\npath = \"{}\"\n{defaults}{station_extra}\n",
            self.state.display(),
            self.dock.display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// The subject of an outage alert about this host's `what` (archive,
    /// index, resources): in a district, outages are per host.
    pub fn fault_subject(&self, what: &str) -> String {
        match self.pg {
            Some(_) => format!("{PG_HOST}/{what}"),
            None => what.to_string(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).arg("--config").arg(&self.config).env("RUST_LOG", "bodycamd=debug,warn");
        c
    }

    /// `bodycamd run --once`, which must succeed.
    pub fn run_once(&self) -> Output {
        let out = self.cmd(&["run", "--once", "--log-format", "text"]).output().unwrap();
        assert!(out.status.success(), "run --once failed:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn spawn_daemon(&self) -> Daemon {
        self.spawn_daemon_with(&[])
    }

    /// The daemon with extra environment variables.
    pub fn spawn_daemon_with(&self, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = self.cmd(&["run", "--log-format", "text"]);
        cmd.envs(env.iter().copied());
        Daemon::spawn(&mut cmd)
    }

    pub fn media(&self) -> Vec<Value> {
        self.media_args(&[])
    }

    pub fn media_args(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["media", "list", "--json"];
        args.extend_from_slice(extra);
        let out = self.cmd(&args).output().unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    pub fn status(&self) -> Value {
        let out = self.cmd(&["status", "--json"]).output().unwrap();
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn objects(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let objects = self.state.join("archive/objects");
        if let Ok(shards) = std::fs::read_dir(objects) {
            for s in shards.flatten() {
                for o in std::fs::read_dir(s.path()).unwrap().flatten() {
                    out.push(o.path());
                }
            }
        }
        out
    }

    pub fn tmp_leftovers(&self) -> usize {
        std::fs::read_dir(self.state.join("archive/tmp")).map(|d| d.count()).unwrap_or(0)
    }

    /// Where the index is.
    pub fn index_location(&self) -> bodycamd::index::Location {
        match &self.pg {
            Some(pg) => bodycamd::index::Location::Postgres(pg.url.clone()),
            None => bodycamd::index::Location::Sqlite(self.state.join("index.sqlite3")),
        }
    }

    /// A direct connection to the index, whichever engine it is.
    pub fn db(&self) -> bodycamd::index::Reader {
        bodycamd::index::open_direct(&self.index_location()).unwrap()
    }
}

/// A daemon process, killed when dropped (its log is printed if the test
/// is failing).
pub struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// SIGTERM, and wait for a clean exit; returns its log.
    pub fn stop(&mut self) -> String {
        self.signal(rustix::process::Signal::TERM);
        let mut c = self.child.take().unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = c.try_wait().unwrap() {
                break status;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                panic!("daemon did not stop within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let log = self.log();
        assert!(status.success(), "daemon exited with {status}:\n{log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}--- end of daemon log ---", self.log());
        }
    }
}

/// Poll `f` until it returns true; panic with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A small real H.264/AAC clip.
pub fn clip(dir: &Path, seed: u64) -> Vec<u8> {
    use bodycamd::media::encode::*;
    let spec = ClipSpec {
        format: "mp4",
        video: Some(VideoSpec { codec: VideoCodec::H264, width: 64, height: 48, fps: 10 }),
        audio: Some(AudioSpec { codec: AudioCodec::Aac, sample_rate: 16_000 }),
        duration_secs: 1.0,
        creation_time: Some("2026-11-26T01:30:00Z".parse().unwrap()),
        seed,
    };
    bodycamd::simulate::clip_bytes(dir, &spec, "mp4").unwrap()
}

pub fn ids(media: &[Value]) -> Vec<String> {
    media.iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

pub fn find<'a>(media: &'a [Value], id: &str) -> &'a Value {
    media.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no media {id}"))
}

impl Daemon {
    /// The API's address, from the daemon's log.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        let mut found = None;
        wait_until("the api to listen", Duration::from_secs(20), || {
            found = self.log().lines().find_map(|l| {
                l.contains("api listening").then(|| l.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok())?
            });
            found.is_some()
        });
        found.unwrap()
    }
}

/// A minimal HTTP/1.1 GET against the daemon; returns (status, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = http(addr, "GET", path, &[], None);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-case names.
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        let _ = s.write_all(b);
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut raw = buf[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: std::collections::HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        raw = dechunk(&raw);
    }
    Resp { status, headers, body: raw }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = s.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&s[..p]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&s[p + 2..p + 2 + n]);
        s = &s[p + 2 + n + 2..];
    }
    out
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
    /// Whether it was answered 200 (or refused with 500).
    pub accepted: bool,
}

/// A webhook receiver on 127.0.0.1 that refuses requests (HTTP 500) while
/// `failing` is positive, counting down.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub failing: Arc<std::sync::atomic::AtomicI64>,
}

impl Receiver {
    pub fn start(fail_first: i64) -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(std::sync::atomic::AtomicI64::new(fail_first));
        let (g, f) = (got.clone(), failing.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let accepted = f.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0;
                let status = if accepted { "200 OK" } else { "500 Internal Server Error" };
                let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                g.lock().unwrap().push(Received { headers, body, accepted });
            }
        });
        Receiver { addr, got, failing }
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.accepted).cloned().collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// SHA-256 of a token, hex (how tokens are configured).
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// An API call with a bearer token and an optional JSON body.
pub fn call(addr: std::net::SocketAddr, method: &str, path: &str, auth: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth)];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http(addr, method, path, &headers, body.as_deref().map(str::as_bytes))
}

/// Restrict an original through the API as `auth` (an admin's bearer
/// header), with a reason; panics unless the API agrees.
pub fn restrict_media(addr: std::net::SocketAddr, auth: &str, id: &str) {
    let body = serde_json::json!({"restricted": true, "reason": "internal affairs"});
    let r = call(addr, "PUT", &format!("/api/v1/media/{id}/restriction"), auth, Some(body));
    assert!(r.status < 300, "restricting {id}: {r:?}");
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `bodycamd ARGS --config …` as an unprivileged user when we are root
/// (root reads everything, so "unreadable" needs someone else).
pub fn unprivileged_cmd(h: &Harness, args: &[&str]) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(bin());
        c
    } else {
        Command::new(bin())
    };
    c.args(args).arg("--config").arg(&h.config).env("RUST_LOG", "bodycamd=debug");
    c
}

pub fn unprivileged(h: &Harness, args: &[&str]) -> Output {
    unprivileged_cmd(h, args).output().unwrap()
}

/// Everything below `p` readable and writable by anyone (for a daemon run
/// as `nobody`).
pub fn open_up(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walk(p) {
        let mode = if e.is_dir() { 0o777 } else { 0o666 };
        std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

pub fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

impl Harness {
    /// Add settings to the config's `[ingest]` table.
    pub fn set_ingest(&self, lines: &str) {
        let cfg = std::fs::read_to_string(&self.config).unwrap().replace("[ingest]\n", &format!("[ingest]\n{lines}\n"));
        std::fs::write(&self.config, cfg).unwrap();
    }

    /// The daemon as `nobody` when we are root (see [`unprivileged_cmd`]).
    pub fn spawn_unprivileged_daemon(&self) -> Daemon {
        let mut cmd = unprivileged_cmd(self, &["run", "--log-format", "text"]);
        Daemon::spawn(&mut cmd)
    }

    /// Alerts as `alerts list --state all --json`.
    pub fn alerts(&self) -> Vec<Value> {
        let out = self.cmd(&["alerts", "list", "--state", "all", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Daemon {
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon { child: Some(child), log, reader: Some(reader) }
    }
}

/// Find an open alert (or any state with `state = None`) of a kind and subject.
pub fn alert<'a>(alerts: &'a [Value], kind: &str, subject: &str, state: Option<&str>) -> Option<&'a Value> {
    alerts.iter().find(|a| a["kind"] == kind && a["subject"] == subject && state.is_none_or(|s| a["state"] == s))
}

/// A mount made by a test (root only), unmounted when dropped.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn new(args: &[&str], target: &Path) -> Mount {
        let st = Command::new("mount").args(args).arg(target).status().unwrap();
        assert!(st.success(), "mount {args:?} {}", target.display());
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An S3 server (moto, in memory) on an ephemeral loopback port, with a
/// boto3 client for what the tests do to the bucket behind bodycamd's back.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Moto {
    /// None (and a message) when moto_server is not installed.
    pub fn start() -> Option<Moto> {
        if Command::new("moto_server").arg("--help").output().is_err() {
            eprintln!("SKIPPED: moto_server is not installed (pip install 'moto[server]')");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let m = Moto { child, endpoint, dir: tempfile::tempdir().unwrap() };
        wait_until("moto_server to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        std::fs::write(m.credentials(), "access_key_id = \"test\"\nsecret_access_key = \"test\"\n").unwrap();
        Some(m)
    }

    pub fn credentials(&self) -> PathBuf {
        self.dir.path().join("s3.toml")
    }

    /// Run Python with `s3` (a boto3 client), `B` (the bucket name given)
    /// and `json` defined; returns what it printed. Panics on failure.
    pub fn py(&self, bucket: &str, code: &str) -> String {
        let prelude = format!(
            "import boto3, json, datetime\nfrom botocore.exceptions import ClientError\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\nB = '{bucket}'\n",
            self.endpoint
        );
        let out = Command::new("python3").arg("-c").arg(format!("{prelude}{code}")).output().unwrap();
        assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A bucket, with Object Lock or without.
    pub fn bucket(&self, name: &str, lock: bool) {
        self.py(
            name,
            &format!("s3.create_bucket(Bucket=B, ObjectLockEnabledForBucket={})", if lock { "True" } else { "False" }),
        );
    }

    /// The `[archive.s3]` section for this server and bucket.
    pub fn config(&self, bucket: &str, extra: &str) -> String {
        format!(
            "[archive.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\ncredentials_file = \"{}\"\n{extra}\n",
            self.endpoint,
            self.credentials().display()
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
