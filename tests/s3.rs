//! The S3 archive with Object Lock, against moto_server on a loopback port.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const OPS: &str = "Bearer ops-token";
const CMS: &str = "Bearer cms-token";

fn harness(moto: &Moto, bucket: &str, station: &str, s3_extra: &str) -> Harness {
    let h = Harness::new(station, "");
    let token = format!(
        "[[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\nrestricted = true\ntoken_sha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"cms\"\nrole = \"case_system\"\nrestricted = true\ntoken_sha256 = \"{}\"\n",
        sha256_hex("ops-token"),
        sha256_hex("cms-token")
    );
    h.write_config(station, &format!("{token}{}", moto.config(bucket, s3_extra)));
    h
}

fn head(moto: &Moto, bucket: &str, id: &str) -> Value {
    let out = moto.py(
        bucket,
        &format!(
            "h = s3.head_object(Bucket=B, Key='objects/{}/{id}')\n\
             print(json.dumps({{'size': h['ContentLength'], 'meta': h.get('Metadata', {{}}), \
             'mode': h.get('ObjectLockMode'), 'until': h['ObjectLockRetainUntilDate'].isoformat() if 'ObjectLockRetainUntilDate' in h else None, \
             'hold': h.get('ObjectLockLegalHoldStatus'), 'version': h.get('VersionId')}}))",
            &id[..2]
        ),
    );
    serde_json::from_str(out.trim()).unwrap()
}

fn until_days(h: &Value) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(h["until"].as_str().unwrap()).unwrap();
    (t.timestamp_millis() - chrono::Utc::now().timestamp_millis()) as f64 / 86_400_000.0
}

