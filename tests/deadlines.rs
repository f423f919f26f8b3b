//! The 24-hour rule with an injected clock: the daemon runs in-process with
//! a `ManualClock`, so "25 hours later" is a value, not a wait.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bodycamd::app::{self, RunOptions, RunReport};
use bodycamd::clock::ManualClock;
use bodycamd::config::Config;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// `run --once`, in-process, with the wall clock at `at`.
fn run_at(h: &Harness, at: DateTime<Utc>) -> RunReport {
    let cfg = Config::load(&h.config).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = RunOptions {
            prober_exe: media_bin().into(),
            shutdown_grace: StdDuration::from_secs(30),
            renditions: false,
            ..RunOptions::new(true).unwrap()
        };
        app::run(cfg, opts, Arc::new(ManualClock::new(at)), CancellationToken::new()).await.unwrap()
    })
}

/// Station settings shared by these tests; `blocked` makes every store
/// attempt fail (the archive "needs" an exabyte free), once.
fn configure(h: &Harness, blocked: bool, extra: &str) {
    h.write_config(
        "",
        &format!(
            "[deadlines]\nstorage_deadline = \"24h\"\nwarn_before = \"2h\"\n\
             [alerts]\nevaluate_every = \"50ms\"\nstation_grace = \"10m\"\n{extra}"
        ),
    );
    let text = fs::read_to_string(&h.config).unwrap();
    let ingest = if blocked { "[ingest]\nmax_attempts = 1\nmin_free_mb = 1099511627776\n" } else { "[ingest]\n" };
    let text =
        text.replace("[ingest]\n", ingest).replace("min_free_mb = 0\n", if blocked { "" } else { "min_free_mb = 0\n" });
    fs::write(&h.config, text).unwrap();
}

/// A real JPEG named as a camera names it. Photos end when they start, so
/// deadlines and delays are exact.
fn photo(h: &Harness, device: &str, officer: &str, start: DateTime<Utc>, seq: u32) -> String {
    let name = format!("{device}/{device}_{officer}_{}_{seq:04}.jpg", start.format("%Y%m%d%H%M%S"));
    let path = h.dock.join(&name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = bodycamd::media::encode::encode_jpeg(32, 24, u64::from(seq) + start.timestamp() as u64).unwrap();
    fs::write(&path, &bytes).unwrap();
    blake3_hex(&bytes)
}

/// A clock a minute ahead of the file system's, whole seconds: files
/// written now were first seen just before it.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0) + Duration::seconds(60)
}

