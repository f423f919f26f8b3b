use super::{load_config, ConfigArg};
use crate::clock::{parse_time, rfc3339, to_ms};
use crate::index::{open_reader, query};
use crate::rules::compliance::{items, summarize, GroupBy, Row};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// On-time storage per officer, device or station.
    Compliance(ComplianceArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ComplianceArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Recordings that started at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = parse_time)]
    from: chrono::DateTime<chrono::Utc>,
    /// Recordings that started before.
    #[arg(long, value_parser = parse_time)]
    to: chrono::DateTime<chrono::Utc>,
    #[arg(long, value_enum, default_value = "officer")]
    by: GroupBy,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn main(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Compliance(a) => compliance(a),
    }
}

fn hm(secs: Option<f64>) -> String {
    let Some(s) = secs else { return "-".into() };
    let m = (s / 60.0).round() as i64;
    format!("{}h{:02}m", m / 60, m % 60)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.0}")).unwrap_or_default()
}

fn compliance(a: ComplianceArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if a.to <= a.from {
        eprintln!("error: --to must be after --from");
        return Ok(2);
    }
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let (rows, lost, unassessed) = query::compliance_rows(&c, to_ms(a.from), to_ms(a.to), a.by, true)?;
    let items = items(&rows, &lost);
    let report = summarize(&items);
    let by = a.by.as_str();
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "from": rfc3339(a.from), "to": rfc3339(a.to), "by": by,
                "storage_deadline_secs": cfg.deadlines.storage.as_secs(),
                "rows": report, "not_assessed_yet": unassessed,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Csv => {
            println!("{by},files,on_time,late_docking,late_processing,clock_invalid,vanished_unstored,on_time_pct,median_delay_secs,max_delay_secs");
            for r in &report {
                println!(
                    "{},{},{},{},{},{},{},{:.2},{},{}",
                    csv_field(&r.key),
                    r.files,
                    r.on_time,
                    r.late_docking,
                    r.late_processing,
                    r.clock_invalid,
                    r.vanished,
                    r.on_time_pct,
                    secs(r.median_delay_secs),
                    secs(r.max_delay_secs)
                );
            }
        }
        Format::Table => {
            println!(
                "Compliance with the {} storage rule, recordings started {} to {}, by {by}",
                humantime::format_duration(cfg.deadlines.storage),
                rfc3339(a.from),
                rfc3339(a.to)
            );
            println!(
                "{:<16} {:>6} {:>8} {:>13} {:>16} {:>14} {:>9} {:>9} {:>13} {:>10}",
                by.to_uppercase(),
                "FILES",
                "ON TIME",
                "LATE DOCKING",
                "LATE PROCESSING",
                "CLOCK INVALID",
                "LOST",
                "ON TIME%",
                "MEDIAN DELAY",
                "MAX DELAY"
            );
            for r in &report {
                print_row(r);
            }
        }
    }
    if unassessed > 0 && a.format != Format::Json {
        eprintln!(
            "note: {unassessed} original(s) in the range are not assessed yet (not described) and are not counted"
        );
    }
    Ok(0)
}

fn print_row(r: &Row) {
    println!(
        "{:<16} {:>6} {:>8} {:>13} {:>16} {:>14} {:>9} {:>8.2}% {:>13} {:>10}",
        r.key,
        r.files,
        r.on_time,
        r.late_docking,
        r.late_processing,
        r.clock_invalid,
        r.vanished,
        r.on_time_pct,
        hm(r.median_delay_secs),
        hm(r.max_delay_secs)
    );
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
