//! Bursts, crashes and restarts.

mod common;

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_burst_of_5000_files_all_arrive() {
    let h = Harness::new("settle_secs = 0.2\nrescan_secs = 3", "");
    let mut d = h.spawn_daemon();
    std::thread::sleep(Duration::from_millis(300));
    let mut want = HashSet::new();
    for i in 0..5000u32 {
        let dir = h.dock.join(format!("CAM{:02}", i % 20));
        if i < 20 {
            fs::create_dir_all(&dir).unwrap();
        }
        let body = format!("photo {i}");
        fs::write(dir.join(format!("IMG_{i:05}.jpg")), &body).unwrap();
        want.insert(blake3_hex(body.as_bytes()));
    }
    let t0 = Instant::now();
    wait_until("5000 originals", Duration::from_secs(240), || {
        let c = h.db();
        c.query_row("SELECT count(*) FROM originals", [], |r| r.get::<_, i64>(0)).unwrap_or(0) == 5000
    });
    eprintln!("5000 files stored {:?} after the last write", t0.elapsed());
    let got: HashSet<String> = ids(&h.media()).into_iter().collect();
    assert_eq!(got, want);
    let log = d.stop();
    let lost = log.contains("events were lost");
    eprintln!("inotify queue overflowed during the burst: {lost}");
}

#[test]
fn kill_9_at_any_moment_then_a_restart_stores_every_file_once() {
    let h = Harness::new("after_ingest = \"delete\"\nsettle_secs = 0.05", "");
    let mut want = HashSet::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..6 {
        let big: Vec<u8> = (0..24 * 1024 * 1024).map(|_| rng.u8(..)).collect();
        fs::write(h.dock.join(format!("big{i}.mp4")), &big).unwrap();
        want.insert(blake3_hex(&big));
    }
    for i in 0..40 {
        let small = format!("small {i}");
        fs::write(h.dock.join(format!("small{i}.jpg")), &small).unwrap();
        want.insert(blake3_hex(small.as_bytes()));
    }
    let mut mid_copy = 0;
    for round in 0..8u64 {
        let mut d = h.spawn_daemon();
        if round % 2 == 0 {
            // In the middle of a copy.
            let t0 = Instant::now();
            while h.tmp_leftovers() == 0 && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_micros(200));
            }
            if h.tmp_leftovers() > 0 {
                mid_copy += 1;
            }
        } else {
            // Anywhere: between copy, rename, commit, delete, describe.
            std::thread::sleep(Duration::from_millis(30 + 40 * round));
        }
        d.kill9();
    }
    assert!(mid_copy > 0, "no kill landed in the middle of a copy");
    h.run_once();
    let m = h.media();
    let got: HashSet<String> = ids(&m).into_iter().collect();
    assert_eq!(got, want, "every file stored");
    assert_eq!(m.len(), want.len(), "and stored once");
    assert_eq!(h.objects().len(), want.len());
    assert_eq!(h.tmp_leftovers(), 0, "no temporary leftovers");
    for x in &m {
        let stored = fs::read(x["stored_path"].as_str().unwrap()).unwrap();
        assert_eq!(blake3_hex(&stored), x["id"].as_str().unwrap(), "stored bytes match their id");
        assert!(x["probe_error"].is_null() || x["kind"] == "other", "described: {x:#}");
        assert_eq!(x["source_paths"].as_array().unwrap().len(), 1, "one sighting each: {x:#}");
    }
    let left: Vec<_> = fs::read_dir(&h.dock).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "delete mode: every dock file removed after verification: {left:?}");
    let c = h.db();
    if !common::on_postgres() {
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }
    let pending: i64 = c.query_row("SELECT count(*) FROM pending", [], |r| r.get(0)).unwrap();
    assert_eq!(pending, 0);
    let undeleted: i64 =
        c.query_row("SELECT count(*) FROM sightings WHERE disposition != 'deleted'", [], |r| r.get(0)).unwrap();
    assert_eq!(undeleted, 0);
    let undescribed: i64 =
        c.query_row("SELECT count(*) FROM originals WHERE described_at IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(undescribed, 0);
}

#[test]
fn an_object_stored_but_never_indexed_is_recovered_at_the_next_start() {
    let h = Harness::new("", "");
    fs::write(h.dock.join("a.mp4"), b"first").unwrap();
    h.run_once();
    // Simulate a crash between the rename into the archive and the commit,
    // after which the dock file was taken away: an object without a row.
    let orphan = b"orphaned evidence";
    let id = blake3_hex(orphan);
    let shard = h.state.join("archive/objects").join(&id[..2]);
    fs::create_dir_all(&shard).unwrap();
    fs::write(shard.join(&id), orphan).unwrap();
    fs::remove_file(h.state.join("clean-shutdown")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    h.run_once();
    let m = h.media();
    let rec = find(&m, &id);
    assert_eq!(rec["station"], "_recovered");
    assert_eq!(rec["kind"], "other");
    assert_eq!(m.len(), 2);
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let h = Harness::new("", "");
    let mut d = h.spawn_daemon();
    wait_until("the first daemon to start", Duration::from_secs(10), || {
        h.state.join("index.sqlite3").exists() || (h.pg.is_some() && h.state.join("lock").exists())
    });
    let out = h.cmd(&["run", "--once"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    d.stop();
}
