//! `bodycamd case import`: cases from a dispatch or case system's export.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{load_config, ConfigArg};
use crate::clock::{to_ms, Clock, SystemClock};
use crate::index::{cases as ix, write_once};
use crate::rules::cases::{validate, Case, CaseStatus, Window};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Import cases from a CSV or JSON export (by the file's extension, or
    /// --format). Valid cases are registered (and matched to stored media);
    /// every bad row is reported with its number and reason. Exits 1 if
    /// any row was rejected.
    Import(ImportArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The export: CSV with a header row (case_id, title, status, closed_at,
    /// officers, devices, window_start, window_end, buffer_minutes; one row
    /// per window; officers and devices separated by `;`), or JSON (an
    /// array of cases as the API's PUT body, each with `case_id`).
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCase {
    case_id: String,
    title: Option<String>,
    status: Option<String>,
    closed_at: Option<String>,
    #[serde(default)]
    officers: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    windows: Vec<JsonWindow>,
    buffer_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonWindow {
    start: String,
    end: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    case_id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    closed_at: Option<String>,
    #[serde(default)]
    officers: Option<String>,
    #[serde(default)]
    devices: Option<String>,
    #[serde(default)]
    window_start: Option<String>,
    #[serde(default)]
    window_end: Option<String>,
    #[serde(default)]
    buffer_minutes: Option<String>,
}

fn time(what: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{what} {s:?} is not an RFC 3339 time"))
}

fn status(s: Option<&str>) -> Result<CaseStatus, String> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(CaseStatus::Open),
        Some(s) => CaseStatus::parse(s).ok_or_else(|| format!("status {s:?} must be open or closed")),
    }
}

fn split(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("").split([';', '|']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// Cases read from the file, with the number of the row (or array entry)
/// each came from; or the rejected rows with their reasons.
type Parsed = (Vec<(String, Case)>, Vec<String>);

fn from_json(text: &str) -> Result<Parsed, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("cases") {
            Some(serde_json::Value::Array(a)) => a,
            _ => return Err("expected an array of cases (or {\"cases\": [...]})".into()),
        },
        _ => return Err("expected an array of cases".into()),
    };
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        let row = format!("case {}", i + 1);
        let parsed = serde_json::from_value::<JsonCase>(item).map_err(|e| e.to_string()).and_then(|j| {
            let mut windows = Vec::new();
            for (k, w) in j.windows.iter().enumerate() {
                windows.push(Window {
                    start: time(&format!("windows[{k}].start"), &w.start)?,
                    end: time(&format!("windows[{k}].end"), &w.end)?,
                });
            }
            Ok(Case {
                id: j.case_id,
                title: j.title,
                status: status(j.status.as_deref())?,
                closed_at: j.closed_at.as_deref().map(|t| time("closed_at", t)).transpose()?,
                officers: j.officers,
                devices: j.devices,
                windows,
                buffer_minutes: j.buffer_minutes.unwrap_or(0),
            })
        });
        match parsed {
            Ok(c) => ok.push((row, c)),
            Err(e) => bad.push(format!("{row}: {e}")),
        }
    }
    Ok((ok, bad))
}

fn from_csv(text: &str) -> Result<Parsed, String> {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let mut cases: BTreeMap<String, (String, Case)> = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, rec) in rdr.deserialize::<CsvRow>().enumerate() {
        let line = format!("row {}", i + 2);
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(format!("{line}: {e}"));
                continue;
            }
        };
        let parsed = (|| -> Result<(Case, Option<Window>), String> {
            let window = match (
                r.window_start.as_deref().filter(|s| !s.is_empty()),
                r.window_end.as_deref().filter(|s| !s.is_empty()),
            ) {
                (Some(a), Some(b)) => Some(Window { start: time("window_start", a)?, end: time("window_end", b)? }),
                (None, None) => None,
                _ => return Err("window_start and window_end go together".into()),
            };
            let buffer = match r.buffer_minutes.as_deref().filter(|s| !s.is_empty()) {
                Some(b) => b.parse::<i64>().map_err(|_| format!("buffer_minutes {b:?} is not a number"))?,
                None => 0,
            };
            Ok((
                Case {
                    id: r.case_id.clone(),
                    title: r.title.clone().filter(|t| !t.is_empty()),
                    status: status(r.status.as_deref())?,
                    closed_at: r
                        .closed_at
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .map(|t| time("closed_at", t))
                        .transpose()?,
                    officers: split(r.officers.as_deref()),
                    devices: split(r.devices.as_deref()),
                    windows: Vec::new(),
                    buffer_minutes: buffer,
                },
                window,
            ))
        })();
        match parsed {
            Err(e) => bad.push(format!("{line}: {e}")),
            Ok((c, w)) => {
                let entry = cases.entry(c.id.clone()).or_insert_with(|| (line.clone(), c.clone()));
                // Later rows of the same case add windows, officers, devices.
                for o in c.officers {
                    if !entry.1.officers.contains(&o) {
                        entry.1.officers.push(o);
                    }
                }
                for d in c.devices {
                    if !entry.1.devices.contains(&d) {
                        entry.1.devices.push(d);
                    }
                }
                entry.1.windows.extend(w);
            }
        }
    }
    Ok((cases.into_values().collect(), bad))
}

pub fn main(cmd: Command) -> anyhow::Result<i32> {
    let Command::Import(a) = cmd;
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let text = std::fs::read_to_string(&a.file).map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    let format = a.format.unwrap_or_else(|| {
        if a.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            Format::Json
        } else {
            Format::Csv
        }
    });
    let parsed = match format {
        Format::Json => from_json(&text),
        Format::Csv => from_csv(&text),
    };
    let (cases, mut bad) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return Ok(2);
        }
    };
    let max_window = chrono::Duration::from_std(cfg.cases.max_window).unwrap_or(chrono::Duration::hours(24));
    let mut valid = Vec::new();
    for (row, c) in cases {
        match validate(&c, max_window) {
            Ok(()) => valid.push(c),
            Err(errs) => bad.push(format!("{row} (case {:?}): {}", c.id, errs.join("; "))),
        }
    }
    let by = format!("import:{}", a.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let now = to_ms(SystemClock.now());
    let results = write_once(&cfg.index, move |c| {
        valid
            .iter()
            .map(|case| ix::upsert_case(c, case, &by, now).map(|r| (case.id.clone(), r)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    for b in &bad {
        eprintln!("rejected {b}");
    }
    let created = results.iter().filter(|(_, r)| r.created).count();
    let matched = results.iter().filter(|(_, r)| r.total > 0).count();
    let links: usize = results.iter().map(|(_, r)| r.total).sum();
    println!(
        "imported {} case(s) ({} new, {} updated), rejected {} row(s); matched {} case(s) to {} original(s), {} case(s) unmatched",
        results.len(),
        created,
        results.len() - created,
        bad.len(),
        matched,
        links,
        results.len() - matched
    );
    Ok(if bad.is_empty() { 0 } else { 1 })
}
