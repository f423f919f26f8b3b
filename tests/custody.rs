//! Evidence custody, black-box: `verify` finds tampering and names it,
//! receipts verify offline, retention never deletes what must be kept,
//! restricted records are invisible without the grant, and exports need an
//! approver who is not the requester.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CMS: &str = "Bearer cms-token";
const INVESTIGATOR: &str = "Bearer investigator-token";
const OPS: &str = "Bearer ops-token";
const BOSS: &str = "Bearer boss-token";
const CHIEF: &str = "Bearer chief-token";
const AUDITOR: &str = "Bearer auditor-token";

fn harness(top: &str) -> Harness {
    let h = Harness::new("", "");
    let mut tokens = String::new();
    for (name, role, restricted) in [
        ("cms", "case_system", false),
        ("investigator", "case_system", true),
        ("ops", "admin", true),
        ("boss", "approver", false),
        ("chief", "approver", false),
        ("auditor", "auditor", true),
    ] {
        tokens.push_str(&format!(
            "[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nrestricted = {restricted}\ntoken_sha256 = \"{}\"\n",
            sha256_hex(&format!("{name}-token"))
        ));
    }
    h.write_config("", &format!("{tokens}{top}"));
    h
}

/// A JPEG photo named as a camera names it; returns its id.
fn photo(h: &Harness, officer: &str, start: &str, seq: u32) -> String {
    let path = h.dock.join(format!("CAM1/CAM1_{officer}_{start}_{seq:04}.jpg"));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = bodycamd::media::encode::encode_jpeg(32, 24, u64::from(seq) * 31 + start.len() as u64).unwrap();
    fs::write(&path, &bytes).unwrap();
    blake3_hex(&bytes)
}

fn stored_path(h: &Harness, id: &str) -> PathBuf {
    h.state.join("archive/objects").join(&id[..2]).join(id)
}

fn verify(h: &Harness) -> (i32, String, Value) {
    let out = h.cmd(&["verify", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let text = h.cmd(&["verify"]).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&text.stdout).into_owned(), v)
}

