//! The command line: one file per subcommand. Exit codes: 0 done, 1 failed,
//! 2 bad usage or configuration.

mod alerts;
mod case;
mod check_config;
mod custody;
mod demo;
mod media;
mod report;
mod retry;
mod run;
mod simulate;
mod station;
mod status;
mod user;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Parser, Debug)]
#[command(name = "bodycamd", version, about = "Body-worn camera evidence ingest daemon")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon: watch the stations and store what they receive.
    Run(run::Args),
    /// Validate a configuration file; exits non-zero on any error.
    CheckConfig(check_config::Args),
    /// Stations, counts, and files that could not be stored.
    Status(status::Args),
    /// Query stored originals.
    #[command(subcommand)]
    Media(media::Command),
    /// Cases: import from a case system's export.
    #[command(subcommand)]
    Case(case::Command),
    /// Stations in a district: release one a host claimed.
    #[command(subcommand)]
    Station(station::Command),
    /// Try failed files again now (they are also retried by themselves).
    Retry(retry::Args),
    /// Alerts: list and acknowledge.
    #[command(subcommand)]
    Alerts(alerts::Command),
    /// Reports (compliance with the 24-hour rule).
    #[command(subcommand)]
    Report(report::Command),
    /// Re-hash every original and rendition and check the audit chain.
    Verify(custody::VerifyArgs),
    /// The host's signing key.
    #[command(subcommand)]
    Key(custody::KeyCommand),
    /// Signed receipts.
    #[command(subcommand)]
    Receipt(custody::ReceiptCommand),
    /// Retention: expire to the trash, purge, restore.
    #[command(subcommand)]
    Retention(custody::RetentionCommand),
    /// People who log in to the console: add, passwd, disable, enable, list.
    #[command(subcommand)]
    User(user::Command),
    /// Write a simulated docking-station folder with real media.
    Simulate(simulate::Args),
    /// Run the daemon against a simulated docking station and show the result.
    Demo(demo::Args),
    /// Recover the frames of a cut-short MP4/MOV file (no index) into a
    /// playable MP4, with the codec configuration of a complete recording
    /// of the same camera. Reads only the files given; writes OUT.
    RecoverFile(RecoverFileArgs),
    /// (internal) Describe files for the daemon, one JSON request per line.
    #[command(hide = true)]
    ProbeWorker,
    /// (internal) Make one rendition for the daemon (a JSON job on stdin).
    #[command(hide = true)]
    RenderWorker,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RecoverFileArgs {
    /// The cut-short recording.
    cut: PathBuf,
    /// Where to write the recovered MP4 (an existing file is not replaced).
    out: PathBuf,
    /// A complete recording of the same camera.
    #[arg(long)]
    reference: PathBuf,
    /// Print what was recovered as JSON.
    #[arg(long)]
    json: bool,
}

fn recover_file(a: RecoverFileArgs) -> anyhow::Result<i32> {
    if a.out.exists() {
        eprintln!("error: {} exists; give a new file", a.out.display());
        return Ok(2);
    }
    let started = std::time::Instant::now();
    match crate::media::recover::recover(&a.cut, &a.reference, &a.out) {
        Ok(r) => {
            let secs = started.elapsed().as_secs_f64();
            if a.json {
                let mut v = serde_json::to_value(&r)?;
                v["elapsed_secs"] = secs.into();
                println!("{v}");
            } else {
                println!(
                    "recovered {} video and {} audio frames ({:.2} s) from bytes {}..{} in {secs:.2} s ({} bytes skipped, {} access units left out) into {}",
                    r.video_frames, r.audio_frames, r.seconds, r.bytes_from, r.bytes_to, r.bytes_skipped, r.undecodable, a.out.display()
                );
            }
            Ok(0)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&a.out);
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', default_value = "/etc/bodycamd/bodycamd.toml")]
    pub config: PathBuf,
}

/// Load a configuration, printing every error; `Err(2)` on failure.
pub fn load_config(path: &Path) -> Result<Config, i32> {
    Config::load(path).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("error: {e}");
        }
        2
    })
}

/// The name of the executable that does the media work: the probe and
/// render workers, and the commands that encode media (`simulate`, `demo`).
/// Only it links libav, so the daemon (`bodycamd run`) never maps those
/// libraries: they would cost it some 35 MiB of memory for nothing, since
/// it never parses media itself.
pub const MEDIA_EXE: &str = "bodycamd-media";

fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            2
        } else {
            0
        }
    })
}

/// Where the media executable is: this one if it is it, else beside it.
pub fn media_exe() -> std::io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_name().is_some_and(|n| n == MEDIA_EXE) {
        return Ok(me);
    }
    Ok(me.with_file_name(MEDIA_EXE))
}

/// `bodycamd`: every command; the media ones are handed to
/// [`MEDIA_EXE`] (same arguments).
pub fn main() -> i32 {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cli.command {
        Command::Simulate(_)
        | Command::Demo(_)
        | Command::RecoverFile(_)
        | Command::ProbeWorker
        | Command::RenderWorker => exec_media(),
        other => finish(common(other)),
    }
}

/// `bodycamd-media`: the same commands, the media ones done here.
pub fn media_main() -> i32 {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Simulate(a) => simulate::main(a),
        Command::Demo(a) => demo::main(a),
        Command::RecoverFile(a) => recover_file(a),
        Command::RenderWorker => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            crate::media::worker::serve_render(stdin, stdout).map(|()| 0).map_err(anyhow::Error::from)
        }
        Command::ProbeWorker => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            crate::media::worker::serve(stdin, stdout).map(|()| 0).map_err(|e| anyhow::anyhow!(e))
        }
        other => common(other),
    };
    finish(result)
}

/// Replace this process by the media executable, same arguments.
fn exec_media() -> i32 {
    use std::os::unix::process::CommandExt;
    let exe = match media_exe() {
        Ok(p) => p,
        Err(e) => return finish(Err(anyhow::anyhow!("cannot find this executable: {e}"))),
    };
    let e = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).exec();
    finish(Err(anyhow::anyhow!(
        "cannot start {} ({e}); it is installed beside bodycamd and does its media work",
        exe.display()
    )))
}

/// The commands that do not touch media.
fn common(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(a) => run::main(a),
        Command::CheckConfig(a) => check_config::main(a),
        Command::Status(a) => status::main(a),
        Command::Media(c) => media::main(c),
        Command::Alerts(c) => alerts::main(c),
        Command::Retry(a) => retry::main(a),
        Command::Station(c) => station::main(c),
        Command::Case(c) => case::main(c),
        Command::Report(c) => report::main(c),
        Command::Verify(a) => custody::verify_main(a),
        Command::Key(c) => custody::key_main(c),
        Command::Receipt(c) => custody::receipt_main(c),
        Command::Retention(c) => custody::retention_main(c),
        Command::User(c) => user::main(c),
        Command::Simulate(_)
        | Command::Demo(_)
        | Command::RecoverFile(_)
        | Command::ProbeWorker
        | Command::RenderWorker => Err(anyhow::anyhow!("{MEDIA_EXE} runs this command")),
    }
}

fn finish(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Logging for commands that are not the daemon: warnings and errors only.
pub fn quiet_logs() {
    crate::telemetry::init("warn", LogFormat::Text);
}
