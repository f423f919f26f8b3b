//! `bodycamd demo`: the daemon, with the embedded defaults (SQLite index and
//! local archive), against a simulated docking station that receives good,
//! bad and late files while it runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::app::{self, RunOptions};
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat};
use crate::index::{open_reader, query};
use crate::media::encode::{AudioCodec, AudioSpec, ClipSpec, VideoCodec, VideoSpec};
use crate::simulate::{self, SimOptions};
use crate::views::{render_media_table, MediaJson, StatusJson};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Work in this folder (kept) instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Do not keep the daemon and its console running for a look at the
    /// end (it is not kept when standard input is not a terminal either).
    #[arg(long)]
    no_wait: bool,
}

fn heading(s: &str) {
    println!("\n=== {s}");
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    crate::telemetry::init("info", LogFormat::Text);
    let tmp;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::Builder::new().prefix("bodycamd-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let dock = dir.join("docks/dock-01");
    let state = dir.join("state");
    heading(&format!("1. A simulated docking station at {}", dock.display()));
    let mut sim = SimOptions::new(&dock);
    sim.timezone = chrono_tz::Asia::Shanghai;
    sim.corrupt = true;
    let files = simulate::run(&sim).map_err(anyhow::Error::msg)?;
    for f in &files {
        println!("  {:<60} {}", f.path.strip_prefix(&dock).unwrap_or(&f.path).display(), f.what);
    }
    std::os::unix::fs::symlink("/etc/passwd", dock.join("CAM0042/CAM0042_004711_20261126093000_0050.mp4"))?;
    println!(
        "  {:<60} symbolic link to /etc/passwd (must not be followed)",
        "CAM0042/CAM0042_004711_20261126093000_0050.mp4"
    );
    // A recording docked a day and a half after it was made.
    let late_start = (chrono::Utc::now() - chrono::Duration::hours(36)).with_timezone(&chrono_tz::Asia::Shanghai);
    let late_name = format!("CAM0044/CAM0044_004713_{}_0004.jpg", late_start.format("%Y%m%d%H%M%S"));
    std::fs::write(
        dock.join(&late_name),
        crate::media::encode::encode_jpeg(320, 240, 99).map_err(anyhow::Error::msg)?,
    )?;
    println!("  {:<60} a photo taken 36 h ago, docked only now (late)", late_name);
    std::fs::write(dock.join("CAM0043/upload.mp4.part"), b"half an upload")?;
    println!("  {:<60} a copy still in progress (must be left alone)", "CAM0043/upload.mp4.part");

    let config_path = dir.join("bodycamd.toml");
    let config_text = format!(
        r#"# The embedded defaults: SQLite index and local archive below state_dir.
state_dir = "{}"

[api]
listen = "127.0.0.1:{}"

[[stations]]
id = "dock-01"
path = "{}"
timezone = "Asia/Shanghai"
settle_secs = 1
watch = "events"
after_ingest = "keep"
"#,
        state.display(),
        free_port()?,
        dock.display()
    );
    std::fs::write(&config_path, &config_text)?;
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    heading(&format!("2. The daemon ({}), while more files arrive", config_path.display()));
    println!("{}", config_text.trim_end().lines().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n"));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let expected = files.len() as u64 + 2;
    let (report, waited) = rt.block_on(async {
        let shutdown = CancellationToken::new();
        let daemon =
            tokio::spawn(app::run(cfg.clone(), RunOptions::new(false)?, Arc::new(SystemClock), shutdown.clone()));
        // While it runs: a duplicate under a new name, and a clip written slowly.
        let dock2 = dock.clone();
        let first = files[0].path.clone();
        let arrivals = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            std::thread::sleep(Duration::from_millis(500));
            std::fs::copy(&first, dock2.join("CAM0042/copy-of-first-clip.mp4"))?;
            let spec = ClipSpec {
                format: "mp4",
                video: Some(VideoSpec { codec: VideoCodec::H264, width: 320, height: 240, fps: 15 }),
                audio: Some(AudioSpec { codec: AudioCodec::Aac, sample_rate: 16_000 }),
                duration_secs: 2.0,
                creation_time: Some(chrono::Utc::now()),
                seed: 4242,
            };
            let bytes = simulate::clip_bytes(&dock2, &spec, "mp4").map_err(anyhow::Error::msg)?;
            let name = format!(
                "CAM0044/CAM0044_004713_{}_0006.mp4",
                chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai).format("%Y%m%d%H%M%S")
            );
            println!("  (writing {name} slowly, over 3 s)");
            simulate::write_slowly(&dock2.join(name), &bytes, Duration::from_secs(3))?;
            Ok(())
        });
        arrivals.await??;
        let t0 = Instant::now();
        let index = cfg.index.clone();
        let done = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(r) = open_reader(&index) {
                let c = r.db();
                if let (Ok(counts), Ok(p)) = (query::counts(&c, true), query::pending(&c, &["waiting", "retrying"])) {
                    if counts.originals >= expected && counts.undescribed == 0 && p.is_empty() {
                        break true;
                    }
                }
            }
            if t0.elapsed() > Duration::from_secs(90) {
                break false;
            }
        };
        // Renditions follow the originals, in the background.
        let t1 = Instant::now();
        while done && t1.elapsed() < Duration::from_secs(120) {
            let left = open_reader(&index).and_then(|r| Ok(crate::index::renditions::outstanding(&r.db())?));
            if matches!(left, Ok(0)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shutdown.cancel();
        let report = daemon.await??;
        Ok::<_, anyhow::Error>((report, done))
    })?;
    if !waited {
        println!("  (gave up waiting after 90 s; showing what is there)");
    }

    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    heading("3. What was ingested");
    let rows: Vec<MediaJson> = query::media_list(&c, &Default::default())?
        .iter()
        .map(|r| MediaJson::from_row(r, &cfg.archive_dir()))
        .collect();
    print!("{}", render_media_table(&rows));
    println!(
        "  {} new originals stored and fingerprinted (BLAKE3), {} duplicate sighting(s), all stored read-only under {}",
        report.stored_new,
        report.duplicates,
        cfg.archive_dir().join("objects").display()
    );
    heading("4. Renditions (made in the background, after the originals)");
    let lines = crate::index::renditions::summary(&c)?;
    for (kind, state, method, n, bytes) in lines {
        let how = if method.is_empty() { String::new() } else { format!(" by {method}") };
        println!("  {kind:<10} {state:<8}{how:<13} {n:>3} file(s), {bytes:>9} bytes");
    }
    println!(
        "  stored under {}; `bodycamd media show ID` lists an original's renditions",
        cfg.renditions_dir().join("objects").display()
    );
    heading("5. What failed, and why");
    for r in rows.iter().filter(|r| r.probe_error.is_some()) {
        println!(
            "  stored, content unreadable: {} ({}): {}",
            r.source_paths.first().map(String::as_str).unwrap_or("?"),
            &r.id[..12],
            r.probe_error.as_deref().unwrap_or("")
        );
    }
    let status = StatusJson::build(&query::stations(&c)?, &query::counts(&c, true)?, &query::pending(&c, &[])?);
    print!("{}", status.render());
    heading("6. Alerts (bodycamd alerts list)");
    for a in crate::index::alerts::list(&c, crate::index::alerts::StateFilter::All, None, None, None, false)? {
        println!("  #{:<3} {:<9} {:<17} {:<8} {}", a.id, a.severity, a.kind, a.state(), a.subject);
    }
    heading("7. Custody (bodycamd verify)");
    let v = crate::custody::verify::run(&cfg.state_dir, &c, None, None, None)?;
    println!(
        "  {} originals and {} renditions re-hashed, {} audit entries in an unbroken chain (head #{}): {}",
        v.originals_checked,
        v.renditions_checked,
        v.audit_entries,
        v.audit_head.unwrap_or(0),
        if v.faults.is_empty() { "all intact".to_string() } else { format!("{} fault(s)", v.faults.len()) }
    );
    for f in &v.faults {
        println!("  FAULT {} {}: {}", f.what, f.id, f.problem);
    }
    if let Ok(k) = crate::custody::key::HostKey::load_or_create(&cfg.state_dir) {
        println!("  receipts are signed with host key {} (bodycamd key show)", k.public_hex());
    }
    drop(reader);
    use std::io::IsTerminal;
    if !a.no_wait && std::io::stdin().is_terminal() {
        console(&cfg)?;
    } else {
        println!("\n(run `bodycamd demo` in a terminal, without --no-wait, to look at the web console at the end)");
    }
    if tmp_kept(&dir) {
        println!("\nEverything is in {}", dir.display());
    }
    Ok(if waited { 0 } else { 1 })
}

