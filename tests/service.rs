//! Running under systemd: sd_notify messages in order, SIGHUP reload (valid
//! and invalid), graceful stop.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rustix::process::Signal;

/// A notify socket the test owns, collecting every datagram.
struct Notify {
    path: std::path::PathBuf,
    got: Arc<Mutex<Vec<String>>>,
}

impl Notify {
    fn new(dir: &std::path::Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                sink.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Notify { path, got }
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Index of the first message with a line equal to `line`, at or after `from`.
    fn find(&self, line: &str, from: usize) -> Option<usize> {
        self.messages().iter().enumerate().skip(from).find(|(_, m)| m.lines().any(|l| l == line)).map(|(i, _)| i)
    }
}

#[test]
fn ready_watchdog_status_and_stopping_arrive_in_order() {
    let h = Harness::new("", "");
    fs::write(h.dock.join("a.mp4"), clip(h.dir.path(), 1)).unwrap();
    let n = Notify::new(h.dir.path());
    let sock = n.path.to_string_lossy().into_owned();
    let mut d = h.spawn_daemon_with(&[("NOTIFY_SOCKET", &sock), ("WATCHDOG_USEC", "200000")]);
    wait_until("READY=1", Duration::from_secs(30), || n.find("READY=1", 0).is_some());
    let ready = n.find("READY=1", 0).unwrap();
    wait_until("WATCHDOG=1 after READY", Duration::from_secs(10), || n.find("WATCHDOG=1", ready).is_some());
    let wd = n.find("WATCHDOG=1", ready).unwrap();
    assert!(n.find("WATCHDOG=1", 0).unwrap() > ready, "no watchdog ping before ready: {:?}", n.messages());
    // The status line says what is pending and what is open.
    wait_until("a status line", Duration::from_secs(10), || {
        n.messages().iter().any(|m| m.contains("STATUS=") && m.contains("pending") && m.contains("open alert"))
    });
    // Pings keep coming while healthy.
    wait_until("more watchdog pings", Duration::from_secs(10), || {
        n.messages().iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count() >= 3
    });
    d.stop();
    let stopping = n.find("STOPPING=1", 0).expect("STOPPING=1");
    assert!(ready < wd && wd < stopping, "{:?}", n.messages());
}

#[test]
fn sighup_applies_a_valid_configuration_and_keeps_the_old_one_when_invalid() {
    let h = Harness::new("", "");
    let dock2 = h.dir.path().join("docks/dock-02");
    fs::create_dir_all(&dock2).unwrap();
    let n = Notify::new(h.dir.path());
    let sock = n.path.to_string_lossy().into_owned();
    let mut d = h.spawn_daemon_with(&[("NOTIFY_SOCKET", &sock)]);
    wait_until("READY=1", Duration::from_secs(30), || n.find("READY=1", 0).is_some());
    let first = blake3_hex(&clip(h.dir.path(), 2));
    fs::write(h.dock.join("first.mp4"), clip(h.dir.path(), 2)).unwrap();
    wait_until("the first clip", Duration::from_secs(30), || ids(&h.media()).contains(&first));

    // Valid: a second station appears, and it is watched after the reload.
    let text = fs::read_to_string(&h.config).unwrap();
    let added = format!(
        "{text}\n[[stations]]\nid = \"dock-02\"\npath = \"{}\"\nsettle_secs = 0.3\nrescan_secs = 2\npoll_secs = 0.2\n",
        dock2.display()
    );
    fs::write(&h.config, &added).unwrap();
    d.signal(Signal::HUP);
    wait_until("RELOADING=1 then READY=1", Duration::from_secs(30), || {
        n.find("RELOADING=1", 0).is_some_and(|r| n.find("READY=1", r + 1).is_some())
    });
    let second = blake3_hex(&clip(h.dir.path(), 3));
    fs::write(dock2.join("second.mp4"), clip(h.dir.path(), 3)).unwrap();
    wait_until("the clip on the new station", Duration::from_secs(30), || ids(&h.media()).contains(&second));
    let m = h.media();
    assert_eq!(find(&m, &second)["station"], "dock-02");

    // Invalid: logged, refused, the running configuration kept.
    fs::write(&h.config, format!("{added}\nnot_a_key = 1\n")).unwrap();
    let reloads = n.messages().iter().filter(|m| m.contains("RELOADING=1")).count();
    d.signal(Signal::HUP);
    wait_until("the refusal in the log", Duration::from_secs(10), || d.log().contains("reload refused"));
    assert!(d.log().contains("not_a_key"), "the error names the key");
    let third = blake3_hex(&clip(h.dir.path(), 4));
    fs::write(dock2.join("third.mp4"), clip(h.dir.path(), 4)).unwrap();
    // (The CLI reads the now invalid file: ask the index directly.)
    let stored = |id: &str| {
        h.db().query_row("SELECT count(*) FROM originals WHERE id = ?1", [id], |r| r.get::<_, i64>(0)).unwrap() == 1
    };
    wait_until("still ingesting", Duration::from_secs(30), || stored(&third));
    assert_eq!(n.messages().iter().filter(|m| m.contains("RELOADING=1")).count(), reloads);

    let log = d.stop();
    assert!(n.find("STOPPING=1", 0).is_some());
    assert!(log.contains("configuration reloaded"), "{log}");
    // Both the load and the reload are in the audit chain.
    let c = h.db();
    let actions: Vec<String> = c
        .query_all("SELECT action FROM audit WHERE action IN ('config.load', 'config.reload') ORDER BY id", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(actions, ["config.load", "config.reload"]);
    // Nothing was stored twice across the reload.
    assert_eq!(h.objects().len(), 3);
}

#[test]
fn sigterm_stops_cleanly_and_marks_the_stop_clean() {
    let h = Harness::new("", "");
    let mut d = h.spawn_daemon();
    wait_until("running", Duration::from_secs(30), || d.log().contains("bodycamd running"));
    let log = d.stop();
    assert!(log.contains("shutting down"), "{log}");
    assert!(h.state.join("clean-shutdown").exists(), "the next start needs no orphan sweep");
}

#[test]
fn a_reload_waits_for_the_old_pipeline_before_the_new_one_starts() {
    let h = Harness::new("", "");
    h.set_ingest("shutdown_grace_secs = 0.05");
    let mut d = h.spawn_daemon();
    wait_until("running", Duration::from_secs(30), || d.log().contains("ready:"));
    // A large file whose copy is still running when the reload comes.
    let big = h.dock.join("big.mp4");
    let f = fs::File::create(&big).unwrap();
    f.set_len(3 << 30).unwrap();
    drop(f);
    wait_until("the copy to start", Duration::from_secs(30), || h.tmp_leftovers() > 0);
    d.signal(Signal::HUP);
    wait_until("the new pipeline", Duration::from_secs(120), || d.log().matches("bodycamd running").count() == 2);
    let log = d.log();
    let waited = log.find("waiting for the previous pipeline to stop");
    let started = log.find("configuration reloaded; starting again").unwrap();
    // The copy was abandoned (the grace is tiny) and the new pipeline
    // started only after the old one had stopped holding the state dir.
    assert!(log.contains("shutdown grace ran out") || waited.is_some(), "{log}");
    if let Some(w) = waited {
        assert!(w > started, "{log}");
    }
    let second = log.rfind("bodycamd running").unwrap();
    assert!(waited.is_some_and(|w| w < second), "the new pipeline waited for the old one: {log}");
    // The file is stored by the new pipeline, once.
    wait_until("the big file", Duration::from_secs(300), || h.media().len() == 1);
    d.stop();
    assert_eq!(h.objects().len(), 1);
    assert_eq!(h.tmp_leftovers(), 0);
}