fn alerts(h: &Harness) -> Vec<Value> {
    let out = h.cmd(&["alerts", "list", "--state", "all", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn has(alerts: &[Value], kind: &str, subject: &str, state: &str) -> bool {
    alerts.iter().any(|a| a["kind"] == kind && a["subject"] == subject && a["state"] == state)
}

#[test]
fn timing_scenarios_on_time_late_docking_and_a_1970_clock() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    let t = now();
    let fresh = photo(&h, "CAM1", "004711", t - Duration::hours(23), 1);
    let stale = photo(&h, "CAM1", "004711", t - Duration::hours(25), 2);
    let epoch = photo(&h, "CAM2", "004712", "1970-01-01T00:00:00Z".parse().unwrap(), 1);
    run_at(&h, t);
    let m = h.media();
    let f = find(&m, &fresh);
    assert_eq!((f["on_time"].clone(), f["late"].clone()), (Value::Bool(true), Value::Null));
    assert_eq!(f["deadline"], bodycamd::clock::rfc3339(t + Duration::hours(1)));
    let s = find(&m, &stale);
    assert_eq!((s["on_time"].clone(), s["late"].clone()), (Value::Bool(false), Value::from("late_docking")));
    let e = find(&m, &epoch);
    assert_eq!(e["clock_trusted"], false);
    assert_eq!((e["on_time"].clone(), e["late"].clone()), (Value::Bool(false), Value::from("late_docking")));
    let a = alerts(&h);
    assert!(has(&a, "late_docking", &stale, "open"), "{a:#?}");
    assert!(has(&a, "late_docking", &epoch, "open"));
    assert!(has(&a, "clock_invalid", &epoch, "open"));
    assert!(!a.iter().any(|x| x["subject"] == fresh), "an on-time file raises nothing: {a:#?}");
    let v = a.iter().find(|x| x["kind"] == "late_docking" && x["subject"] == stale).unwrap();
    assert_eq!(v["severity"], "violation");
    assert_eq!(v["details"]["device"], "CAM1");
    assert_eq!(v["details"]["officer"], "004711");
}

#[test]
fn docked_in_time_but_stored_late_is_late_processing() {
    let h = Harness::new("", "");
    let t0 = now() - Duration::minutes(2);
    // Docked 20 h after the recording ended...
    configure(&h, true, "");
    let id = photo(&h, "CAM1", "004711", t0 - Duration::hours(20), 1);
    run_at(&h, t0);
    assert!(h.media().is_empty(), "the backlog: nothing stored yet");
    let subject = format!("dock-01/CAM1/CAM1_004711_{}_0001.jpg", (t0 - Duration::hours(20)).format("%Y%m%d%H%M%S"));
    // A full archive is an outage, not the file's fault: it waits, and the
    // outage is alerted once.
    let a = alerts(&h);
    assert!(has(&a, "archive_unwritable", &h.fault_subject("archive"), "open"), "{a:#?}");
    assert!(!a.iter().any(|x| x["kind"] == "ingest_failed"), "{a:#?}");
    let blocked = h.status()["blocked"][0]["path"].as_str().unwrap().to_string();
    assert!(blocked.ends_with(subject.trim_start_matches("dock-01/")), "{blocked}");
    // ...and stored 25 h after it.
    configure(&h, false, "");
    run_at(&h, t0 + Duration::hours(5));
    let m = h.media();
    let x = find(&m, &id);
    assert_eq!(x["on_time"], false);
    assert_eq!(x["late"], "late_processing", "{x:#}");
    assert_eq!(x["first_seen"], bodycamd::clock::rfc3339(t0), "first seen is kept across the restart");
    let a = alerts(&h);
    assert!(has(&a, "late_processing", &id, "open"), "{a:#?}");
    assert!(a.iter().filter(|x| x["kind"] == "archive_unwritable").all(|x| x["state"] == "resolved"), "{a:#?}");
}

#[test]
fn at_risk_then_overdue_then_stored_in_that_order() {
    let h = Harness::new("", "");
    let t = now();
    // Named 21.5 h before t: its deadline (estimated from the name) is t + 2.5 h.
    let name_start = t - Duration::minutes(21 * 60 + 30);
    configure(&h, true, "");
    let id = photo(&h, "CAM1", "004711", name_start, 1);
    let rel = format!("CAM1/CAM1_004711_{}_0001.jpg", name_start.format("%Y%m%d%H%M%S"));
    let subject = format!("dock-01/{rel}");
    run_at(&h, t);
    assert!(!alerts(&h).iter().any(|a| a["kind"] == "deadline_at_risk"), "2.5 h left: not yet at risk");
    run_at(&h, t + Duration::hours(1));
    let a = alerts(&h);
    assert!(has(&a, "deadline_at_risk", &subject, "open"), "{a:#?}");
    run_at(&h, t + Duration::hours(3));
    let a = alerts(&h);
    assert!(has(&a, "overdue", &subject, "open"), "{a:#?}");
    assert!(has(&a, "deadline_at_risk", &subject, "resolved"));
    configure(&h, false, "");
    run_at(&h, t + Duration::minutes(210));
    let a = alerts(&h);
    assert!(has(&a, "overdue", &subject, "resolved"), "{a:#?}");
    assert!(has(&a, "late_processing", &id, "open"), "the late record remains: {a:#?}");
    // The order of transitions, as kept in the history.
    let c = h.db();
    let events: Vec<String> = c
        .query_all(
            "SELECT a.kind || ' ' || e.event FROM alert_events e JOIN alerts a ON a.id = e.alert_id
             WHERE a.subject IN (?1, ?2) AND a.kind != 'ingest_failed' ORDER BY e.id",
            [&subject, &id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        events,
        [
            "deadline_at_risk opened",
            "deadline_at_risk resolved",
            "overdue opened",
            "overdue resolved",
            "late_processing opened",
        ]
    );
}

#[test]
fn a_sequence_gap_opens_and_closes_when_the_missing_recording_arrives() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    let t = now();
    photo(&h, "CAM7", "004711", t - Duration::hours(3), 7);
    photo(&h, "CAM7", "004711", t - Duration::hours(1), 9);
    run_at(&h, t);
    assert!(has(&alerts(&h), "sequence_gap", "CAM7#0008", "open"));
    photo(&h, "CAM7", "004711", t - Duration::hours(2), 8);
    run_at(&h, t + Duration::minutes(5));
    let a = alerts(&h);
    assert!(has(&a, "sequence_gap", "CAM7#0008", "resolved"), "{a:#?}");
    assert!(!a.iter().any(|x| x["kind"] == "sequence_gap" && x["state"] == "open"));
}

#[test]
fn a_station_missing_longer_than_the_grace_is_alerted_and_resolves_on_return() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    fs::remove_dir(&h.dock).unwrap();
    let t = now();
    run_at(&h, t);
    assert!(!alerts(&h).iter().any(|a| a["kind"] == "station_unavailable"), "within the grace");
    run_at(&h, t + Duration::minutes(11));
    let a = alerts(&h);
    assert!(has(&a, "station_unavailable", "dock-01", "open"), "{a:#?}");
    let alert = a.iter().find(|x| x["kind"] == "station_unavailable").unwrap();
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["details"]["since"], bodycamd::clock::rfc3339(t));
    fs::create_dir_all(&h.dock).unwrap();
    run_at(&h, t + Duration::minutes(12));
    assert!(has(&alerts(&h), "station_unavailable", "dock-01", "resolved"));
}