fn faults(v: &Value) -> Vec<(String, String)> {
    v["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["what"].as_str().unwrap().to_string(), f["id"].as_str().unwrap().to_string()))
        .collect()
}

/// Flip one byte of a read-only stored file (as an intruder with root
/// would), returning a closure-free undo value.
fn flip(path: &Path, at: usize) {
    let mut p = fs::metadata(path).unwrap().permissions();
    p.set_mode(0o644);
    fs::set_permissions(path, p).unwrap();
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x01;
    fs::write(path, &b).unwrap();
}

#[test]
fn verify_names_a_changed_original_rendition_and_every_kind_of_audit_tampering() {
    let h = harness("");
    let id = photo(&h, "004711", "20261126010000", 1);
    let clip_bytes = clip(h.dir.path(), 5);
    fs::write(h.dock.join("clip.mp4"), &clip_bytes).unwrap();
    let clip_id = blake3_hex(&clip_bytes);
    h.run_once();
    h.run_once(); // a second start: more audit entries (config.load)
    let (code, text, v) = verify(&h);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("all intact"), "{text}");
    assert_eq!(v["originals_checked"], 2);
    assert!(v["renditions_checked"].as_u64().unwrap() >= 2);
    assert!(v["audit_entries"].as_u64().unwrap() >= 4);

    // A changed byte in an original.
    flip(&stored_path(&h, &id), 10);
    let (code, text, v) = verify(&h);
    assert_eq!(code, 1);
    assert_eq!(faults(&v), [("original".to_string(), id.clone())], "{text}");
    assert!(text.contains(&format!("FAULT original {id}")), "{text}");
    flip(&stored_path(&h, &id), 10);
    assert_eq!(verify(&h).0, 0);

    // A changed byte in a rendition.
    let c = h.db();
    let rid: String = c
        .query_row("SELECT id FROM renditions WHERE original_id = ?1 AND kind = 'playable'", [&clip_id], |r| r.get(0))
        .unwrap();
    let rpath = h.state.join("renditions/objects").join(&rid[..2]).join(&rid);
    flip(&rpath, 100);
    let (code, _, v) = verify(&h);
    assert_eq!(code, 1);
    assert_eq!(faults(&v), [("rendition".to_string(), rid.clone())]);
    flip(&rpath, 100);
    // Sampling checks a subset and still finds nothing wrong.
    let out = h.cmd(&["verify", "--sample", "1", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["originals_checked"], 1);

    // The audit log is append-only in SQL; an intruder drops the triggers.
    let err = c.execute("UPDATE audit SET details = 'x' WHERE id = 2", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(c.execute("DELETE FROM audit WHERE id = 2", []).is_err());
    c.execute_batch(if h.pg.is_some() {
        "DROP TRIGGER audit_append_only_update ON audit; DROP TRIGGER audit_append_only_delete ON audit;"
    } else {
        "DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete;"
    })
    .unwrap();
    let row = |id: i64| -> (String, Option<String>) {
        c.query_row("SELECT action, details FROM audit WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
    };
    // Edited.
    let (_, details) = row(2);
    c.execute("UPDATE audit SET details = 'nothing happened' WHERE id = 2", []).unwrap();
    let (code, _, v) = verify(&h);
    assert_eq!(code, 1);
    assert!(faults(&v).contains(&("audit".to_string(), "2".to_string())), "{v:#}");
    assert!(v["faults"][0]["problem"].as_str().unwrap().contains("edited"));
    c.execute("UPDATE audit SET details = ?1 WHERE id = 2", [&details]).unwrap();
    assert_eq!(verify(&h).0, 0);
    // Deleted (and put back exactly).
    c.execute_batch("CREATE TEMP TABLE saved AS SELECT * FROM audit WHERE id = 3; DELETE FROM audit WHERE id = 3;")
        .unwrap();
    let (code, _, v) = verify(&h);
    assert_eq!(code, 1);
    assert!(faults(&v).contains(&("audit".to_string(), "4".to_string())), "the entry after the gap: {v:#}");
    assert!(v["faults"].to_string().contains("missing"));
    c.execute_batch("INSERT INTO audit SELECT * FROM saved; DROP TABLE saved;").unwrap();
    assert_eq!(verify(&h).0, 0);
    // Reordered: entries 2 and 3 swap places.
    c.execute_batch(
        "UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -2;",
    )
    .unwrap();
    let (code, _, v) = verify(&h);
    assert_eq!(code, 1);
    let f = faults(&v);
    assert!(f.contains(&("audit".to_string(), "2".to_string())) && f.contains(&("audit".to_string(), "3".to_string())));
    c.execute_batch(
        "UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -2;",
    )
    .unwrap();
    assert_eq!(verify(&h).0, 0);
    // Truncated: the last entries deleted. The chain alone looks fine, the
    // signed head written at the end of the run does not.
    let last: i64 = c.query_row("SELECT max(id) FROM audit", [], |r| r.get(0)).unwrap();
    c.execute("DELETE FROM audit WHERE id >= ?1", [last - 1]).unwrap();
    let (code, text, v) = verify(&h);
    assert_eq!(code, 1, "{text}");
    assert_eq!(faults(&v), [("head".to_string(), last.to_string())]);
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn receipts_verify_offline_and_fail_after_any_change() {
    let h = harness("");
    // Recorded an hour ago: stored on time.
    let start = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y%m%d%H%M%S").to_string();
    let id = photo(&h, "004711", &start, 1);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("the photo to be described", Duration::from_secs(30), || {
        h.media().first().is_some_and(|m| m["described"] == true)
    });
    let r = call(addr, "GET", &format!("/api/v1/media/{id}/receipt"), CMS, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    d.stop();
    let receipt = r.json();
    assert_eq!(receipt["receipt"]["id"], id);
    assert_eq!(receipt["receipt"]["station"], "dock-01");
    assert_eq!(receipt["receipt"]["officer"], "004711");
    assert_eq!(receipt["receipt"]["on_time"], true);
    for field in ["recorded_start", "recorded_end", "first_seen", "stored_at", "deadline", "size", "device"] {
        assert!(!receipt["receipt"][field].is_null(), "{field}");
    }
    let key = String::from_utf8(h.cmd(&["key", "show"]).output().unwrap().stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 64);
    assert_eq!(receipt["receipt"]["host_key"], key);
    let mode = fs::metadata(h.state.join("host-key.ed25519")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Offline: no config, no index.
    let check = |v: &Value| -> (bool, String) {
        let f = h.dir.path().join("receipt.json");
        fs::write(&f, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        let out = std::process::Command::new(bin())
            .args(["receipt", "verify"])
            .arg(&f)
            .args(["--pubkey", &key])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, text) = check(&receipt);
    assert!(ok, "{text}");
    assert!(text.starts_with("valid"), "{text}");
    for (field, value) in receipt["receipt"].as_object().unwrap() {
        let mut changed = receipt.clone();
        changed["receipt"][field] = match value {
            Value::String(s) => json!(format!("{s}x")),
            Value::Number(n) => json!(n.as_u64().unwrap() + 1),
            Value::Bool(b) => json!(!b),
            _ => json!("x"),
        };
        let (ok, text) = check(&changed);
        assert!(!ok, "a changed {field} still verifies: {text}");
    }
    let mut forged = receipt.clone();
    forged["signature"] = json!("00".repeat(64));
    assert!(!check(&forged).0);
    let mut extra = receipt.clone();
    extra["receipt"]["note"] = json!("added");
    assert!(!check(&extra).0);
    // Another host's key.
    let other = Harness::new("", "");
    let okey = String::from_utf8(other.cmd(&["key", "show"]).output().unwrap().stdout).unwrap().trim().to_string();
    let f = h.dir.path().join("receipt.json");
    fs::write(&f, serde_json::to_vec(&receipt).unwrap()).unwrap();
    let out = std::process::Command::new(bin())
        .args(["receipt", "verify"])
        .arg(&f)
        .args(["--pubkey", &okey])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

fn retention(h: &Harness, now: &str) -> Value {
    let out = h.cmd(&["retention", "run", "--now", now, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn retention_trashes_only_what_may_go_keeps_cases_holds_and_important_and_trash_is_recoverable() {
    let h = harness("");
    let plain = photo(&h, "004700", "20261126010000", 1);
    let linked = photo(&h, "004711", "20261126020000", 2);
    let held = photo(&h, "004700", "20261126030000", 3);
    let important = photo(&h, "004700", "20261126040000", 4);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    // Retention counts from the recording, once the original is described.
    wait_until("photos stored and described", Duration::from_secs(30), || {
        let m = h.media();
        m.len() == 4 && m.iter().all(|o| o["described"] == json!(true))
    });
    let case =
        json!({"officers": ["004711"], "windows": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-26T05:00:00Z"}]});
    assert_eq!(call(addr, "PUT", "/api/v1/cases/K-1", CMS, Some(case)).status, 201);
    let r = call(addr, "POST", &format!("/api/v1/media/{held}/holds"), OPS, Some(json!({"reason": "court order 17"})));
    assert_eq!(r.status, 201, "{:?}", r.json());
    let hold_id = r.json()["hold_id"].as_i64().unwrap();
    let r = call(
        addr,
        "PUT",
        &format!("/api/v1/media/{important}/retention"),
        OPS,
        Some(json!({"important": true, "reason": "use of force"})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kept_for"], json!(["important"]));
    // Only admins mark things.
    assert_eq!(
        call(addr, "POST", &format!("/api/v1/media/{plain}/holds"), CMS, Some(json!({"reason": "x"}))).status,
        403
    );

    // Nothing expires before six months.
    let r = retention(&h, "2027-05-01T00:00:00Z");
    assert_eq!(r["trashed"], json!([]));
    // After: only the ordinary one goes to the trash, nothing is deleted.
    let r = retention(&h, "2028-06-01T00:00:00Z");
    assert_eq!(r["trashed"], json!([plain]));
    assert_eq!(r["purged"], json!([]));
    assert!(!stored_path(&h, &plain).exists());
    let trashed = h.state.join("trash").join(&plain);
    assert!(trashed.exists());
    assert_eq!(blake3_hex(&fs::read(&trashed).unwrap()), plain, "the trash holds the exact bytes");
    let r = call(addr, "GET", &format!("/api/v1/media/{plain}/original"), CMS, None);
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (410, "in_trash"));
    let (code, text, _) = verify(&h);
    assert_eq!(code, 0, "the trash is verified too: {text}");
    // Recoverable: restored by an administrator.
    let r =
        call(addr, "POST", &format!("/api/v1/media/{plain}/restore"), OPS, Some(json!({"reason": "needed after all"})));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(stored_path(&h, &plain).exists());
    assert_eq!(call(addr, "GET", &format!("/api/v1/media/{plain}/original"), CMS, None).status, 200);

    // Trashed again, then purged after trash_days (7); the others stay.
    assert_eq!(retention(&h, "2028-06-01T00:00:00Z")["trashed"], json!([plain]));
    assert_eq!(retention(&h, "2028-06-05T00:00:00Z")["purged"], json!([]), "not before 7 days");
    let r = retention(&h, "2028-06-09T00:00:00Z");
    assert_eq!(r["purged"], json!([plain]));
    assert!(!trashed.exists());
    for id in [&linked, &held, &important] {
        assert!(stored_path(&h, id).exists(), "{id} must be kept");
    }
    // Years later, still kept while the reasons hold.
    assert_eq!(retention(&h, "2036-01-01T00:00:00Z")["trashed"], json!([]));
    // Lifting the hold lets it expire, to the trash first.
    assert_eq!(call(addr, "DELETE", &format!("/api/v1/media/{held}/holds/{hold_id}"), OPS, None).status, 200);
    let r = retention(&h, "2036-01-01T00:00:00Z");
    assert_eq!(r["trashed"], json!([held]));
    // A hold placed on something in the trash takes it back out.
    assert_eq!(
        call(addr, "POST", &format!("/api/v1/media/{held}/holds"), OPS, Some(json!({"reason": "appeal"}))).status,
        201
    );
    assert!(stored_path(&h, &held).exists());

    // Every move is in the audit log, and the chain holds.
    let r = call(addr, "GET", "/api/v1/audit?limit=1000", AUDITOR, None);
    let actions: Vec<String> =
        r.json()["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for a in [
        "retention.hold",
        "retention.important",
        "retention.trash",
        "retention.restore",
        "retention.purge",
        "retention.lift_hold",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
    d.stop();
    let (code, text, _) = verify(&h);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn restricted_records_are_invisible_without_the_grant_and_audited_with_a_reason() {
    let h = harness("");
    let secret = photo(&h, "004711", "20261126010000", 1);
    let open = photo(&h, "004711", "20261126011000", 2);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("photos stored", Duration::from_secs(30), || h.media().len() == 2);
    let case =
        json!({"officers": ["004711"], "windows": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-26T05:00:00Z"}]});
    assert_eq!(call(addr, "PUT", "/api/v1/cases/K-1", CMS, Some(case.clone())).status, 201);
    let r = call(
        addr,
        "PUT",
        &format!("/api/v1/media/{secret}/restriction"),
        OPS,
        Some(json!({"restricted": true, "reason": "informant"})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());

    // Without the grant: as if it did not exist.
    for path in ["", "/original", "/thumbnail", "/receipt"] {
        let r = call(addr, "GET", &format!("/api/v1/media/{secret}{path}"), CMS, None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["code"], "not_found");
    }
    let ids = |r: &Resp| -> Vec<String> {
        r.json()["media"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&call(addr, "GET", "/api/v1/media?officer=004711", CMS, None)), std::slice::from_ref(&open));
    assert_eq!(ids(&call(addr, "GET", "/api/v1/cases/K-1/media", CMS, None)), std::slice::from_ref(&open));
    let r = call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"media": [secret], "reason": "court"})));
    assert_eq!(r.status, 404);
    // With the grant: a reason is required, and recorded.
    let r = call(addr, "GET", &format!("/api/v1/media/{secret}"), INVESTIGATOR, None);
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (400, "reason_required"));
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/media/{secret}/original"),
        &[("Authorization", INVESTIGATOR), ("X-Bodycamd-Reason", "case 2026-0457 review")],
        None,
    );
    assert_eq!(r.status, 200);
    let r = http(
        addr,
        "GET",
        "/api/v1/media?officer=004711",
        &[("Authorization", INVESTIGATOR), ("X-Bodycamd-Reason", "review")],
        None,
    );
    assert_eq!(ids(&r).len(), 2);
    assert_eq!(
        ids(&call(addr, "GET", "/api/v1/media?officer=004711", INVESTIGATOR, None)),
        std::slice::from_ref(&open),
        "no reason, no restricted rows"
    );

    // A restricted case hides itself and its media.
    let r = call(
        addr,
        "PUT",
        "/api/v1/cases/K-1/restriction",
        OPS,
        Some(json!({"restricted": true, "reason": "internal affairs"})),
    );
    assert_eq!(r.status, 204);
    assert_eq!(call(addr, "GET", "/api/v1/cases/K-1", CMS, None).status, 404);
    assert_eq!(call(addr, "GET", "/api/v1/cases/K-1/media", CMS, None).status, 404);
    assert_eq!(
        call(addr, "GET", &format!("/api/v1/media/{open}"), CMS, None).status,
        404,
        "linked to a restricted case"
    );
    // Overwriting it blind answers as for a new case, and changes nothing.
    let before =
        http(addr, "GET", "/api/v1/cases/K-1", &[("Authorization", INVESTIGATOR), ("X-Bodycamd-Reason", "x")], None);
    let mut other = case.clone();
    other["officers"] = json!(["009999"]);
    assert_eq!(call(addr, "PUT", "/api/v1/cases/K-1", CMS, Some(other)).status, 201, "held, not applied");
    let after =
        http(addr, "GET", "/api/v1/cases/K-1", &[("Authorization", INVESTIGATOR), ("X-Bodycamd-Reason", "x")], None);
    assert_eq!(before.json()["officers"], after.json()["officers"]);

    // Auditors see entries about restricted records with the grant and a
    // reason only.
    let r = call(addr, "GET", &format!("/api/v1/audit?media={secret}"), AUDITOR, None);
    assert_eq!(r.json()["entries"], json!([]), "{:?}", r.json());
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/audit?media={secret}"),
        &[("Authorization", AUDITOR), ("X-Bodycamd-Reason", "annual audit")],
        None,
    );
    let e = r.json();
    let read = e["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["action"] == "media.original" && x["actor"] == "investigator")
        .expect("the read is audited");
    assert!(read["details"].as_str().unwrap().contains("reason: case 2026-0457 review"), "{read:#}");
    d.stop();
}

/// Read a tar (ustar/GNU, as bodycamd writes it) into name -> bytes.
fn untar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(bytes);
    let mut out = HashMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        out.insert(name, b);
    }
    out
}

#[test]
fn exports_need_an_approver_who_is_not_the_requester_and_carry_a_matching_manifest() {
    let h = harness("[alerts]\nevaluate_every = \"100ms\"\n");
    let a = photo(&h, "004711", "20261001010000", 1);
    let clip_bytes = clip(h.dir.path(), 9);
    fs::write(h.dock.join("CAM1/CAM1_004711_20261001012000_0002.mp4"), &clip_bytes).unwrap();
    let b = blake3_hex(&clip_bytes);
    photo(&h, "004799", "20261001010000", 3); // not in the case
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("media described and rendered", Duration::from_secs(60), || {
        let done = |id: &str, kind: &str| {
            h.db()
                .query_row(
                    "SELECT count(*) FROM rendition_jobs WHERE original_id = ?1 AND kind = ?2 AND state = 'done'",
                    [id, kind],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                == 1
        };
        h.media().len() == 3 && done(&a, "thumbnail") && done(&b, "thumbnail") && done(&b, "playable")
    });
    let closed = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let case = json!({"status": "closed", "closed_at": closed, "officers": ["004711"],
                      "windows": [{"start": "2026-10-01T00:00:00Z", "end": "2026-10-01T05:00:00Z"}]});
    assert_eq!(call(addr, "PUT", "/api/v1/cases/K-7", CMS, Some(case)).status, 201);
    wait_until("case_archive_overdue", Duration::from_secs(10), || {
        let r = call(addr, "GET", "/api/v1/alerts?kind=case_archive_overdue", OPS, None);
        r.json()["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x["subject"] == "K-7"))
            || r.json().as_array().is_some_and(|a| a.iter().any(|x| x["subject"] == "K-7"))
    });

    // Bad requests.
    assert_eq!(call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"reason": "x"}))).status, 422);
    assert_eq!(call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"case_id": "K-7", "reason": ""}))).status, 422);
    assert_eq!(call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"case_id": "nope", "reason": "x"}))).status, 404);
    assert_eq!(call(addr, "POST", "/api/v1/exports", OPS, Some(json!({"case_id": "K-7", "reason": "x"}))).status, 403);

    let r = call(
        addr,
        "POST",
        "/api/v1/exports",
        CMS,
        Some(json!({"case_id": "K-7", "reason": "prosecutor's request 88", "reviewer": "Sgt. Wu", "case_file": true})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let e = r.json();
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(e["state"], "pending");
    assert_eq!(e["media"], json!([a, b]));
    let dl = format!("/api/v1/exports/{id}/download");
    let r = call(addr, "GET", &dl, CMS, None);
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (403, "not_approved"));
    // Case systems cannot approve; an approver cannot approve their own request.
    assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{id}/approve"), CMS, Some(json!({}))).status, 403);
    let own = call(addr, "POST", "/api/v1/exports", BOSS, Some(json!({"media": [a], "reason": "own"}))).json();
    let own_id = own["id"].as_str().unwrap();
    let r = call(addr, "POST", &format!("/api/v1/exports/{own_id}/approve"), BOSS, Some(json!({})));
    assert_eq!(r.status, 403);
    assert!(r.json()["message"].as_str().unwrap().contains("own request"));
    let r = call(addr, "POST", &format!("/api/v1/exports/{own_id}/deny"), CHIEF, Some(json!({"note": "no"})));
    assert_eq!(r.json()["state"], "denied");
    assert_eq!(call(addr, "GET", &format!("/api/v1/exports/{own_id}/download"), BOSS, None).status, 403);

    let r = call(addr, "POST", &format!("/api/v1/exports/{id}/approve"), BOSS, Some(json!({"note": "ok"})));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["approver"], "boss");
    assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{id}/approve"), CHIEF, Some(json!({}))).status, 409);
    let r = call(addr, "GET", &dl, CMS, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["content-type"], "application/x-tar");
    let files = untar(&r.body);

    // The manifest matches the contents, file by file.
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["export"]["requester"], "cms");
    assert_eq!(manifest["export"]["reviewer"], "Sgt. Wu");
    assert_eq!(manifest["export"]["approver"], "boss");
    let listed: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for f in manifest["files"].as_array().unwrap() {
        let body = &files[f["path"].as_str().unwrap()];
        assert_eq!(f["size"], body.len());
        assert_eq!(f["blake3"], blake3_hex(body), "{}", f["path"]);
    }
    let mut names: Vec<&str> = files.keys().map(String::as_str).filter(|n| !n.starts_with("manifest.json")).collect();
    names.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(names, sorted, "every file is listed, and only those");
    for m in [&a, &b] {
        assert_eq!(blake3_hex(&files[&format!("originals/{m}")]), *m);
        assert!(files.contains_key(&format!("receipts/{m}.json")));
        assert!(files.contains_key(&format!("renditions/{m}.thumbnail.jpg")));
    }
    assert!(files.contains_key(&format!("renditions/{b}.playable.mp4")));
    let audit = String::from_utf8(files["audit.jsonl"].clone()).unwrap();
    assert!(audit.lines().any(|l| l.contains("media.ingest") && l.contains(&a)));
    // Receipts in it verify offline with the host key; the manifest is signed.
    let key = String::from_utf8(h.cmd(&["key", "show"]).output().unwrap().stdout).unwrap().trim().to_string();
    let rf = h.dir.path().join("r.json");
    fs::write(&rf, &files[&format!("receipts/{a}.json")]).unwrap();
    assert!(std::process::Command::new(bin())
        .args(["receipt", "verify"])
        .arg(&rf)
        .args(["--pubkey", &key])
        .status()
        .unwrap()
        .success());
    let pk = bodycamd::custody::key::parse_public(&key).unwrap();
    let sig = String::from_utf8(files["manifest.json.sig"].clone()).unwrap();
    assert!(bodycamd::custody::key::verify_hex(&pk, &files["manifest.json"], &sig));
    // The whole archive verifies offline, as a recipient gets it; a changed
    // byte in an original, or another host's key, does not.
    let verify_tar = |bytes: &[u8], key: &str| {
        let f = h.dir.path().join("export.tar");
        fs::write(&f, bytes).unwrap();
        let out = std::process::Command::new(bin())
            .args(["receipt", "verify"])
            .arg(&f)
            .args(["--pubkey", key])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, said) = verify_tar(&r.body, &key);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("valid: export {id}"))
            && said.contains("2 original(s)")
            && said.contains("2 receipt(s)"),
        "{said}"
    );
    let original = &files[&format!("originals/{a}")];
    let at = r.body.windows(original.len()).position(|w| w == original.as_slice()).unwrap();
    let mut changed = r.body.clone();
    changed[at + original.len() / 2] ^= 1;
    let (code, said) = verify_tar(&changed, &key);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&format!("originals/{a}")) && said.contains("BLAKE3"), "{said}");
    let (code, said) = verify_tar(&r.body, &"11".repeat(32));
    assert_eq!(code, Some(1), "{said}");

    // The case file archived the case: its alert resolves.
    wait_until("the archive alert to resolve", Duration::from_secs(10), || {
        let r = call(addr, "GET", "/api/v1/alerts?kind=case_archive_overdue", OPS, None);
        let v = r.json();
        let list = v["alerts"].as_array().or(v.as_array()).cloned().unwrap_or_default();
        !list.iter().any(|x| x["subject"] == "K-7" && x["resolved_at"].is_null())
    });
    let r = call(addr, "GET", "/api/v1/audit?case=K-7&limit=1000", AUDITOR, None);
    let actions: Vec<String> =
        r.json()["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    for x in ["export.request", "export.approve", "export.download", "case.archived"] {
        assert!(actions.iter().any(|y| y == x), "{x} in {actions:?}");
    }
    d.stop();
}

