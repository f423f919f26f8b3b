use super::{load_config, ConfigArg};
use crate::config::{AfterIngest, Config};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the systemd drop-in this configuration needs (write access to
    /// the docks in delete mode) instead of the summary.
    #[arg(long)]
    systemd: bool,
}

/// The drop-in for `systemctl edit bodycamd`: the hardened unit makes
/// everything read-only but the state directory, so docks whose files are
/// removed after ingest must be listed, and a state directory elsewhere too.
pub fn dropin(cfg: &Config) -> String {
    let mut out = String::from("[Service]\n");
    let mut rw: Vec<String> = cfg
        .stations
        .iter()
        .filter(|s| s.after_ingest == AfterIngest::Delete)
        .map(|s| s.path.display().to_string())
        .collect();
    if !cfg.state_dir.starts_with("/var/lib/bodycamd") {
        rw.push(cfg.state_dir.display().to_string());
    }
    if rw.is_empty() {
        out.push_str("# Nothing to add: docks are only read (after_ingest = \"keep\").\n");
    }
    for p in rw {
        // systemd unit syntax: quote paths with spaces.
        out.push_str(&format!("ReadWritePaths=\"{}\"\n", p.replace('\\', "\\\\").replace('"', "\\\"")));
    }
    out
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if a.systemd {
        print!("{}", dropin(&cfg));
        return Ok(0);
    }
    println!(
        "{}: ok ({} station(s), state_dir {})",
        a.config.config.display(),
        cfg.stations.len(),
        cfg.state_dir.display()
    );
    for s in &cfg.stations {
        if !s.path.is_dir() {
            println!(
                "note: station {:?} folder {} does not exist yet (it will be reported unavailable)",
                s.id,
                s.path.display()
            );
        }
    }
    // The bucket: reachable, with credentials that work, and Object Lock.
    if let Some(s3) = &cfg.archive.s3 {
        match crate::store::open_bucket(&cfg) {
            Ok(_) => println!("archive: S3 bucket {} reachable, Object Lock checked", s3.bucket),
            Err(e) => {
                eprintln!("error: archive.s3: {e:#}");
                return Ok(2);
            }
        }
    }
    // The index: a PostgreSQL district index must be reachable, at a schema
    // this bodycamd knows, with the privileges it needs.
    if let crate::config::IndexLocation::Postgres(url) = &cfg.index {
        match crate::index::pg::check(url) {
            Ok(what) => println!("index: PostgreSQL {}: {what}", crate::index::pg::redact(url)),
            Err(e) => {
                eprintln!("error: index.url: {e}");
                return Ok(2);
            }
        }
        if !cfg.archive.shared && cfg.archive.s3.is_none() {
            eprintln!(
                "error: archive: a PostgreSQL district index needs an archive every host can read (an S3 bucket, or a \
                 shared folder with [archive] shared = true)"
            );
            return Ok(2);
        }
    }
    Ok(0)
}
