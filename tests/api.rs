//! The HTTP API, black-box, against the daemon on an ephemeral loopback port.

mod common;

use std::fs;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};

const CMS: &str = "Bearer cms-secret-token";
const OPS: &str = "Bearer ops-secret-token";
const AUDITOR: &str = "Bearer audit-secret-token";

fn api_harness(extra: &str) -> Harness {
    let h = Harness::new("", "");
    h.write_config(
        "",
        &format!(
            "[[api.tokens]]\nname = \"cms\"\nrole = \"case_system\"\ntoken_sha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\
             [[api.tokens]]\nname = \"auditor\"\nrole = \"auditor\"\ntoken_sha256 = \"{}\"\n{extra}",
            sha256_hex("cms-secret-token"),
            sha256_hex("ops-secret-token"),
            sha256_hex("audit-secret-token")
        ),
    );
    // [api] is written by the harness already: put max_body_bytes there.
    let text = fs::read_to_string(&h.config).unwrap().replace("[api]\n", "[api]\nmax_body_bytes = 4096\n");
    fs::write(&h.config, text).unwrap();
    h
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A photo named as a camera names it (UTC station), returning its id.
fn photo(h: &Harness, device: &str, officer: &str, start: &str, seq: u32) -> String {
    let name = format!("{device}/{device}_{officer}_{}_{seq:04}.jpg", t(start).format("%Y%m%d%H%M%S"));
    let path = h.dock.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = bodycamd::media::encode::encode_jpeg(
        32,
        24,
        u64::from(seq) * 7 + start.len() as u64 + t(start).timestamp() as u64,
    )
    .unwrap();
    fs::write(&path, &bytes).unwrap();
    blake3_hex(&bytes)
}

fn ids_of(v: &Value) -> Vec<String> {
    v["media"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

fn wait_for(h: &Harness, n: usize) {
    wait_until("media to be stored and described", Duration::from_secs(30), || {
        let m = h.media();
        m.len() >= n && m.iter().all(|x| x["described"] == true)
    });
}

#[test]
fn cases_match_both_ways_relink_and_keep_manual_links() {
    let h = api_harness("");
    let m1 = photo(&h, "CAM1", "004711", "2026-11-26T01:40:00Z", 1);
    let m2 = photo(&h, "CAM2", "004712", "2026-11-26T05:00:00Z", 1);
    let m3 = photo(&h, "CAM3", "004713", "2026-11-26T08:00:00Z", 1);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_for(&h, 3);

    // A new case links media already stored.
    let case = json!({
        "title": "Disturbance", "officers": ["004711"],
        "windows": [{"start": "2026-11-26T09:30:00+08:00", "end": "2026-11-26T11:10:00+08:00"}],
        "buffer_minutes": 5,
    });
    let r = call(addr, "PUT", "/api/v1/cases/2026-0457", CMS, Some(case.clone()));
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["relink"]["linked"], 1);
    let r = call(addr, "GET", "/api/v1/cases/2026-0457/media", CMS, None);
    assert_eq!(r.status, 200);
    assert_eq!(ids_of(&r.json()), std::slice::from_ref(&m1));
    let item = &r.json()["media"][0];
    assert_eq!(item["officer"], "004711");
    assert_eq!(item["recorded_start"], "2026-11-26T01:40:00.000Z");
    assert_eq!(item["links"][0]["how"], "rule");
    assert_eq!(item["links"][0]["linked_by"], "cms");

    // A new file links cases already registered (inside the buffer).
    let m4 = photo(&h, "CAM1", "004711", "2026-11-26T03:14:00Z", 2);
    wait_for(&h, 4);
    let r = call(addr, "GET", "/api/v1/cases/2026-0457/media", CMS, None);
    assert_eq!(ids_of(&r.json()), [m1.clone(), m4.clone()], "sorted by recording start");
    assert_eq!(r.json()["media"][1]["links"][0]["linked_by"], "bodycamd");

    // A manual link, and a rule link removed by hand.
    let r = call(
        addr,
        "POST",
        "/api/v1/cases/2026-0457/media",
        CMS,
        Some(json!({"media_id": m3, "note": "same incident"})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["how"], "manual");
    let r = call(addr, "POST", "/api/v1/cases/2026-0457/media", CMS, Some(json!({"media_id": m3})));
    assert_eq!(r.status, 200, "linking twice changes nothing");
    let r = call(addr, "DELETE", &format!("/api/v1/cases/2026-0457/media/{m4}"), CMS, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "removed");
    assert_eq!(call(addr, "DELETE", &format!("/api/v1/cases/2026-0457/media/{m4}"), CMS, None).status, 404);

    // Re-registering the case (same rule) keeps both.
    let r = call(addr, "PUT", "/api/v1/cases/2026-0457", CMS, Some(case));
    assert_eq!(r.status, 200);
    let r = call(addr, "GET", "/api/v1/cases/2026-0457/media", CMS, None);
    assert_eq!(ids_of(&r.json()), [m1.clone(), m3.clone()], "manual link kept, removed rule link stays removed");

    // A changed case re-evaluates its rule links.
    let moved = json!({
        "officers": ["004712"], "devices": [],
        "windows": [{"start": "2026-11-26T04:30:00Z", "end": "2026-11-26T05:30:00Z"}],
    });
    let r = call(addr, "PUT", "/api/v1/cases/2026-0457", CMS, Some(moved));
    assert_eq!(r.json()["relink"], json!({"created": false, "linked": 1, "unlinked": 1}));
    let r = call(addr, "GET", "/api/v1/cases/2026-0457/media", CMS, None);
    assert_eq!(ids_of(&r.json()), [m2.clone(), m3.clone()]);
    // A file may belong to many cases; its links say which and how.
    call(
        addr,
        "PUT",
        "/api/v1/cases/2026-0458",
        CMS,
        Some(
            json!({"devices": ["CAM2"], "windows": [{"start": "2026-11-26T04:00:00Z", "end": "2026-11-26T06:00:00Z"}]}),
        ),
    );
    let r = call(addr, "GET", &format!("/api/v1/media/{m2}"), CMS, None);
    let v = r.json();
    let links: Vec<&str> = v["links"].as_array().unwrap().iter().map(|l| l["case_id"].as_str().unwrap()).collect();
    assert_eq!(links, ["2026-0457", "2026-0458"]);
    let r = call(addr, "GET", &format!("/api/v1/media/{m4}"), CMS, None);
    assert_eq!(r.json()["links"][0]["state"], "removed");
    d.stop();
}

#[test]
fn queries_paginate_and_originals_serve_exact_byte_ranges() {
    let h = api_harness("");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(photo(&h, "CAM1", "004711", &format!("2026-11-26T0{}:00:00Z", i + 1), i + 1));
    }
    ids.push(photo(&h, "CAM2", "004799", "2026-11-26T03:30:00Z", 1));
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_for(&h, 6);

    // Officer + time range, two per page.
    let mut seen = Vec::new();
    let mut path = "/api/v1/media?officer=004711&from=2026-11-26T00:00:00Z&to=2026-11-26T06:00:00Z&limit=2".to_string();
    for _ in 0..4 {
        let r = call(addr, "GET", &path, CMS, None);
        assert_eq!(r.status, 200, "{:?}", r.json());
        seen.extend(ids_of(&r.json()));
        match r.json()["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/api/v1/media?officer=004711&from=2026-11-26T00:00:00Z&to=2026-11-26T06:00:00Z&limit=2&cursor={c}"
                )
            }
            None => break,
        }
    }
    assert_eq!(seen, ids[..5].to_vec(), "every page in order, no repeats");
    let r = call(addr, "GET", "/api/v1/media?device=CAM2&kind=photo", CMS, None);
    assert_eq!(ids_of(&r.json()), [ids[5].clone()]);
    let r = call(addr, "GET", "/api/v1/media?from=2026-11-26T04:00:00Z", CMS, None);
    assert_eq!(ids_of(&r.json()), ids[3..5].to_vec());

    // Bytes.
    let id = &ids[0];
    let stored = fs::read(h.media().iter().find(|m| &m["id"] == id).unwrap()["stored_path"].as_str().unwrap()).unwrap();
    let path = format!("/api/v1/media/{id}/original");
    let full = http(addr, "GET", &path, &[("Authorization", CMS)], None);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, stored);
    assert_eq!(full.headers["etag"], format!("\"{id}\""));
    assert_eq!(full.headers["content-type"], "image/jpeg");
    assert_eq!(full.headers["accept-ranges"], "bytes");
    let part = http(addr, "GET", &path, &[("Authorization", CMS), ("Range", "bytes=5-14")], None);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, stored[5..15]);
    assert_eq!(part.headers["content-range"], format!("bytes 5-14/{}", stored.len()));
    let tail = http(addr, "GET", &path, &[("Authorization", CMS), ("Range", "bytes=-7")], None);
    assert_eq!(tail.body, stored[stored.len() - 7..]);
    let open =
        http(addr, "GET", &path, &[("Authorization", CMS), ("Range", &format!("bytes={}-", stored.len() - 3))], None);
    assert_eq!(open.body, stored[stored.len() - 3..]);
    let outside =
        http(addr, "GET", &path, &[("Authorization", CMS), ("Range", &format!("bytes={}-", stored.len()))], None);
    assert_eq!(outside.status, 416);
    assert_eq!(outside.headers["content-range"], format!("bytes */{}", stored.len()));
    let etag = format!("\"{id}\"");
    let cached = http(addr, "GET", &path, &[("Authorization", CMS), ("If-None-Match", &etag)], None);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    d.stop();
}