#[test]
fn retention_never_shortens_a_recordings_life() {
    let h = harness("");
    // A camera whose clock reset to a plausible factory default (2016), and
    // an ordinary recording.
    let reset = photo(&h, "004700", "20160101080000", 1);
    let fine = photo(&h, "004700", "20261126080000", 2);
    let undescribed = photo(&h, "004700", "20261126090000", 3);
    h.run_once();
    // One is not described yet (as after a crash before describing).
    h.db().execute("UPDATE originals SET described_at = NULL WHERE id = ?1", [&undescribed]).unwrap();
    // Six months after the 2016 "recording", but weeks after it was docked.
    let r = retention(&h, "2027-01-15T00:00:00Z");
    assert_eq!(r["trashed"], json!([]), "counted from when it was first seen, not from 2016: {r:#}");
    // Long after: the described ones go; the undescribed one never does.
    let r = retention(&h, "2030-01-01T00:00:00Z");
    let mut trashed: Vec<String> = serde_json::from_value(r["trashed"].clone()).unwrap();
    trashed.sort();
    let mut want = vec![reset.clone(), fine.clone()];
    want.sort();
    assert_eq!(trashed, want);
    assert!(stored_path(&h, &undescribed).exists());
    // The base is checked again at purge time: a re-description that places
    // a recording later keeps it out of the purge.
    h.db()
        .execute(
            "UPDATE originals SET recorded_start = ?2 WHERE id = ?1",
            bodycamd::params![&fine, 1_900_000_000_000i64],
        )
        .unwrap();
    let r = retention(&h, "2030-02-01T00:00:00Z");
    assert_eq!(r["purged"], json!([reset]), "{r:#}");
    assert!(h.state.join("trash").join(&fine).exists());
}

