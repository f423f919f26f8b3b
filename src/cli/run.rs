use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{load_config, ConfigArg};
use crate::app::{self, RunOptions};
use crate::clock::SystemClock;
use crate::config::LogFormat;
use crate::index::{open_reader, query};
use crate::views::{human_bytes, StatusJson};

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LogFormatArg {
    Auto,
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Ingest everything on the stations now, wait until done, and exit
    /// (0 when it ran, even if some files failed; they are reported).
    #[arg(long)]
    once: bool,
    /// With --once: do not make renditions (they are made by the daemon
    /// later); without it, --once also finishes the rendition queue.
    #[arg(long)]
    no_renditions: bool,
    /// Log format (default: from the configuration, else text on a terminal
    /// and JSON lines otherwise).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

/// Cancel `token` at the first SIGTERM or SIGINT; exit at once on a second.
pub fn handle_signals(token: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        token.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let format = match a.log_format {
        Some(LogFormatArg::Auto) => LogFormat::Auto,
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        None => cfg.log.format,
    };
    crate::telemetry::init(&cfg.log.level, format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        handle_signals(shutdown.clone());
        let mut opts = RunOptions::new(a.once)?;
        opts.renditions = !a.no_renditions;
        let report = app::run(cfg.clone(), opts, Arc::new(SystemClock), shutdown).await?;
        if a.once {
            println!(
                "Stored {} new original(s) ({}), {} duplicate sighting(s), {} described, {} removed from docks.",
                report.stored_new,
                human_bytes(report.bytes_stored),
                report.duplicates,
                report.described,
                report.deleted_from_dock
            );
            let c = open_reader(&cfg.index_path())?;
            let status = StatusJson::build(&query::stations(&c)?, &query::counts(&c)?, &query::pending(&c, &[])?);
            print!("{}", status.render());
        }
        Ok(0)
    })
}
