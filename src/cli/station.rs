//! `bodycamd station release ID`: give up a station a host claimed (in a
//! district, when that host is gone for good and another must run it).

use super::{load_config, ConfigArg};
use crate::clock::to_ms;
use crate::index::{audit, ingest as ix, write_once};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Release a station so that another host may claim it.
    Release {
        /// The station id.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Who releases it (recorded in the audit log).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

pub fn main(c: Command) -> anyhow::Result<i32> {
    match c {
        Command::Release { id, config, by } => {
            let cfg = match load_config(&config.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let now = to_ms(chrono::Utc::now());
            let released = write_once(&cfg.index, |c| {
                let done = ix::release_station(c, &id)?;
                if done {
                    audit::event_by(c, now, &by, "station.release", None, Some(format!("station {id} released")))?;
                }
                Ok(done)
            })?;
            if released {
                println!("released station {id}: the next host that lists it claims it");
                Ok(0)
            } else {
                eprintln!("error: no station {id:?} in the index");
                Ok(1)
            }
        }
    }
}