#[test]
fn a_failed_retention_commit_moves_no_file() {
    let h = harness("");
    let id = photo(&h, "004700", "20261126080000", 1);
    h.run_once();
    let cfg = bodycamd::config::Config::load(&h.config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let index = bodycamd::index::Index::connect(&cfg.index).unwrap();
        let later = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().timestamp_millis();
        index.inject_commit_failure(true);
        let r = bodycamd::custody::retention::pass_in_batches(&index, &cfg.state_dir, &cfg.retention, later).await;
        assert!(r.is_err(), "the failed commit is reported");
        assert!(stored_path(&h, &id).exists(), "no file moved for a commit that did not happen");
        assert!(!h.state.join("trash").join(&id).exists());
        index.inject_commit_failure(false);
        let r = bodycamd::custody::retention::pass_in_batches(&index, &cfg.state_dir, &cfg.retention, later).await;
        assert_eq!(r.unwrap().trashed, vec![id.clone()]);
        assert!(h.state.join("trash").join(&id).exists());
        index.close();
    });
    let trashed: Option<i64> =
        h.db().query_row("SELECT trashed_at FROM originals WHERE id = ?1", [&id], |r| r.get(0)).unwrap();
    assert!(trashed.is_some());
}

#[test]
fn a_purge_removes_every_copy_and_every_route_answers_gone() {
    let h = harness("");
    let clip_bytes = clip(h.dir.path(), 21);
    fs::create_dir_all(h.dock.join("CAM1")).unwrap();
    fs::write(h.dock.join("CAM1/CAM1_004711_20261001012000_0002.mp4"), &clip_bytes).unwrap();
    let id = blake3_hex(&clip_bytes);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("renditions made", Duration::from_secs(60), || {
        h.db()
            .query_row("SELECT count(*) FROM renditions WHERE original_id = ?1", [&id], |r| r.get::<_, i64>(0))
            .unwrap()
            == 2
    });
    let rendition_files: Vec<PathBuf> = {
        let c = h.db();
        let ids: Vec<String> =
            c.query_all("SELECT id FROM renditions WHERE original_id = ?1", [&id], |r| r.get(0)).unwrap();
        ids.iter().map(|r| h.state.join("renditions/objects").join(&r[..2]).join(r)).collect()
    };
    assert!(rendition_files.iter().all(|p| p.exists()));
    let e = call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"media": [id], "reason": "court"}))).json();
    let eid = e["id"].as_str().unwrap().to_string();
    assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{eid}/approve"), BOSS, Some(json!({}))).status, 200);
    let dl = format!("/api/v1/exports/{eid}/download");
    assert_eq!(call(addr, "GET", &dl, CMS, None).status, 200);
    let tar = h.state.join("exports").join(format!("{eid}.tar"));
    assert!(tar.exists());
    d.stop();

    retention(&h, "2030-01-01T00:00:00Z");
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    for route in ["original", "rendition", "thumbnail", "receipt"] {
        let r = call(addr, "GET", &format!("/api/v1/media/{id}/{route}"), CMS, None);
        assert_eq!((r.status, r.json()["code"].clone()), (410, json!("in_trash")), "{route}");
    }
    d.stop();
    let r = retention(&h, "2030-02-01T00:00:00Z");
    assert_eq!(r["purged"], json!([id]));
    assert!(!h.state.join("trash").join(&id).exists());
    for p in &rendition_files {
        assert!(!p.exists(), "{} went with the original", p.display());
    }
    assert!(!tar.exists(), "the export archive that held it is removed");
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    for route in ["original", "rendition", "thumbnail", "receipt"] {
        let r = call(addr, "GET", &format!("/api/v1/media/{id}/{route}"), CMS, None);
        assert_eq!((r.status, r.json()["code"].clone()), (410, json!("purged")), "{route}");
    }
    let r = call(addr, "GET", &dl, CMS, None);
    assert_eq!((r.status, r.json()["code"].clone()), (410, json!("voided")));
    d.stop();
    let (code, text, _) = verify(&h);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn an_export_is_built_once_under_concurrent_downloads_and_never_signs_a_damaged_original() {
    let h = harness("");
    let a = photo(&h, "004711", "20261001010000", 1);
    let b = photo(&h, "004711", "20261001020000", 2);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("stored", Duration::from_secs(30), || h.media().len() == 2);
    let ask = |ids: Value| {
        let e = call(addr, "POST", "/api/v1/exports", CMS, Some(json!({"media": ids, "reason": "court"}))).json();
        let id = e["id"].as_str().unwrap().to_string();
        assert_eq!(call(addr, "POST", &format!("/api/v1/exports/{id}/approve"), BOSS, Some(json!({}))).status, 200);
        format!("/api/v1/exports/{id}/download")
    };
    let dl = ask(json!([a, b]));
    let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| call(addr, "GET", &dl, CMS, None))).collect();
        hs.into_iter()
            .map(|t| {
                let r = t.join().unwrap();
                assert_eq!(r.status, 200);
                r.body
            })
            .collect()
    });
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every download is the same archive");
    let files = untar(&bodies[0]);
    assert_eq!(blake3_hex(&files[&format!("originals/{a}")]), a);
    let leftovers: Vec<_> = fs::read_dir(h.state.join("exports"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".tar"))
        .collect();
    assert!(leftovers.is_empty(), "no partial files: {leftovers:?}");
    // A flipped byte in an original: the next export refuses it.
    flip(&stored_path(&h, &b), 100);
    let dl = ask(json!([b]));
    let r = call(addr, "GET", &dl, CMS, None);
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!("object_damaged")));
    let r = call(addr, "GET", "/api/v1/alerts?kind=object_damaged", OPS, None);
    assert!(r.json().as_array().unwrap().iter().any(|x| x["subject"] == b), "{:?}", r.json());
    d.stop();
}

#[test]
fn verify_reports_a_missing_head_and_never_creates_a_host_key() {
    let h = harness("");
    photo(&h, "004700", "20261126080000", 1);
    h.run_once();
    assert_eq!(verify(&h).0, 0);
    let head = h.state.join("audit-head.json");
    fs::remove_file(&head).unwrap();
    let (code, text, v) = verify(&h);
    assert_eq!(code, 1, "{text}");
    assert!(faults(&v).iter().any(|(what, _)| what == "head"), "{v:#}");
    assert!(text.contains("missing"), "{text}");
    // Without the host key: a fault, and no key is made up.
    h.run_once();
    let key = h.state.join("host-key.ed25519");
    fs::rename(&key, h.dir.path().join("key.bak")).unwrap();
    let (code, text, _) = verify(&h);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no host key"), "{text}");
    assert!(!key.exists(), "verify must not create a key");
    let out = h.cmd(&["key", "show"]).output().unwrap();
    assert!(!out.status.success() && !key.exists(), "nor does key show");
}
