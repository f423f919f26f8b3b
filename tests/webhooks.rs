//! Alert webhooks and metrics, against the real daemon.

mod common;

use std::fs;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value;

const SECRET: &str = "s3cret-key-for-the-soc-0123";

fn with_webhook(r: &Receiver) -> Harness {
    let h = Harness::new("", "");
    h.write_config(
        "",
        &format!(
            "[alerts]\nevaluate_every = \"100ms\"\nwebhook_retry = \"50ms\"\nwebhook_retry_max = \"200ms\"\n\
             [[alerts.webhooks]]\nurl = \"http://{}/hooks/bodycamd\"\nsecret = \"{SECRET}\"\n",
            r.addr
        ),
    );
    h
}

fn body(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn webhooks_are_signed_retried_and_delivered_after_a_restart() {
    // The receiver refuses the first two attempts.
    let rx = Receiver::start(2);
    let h = with_webhook(&rx);
    let mut d = h.spawn_daemon();
    fs::write(h.dock.join("junk.mp4"), b"not a video at all").unwrap();
    let id = blake3_hex(b"not a video at all");
    // (Without a camera clock, the file also raises clock_invalid and a
    // late_docking violation; this follows media_unreadable.)
    let unreadable = |r: &Received| body(r)["alert"]["kind"] == "media_unreadable";
    wait_until("the webhook to be accepted", Duration::from_secs(30), || rx.accepted().iter().any(unreadable));
    let ok = rx.accepted().into_iter().find(unreadable).unwrap();
    let key = ok.headers["idempotency-key"].clone();
    let all: Vec<Received> = rx.all().into_iter().filter(|r| r.headers["idempotency-key"] == key).collect();
    assert!(rx.all().len() >= 3, "two refusals, then deliveries: {}", rx.all().len());
    let ok = &ok;
    let b = body(ok);
    assert_eq!(b["event"], "opened");
    assert_eq!(b["alert"]["kind"], "media_unreadable");
    assert_eq!(b["alert"]["subject"], id);
    assert_eq!(b["alert"]["severity"], "warning");
    let sig = &ok.headers["x-bodycamd-signature"];
    assert!(bodycamd::webhook::verify(SECRET, &ok.body, sig), "signature {sig} must verify");
    assert!(!bodycamd::webhook::verify("wrong-secret-wrong-secret", &ok.body, sig));
    // Every attempt carried the same body, signature and idempotency key.
    assert_eq!(key, b["idempotency_key"]);
    for r in &all {
        assert_eq!(r.headers["idempotency-key"], key);
        assert_eq!(r.body, ok.body);
    }

    // The receiver goes down; an alert is raised; the daemon stops before
    // it can deliver; the receiver comes back; the daemon restarts.
    rx.failing.store(1_000_000, Ordering::SeqCst);
    fs::write(h.dock.join("empty.mp4"), b"").unwrap();
    let empty = blake3_hex(b"");
    wait_until("an attempt at the second alert", Duration::from_secs(30), || {
        rx.all().iter().any(|r| body(r)["alert"]["subject"] == empty)
    });
    d.stop();
    rx.failing.store(0, Ordering::SeqCst);
    let mut d = h.spawn_daemon();
    wait_until("the second alert after the restart", Duration::from_secs(30), || {
        rx.accepted().iter().any(|r| body(r)["alert"]["subject"] == empty)
    });

    // An acknowledgement is delivered too.
    let alert_id = b["alert"]["id"].as_i64().unwrap().to_string();
    let out =
        h.cmd(&["alerts", "ack", &alert_id, "--by", "duty officer", "--note", "checked the card"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the acknowledgement", Duration::from_secs(30), || {
        rx.accepted().iter().any(|r| body(r)["event"] == "acknowledged")
    });
    let ack = rx.accepted().into_iter().find(|r| body(r)["event"] == "acknowledged").unwrap();
    let ab = body(&ack);
    assert_eq!(ab["alert"]["acknowledged"]["by"], "duty officer");
    assert_eq!(ab["alert"]["acknowledged"]["note"], "checked the card");
    assert_ne!(ack.headers["idempotency-key"], key);
    d.stop();
    // Delivered events are not sent again.
    let opened_for_junk = rx
        .accepted()
        .iter()
        .filter(|r| body(r)["alert"]["subject"] == id && body(r)["event"] == "opened" && unreadable(r))
        .count();
    assert_eq!(opened_for_junk, 1);
    // Acknowledging twice is refused.
    let out = h.cmd(&["alerts", "ack", &alert_id, "--by", "someone"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already acknowledged"));
}

#[test]
fn metrics_are_valid_prometheus_text_with_the_figures() {
    let h = Harness::new("", "[alerts]\nevaluate_every = \"100ms\"\n");
    fs::write(h.dock.join("ok.mp4"), b"whatever").unwrap();
    let mut d = h.spawn_daemon();
    let addr = d.api_addr();
    wait_until("the file to be stored", Duration::from_secs(20), || h.media().len() == 1);
    wait_until("metrics to show it", Duration::from_secs(20), || {
        let t = http_get(addr, "/metrics").1;
        // The station forgets the file as pending once it hears of the
        // commit, a moment after the ingest counter moves.
        t.contains("bodycamd_files_ingested_total 1")
            && t.contains("bodycamd_alerts_open{kind=\"media_unreadable\",severity=\"warning\"} 1")
            && t.contains("bodycamd_pending_files{station=\"dock-01\"} 0")
    });
    let (status, text) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    for series in [
        "bodycamd_alerts_open{kind=\"overdue\",severity=\"critical\"} 0",
        "bodycamd_alerts_open{kind=\"media_unreadable\",severity=\"warning\"} 1",
        "bodycamd_pending_files{station=\"dock-01\"} 0",
        "bodycamd_oldest_pending_age_seconds{station=\"dock-01\"} 0",
        "bodycamd_station_available{station=\"dock-01\"} 1",
        "bodycamd_files_late_total{late=\"late_processing\"} 0",
        "bodycamd_archive_free_bytes ",
    ] {
        assert!(text.contains(series), "missing {series:?} in:\n{text}");
    }
    assert_eq!(http_get(addr, "/healthz").0, 200);
    assert_eq!(http_get(addr, "/readyz").0, 200);
    // promtool (from Debian's prometheus package, which `make test` installs)
    // must accept the live text.
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (make test installs Debian's prometheus package)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
}

#[test]
fn the_example_alerting_rules_pass_promtool() {
    let out = std::process::Command::new("promtool")
        .args(["check", "rules", concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus/bodycamd.rules.yml")])
        .output()
        .expect("promtool is installed (make test installs Debian's prometheus package)");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
