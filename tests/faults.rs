//! Faults must never lose a file or leave it stuck: a full archive, running
//! out of descriptors, files that fail, docks replaced or unmounted under
//! the daemon, files that vanish before they are stored, dock deletions
//! that cannot be done yet. Each test drives the real binary.
//!
//! Tests that need root (mounts) say so and skip cleanly without it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ADMIN: &str = "admin-token";

fn admin_config() -> String {
    format!("[[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n", sha256_hex(ADMIN))
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut r = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| r.u8(..)).collect()
}

fn free_bytes(p: &Path) -> u64 {
    let s = rustix::fs::statvfs(p).unwrap();
    s.f_bavail * s.f_frsize
}

fn status_list(h: &Harness, key: &str) -> Vec<Value> {
    h.status()[key].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_full_archive_is_an_outage_not_the_files_fault_and_they_are_stored_once_it_clears() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs for the archive");
        return;
    }
    let h = Harness::new("", "");
    h.set_ingest("max_attempts = 2");
    fs::create_dir_all(&h.state).unwrap();
    let _tmpfs = Mount::new(&["-t", "tmpfs", "-o", "size=8m", "tmpfs"], &h.state);
    let mut d = h.spawn_daemon();
    d.api_addr();
    // Leave 1.5 MiB: room for the index, not for a 2 MiB recording.
    let filler = h.state.join("filler");
    let free = free_bytes(&h.state);
    fs::write(&filler, vec![0u8; (free - (1536 << 10)) as usize]).unwrap();
    let files: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(2 << 20, i)).collect();
    for (i, f) in files.iter().enumerate() {
        fs::write(h.dock.join(format!("clip{i}.mp4")), f).unwrap();
    }
    wait_until("three blocked files", Duration::from_secs(30), || status_list(&h, "blocked").len() == 3);
    // Many attempts later, none is counted against the files...
    std::thread::sleep(Duration::from_secs(2));
    let blocked = status_list(&h, "blocked");
    assert!(blocked.iter().all(|b| b["attempts"] == 0), "{blocked:#?}");
    assert!(status_list(&h, "failed").is_empty(), "an outage never fails a file");
    // ...and the cause is alerted once.
    let a = h.alerts();
    assert_eq!(a.iter().filter(|x| x["kind"] == "archive_unwritable").count(), 1, "{a:#?}");
    assert!(alert(&a, "archive_unwritable", &h.fault_subject("archive"), Some("open")).is_some());
    assert!(!a.iter().any(|x| x["kind"] == "ingest_failed"), "{a:#?}");
    // The cause clears: every waiting file is stored by itself.
    fs::remove_file(&filler).unwrap();
    wait_until("the waiting files to be stored", Duration::from_secs(60), || h.media().len() == 3);
    for f in &files {
        find(&h.media(), &blake3_hex(f));
    }
    wait_until("the outage alert to resolve", Duration::from_secs(30), || {
        alert(&h.alerts(), "archive_unwritable", &h.fault_subject("archive"), Some("resolved")).is_some()
    });
    assert!(status_list(&h, "blocked").is_empty());
    d.stop();
}

#[test]
fn running_out_of_descriptors_is_an_outage_and_ingest_resumes_by_itself() {
    let h = Harness::new("", "");
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    // Start-up (which on PostgreSQL opens pool connections) must be over:
    // a daemon that cannot start exits for systemd to restart it; this test
    // is about a running daemon.
    wait_until("the daemon to be ready", Duration::from_secs(30), || http_get(addr, "/readyz").0 == 200);
    let pid = d.pid();
    // The daemon raised its soft limit to the hard one at start.
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft limit raised to the hard one: {line}");
    // Now take it away: no descriptor can be opened.
    let open = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let set = |soft: String| {
        let st = std::process::Command::new("prlimit")
            .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:{}", nums[1])])
            .status()
            .unwrap();
        assert!(st.success());
    };
    set(open.saturating_sub(1).to_string());
    fs::write(h.dock.join("a.mp4"), b"recorded while the daemon had no descriptors left").unwrap();
    wait_until("the file to wait for descriptors", Duration::from_secs(30), || {
        d.log().contains("resources") || d.log().contains("Too many open files")
    });
    assert!(h.media().is_empty());
    set(nums[1].to_string());
    wait_until("the file to be stored by itself", Duration::from_secs(30), || h.media().len() == 1);
    assert!(!d.log().contains("cannot store;"), "never given up:\n{}", d.log());
    assert_eq!(http_get(addr, "/healthz").0, 200);
    d.stop();
}

