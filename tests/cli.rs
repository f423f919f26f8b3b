//! The command line: configuration checks, errors, simulate, show.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn check(config_text: &str) -> (i32, String, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bodycamd.toml");
    fs::write(&p, config_text).unwrap();
    let out = Command::new(bin()).args(["check-config", "--config"]).arg(&p).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&p.display().to_string(), "FILE"),
    )
}

#[test]
fn the_shipped_example_configuration_is_valid() {
    let out = Command::new(bin())
        .args(["check-config", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/config/bodycamd.toml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_configurations_name_file_line_and_key() {
    let (code, _, err) =
        check("state_dir = \"/var/lib/b\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\nafter_ingst = \"delete\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:5: `after_ingst`: unknown field"), "{err}");

    let (code, _, err) =
        check("state_dir = \"/var/lib/b\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\npattern = '(?P<start>\\d{14'\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:5: `stations[0].pattern`: invalid regex"), "{err}");

    let (code, _, err) =
        check("state_dir = \"/var/lib/b\"\n[[stations]]\nid = \"a\"\npath = \"/d\"\nsettle_secs = \"five\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:5"), "{err}");

    let (code, _, err) = check("state_dir = [\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:"), "{err}");

    let out = Command::new(bin()).args(["check-config", "--config", "/nonexistent/b.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/b.toml: cannot read"));
}

#[test]
fn a_good_configuration_passes() {
    let (code, out, err) = check("state_dir = \"/var/lib/b\"\n[[stations]]\nid = \"a\"\npath = \"/srv/d\"\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 station(s)"), "{out}");
}

#[test]
fn commands_on_a_state_dir_that_was_never_used_say_so() {
    let h = Harness::new("", "");
    let out = h.cmd(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no index at"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn media_show_checks_its_id_and_shows_one_original() {
    let h = Harness::new("", "");
    fs::write(h.dock.join("x.mp4"), b"xyz").unwrap();
    h.run_once();
    let id = blake3_hex(b"xyz");
    let out = h.cmd(&["media", "show", &id, "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], id);
    assert_eq!(v["size"], 3);
    let out = h.cmd(&["media", "show", "not-an-id"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 lowercase hex"));
    let out = h.cmd(&["media", "show", &blake3_hex(b"absent")]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = h.cmd(&["media", "list", "--from", "last tuesday"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_writes_a_realistic_station() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["simulate", "--out"])
        .arg(d.path())
        .args(["--corrupt", "--timezone", "Asia/Shanghai", "--start", "2026-11-26T01:30:00Z", "--duration", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    for what in
        ["h264/aac mp4", "h265 mp4", "mjpeg/pcm avi", "pcm wav", "mp3", "jpeg photo with exif", "truncated", "empty"]
    {
        assert!(listing.contains(what), "{what} missing:\n{listing}");
    }
    // Names carry device, officer, local start time and sequence.
    assert!(d.path().join("CAM0042/CAM0042_004711_20261126093000_0001.mp4").exists(), "{listing}");
    assert!(!listing.contains(".part"));
    let bad = Command::new(bin()).args(["simulate", "--out", "/tmp/x", "--size", "huge"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_state_dir_inside_a_station_is_refused_behind_links_and_bind_mounts() {
    // Behind a symbolic link: the state dir's path does not name the dock.
    let h = Harness::new("", "");
    fs::create_dir_all(h.dock.join("inner")).unwrap();
    let alias = h.dir.path().join("alias");
    std::os::unix::fs::symlink(h.dock.join("inner"), &alias).unwrap();
    let cfg = fs::read_to_string(&h.config).unwrap().replace(
        &format!("state_dir = \"{}\"", h.state.display()),
        &format!("state_dir = \"{}\"", alias.join("state").display()),
    );
    fs::write(&h.config, &cfg).unwrap();
    let out = h.cmd(&["check-config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("overlaps state_dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !is_root() {
        eprintln!("skipped the bind-mount half: needs root");
        return;
    }
    // Behind a bind mount: the same folder under another path.
    fs::remove_file(&alias).unwrap();
    fs::create_dir_all(&alias).unwrap();
    let _m = Mount::new(&["--bind", h.dock.to_str().unwrap()], &alias);
    let out = h.cmd(&["check-config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps state_dir"));
}
