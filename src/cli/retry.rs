//! `bodycamd retry`: ask the running daemon to try failed files again now
//! (they are also tried again by themselves every `ingest.failed_retry_secs`).

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{load_config, ConfigArg};
use crate::clock::to_ms;
use crate::index::{audit, ingest as ix, write_once};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this station's files (default: every station).
    #[arg(long)]
    station: Option<String>,
    /// Only this file (its path relative to the station; needs --station).
    #[arg(long, requires = "station")]
    path: Option<PathBuf>,
    /// Who asks (recorded in the audit log).
    #[arg(long, default_value = "cli")]
    by: String,
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(s) = &a.station {
        if !cfg.stations.iter().any(|st| &st.id == s) {
            eprintln!("error: no station {s:?} in {}", cfg.source.display());
            return Ok(2);
        }
    }
    let now = to_ms(chrono::Utc::now());
    let rel = a.path.as_ref().map(|p| p.as_os_str().as_bytes().to_vec());
    let what = match (&a.station, &a.path) {
        (Some(s), Some(p)) => format!("{s}:{}", p.display()),
        (Some(s), None) => format!("every failed file of {s}"),
        _ => "every failed file".to_string(),
    };
    let (station, by) = (a.station.clone(), a.by.clone());
    let n = write_once(&cfg.index, move |c| {
        let n = ix::request_retry(c, station.as_deref(), rel.as_deref(), now)?;
        audit::event_by(c, now, &by, "ingest.retry", None, Some(format!("{what}: {n} file(s)")))?;
        Ok(n)
    })?;
    if n == 0 {
        println!("No failed or waiting file matches; nothing to retry.");
    } else {
        println!("Asked the daemon to try {n} file(s) again now (it takes the request within a few seconds).");
    }
    Ok(0)
}