#[test]
fn a_bucket_without_object_lock_is_refused_unless_the_operator_opts_out() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("plain", false);
    let h = harness(&moto, "plain", "", "");
    let out = h.cmd(&["check-config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not have Object Lock"), "{err}");
    // The daemon refuses to start the same way, and nothing on the dock moves.
    fs::write(h.dock.join("a.mp4"), b"evidence").unwrap();
    let out = h.cmd(&["run", "--once"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Object Lock"));
    assert!(h.dock.join("a.mp4").exists());
    // Opted out: it runs.
    let h = harness(&moto, "plain", "", "allow_without_object_lock = true");
    let out = h.cmd(&["check-config"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Bad settings are named.
    let h = harness(&moto, "Not_A_Bucket", "", "lock_mode = \"forever\"");
    let out = h.cmd(&["check-config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("archive.s3.bucket") && err.contains("archive.s3.lock_mode"), "{err}");
}

#[test]
fn originals_are_stored_locked_and_the_bucket_refuses_to_delete_or_overwrite_them() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("evidence", true);
    let h = harness(&moto, "evidence", "after_ingest = \"delete\"", "");
    let bytes = clip(h.dir.path(), 1);
    let id = blake3_hex(&bytes);
    fs::write(h.dock.join("clip.mp4"), &bytes).unwrap();
    h.run_once();
    // Removed from the dock only after the bucket confirmed it.
    assert!(!h.dock.join("clip.mp4").exists());
    let hd = head(&moto, "evidence", &id);
    assert_eq!(hd["size"], bytes.len());
    assert_eq!(hd["meta"]["blake3"], id.as_str());
    assert_eq!(hd["mode"], "COMPLIANCE");
    // Retention (183 days) plus the trash period (7).
    let days = until_days(&hd);
    assert!((189.0..191.0).contains(&days), "locked for {days} days");
    // Nobody can delete the locked version, or replace it under its key.
    let r = moto.py(
        "evidence",
        &format!(
            "k = 'objects/{}/{id}'\n\
             try:\n    s3.delete_object(Bucket=B, Key=k, VersionId='{}', BypassGovernanceRetention=True); print('deleted')\n\
             except ClientError as e: print('refused', e.response['Error']['Code'])\n\
             try:\n    s3.put_object(Bucket=B, Key=k, Body=b'forged', IfNoneMatch='*'); print('overwritten')\n\
             except ClientError as e: print('refused', e.response['Error']['Code'])\n\
             s3.delete_object(Bucket=B, Key=k)\n\
             v = s3.get_object(Bucket=B, Key=k, VersionId='{}')['Body'].read()\n\
             print('kept', len(v))",
            &id[..2],
            hd["version"].as_str().unwrap(),
            hd["version"].as_str().unwrap()
        ),
    );
    assert!(!r.contains("deleted") && !r.contains("overwritten"), "{r}");
    assert_eq!(r.matches("refused").count(), 2, "{r}");
    assert!(r.contains(&format!("kept {}", bytes.len())), "a delete marker leaves the locked version: {r}");
    // verify names what hides the original; the daemon still reads the
    // version it stored (below).
    let out = h.cmd(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAULT original {id}")));

    // The local copy is only a cache: without it, the API serves the
    // original (with ranges) from the bucket, and verify reads the bucket.
    fs::remove_dir_all(h.state.join("archive/objects")).unwrap();
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/media/{id}/original"),
        &[("Authorization", CMS), ("Range", "bytes=0-99")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, bytes[..100].to_vec());
    wait_until("renditions", Duration::from_secs(60), || {
        call(addr, "GET", &format!("/api/v1/media/{id}/thumbnail"), CMS, None).status == 200
    });
    d.stop();
    // The delete marker removed (it is not locked), verify is clean again.
    moto.py("evidence", "for m in s3.list_object_versions(Bucket=B).get('DeleteMarkers', []):\n    s3.delete_object(Bucket=B, Key=m['Key'], VersionId=m['VersionId'])");
    let out = h.cmd(&["verify", "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["faults"], json!([]), "{v}");
    assert_eq!(v["originals_checked"], 1);
    assert!(v["renditions_checked"].as_u64().unwrap() >= 1);
    let sample = h.cmd(&["verify", "--sample", "1"]).output().unwrap();
    assert!(sample.status.success(), "{}", String::from_utf8_lossy(&sample.stdout));
    // Bytes changed behind bodycamd's back (a new version under the key:
    // what a GET now serves) are a fault that verify names.
    moto.py("evidence", &format!("s3.put_object(Bucket=B, Key='objects/{}/{id}', Body=b'tampered')", &id[..2]));
    let out = h.cmd(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("FAULT original {id}")));
}

#[test]
fn holds_are_legal_holds_and_locks_are_only_ever_extended() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("holds", true);
    let h = harness(&moto, "holds", "", "lock_mode = \"governance\"");
    let bytes = bodycamd::media::encode::encode_jpeg(32, 24, 7).unwrap();
    let id = blake3_hex(&bytes);
    fs::write(h.dock.join("p.jpg"), &bytes).unwrap();
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("stored", Duration::from_secs(30), || h.media().len() == 1);
    let first = head(&moto, "holds", &id);
    assert_eq!(first["mode"], "GOVERNANCE");
    assert_ne!(first["hold"], "ON");
    let r = call(addr, "POST", &format!("/api/v1/media/{id}/holds"), OPS, Some(json!({"reason": "court order 9"})));
    assert_eq!(r.status, 201);
    let hold_id = r.json()["hold_id"].as_i64().unwrap();
    assert_eq!(head(&moto, "holds", &id)["hold"], "ON");
    // A legal hold blocks deletion even where GOVERNANCE could be bypassed.
    let r = moto.py(
        "holds",
        &format!(
            "try:\n    s3.delete_object(Bucket=B, Key='objects/{}/{id}', VersionId='{}', BypassGovernanceRetention=True); print('deleted')\n\
             except ClientError as e: print('refused')",
            &id[..2],
            first["version"].as_str().unwrap()
        ),
    );
    assert_eq!(r.trim(), "refused");
    assert_eq!(call(addr, "DELETE", &format!("/api/v1/media/{id}/holds/{hold_id}"), OPS, None).status, 200);
    assert_eq!(head(&moto, "holds", &id)["hold"], "OFF");
    d.stop();

    // Someone shortens the lock behind bodycamd's back (moto allows it);
    // importance extends it again, and bodycamd never shortens it itself.
    moto.py(
        "holds",
        &format!(
            "s3.put_object_retention(Bucket=B, Key='objects/{}/{id}', BypassGovernanceRetention=True, \
             Retention={{'Mode': 'GOVERNANCE', 'RetainUntilDate': datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)}})",
            &id[..2]
        ),
    );
    assert!(until_days(&head(&moto, "holds", &id)) < 3.0);
    let cfg = bodycamd::config::Config::load(&h.config).unwrap();
    let s3 = bodycamd::store::S3Store::connect(cfg.archive.s3.as_ref().unwrap()).unwrap();
    let mid: bodycamd::domain::MediaId = id.parse().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let kept = s3.extend_lock(&mid, now + 86_400_000).unwrap();
    assert!(kept > now + 86_400_000, "an earlier date leaves the lock as it is");
    assert!(until_days(&head(&moto, "holds", &id)) > 1.9);
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    let r = call(
        addr,
        "PUT",
        &format!("/api/v1/media/{id}/retention"),
        OPS,
        Some(json!({"important": true, "reason": "use of force"})),
    );
    assert_eq!(r.status, 200);
    let days = until_days(&head(&moto, "holds", &id));
    assert!(days > 189.0, "importance extends the lock to a full span: {days}");
    d.stop();
}

#[test]
fn large_files_go_up_in_parts_and_an_interrupted_upload_leaves_nothing_behind() {
    let Some(moto) = Moto::start() else { return };
    moto.bucket("parts", true);
    let h = harness(&moto, "parts", "", "part_size_mb = 5");
    // An upload a crash interrupted: begun, never completed.
    moto.py("parts", "s3.create_multipart_upload(Bucket=B, Key='objects/00/stale', ObjectLockMode='COMPLIANCE', ObjectLockRetainUntilDate=datetime.datetime(2030,1,1))");
    let big: Vec<u8> = (0..(12u32 << 20) / 4).flat_map(|i| (i.wrapping_mul(2654435761)).to_le_bytes()).collect();
    let id = blake3_hex(&big);
    fs::write(h.dock.join("big.bin"), &big).unwrap();
    let run = h.run_once();
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    let uploads = moto.py("parts", "print(len(s3.list_multipart_uploads(Bucket=B).get('Uploads', [])))");
    assert_eq!(uploads.trim(), "0", "the interrupted upload was aborted, and ours completed");
    let hd = head(&moto, "parts", &id);
    assert_eq!(hd["size"], big.len(), "{log}");
    assert_eq!(hd["mode"], "COMPLIANCE", "{log}");
    let got = moto.py(
        "parts",
        &format!("import hashlib\nprint(len(s3.get_object(Bucket=B, Key='objects/{}/{id}')['Body'].read()))", &id[..2]),
    );
    assert_eq!(got.trim(), big.len().to_string());
    let stale = moto.py("parts", "print(len(s3.list_objects_v2(Bucket=B, Prefix='objects/00/').get('Contents', [])))");
    assert_eq!(stale.trim(), "0");
    let out = h.cmd(&["verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