#[test]
fn low_storage_is_alerted() {
    let h = Harness::new("", "");
    configure(&h, false, "storage_low_mb = 1099511627776\n");
    run_at(&h, now());
    let a = alerts(&h);
    assert!(has(&a, "storage_low", "archive", "open"), "{a:#?}");
}

#[test]
fn the_compliance_report_counts_exactly() {
    let h = Harness::new("", "");
    let t0 = now() - Duration::minutes(2);
    let t = t0 + Duration::hours(6);
    // Everything is first seen at t0 (while storing is blocked) and stored at t.
    configure(&h, true, "");
    photo(&h, "CAM1", "004711", t - Duration::hours(1), 1); // on time, 3600 s
    photo(&h, "CAM1", "004711", t - Duration::hours(23), 2); // on time, 82800 s
    photo(&h, "CAM1", "004711", t - Duration::hours(25), 3); // seen in time, stored late: 90000 s
    photo(&h, "CAM1", "004711", t - Duration::hours(31), 4); // seen after its deadline: 111600 s
    photo(&h, "CAM2", "004712", t - Duration::hours(2), 1); // on time, 7200 s
    photo(&h, "CAM2", "004712", "1970-01-01T00:00:00Z".parse().unwrap(), 2); // clock invalid
    run_at(&h, t0);
    configure(&h, false, "");
    run_at(&h, t);
    let from = bodycamd::clock::rfc3339(t - Duration::hours(40));
    let to = bodycamd::clock::rfc3339(t + Duration::hours(1));
    let out = h
        .cmd(&["report", "compliance", "--from", &from, "--to", &to, "--by", "officer", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = r["rows"].as_array().unwrap();
    let row = |k: &str| rows.iter().find(|x| x["key"] == k).unwrap_or_else(|| panic!("no row {k}: {r:#}")).clone();
    let a = row("004711");
    assert_eq!(
        (a["files"].clone(), a["on_time"].clone(), a["late_docking"].clone(), a["late_processing"].clone()),
        (4.into(), 2.into(), 1.into(), 1.into())
    );
    assert_eq!(a["on_time_pct"], 50.0);
    assert_eq!(a["median_delay_secs"], 86400.0);
    assert_eq!(a["max_delay_secs"], 111600.0);
    let b = row("004712");
    assert_eq!((b["files"].clone(), b["on_time"].clone(), b["clock_invalid"].clone()), (2.into(), 1.into(), 1.into()));
    assert_eq!(b["median_delay_secs"], 7200.0);
    let total = row("TOTAL");
    assert_eq!((total["files"].clone(), total["on_time"].clone()), (6.into(), 3.into()));
    assert_eq!(total["on_time_pct"], 50.0);
    assert_eq!(total["median_delay_secs"], 82800.0);
    // The same figures by device, as CSV.
    let out = h
        .cmd(&["report", "compliance", "--from", &from, "--to", &to, "--by", "device", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with(
            "device,files,on_time,late_docking,late_processing,clock_invalid,vanished_unstored,on_time_pct"
        ),
        "{csv}"
    );
    assert!(csv.contains("\nCAM1,4,2,1,1,0,0,50.00,86400,111600\n"), "{csv}");
    assert!(csv.contains("\nTOTAL,6,3,2,1,1,0,50.00,82800,111600"), "{csv}");
}

#[test]
fn a_camera_clock_ahead_of_the_dock_cannot_push_the_deadline_later() {
    let h = Harness::new("", "");
    let t0 = now() - Duration::minutes(2);
    // The camera's clock is 3 h fast: its name claims a start after the
    // station first showed the file (still "plausible": within a day).
    configure(&h, true, "");
    let id = photo(&h, "CAM1", "004711", t0 + Duration::hours(3), 1);
    run_at(&h, t0);
    // Stored 25 h after it was first seen: late, whatever the name claims.
    configure(&h, false, "");
    run_at(&h, t0 + Duration::hours(25));
    let x = find(&h.media(), &id).clone();
    assert_eq!(x["deadline"], bodycamd::clock::rfc3339(t0 + Duration::hours(24)), "{x:#}");
    assert_eq!((x["on_time"].clone(), x["late"].clone()), (Value::Bool(false), Value::from("late_processing")));
}

#[test]
fn a_start_taken_from_the_dock_mtime_is_not_a_camera_clock() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    // A photo without EXIF and a name no pattern reads: only the mtime says
    // when it was made.
    let bytes = bodycamd::media::encode::encode_jpeg(32, 24, 77).unwrap();
    fs::write(h.dock.join("IMG.jpg"), &bytes).unwrap();
    let id = blake3_hex(&bytes);
    run_at(&h, now());
    let x = find(&h.media(), &id).clone();
    assert_eq!(x["start_source"], "file_mtime", "{x:#}");
    assert_eq!(x["clock_trusted"], false);
    assert_eq!(x["on_time"], false, "nothing shows it was stored in time");
    let a = alerts(&h);
    let c = a.iter().find(|a| a["kind"] == "clock_invalid" && a["subject"] == id).unwrap();
    assert!(c["details"]["why"].as_str().unwrap().contains("modification time"), "{c:#}");
}

#[test]
fn a_container_time_written_in_local_time_is_judged_on_the_earlier_reading() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    let cfg = fs::read_to_string(&h.config).unwrap();
    let cfg = cfg.replace("id = \"dock-01\"\n", "id = \"dock-01\"\ntimezone = \"Asia/Shanghai\"\n");
    fs::write(&h.config, cfg).unwrap();
    // The clip says creation_time 2026-11-26T01:30:00Z. A camera writing
    // Shanghai time there meant 2026-11-25T17:30Z: that reading is earlier,
    // so the deadline is 2026-11-26T17:30:01Z.
    let bytes = clip(h.dir.path(), 31);
    fs::write(h.dock.join("clip.mp4"), &bytes).unwrap();
    let id = blake3_hex(&bytes);
    let at: DateTime<Utc> = "2026-11-26T20:00:00Z".parse().unwrap();
    run_at(&h, at);
    let x = find(&h.media(), &id).clone();
    assert_eq!(x["recorded_start"], "2026-11-26T01:30:00.000Z", "placed as the format reads it: {x:#}");
    let deadline: DateTime<Utc> = x["deadline"].as_str().unwrap().parse().unwrap();
    assert!((deadline - "2026-11-26T17:30:01Z".parse::<DateTime<Utc>>().unwrap()).num_milliseconds().abs() < 200);
    assert_eq!(x["on_time"], false, "stored at 20:00Z: after the earlier reading's deadline");
}

#[test]
fn files_a_station_rejects_raise_an_alert() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    std::os::unix::fs::symlink("/etc/passwd", h.dock.join("link.mp4")).unwrap();
    let mut deep = h.dock.clone();
    for i in 0..40 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    run_at(&h, now());
    let a = alerts(&h);
    let l = a.iter().find(|x| x["kind"] == "ingest_rejected" && x["subject"] == "dock-01/link.mp4");
    let l = l.unwrap_or_else(|| panic!("{a:#?}"));
    assert_eq!(l["state"], "open");
    assert!(l["details"]["reason"].as_str().unwrap().contains("link"), "{l:#}");
    assert!(
        a.iter().any(|x| x["kind"] == "ingest_rejected" && x["details"]["reason"].as_str().unwrap().contains("deeper")),
        "a folder nested too deep is alerted too: {a:#?}"
    );
}

#[test]
fn sequence_gaps_are_looked_for_within_one_run_of_a_device() {
    let h = Harness::new("", "");
    configure(&h, false, "");
    let t = now() - Duration::hours(6);
    // Card A in the morning: 1, 2, 3. A new card after lunch starts at 1
    // again and skips 3.
    for s in 1..=3 {
        photo(&h, "CAM9", "004711", t + Duration::minutes(i64::from(s)), s);
    }
    for (i, s) in [1u32, 2, 4].into_iter().enumerate() {
        photo(&h, "CAM9", "004711", t + Duration::hours(4) + Duration::minutes(i as i64), s);
    }
    run_at(&h, now());
    let a = alerts(&h);
    // Two store workers may store the second run's #4 a moment before its
    // #2; the gap that shows in between resolves when #2 is stored. What
    // must hold once everything is stored: one open gap, #3 of run two.
    let gaps: Vec<&Value> = a.iter().filter(|x| x["kind"] == "sequence_gap" && x["state"] == "open").collect();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_eq!(gaps[0]["subject"], "CAM9#0003");
    assert_eq!(gaps[0]["details"]["run_started"], bodycamd::clock::rfc3339(t + Duration::hours(4)));
}