/// A dock file the daemon cannot read (it runs as `nobody` under root).
fn lock(h: &Harness, name: &str, bytes: &[u8]) {
    let p = h.dock.join(name);
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
}

fn unlock(h: &Harness, name: &str) {
    fs::set_permissions(h.dock.join(name), fs::Permissions::from_mode(0o666)).unwrap();
}

#[test]
fn failed_files_are_tried_again_by_themselves_and_when_an_administrator_asks() {
    // Polled once an hour: only a retry (not a scan) can notice the files
    // became readable.
    let h = Harness::new("watch = \"poll\"\npoll_secs = 3600\n", &admin_config());
    h.set_ingest("max_attempts = 1\nfailed_retry_secs = 1");
    fs::create_dir_all(&h.state).unwrap();
    open_up(h.dir.path());
    lock(&h, "slow.mp4", b"unreadable for a while");
    let mut d = h.spawn_unprivileged_daemon();
    let addr = d.api_addr();
    wait_until("the file to fail", Duration::from_secs(30), || status_list(&h, "failed").len() == 1);
    // Given up, then tried again by itself on the slow schedule.
    wait_until("a retry on the slow schedule", Duration::from_secs(30), || {
        d.log().matches("cannot store; the file stays on the dock").count() >= 2
    });
    unlock(&h, "slow.mp4");
    wait_until("it to be stored by itself", Duration::from_secs(30), || h.media().len() == 1);
    d.stop();

    // With a long schedule, an administrator asks: CLI, then API.
    let cfg = fs::read_to_string(&h.config).unwrap().replace("failed_retry_secs = 1", "failed_retry_secs = 3600");
    fs::write(&h.config, cfg).unwrap();
    lock(&h, "cli.mp4", b"retried by the CLI");
    lock(&h, "api.mp4", b"retried by the API");
    let mut d = h.spawn_unprivileged_daemon();
    let addr2 = d.api_addr();
    assert_ne!(addr, addr2);
    wait_until("two failed files", Duration::from_secs(30), || status_list(&h, "failed").len() == 2);
    // The alert follows the failure (the evaluator is poked by it).
    wait_until("the ingest_failed alert", Duration::from_secs(30), || {
        alert(&h.alerts(), "ingest_failed", "dock-01/cli.mp4", Some("open")).is_some()
    });
    unlock(&h, "cli.mp4");
    unlock(&h, "api.mp4");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(h.media().len(), 1, "not retried before someone asks");
    let out = h.cmd(&["retry", "--station", "dock-01", "--path", "cli.mp4", "--by", "alice"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 file"), "{}", String::from_utf8_lossy(&out.stdout));
    wait_until("the CLI retry", Duration::from_secs(20), || h.media().len() == 2);
    let auth = format!("Bearer {ADMIN}");
    let r = call(addr2, "POST", "/api/v1/stations/dock-01/retry", &auth, Some(serde_json::json!({})));
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["requested"], 1);
    wait_until("the API retry", Duration::from_secs(20), || h.media().len() == 3);
    let r = call(addr2, "POST", "/api/v1/stations/nope/retry", &auth, Some(serde_json::json!({})));
    assert_eq!(r.status, 404);
    wait_until("the failure alerts to resolve", Duration::from_secs(20), || {
        h.alerts().iter().filter(|a| a["kind"] == "ingest_failed").all(|a| a["state"] == "resolved")
    });
    d.stop();
    let audit =
        h.db().query_row("SELECT count(*) FROM audit WHERE action = 'ingest.retry' AND outcome = 'ok'", [], |r| {
            r.get::<_, i64>(0)
        });
    assert_eq!(audit.unwrap(), 2, "both requests are in the audit log");
}

fn poll_config(settle: &str) -> String {
    format!("watch = \"poll\"\npoll_secs = 0.1\nsettle_secs = {settle}\n")
}

fn first_seen_of(h: &Harness, id: &str) -> String {
    find(&h.media(), id)["first_seen"].as_str().unwrap().to_string()
}

#[test]
fn a_replaced_dock_leaves_its_files_unaccounted_for_not_gone_and_they_keep_their_first_sighting() {
    let h = Harness::new(&poll_config("2"), "");
    let mut d = h.spawn_daemon();
    d.api_addr();
    let a = random_bytes(50_000, 1);
    fs::write(h.dock.join("a.mp4"), &a).unwrap();
    // The station logs a new file before its batched pending write lands:
    // wait for the row itself.
    let pending_first_seen = || h.db().query_row("SELECT first_seen FROM pending", [], |r| r.get::<_, i64>(0)).ok();
    wait_until("a.mp4 to be seen", Duration::from_secs(10), || pending_first_seen().is_some());
    let seen_at = pending_first_seen().unwrap();
    // The folder is replaced by another (empty) one before it is stored.
    let away = h.dir.path().join("away");
    fs::rename(&h.dock, &away).unwrap();
    fs::create_dir(&h.dock).unwrap();
    wait_until("the file to be unaccounted for", Duration::from_secs(10), || status_list(&h, "missing").len() == 1);
    wait_until("the dock_replaced alert", Duration::from_secs(10), || {
        alert(&h.alerts(), "dock_replaced", "dock-01", Some("open")).is_some()
    });
    let al = h.alerts();
    assert!(!al.iter().any(|x| x["kind"] == "vanished_unstored"), "not lost, only out of sight: {al:#?}");
    // Its ctime changes meanwhile (a copy tool touched it).
    std::thread::sleep(Duration::from_millis(20));
    fs::set_permissions(away.join("a.mp4"), fs::Permissions::from_mode(0o640)).unwrap();
    // Restarted while it is unaccounted for: still unaccounted for.
    d.stop();
    let mut d = h.spawn_daemon();
    d.api_addr();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status_list(&h, "missing").len(), 1);
    // The old folder comes back.
    fs::remove_dir(&h.dock).unwrap();
    fs::rename(&away, &h.dock).unwrap();
    wait_until("a.mp4 to be stored", Duration::from_secs(20), || h.media().len() == 1);
    assert_eq!(
        first_seen_of(&h, &blake3_hex(&a)),
        bodycamd::clock::rfc3339(bodycamd::clock::from_ms(seen_at)),
        "first seen is kept"
    );
    wait_until("the alert to resolve", Duration::from_secs(10), || {
        alert(&h.alerts(), "dock_replaced", "dock-01", Some("resolved")).is_some()
    });
    assert!(status_list(&h, "missing").is_empty());
    d.stop();
}

