use super::{load_config, ConfigArg};
use crate::index::{open_reader, query};
use crate::views::StatusJson;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print JSON: {stations, counts, failed: [{path, reason, …}], retrying, rejected}.
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let status = StatusJson::build(&query::stations(&c)?, &query::counts(&c, true)?, &query::pending(&c, &[])?);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render());
    }
    Ok(0)
}
