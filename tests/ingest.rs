//! The ingest spine, end to end: the real binary against temporary docks.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

#[test]
fn a_slowly_written_file_is_stored_whole_once() {
    let h = Harness::new("settle_secs = 1", "");
    let mut d = h.spawn_daemon();
    let bytes = clip(h.dir.path(), 1);
    fs::create_dir_all(h.dock.join("CAM0042")).unwrap();
    let path = h.dock.join("CAM0042/CAM0042_004711_20261126093000_0001.mp4");
    // 10 pieces, 0.4 s apart: longer than settle/3, shorter than settle.
    bodycamd::simulate::write_slowly(&path, &bytes, Duration::from_secs(4)).unwrap();
    wait_until("the clip to be stored", Duration::from_secs(30), || h.media().len() == 1);
    std::thread::sleep(Duration::from_millis(500));
    let m = h.media();
    assert_eq!(m.len(), 1, "one original, never a truncated one as well: {m:#?}");
    assert_eq!(m[0]["id"], blake3_hex(&bytes));
    assert_eq!(m[0]["size"], bytes.len());
    assert_eq!(fs::read(m[0]["stored_path"].as_str().unwrap()).unwrap(), bytes);
    assert_eq!(h.objects().len(), 1);
    d.stop();
}

#[test]
fn the_same_bytes_under_two_names_are_one_original_with_two_sightings() {
    let h = Harness::new("", "");
    let bytes = clip(h.dir.path(), 2);
    fs::create_dir_all(h.dock.join("A")).unwrap();
    fs::write(h.dock.join("A/CAM1_004711_20261126093000_0001.mp4"), &bytes).unwrap();
    fs::write(h.dock.join("A/renamed copy.mp4"), &bytes).unwrap();
    h.run_once();
    let m = h.media();
    assert_eq!(m.len(), 1);
    let mut paths: Vec<String> =
        m[0]["source_paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().into()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [h.dock.join("A/CAM1_004711_20261126093000_0001.mp4"), h.dock.join("A/renamed copy.mp4")]
            .map(|p| p.display().to_string())
    );
    // The name that carries metadata fills it in, whichever was stored first.
    assert_eq!(m[0]["device"], "CAM1");
    assert_eq!(h.objects().len(), 1);
    // Running again adds nothing.
    h.run_once();
    let again = h.media();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["source_paths"].as_array().unwrap().len(), 2);
}

