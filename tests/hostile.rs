//! Hostile callers: floods of requests without a token, idle and slow
//! connections, and restricted records that must not show anywhere, even
//! in a count.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CMS: &str = "Bearer cms-token";
const INVESTIGATOR: &str = "Bearer investigator-token";
const OPS: &str = "Bearer ops-token";
const OPS_CLEARED: &str = "Bearer ops-cleared-token";
const BOSS: &str = "Bearer boss-token";
const AUDITOR: &str = "Bearer auditor-token";

fn harness(top: &str) -> Harness {
    let h = Harness::new("", "");
    let mut tokens = String::new();
    for (name, role, restricted) in [
        ("cms", "case_system", false),
        ("investigator", "case_system", true),
        ("ops", "admin", false),
        ("ops-cleared", "admin", true),
        ("boss", "approver", false),
        ("auditor", "auditor", false),
    ] {
        tokens.push_str(&format!(
            "[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nrestricted = {restricted}\ntoken_sha256 = \"{}\"\n",
            sha256_hex(&format!("{name}-token"))
        ));
    }
    h.write_config("", &format!("{tokens}{top}"));
    h
}

fn raise_own_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: l.maximum, maximum: l.maximum });
}

fn audit_rows(h: &Harness) -> i64 {
    h.db().query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap()
}