#[test]
fn a_lazily_unmounted_dock_is_reported_and_its_files_come_back_with_it() {
    if !is_root() {
        eprintln!("skipped: needs root for a bind mount and its lazy unmount");
        return;
    }
    let h = Harness::new(&poll_config("2"), "");
    let real = h.dir.path().join("real-dock");
    fs::create_dir(&real).unwrap();
    let bind = Mount::new(&["--bind", real.to_str().unwrap()], &h.dock);
    let mut d = h.spawn_daemon();
    d.api_addr();
    let a = random_bytes(40_000, 2);
    fs::write(h.dock.join("b.mp4"), &a).unwrap();
    wait_until("b.mp4 to be seen", Duration::from_secs(10), || d.log().contains("new file"));
    let st = std::process::Command::new("umount").arg("-l").arg(&h.dock).status().unwrap();
    assert!(st.success());
    std::mem::forget(bind);
    wait_until("the station to report its unaccounted file", Duration::from_secs(10), || {
        status_list(&h, "missing").len() == 1
    });
    assert!(
        alert(&h.alerts(), "dock_replaced", "dock-01", Some("open")).is_some() || {
            wait_until("the alert", Duration::from_secs(20), || {
                alert(&h.alerts(), "dock_replaced", "dock-01", Some("open")).is_some()
            });
            true
        }
    );
    let _bind = Mount::new(&["--bind", real.to_str().unwrap()], &h.dock);
    wait_until("b.mp4 stored after the remount", Duration::from_secs(20), || h.media().len() == 1);
    assert!(!h.alerts().iter().any(|x| x["kind"] == "vanished_unstored"));
    d.stop();
}