/// A free loopback port for the demo's API and console.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Run the daemon again with a console login, until Enter.
fn console(cfg: &Config) -> anyhow::Result<()> {
    use rand_core::RngCore;
    let mut b = [0u8; 9];
    rand_core::OsRng.fill_bytes(&mut b);
    let password = hex::encode(b);
    let hash = crate::console::password::hash(&password)?;
    let now = crate::clock::to_ms(chrono::Utc::now());
    crate::index::write_once(&cfg.index, |c| {
        crate::index::users::add(c, "demo", crate::config::Role::Admin, false, &hash, "demo", now)?;
        crate::index::users::set_password(c, "demo", &hash, "demo", now)?;
        Ok(())
    })?;
    let listen = cfg.api.listen.ok_or_else(|| anyhow::anyhow!("the demo's API has no address"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let daemon =
            tokio::spawn(app::run(cfg.clone(), RunOptions::new(false)?, Arc::new(SystemClock), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        heading("8. The web console, while the daemon runs");
        println!("  open    http://{listen}/console/");
        println!("  log in  demo / {password}   (an administrator; `bodycamd user add` makes real accounts)");
        println!("  press Enter to stop the daemon and end the demo");
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await?;
        shutdown.cancel();
        daemon.await??;
        Ok::<_, anyhow::Error>(())
    })
}

fn tmp_kept(dir: &std::path::Path) -> bool {
    !dir.starts_with(std::env::temp_dir())
        || !dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("bodycamd-demo-"))
}