#[test]
fn requests_without_a_token_are_counted_not_logged_one_by_one_and_rate_limited() {
    let h = harness("");
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    std::thread::sleep(Duration::from_millis(300));
    let before = audit_rows(&h);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (0..2500)
                        .map(|i| {
                            let auth = format!("Bearer guess-{t}-{i}");
                            let headers: Vec<(&str, &str)> =
                                if i % 2 == 0 { vec![("Authorization", auth.as_str())] } else { vec![] };
                            http(addr, "GET", "/api/v1/media", &headers, None).status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(statuses.len(), 10_000);
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "nothing else: {:?}", &statuses[..10]);
    assert!(statuses.iter().filter(|s| **s == 429).count() > 9_000, "the flood is rate-limited");
    // A caller with a valid token from the same address is still served.
    assert_eq!(call(addr, "GET", "/api/v1/media", CMS, None).status, 200);
    d.stop();
    let after = audit_rows(&h);
    // The one valid request, plus one entry per minute window (the flood
    // spans at most a few), not 10,000.
    assert!(after - before <= 6, "{} audit rows for 10,000 requests", after - before);
    let all: Vec<String> = h
        .db()
        .query_all("SELECT details FROM audit WHERE action = 'http.unauthenticated' ORDER BY id", [], |r| r.get(0))
        .unwrap();
    let (n, details) = (all.len() as i64, all.join(" | "));
    assert!((1..=4).contains(&n), "{n}");
    let counted: u64 = details.split(" | ").map(|d| d.split_whitespace().next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 10_000, "every request is counted: {details}");
    let out = h.cmd(&["verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn idle_connections_cannot_starve_the_daemon() {
    raise_own_nofile();
    let h = harness("[api]\nheader_timeout = \"2s\"\n");
    // (the harness's [api] table is extended, not repeated)
    let cfg = fs::read_to_string(&h.config).unwrap().replace("[api]\nheader_timeout = \"2s\"\n", "");
    let cfg = cfg.replace("[api]\n", "[api]\nheader_timeout = \"2s\"\n");
    fs::write(&h.config, cfg).unwrap();
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let idle: Vec<TcpStream> = (0..1100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Half of them start a request and never finish its headers.
    for s in idle.iter().step_by(2) {
        let _ = (&*s).write_all(b"GET /api/v1/media HTTP/1.1\r\nHost: x\r\n");
    }
    let (status, _) = http_get(addr, "/healthz");
    assert_eq!(status, 200, "/healthz answers while 1,100 connections idle");
    let bytes = b"docked while the API is besieged".to_vec();
    fs::write(h.dock.join("a.mp4"), &bytes).unwrap();
    wait_until("the file to be stored", Duration::from_secs(30), || h.media().len() == 1);
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
    // Idle connections are closed after the header timeout.
    let pid = d.pid();
    wait_until("idle connections to be closed", Duration::from_secs(30), || {
        fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() < 200
    });
    let mut s = idle.into_iter().next().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "closed by the daemon");
    d.stop();
}

#[test]
fn past_the_connection_cap_clients_wait_and_are_served_when_idle_ones_time_out() {
    let h = harness("");
    let cfg = fs::read_to_string(&h.config)
        .unwrap()
        .replace("[api]\n", "[api]\nmax_connections = 32\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\n");
    fs::write(&h.config, cfg).unwrap();
    let mut d = h.spawn_daemon();
    let addr: SocketAddr = d.api_addr();
    let _idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let served = std::thread::spawn(move || http_get(addr, "/healthz").0);
    let status = served.join().unwrap();
    assert_eq!(status, 200);
    // A body that never comes is refused, not waited for.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "PUT /api/v1/cases/K-1 HTTP/1.1\r\nHost: x\r\nAuthorization: {CMS}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.is_empty() || !text.starts_with("HTTP/1.1 2"), "a stalled body is not accepted: {text}");
    d.stop();
}

fn photo(h: &Harness, officer: &str, start: &str, seq: u32) -> String {
    let path = h.dock.join(format!("CAM1/CAM1_{officer}_{start}_{seq:04}.jpg"));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = bodycamd::media::encode::encode_jpeg(32, 24, u64::from(seq) * 97 + start.len() as u64).unwrap();
    fs::write(&path, &bytes).unwrap();
    blake3_hex(&bytes)
}

fn case(officer: &str) -> Value {
    json!({"officers": [officer], "windows": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-26T12:00:00Z"}]})
}

#[test]
fn restricted_records_do_not_show_even_in_counts_or_side_channels() {
    let h = harness("[alerts]\nevaluate_every = \"100ms\"\n");
    let open_a = photo(&h, "004711", "20261126010000", 1);
    let secret = photo(&h, "004711", "20261126020000", 2);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("stored", Duration::from_secs(30), || h.media().len() == 2);
    assert_eq!(call(addr, "PUT", "/api/v1/cases/OPEN-1", CMS, Some(case("004711"))).status, 201);
    let narrow =
        json!({"officers": ["004711"], "windows": [{"start": "2026-11-26T01:30:00Z", "end": "2026-11-26T03:00:00Z"}]});
    assert_eq!(call(addr, "PUT", "/api/v1/cases/SECRET-1", CMS, Some(narrow)).status, 201);
    // An export of the secret original, asked for before it was restricted.
    let e = call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"media": [secret], "reason": "court"}))).json();
    let eid = e["id"].as_str().unwrap().to_string();
    // Restrict the media and the second case.
    let r = json!({"restricted": true, "reason": "privacy"});
    assert_eq!(call(addr, "PUT", &format!("/api/v1/media/{secret}/restriction"), OPS, Some(r.clone())).status, 200);
    assert_eq!(call(addr, "PUT", "/api/v1/cases/SECRET-1/restriction", OPS, Some(r)).status, 204);
    // The open case's count does not reveal the restricted original.
    let c = call(addr, "GET", "/api/v1/cases/OPEN-1", CMS, None).json();
    assert_eq!(c["linked_media"], 1, "{c:#}");
    let m = call(addr, "GET", "/api/v1/cases/OPEN-1/media", CMS, None).json();
    assert_eq!(m["media"].as_array().unwrap().len(), 1);
    // A PUT that relinks answers counts of what the caller may see only.
    let p = call(addr, "PUT", "/api/v1/cases/OPEN-1", CMS, Some(case("004711"))).json();
    assert_eq!(p["linked_media"], 1, "{p:#}");
    assert!(!p.to_string().contains(&secret));
    // The open original's links do not name the restricted case.
    let one = call(addr, "GET", &format!("/api/v1/media/{open_a}"), CMS, None).json();
    assert!(!one.to_string().contains("SECRET-1"), "{one:#}");
    // A PUT on a restricted case answers as for an unknown id, and is held.
    let unknown = call(addr, "PUT", "/api/v1/cases/NEVER-SEEN", CMS, Some(case("004799")));
    let hidden = call(addr, "PUT", "/api/v1/cases/SECRET-1", CMS, Some(case("004799")));
    assert_eq!(unknown.status, 201);
    assert_eq!(hidden.status, unknown.status, "{:?}", hidden.json());
    let strip = |mut v: Value| {
        for k in ["case_id", "created_at", "updated_at"] {
            v[k] = Value::Null;
        }
        v
    };
    assert_eq!(strip(hidden.json()), strip(unknown.json()).clone(), "the same answer, field for field");
    let got = http(
        addr,
        "GET",
        "/api/v1/cases/SECRET-1",
        &[("Authorization", INVESTIGATOR), ("X-Bodycamd-Reason", "review")],
        None,
    )
    .json();
    assert_eq!(got["officers"], json!(["004711"]), "the change was held, not applied: {got:#}");
    // Export records: 404 without the grant (get, approve, deny).
    assert_eq!(call(addr, "GET", &format!("/api/v1/exports/{eid}"), CMS, None).status, 404);
    assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{eid}/approve"), BOSS, Some(json!({}))).status, 404);
    assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{eid}/deny"), BOSS, Some(json!({}))).status, 404);
    // Admins without the grant: alerts about restricted records are not
    // shown, with the grant they are.
    let cleared = [("Authorization", OPS_CLEARED), ("X-Bodycamd-Reason", "review")];
    // (Descriptions are recorded in batches: wait for both photos' alerts.)
    wait_until("alerts about the photos", Duration::from_secs(10), || {
        let r = http(addr, "GET", "/api/v1/alerts?state=all", &cleared, None).json();
        let a = r.as_array().unwrap();
        a.iter().any(|a| a["subject"] == secret) && a.iter().any(|a| a["subject"] == open_a)
    });
    let r = call(addr, "GET", "/api/v1/alerts?state=all", OPS, None).json();
    assert!(!r.to_string().contains(&secret), "{r:#}");
    assert!(r.to_string().contains(&open_a), "the others are shown: {r:#}");
    let r = call(addr, "GET", "/api/v1/alerts?state=all", OPS_CLEARED, None).json();
    assert!(!r.to_string().contains(&secret), "the grant needs a reason: {r:#}");
    // The held change is an alert for those with the grant.
    let r = http(addr, "GET", "/api/v1/alerts?kind=restricted_case_write", &cleared, None).json();
    assert_eq!(r[0]["subject"], "SECRET-1", "{r:#}");
    assert_eq!(r[0]["details"]["case"]["officers"], json!(["004799"]));
    // Auditors without the grant: entries about restricted records hidden.
    let a = call(addr, "GET", "/api/v1/audit?limit=1000", AUDITOR, None).json();
    assert!(!a.to_string().contains(&secret), "the audit log does not name it");
    assert!(!a.to_string().contains("SECRET-1"));
    // /metrics (no token at all) counts only what is not restricted.
    let (_, metrics) = http_get(addr, "/metrics");
    let originals = metrics
        .lines()
        .find(|l| l.starts_with("bodycamd_files_ingested_total"))
        .map(|l| l.split_whitespace().last().unwrap().parse::<f64>().unwrap());
    assert_eq!(originals, Some(1.0), "{metrics}");
    assert!(!metrics.contains(&secret));
    d.stop();
}

#[test]
fn audit_searches_use_an_index_never_a_scan_of_the_whole_log() {
    use bodycamd::index::audit::{query_plan, AuditFilter};
    let h = Harness::new("", "");
    h.run_once();
    let index = bodycamd::index::Index::connect(&h.index_location()).unwrap();
    let id = "a".repeat(64);
    // Each search must go through the index of what it filters on: walking
    // the log by id (or scanning it) would read every entry ever written.
    let filters = [
        (AuditFilter { media: Some(id.clone()), limit: 100, ..Default::default() }, "audit_media_id"),
        (AuditFilter { case: Some("K-1".into()), limit: 100, ..Default::default() }, "audit_case_id"),
        (AuditFilter { actor: Some("cms".into()), limit: 100, ..Default::default() }, "audit_actor_id"),
        (AuditFilter { action: Some("media.original".into()), limit: 100, ..Default::default() }, "audit_action_id"),
        (AuditFilter { from: Some(0), to: Some(1), limit: 100, ..Default::default() }, "audit_at"),
        (
            AuditFilter { actor: Some("cms".into()), from: Some(0), after: Some(5), limit: 100, ..Default::default() },
            "audit_",
        ),
        (AuditFilter { media: Some(id), hide_restricted: true, limit: 100, ..Default::default() }, "audit_media_id"),
    ];
    for (f, index_name) in &filters {
        let plan = index.read(|c| query_plan(c, f)).unwrap();
        if common::on_postgres() {
            // PostgreSQL: an index scan (plain, index-only or bitmap) on
            // that index, and no sequential scan of the log.
            assert!(
                plan.iter().any(|l| l.contains(&format!("using {index_name}"))
                    || l.contains(&format!("Index Scan on {index_name}"))),
                "{f:?} does not use {index_name}: {plan:?}"
            );
            assert!(!plan.iter().any(|l| l.contains("Seq Scan on audit")), "{f:?} scans the log: {plan:?}");
            continue;
        }
        let main = plan.iter().find(|l| l.contains(" audit ") || l.ends_with(" audit")).unwrap();
        assert!(
            main.contains(&format!("USING INDEX {index_name}"))
                || main.contains(&format!("USING COVERING INDEX {index_name}")),
            "{f:?} does not use {index_name}: {plan:?}"
        );
    }
    index.close();
}