#[test]
fn a_symlink_in_a_dock_is_reported_not_followed() {
    let h = Harness::new("", "");
    let secret = h.dir.path().join("secret.mp4");
    fs::write(&secret, b"outside the dock").unwrap();
    std::os::unix::fs::symlink(&secret, h.dock.join("link.mp4")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", h.dock.join("passwd.mp4")).unwrap();
    std::os::unix::fs::symlink(h.dir.path(), h.dock.join("updir")).unwrap();
    fs::write(h.dock.join("real.mp4"), b"inside").unwrap();
    h.run_once();
    let m = h.media();
    assert_eq!(ids(&m), [blake3_hex(b"inside")]);
    let status = h.status();
    let rejected: Vec<&str> =
        status["rejected"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    for name in ["link.mp4", "passwd.mp4", "updir"] {
        assert!(rejected.iter().any(|p| p.ends_with(name)), "{name} not reported: {status:#}");
    }
    assert!(status["rejected"][0]["reason"].as_str().unwrap().contains("symbolic link"));
    let passwd = fs::read("/etc/passwd").unwrap();
    assert!(!h.objects().iter().any(|o| fs::read(o).unwrap() == passwd));
}

#[test]
fn odd_names_are_ingested_and_shown_exactly() {
    let h = Harness::new("", "");
    let long = format!("{}.mp4", "x".repeat(251));
    assert_eq!(long.len(), 255);
    let names = ["with space.mp4", "证据_视频 ü.mp4", "new\nline.mp4", long.as_str(), "-rf.mp4", "a;b&c|d.mp4"];
    for (i, n) in names.iter().enumerate() {
        fs::write(h.dock.join(n), format!("content {i}")).unwrap();
    }
    h.run_once();
    let m = h.media();
    assert_eq!(m.len(), names.len());
    for (i, n) in names.iter().enumerate() {
        let m = find(&m, &blake3_hex(format!("content {i}").as_bytes()));
        assert_eq!(m["source_paths"][0].as_str().unwrap(), h.dock.join(n).display().to_string());
    }
}

#[test]
fn corrupt_truncated_and_empty_files_are_stored_with_the_reason() {
    let h = Harness::new("", "");
    let good = clip(h.dir.path(), 3);
    fs::write(h.dock.join("good.mp4"), &good).unwrap();
    fs::write(h.dock.join("cut.mp4"), &good[..good.len() / 2]).unwrap();
    fs::write(h.dock.join("junk.mp4"), vec![0xA5u8; 10_000]).unwrap();
    fs::write(h.dock.join("empty.mp4"), b"").unwrap();
    h.run_once();
    let m = h.media();
    assert_eq!(m.len(), 4, "every complete file is a record: {m:#?}");
    let get = |b: &[u8]| find(&m, &blake3_hex(b)).clone();
    let g = get(&good);
    assert_eq!(g["kind"], "video");
    assert_eq!(g["probe_error"], serde_json::Value::Null);
    assert_eq!(g["video_codec"], "h264");
    assert!((g["duration_secs"].as_f64().unwrap() - 1.0).abs() < 0.15);
    let cut = get(&good[..good.len() / 2]);
    assert_eq!(cut["kind"], "video");
    assert!(cut["probe_error"].as_str().unwrap().contains("cut short"), "{cut:#}");
    let junk = get(&[0xA5u8; 10_000]);
    assert_eq!(junk["kind"], "other");
    assert!(junk["probe_error"].is_string());
    let empty = get(b"");
    assert_eq!(empty["probe_error"], "empty file (0 bytes)");
    for x in [&cut, &junk, &empty] {
        let stored = fs::read(x["stored_path"].as_str().unwrap()).unwrap();
        assert_eq!(blake3_hex(&stored), x["id"].as_str().unwrap(), "stored byte-exact");
    }
}

#[test]
fn an_unreadable_file_is_retried_reported_and_does_not_stop_the_others() {
    let h = Harness::new("", "[log]\nlevel = \"debug\"\n");
    h.write_config("", "");
    let cfg = fs::read_to_string(&h.config).unwrap().replace("[ingest]\n", "[ingest]\nmax_attempts = 3\n");
    fs::write(&h.config, cfg).unwrap();
    for i in 0..5 {
        fs::write(h.dock.join(format!("ok{i}.mp4")), format!("ok {i}")).unwrap();
    }
    fs::write(h.dock.join("locked.mp4"), b"locked").unwrap();
    fs::create_dir_all(&h.state).unwrap();
    open_up(h.dir.path());
    fs::set_permissions(h.dock.join("locked.mp4"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = unprivileged(&h, &["run", "--once", "--log-format", "text"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(h.media().len(), 5, "{stderr}");
    let status = h.status();
    let failed = status["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{status:#}");
    assert!(failed[0]["path"].as_str().unwrap().ends_with("locked.mp4"));
    assert!(failed[0]["reason"].as_str().unwrap().contains("Permission denied"), "{status:#}");
    assert_eq!(failed[0]["attempts"], 3);
    assert_eq!(stderr.matches("store attempt failed; will retry").count(), 2, "{stderr}");
    assert!(h.dock.join("locked.mp4").exists(), "a failed file stays on the dock");
    // Once readable, the next run stores it.
    fs::set_permissions(h.dock.join("locked.mp4"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = unprivileged(&h, &["run", "--once"]);
    assert!(out.status.success());
    assert_eq!(h.media().len(), 6);
    assert_eq!(h.status()["failed"].as_array().unwrap().len(), 0);
}

#[test]
fn a_station_that_disappears_loses_nothing_and_deletes_nothing() {
    let h = Harness::new("", "");
    fs::create_dir_all(h.dock.join("CAM1")).unwrap();
    for i in 0..3 {
        fs::write(h.dock.join(format!("CAM1/f{i}.mp4")), format!("f{i}")).unwrap();
    }
    let mut d = h.spawn_daemon();
    wait_until("three stored", Duration::from_secs(20), || h.media().len() == 3);
    let away = h.dir.path().join("docks/unmounted");
    fs::rename(&h.dock, &away).unwrap();
    wait_until("the station to be unavailable", Duration::from_secs(20), || {
        h.status()["stations"][0]["available"] == false
    });
    let st = h.status();
    assert!(st["stations"][0]["unavailable_since"].is_string());
    assert_eq!(h.media().len(), 3, "absence is not deletion");
    let conn = h.db();
    let sightings: i64 = conn.query_row("SELECT count(*) FROM sightings", [], |r| r.get(0)).unwrap();
    assert_eq!(sightings, 3);
    // Files arrive on the dock while it is away; then it comes back.
    fs::write(away.join("CAM1/f3.mp4"), b"f3").unwrap();
    fs::rename(&away, &h.dock).unwrap();
    wait_until("the new file", Duration::from_secs(20), || h.media().len() == 4);
    assert_eq!(h.status()["stations"][0]["available"], true);
    for i in 0..4 {
        assert!(h.dock.join(format!("CAM1/f{i}.mp4")).exists());
    }
    let m = h.media();
    for mm in &m {
        assert_eq!(mm["source_paths"].as_array().unwrap().len(), 1, "{mm:#}");
    }
    d.stop();
}

#[test]
fn delete_mode_removes_dock_files_only_after_verification() {
    let h = Harness::new("after_ingest = \"delete\"", "");
    let good = clip(h.dir.path(), 4);
    fs::write(h.dock.join("a.mp4"), &good).unwrap();
    fs::write(h.dock.join("b.mp4"), b"bbbb").unwrap();
    h.run_once();
    assert!(!h.dock.join("a.mp4").exists());
    assert!(!h.dock.join("b.mp4").exists());
    let m = h.media();
    assert_eq!(m.len(), 2);
    for x in &m {
        let stored = fs::read(x["stored_path"].as_str().unwrap()).unwrap();
        assert_eq!(blake3_hex(&stored), x["id"].as_str().unwrap());
    }
    let deleted: i64 = h
        .db()
        .query_row(
            "SELECT count(*) FROM sightings WHERE disposition = 'deleted' AND disposed_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(deleted, 2);
}

#[test]
fn temporary_names_wait_until_renamed() {
    let h = Harness::new("", "");
    let mut d = h.spawn_daemon();
    fs::write(h.dock.join("clip.mp4.part"), b"partial").unwrap();
    fs::write(h.dock.join(".clip.mp4.AbC123"), b"rsync temp").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(h.media().len(), 0, "temporary names are never taken");
    fs::write(h.dock.join("clip.mp4.part"), b"complete content").unwrap();
    fs::rename(h.dock.join("clip.mp4.part"), h.dock.join("clip.mp4")).unwrap();
    wait_until("the renamed file", Duration::from_secs(20), || h.media().len() == 1);
    assert_eq!(h.media()[0]["id"], blake3_hex(b"complete content"));
    d.stop();
}

#[test]
fn poll_mode_finds_files_without_events() {
    let h = Harness::new("watch = \"poll\"", "");
    let mut d = h.spawn_daemon();
    std::thread::sleep(Duration::from_millis(300));
    fs::write(h.dock.join("x.mp4"), b"polled").unwrap();
    wait_until("the polled file", Duration::from_secs(20), || h.media().len() == 1);
    assert_eq!(h.status()["stations"][0]["watch_mode"], "poll");
    d.stop();
}

#[test]
fn a_file_that_changes_while_it_is_copied_is_stored_as_it_ends() {
    let h = Harness::new("settle_secs = 0.2", "");
    let big: Vec<u8> = (0..300u32 * 1024 * 1024 / 4).flat_map(|i| i.to_le_bytes()).collect();
    let mut d = h.spawn_daemon();
    let p = h.dock.join("big.mp4");
    fs::write(&p, &big).unwrap();
    // As soon as a copy starts, append to the file.
    wait_until("a copy to start", Duration::from_secs(20), || h.tmp_leftovers() > 0 || !h.media().is_empty());
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"appended").unwrap();
    drop(f);
    let mut full = big.clone();
    full.extend_from_slice(b"appended");
    let want = blake3_hex(&full);
    wait_until("the final content", Duration::from_secs(60), || h.media().iter().any(|m| m["id"] == want));
    d.stop();
    // Whether the append lands during a copy or after the first version was
    // stored is a race with the disk; either way no torn copy is kept: every
    // stored original is one of the two complete versions of the file.
    let before = blake3_hex(&big);
    let media = h.media();
    for m in &media {
        assert!(m["id"] == want || m["id"] == before, "a torn copy was stored: {m}");
    }
    assert_eq!(h.objects().len(), media.len());
    assert_eq!(h.tmp_leftovers(), 0);
}

#[test]
fn names_are_read_in_the_station_zone_and_bad_clocks_are_not_trusted() {
    let h = Harness::new("timezone = \"Asia/Shanghai\"", "");
    fs::create_dir_all(h.dock.join("CAM0042")).unwrap();
    fs::write(h.dock.join("CAM0042/CAM0042_004711_20261126093000_0007.mp4"), clip(h.dir.path(), 5)).unwrap();
    fs::write(h.dock.join("CAM0042/CAM0042_004711_19700101000000_0008.mp4"), clip(h.dir.path(), 6)).unwrap();
    h.run_once();
    let m = h.media_args(&["--device", "CAM0042"]);
    assert_eq!(m.len(), 2);
    let epoch = m.iter().find(|x| x["seq"] == 8).unwrap();
    // The name's clock says 1970: the container's time places the recording,
    // but the camera's clock stays untrusted.
    assert_eq!(epoch["clock_trusted"], false);
    assert_eq!(epoch["start_source"], "container");
    assert_eq!(epoch["recorded_start"], "2026-11-26T01:30:00.000Z");
    let good = m.iter().find(|x| x["seq"] == 7).unwrap();
    assert_eq!(good["recorded_start"], "2026-11-26T01:30:00.000Z");
    assert_eq!(good["start_source"], "file_name");
    assert_eq!(good["clock_trusted"], true);
    assert_eq!(good["officer"], "004711");
    let end = chrono::DateTime::parse_from_rfc3339(good["recorded_end"].as_str().unwrap()).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(good["recorded_start"].as_str().unwrap()).unwrap();
    assert!(((end - start).num_milliseconds() - 1000).abs() < 150);
    // Filters.
    assert_eq!(h.media_args(&["--officer", "004711", "--from", "2026-11-26", "--to", "2026-11-27"]).len(), 2);
    assert_eq!(h.media_args(&["--officer", "004711", "--from", "2026-11-26T01:30:00.001Z"]).len(), 0);
    assert_eq!(h.media_args(&["--station", "dock-01", "--limit", "1"]).len(), 1);
    assert_eq!(h.media_args(&["--officer", "999999"]).len(), 0);
    let all = h.media();
    for key in [
        "id",
        "size",
        "kind",
        "station",
        "device",
        "officer",
        "seq",
        "recorded_start",
        "recorded_end",
        "duration_secs",
        "start_source",
        "clock_trusted",
        "first_seen",
        "ingested_at",
        "probe_error",
        "stored_path",
        "source_paths",
    ] {
        assert!(all[0].get(key).is_some(), "media list --json lacks {key}");
    }
}

#[test]
fn non_utf8_names_round_trip() {
    let h = Harness::new("", "");
    let name = std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9.mp4");
    fs::write(h.dock.join(name), b"latin1").unwrap();
    h.run_once();
    let conn = h.db();
    let rel: Vec<u8> = conn.query_row("SELECT rel_path FROM sightings", [], |r| r.get(0)).unwrap();
    assert_eq!(rel, b"latin1-\xe9t\xe9.mp4");
}