#[test]
fn a_file_that_vanishes_before_it_is_stored_is_lost_evidence_and_a_rename_is_not() {
    let pattern = "pattern = '^(?P<device>[A-Z0-9]+)_(?P<officer>\\d{6})_(?P<start>\\d{14})_(?P<seq>\\d{4})\\.mp4$'\n";
    let h = Harness::new(&format!("{}{pattern}", poll_config("3")), "");
    let mut d = h.spawn_daemon();
    d.api_addr();
    let name = "CAM7_004711_20261126093000_0001.mp4";
    fs::write(h.dock.join(name), random_bytes(30_000, 3)).unwrap();
    fs::write(h.dock.join("first.mp4"), random_bytes(30_000, 4)).unwrap();
    wait_until("both files seen", Duration::from_secs(10), || d.log().matches("new file").count() >= 2);
    // The pending rows are written in the station's batches, a moment
    // after the "new file" lines.
    let pending_first_seen = || -> Option<i64> {
        h.db()
            .query_row("SELECT first_seen FROM pending WHERE rel_path = ?1", [b"first.mp4".to_vec()], |r| r.get(0))
            .ok()
    };
    wait_until("first.mp4's pending row", Duration::from_secs(10), || pending_first_seen().is_some());
    let first_seen: i64 = pending_first_seen().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    fs::remove_file(h.dock.join(name)).unwrap();
    fs::rename(h.dock.join("first.mp4"), h.dock.join("renamed.mp4")).unwrap();
    let subject = format!("dock-01/{name}");
    wait_until("the lost-evidence alert", Duration::from_secs(15), || {
        alert(&h.alerts(), "vanished_unstored", &subject, Some("open")).is_some()
    });
    wait_until("the renamed file to be stored", Duration::from_secs(15), || h.media().len() == 1);
    let al = h.alerts();
    let v = alert(&al, "vanished_unstored", &subject, None).unwrap();
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["details"]["size"], 30_000);
    assert_eq!(v["details"]["device"], "CAM7");
    assert_eq!(v["details"]["officer"], "004711");
    assert!(v["details"]["first_seen"].is_string());
    assert_eq!(al.iter().filter(|x| x["kind"] == "vanished_unstored").count(), 1, "a rename is not a loss: {al:#?}");
    let m = h.media();
    assert_eq!(
        m[0]["first_seen"].as_str().unwrap(),
        bodycamd::clock::rfc3339(bodycamd::clock::from_ms(first_seen)),
        "a renamed file keeps its first sighting"
    );
    // Sticky: it stays open after more evaluations and a restart.
    d.stop();
    let mut d = h.spawn_daemon();
    d.api_addr();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alert(&h.alerts(), "vanished_unstored", &subject, Some("open")).is_some());
    d.stop();
    // Counted: in status, and in the compliance report as a file never on time.
    assert_eq!(h.status()["counts"]["vanished_unstored"], 1);
    let out = h
        .cmd(&[
            "report",
            "compliance",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--by",
            "officer",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = r["rows"].as_array().unwrap().iter().find(|x| x["key"] == "004711").cloned().unwrap();
    assert_eq!((row["files"].clone(), row["vanished"].clone(), row["on_time"].clone()), (1.into(), 1.into(), 0.into()));
}

#[test]
fn files_that_leave_while_the_daemon_is_stopped_are_recorded_as_lost() {
    let h = Harness::new(&poll_config("30"), "");
    let mut d = h.spawn_daemon();
    d.api_addr();
    fs::write(h.dock.join("gone.mp4"), random_bytes(10_000, 5)).unwrap();
    wait_until("gone.mp4 seen", Duration::from_secs(10), || d.log().contains("new file"));
    std::thread::sleep(Duration::from_millis(300));
    d.stop();
    fs::remove_file(h.dock.join("gone.mp4")).unwrap();
    let mut d = h.spawn_daemon();
    d.api_addr();
    wait_until("the loss to be recorded", Duration::from_secs(10), || {
        alert(&h.alerts(), "vanished_unstored", "dock-01/gone.mp4", Some("open")).is_some()
    });
    d.stop();
}

#[test]
fn the_daemons_own_deletion_is_not_a_vanished_file() {
    let h = Harness::new("after_ingest = \"delete\"\n", "");
    let mut d = h.spawn_daemon();
    d.api_addr();
    for i in 0..20 {
        fs::write(h.dock.join(format!("d{i}.mp4")), random_bytes(5000, 100 + i)).unwrap();
    }
    wait_until("all stored and removed", Duration::from_secs(30), || {
        h.media().len() == 20 && fs::read_dir(&h.dock).unwrap().count() == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    let log = d.stop();
    assert!(!log.contains("vanished"), "{log}");
    assert!(!h.alerts().iter().any(|a| a["kind"] == "vanished_unstored"));
}

#[test]
fn a_dock_deletion_that_fails_is_retried_until_it_is_done() {
    let h = Harness::new("after_ingest = \"delete\"\n", "");
    fs::create_dir_all(&h.state).unwrap();
    let bytes = random_bytes(20_000, 6);
    fs::write(h.dock.join("keepme.mp4"), &bytes).unwrap();
    open_up(h.dir.path());
    // The daemon may read the dock but not remove from it.
    let sealed = if is_root() { 0o755 } else { 0o555 };
    fs::set_permissions(&h.dock, fs::Permissions::from_mode(sealed)).unwrap();
    fs::set_permissions(h.dock.join("keepme.mp4"), fs::Permissions::from_mode(0o644)).unwrap();
    let mut d = h.spawn_unprivileged_daemon();
    d.api_addr();
    wait_until("stored", Duration::from_secs(20), || h.media().len() == 1);
    wait_until("the failed removal to be put off", Duration::from_secs(20), || {
        h.db()
            .query_row("SELECT dispose_error IS NOT NULL FROM sightings", [], |r| r.get::<_, bool>(0))
            .unwrap_or(false)
    });
    let disposition: String = h.db().query_row("SELECT disposition FROM sightings", [], |r| r.get(0)).unwrap();
    assert_eq!(disposition, "delete_pending", "not given up as `keep`");
    assert!(h.dock.join("keepme.mp4").exists());
    fs::set_permissions(&h.dock, fs::Permissions::from_mode(0o777)).unwrap();
    wait_until("the removal to be retried and done", Duration::from_secs(20), || !h.dock.join("keepme.mp4").exists());
    wait_until("the sighting to say so", Duration::from_secs(10), || {
        h.db().query_row("SELECT disposition FROM sightings", [], |r| r.get::<_, String>(0)).unwrap() == "deleted"
    });
    let log = d.stop();
    assert!(!log.contains("vanished"), "{log}");
}

#[test]
fn a_damaged_stored_copy_is_found_when_the_same_bytes_arrive_and_replaced() {
    let h = Harness::new("", "");
    let bytes = random_bytes(100_000, 7);
    fs::write(h.dock.join("a.mp4"), &bytes).unwrap();
    h.run_once();
    let id = blake3_hex(&bytes);
    let object = h.objects().into_iter().find(|p| p.ends_with(&id)).unwrap();
    // A flipped byte, same size: the archive copy no longer matches its name.
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    let mut damaged = bytes.clone();
    damaged[5000] ^= 0x40;
    fs::write(&object, &damaged).unwrap();
    fs::write(h.dock.join("b.mp4"), &bytes).unwrap();
    h.run_once();
    assert_eq!(fs::read(&object).unwrap(), bytes, "the good copy is back under its name");
    let aside: Vec<_> = fs::read_dir(h.state.join("archive/damaged")).unwrap().flatten().collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(aside[0].path()).unwrap(), damaged, "the damaged copy is kept for investigation");
    let a = h.alerts();
    let al = alert(&a, "object_damaged", &id, Some("open")).unwrap_or_else(|| panic!("{a:#?}"));
    assert_eq!(al["severity"], "critical");
    let n: i64 =
        h.db().query_row("SELECT count(*) FROM audit WHERE action = 'object.damaged'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    // verify is clean again.
    let out = h.cmd(&["verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