#[test]
fn every_status_code_and_error_is_json_with_a_code() {
    let h = api_harness("");
    let id = photo(&h, "CAM1", "004711", "2026-11-26T01:00:00Z", 1);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_for(&h, 1);
    let code = |r: &Resp| r.json()["code"].as_str().unwrap_or_default().to_string();
    let check = |r: Resp, status: u16, c: &str| {
        assert_eq!((r.status, code(&r)), (status, c.to_string()), "{:?}", String::from_utf8_lossy(&r.body));
    };
    check(http(addr, "GET", "/api/v1/media", &[], None), 401, "unauthorized");
    check(call(addr, "GET", "/api/v1/media", "Bearer nope", None), 401, "unauthorized");
    check(call(addr, "GET", "/api/v1/media", OPS, None), 403, "forbidden");
    check(call(addr, "GET", "/api/v1/audit", CMS, None), 403, "forbidden");
    check(call(addr, "GET", "/api/v1/stations", AUDITOR, None), 403, "forbidden");
    check(call(addr, "GET", &format!("/api/v1/media/{}", "0".repeat(64)), CMS, None), 404, "not_found");
    check(call(addr, "GET", "/api/v1/cases/none/media", CMS, None), 404, "not_found");
    check(call(addr, "GET", "/api/v1/media/xyz", CMS, None), 400, "invalid_id");
    check(call(addr, "GET", "/api/v1/media?cursor=abc", CMS, None), 400, "invalid_cursor");
    check(call(addr, "GET", "/api/v1/media?from=yesterday", CMS, None), 400, "invalid_time");
    check(call(addr, "GET", "/api/v1/media?color=red", CMS, None), 400, "invalid_request");
    check(call(addr, "GET", "/api/v1/media?limit=0", CMS, None), 400, "invalid_request");
    check(call(addr, "GET", "/api/v1/media?on_time=perhaps", CMS, None), 400, "invalid_request");
    check(call(addr, "GET", "/api/v1/nothing", CMS, None), 404, "not_found");
    check(call(addr, "PATCH", "/api/v1/media", CMS, None), 405, "method_not_allowed");
    let put = |body: &[u8], ctype: &str| {
        http(addr, "PUT", "/api/v1/cases/C-1", &[("Authorization", CMS), ("Content-Type", ctype)], Some(body))
    };
    check(put(b"{not json", "application/json"), 400, "invalid_json");
    check(put(br#"{"officers": ["1"], "surprise": true}"#, "application/json"), 400, "invalid_json");
    check(put(br#"{"officers": "1"}"#, "application/json"), 400, "invalid_json");
    check(put(br#"{"officers": ["1"]}"#, "text/plain"), 415, "invalid_request");
    check(
        put(format!(r#"{{"title": "{}"}}"#, "x".repeat(10_000)).as_bytes(), "application/json"),
        413,
        "body_too_large",
    );
    check(
        put(br#"{"windows": [{"start": "2026-11-26T10:00:00Z", "end": "soon"}]}"#, "application/json"),
        400,
        "invalid_time",
    );
    let r = put(br#"{"windows": [{"start": "2026-11-26T10:00:00Z", "end": "2026-11-26T09:00:00Z"}, {"start": "2026-11-26T00:00:00Z", "end": "2026-11-28T00:00:00Z"}]}"#, "application/json");
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["details"].as_array().unwrap().len(), 2, "{:?}", r.json());
    check(put(br#"{"status": "pending"}"#, "application/json"), 422, "validation_failed");
    check(call(addr, "POST", "/api/v1/cases/C-1/media", CMS, Some(json!({"media_id": id}))), 404, "not_found");
    check(call(addr, "POST", "/api/v1/cases/C-1/media", CMS, Some(json!({"media_id": "short"}))), 400, "invalid_id");
    check(call(addr, "GET", "/api/v1/alerts?state=sleepy", OPS, None), 400, "invalid_request");
    check(call(addr, "POST", "/api/v1/alerts/999999/ack", OPS, Some(json!({}))), 404, "not_found");
    // Administrators see stations and alerts, and acknowledge once.
    let r = call(addr, "GET", "/api/v1/stations", OPS, None);
    assert_eq!(r.json()[0]["id"], "dock-01");
    fs::write(h.dock.join("junk.mp4"), b"junk").unwrap();
    wait_until("an alert", Duration::from_secs(20), || {
        call(addr, "GET", "/api/v1/alerts?kind=media_unreadable", OPS, None)
            .json()
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let alert = call(addr, "GET", "/api/v1/alerts?kind=media_unreadable", OPS, None).json()[0].clone();
    let ack = format!("/api/v1/alerts/{}/ack", alert["id"]);
    let r = call(addr, "POST", &ack, OPS, Some(json!({"note": "card re-read"})));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["acked_by"], "ops");
    assert_eq!(r.json()["state"], "acked");
    check(call(addr, "POST", &ack, OPS, Some(json!({}))), 409, "conflict");
    // The OpenAPI document is public.
    let doc = http(addr, "GET", "/api/v1/openapi.json", &[], None).json();
    assert!(doc["paths"]["/api/v1/cases/{case_id}/media"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    d.stop();
}

#[test]
fn every_access_is_audited_for_auditors() {
    let h = api_harness("");
    let id = photo(&h, "CAM1", "004711", "2026-11-26T01:00:00Z", 1);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_for(&h, 1);
    call(
        addr,
        "PUT",
        "/api/v1/cases/K-9",
        CMS,
        Some(
            json!({"officers": ["004711"], "windows": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-26T02:00:00Z"}]}),
        ),
    );
    call(addr, "GET", "/api/v1/cases/K-9/media", CMS, None);
    http(addr, "GET", &format!("/api/v1/media/{id}/original"), &[("Authorization", CMS), ("Range", "bytes=0-9")], None);
    call(addr, "GET", &format!("/api/v1/media/{id}/original"), OPS, None);
    call(addr, "DELETE", &format!("/api/v1/cases/K-9/media/{id}"), CMS, None);
    let r = call(addr, "GET", &format!("/api/v1/audit?media={id}"), AUDITOR, None);
    assert_eq!(r.status, 200);
    let e: Vec<(String, String, u64, String)> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        // API requests (bodycamd's own custody events, such as the ingest,
        // are in the same log).
        .filter(|x| x["actor"] != "bodycamd")
        .map(|x| {
            (
                x["actor"].as_str().unwrap().into(),
                x["action"].as_str().unwrap().into(),
                x["status"].as_u64().unwrap(),
                x["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        e,
        [
            ("cms".into(), "media.original".into(), 206, "ok".into()),
            ("ops".into(), "media.original".into(), 403, "denied".into()),
            ("cms".into(), "case.unlink".into(), 200, "ok".into()),
        ]
    );
    let v = r.json();
    let first = v["entries"].as_array().unwrap().iter().find(|x| x["actor"] != "bodycamd").unwrap();
    assert_eq!(first["remote"], "127.0.0.1");
    let size = fs::metadata(h.media()[0]["stored_path"].as_str().unwrap()).unwrap().len();
    assert_eq!(first["details"], format!("original: bytes 0+10 of {size}"));
    let r = call(addr, "GET", "/api/v1/audit?case=K-9&actor=cms", AUDITOR, None);
    let v = r.json();
    let actions: Vec<&str> = v["entries"].as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["case.put", "case.media", "case.unlink"]);
    // Paged.
    let r = call(addr, "GET", "/api/v1/audit?limit=2", AUDITOR, None);
    let next = r.json()["next_cursor"].as_str().unwrap().to_string();
    let r2 = call(addr, "GET", &format!("/api/v1/audit?limit=2&cursor={next}"), AUDITOR, None);
    assert!(r2.json()["entries"][0]["id"].as_i64().unwrap() > r.json()["entries"][1]["id"].as_i64().unwrap());
    d.stop();
}

#[test]
fn case_import_registers_good_rows_and_rejects_bad_ones_by_number() {
    let h = api_harness("");
    photo(&h, "CAM1", "004711", "2026-11-26T01:00:00Z", 1);
    h.run_once();
    let csv = "case_id,title,status,closed_at,officers,devices,window_start,window_end,buffer_minutes\n\
               A-1,Theft,open,,004711,,2026-11-26T00:30:00Z,2026-11-26T01:30:00Z,0\n\
               A-1,Theft,open,,,CAM9,2026-11-26T05:00:00Z,2026-11-26T06:00:00Z,0\n\
               A-2,Noise,open,,004799,,2026-11-26T00:00:00Z,2026-11-26T01:00:00Z,\n\
               A-3,Bad,open,,004711,,2026-11-26T03:00:00Z,2026-11-26T02:00:00Z,0\n\
               A-4,Bad time,open,,004711,,yesterday,2026-11-26T02:00:00Z,0\n";
    let f = h.dir.path().join("dispatch.csv");
    fs::write(&f, csv).unwrap();
    let out = h.cmd(&["case", "import", f.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("imported 2 case(s) (2 new, 0 updated), rejected 2 row(s); matched 1 case(s) to 1 original(s), 1 case(s) unmatched"), "{stdout}");
    assert!(stderr.contains("row 5 (case \"A-3\"): windows[0]: end must be after start"), "{stderr}");
    assert!(stderr.contains("row 6: window_start \"yesterday\" is not an RFC 3339 time"), "{stderr}");
    let json = h.dir.path().join("cases.json");
    fs::write(&json, r#"[{"case_id": "J-1", "officers": ["004711"], "windows": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-26T02:00:00Z"}]}, {"case_id": "J-2", "colour": "red"}]"#).unwrap();
    let out = h.cmd(&["case", "import", json.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("case 2: unknown field `colour`"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("matched 1 case(s) to 1 original(s)"));
    // The imported case is there, with both windows merged.
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let r = call(addr, "GET", "/api/v1/cases/A-1", CMS, None);
    assert_eq!(r.json()["windows"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["updated_by"], "import:dispatch.csv");
    assert_eq!(r.json()["linked_media"], 1);
    d.stop();
}

#[test]
fn renditions_and_thumbnails_are_served_with_ranges_and_audited() {
    let h = api_harness("");
    let bytes = clip(h.dir.path(), 3);
    fs::write(h.dock.join("clip.mp4"), &bytes).unwrap();
    let id = blake3_hex(&bytes);
    let photo_id = photo(&h, "CAM1", "004711", "2026-11-26T01:00:00Z", 1);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let done = |oid: &str, kind: &str| -> bool {
        h.db()
            .query_row("SELECT state FROM rendition_jobs WHERE original_id = ?1 AND kind = ?2", [oid, kind], |r| {
                r.get::<_, String>(0)
            })
            .map(|s| s == "done")
            .unwrap_or(false)
    };
    // Before it is made: 404 with a reason, not an empty body.
    let early = call(addr, "GET", &format!("/api/v1/media/{photo_id}/rendition"), CMS, None);
    assert_eq!(early.status, 404, "a photo has no playable rendition");
    wait_until("renditions", Duration::from_secs(30), || {
        done(&id, "playable") && done(&id, "thumbnail") && done(&photo_id, "thumbnail")
    });
    let (rid, rpath): (String, String) = h
        .db()
        .query_row("SELECT id, original_id FROM renditions WHERE original_id = ?1 AND kind = 'playable'", [&id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(rpath, id);
    let stored = fs::read(h.state.join("renditions/objects").join(&rid[..2]).join(&rid)).unwrap();
    let path = format!("/api/v1/media/{id}/rendition");
    let full = http(addr, "GET", &path, &[("Authorization", CMS)], None);
    assert_eq!(full.status, 200);
    assert_eq!(full.body, stored);
    assert_eq!(full.headers["content-type"], "video/mp4");
    assert_eq!(full.headers["etag"], format!("\"{rid}\""));
    let part = http(addr, "GET", &path, &[("Authorization", CMS), ("Range", "bytes=4-11")], None);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, stored[4..12]);
    assert_eq!(&part.body[..4], b"ftyp");
    for oid in [&id, &photo_id] {
        let t = http(addr, "GET", &format!("/api/v1/media/{oid}/thumbnail"), &[("Authorization", CMS)], None);
        assert_eq!(t.status, 200);
        assert_eq!(t.headers["content-type"], "image/jpeg");
        assert_eq!(&t.body[..2], [0xFF, 0xD8], "a JPEG");
    }
    let missing = call(addr, "GET", &format!("/api/v1/media/{}/thumbnail", "0".repeat(64)), CMS, None);
    assert_eq!(missing.status, 404);
    let bad = call(addr, "GET", "/api/v1/media/zz/thumbnail", CMS, None);
    assert_eq!(bad.status, 400);
    let r = call(addr, "GET", &format!("/api/v1/audit?media={id}"), AUDITOR, None);
    let actions: Vec<String> =
        r.json()["entries"].as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap().to_string()).collect();
    assert!(actions.contains(&"media.rendition".to_string()), "{actions:?}");
    assert!(actions.contains(&"media.thumbnail".to_string()), "{actions:?}");
    d.stop();
}
