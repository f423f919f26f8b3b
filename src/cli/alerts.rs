use super::{load_config, ConfigArg};
use crate::clock::{from_ms, rfc3339, to_ms, Clock, SystemClock};
use crate::index::alerts::{self as ax, AckOutcome, StateFilter};
use crate::index::{open_reader, write_once};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List alerts, newest first.
    List(ListArgs),
    /// Acknowledge an alert: who looked at it, and a note.
    Ack(AckArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum State {
    Open,
    Acked,
    Resolved,
    All,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// open (unresolved, acknowledged or not), acked, resolved or all.
    #[arg(long, value_enum, default_value = "open")]
    state: State,
    /// Only this kind (overdue, late_processing, …).
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct AckArgs {
    /// The alert id.
    id: i64,
    #[command(flatten)]
    config: ConfigArg,
    /// Who acknowledges.
    #[arg(long)]
    by: String,
    #[arg(long)]
    note: Option<String>,
}

pub fn main(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::List(a) => list(a),
        Command::Ack(a) => ack(a),
    }
}

fn list(a: ListArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(k) = &a.kind {
        if crate::rules::alerts::AlertKind::parse(k).is_none() {
            eprintln!("error: unknown alert kind {k:?}");
            return Ok(2);
        }
    }
    let state = match a.state {
        State::Open => StateFilter::Open,
        State::Acked => StateFilter::Acked,
        State::Resolved => StateFilter::Resolved,
        State::All => StateFilter::All,
    };
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let rows = ax::list(&c, state, a.kind.as_deref(), None, a.limit, false)?;
    if a.json {
        let v: Vec<serde_json::Value> = rows.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "{:>5}  {:<9}  {:<19}  {:<8}  {:<24}  {:<24}  SUBJECT",
        "ID", "SEVERITY", "KIND", "STATE", "OPENED", "RESOLVED"
    );
    for r in &rows {
        println!(
            "{:>5}  {:<9}  {:<19}  {:<8}  {:<24}  {:<24}  {}",
            r.id,
            r.severity,
            r.kind,
            r.state(),
            rfc3339(from_ms(r.opened_at)),
            r.resolved_at.map(|t| rfc3339(from_ms(t))).unwrap_or_else(|| "-".into()),
            r.subject.escape_debug()
        );
    }
    if rows.is_empty() {
        println!("(none)");
    }
    Ok(0)
}

fn ack(a: AckArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if a.by.trim().is_empty() {
        eprintln!("error: --by must name who acknowledges");
        return Ok(2);
    }
    let hooks: Vec<String> = cfg.alerts.webhooks.iter().map(|w| w.url.clone()).collect();
    let now = to_ms(SystemClock.now());
    let (id, by, note) = (a.id, a.by.clone(), a.note.clone());
    match write_once(&cfg.index, move |c| ax::ack(c, id, &by, note.as_deref(), now, &hooks))? {
        AckOutcome::Acked(t) => {
            println!("acknowledged alert {} ({} {}) by {}", t.alert_id, t.kind, t.subject, a.by);
            Ok(0)
        }
        AckOutcome::AlreadyAcked(r) => {
            eprintln!(
                "error: alert {} was already acknowledged by {} at {}",
                r.id,
                r.acked_by.unwrap_or_default(),
                r.acked_at.map(|t| rfc3339(from_ms(t))).unwrap_or_default()
            );
            Ok(1)
        }
        AckOutcome::NotFound => {
            eprintln!("error: no alert with id {}", a.id);
            Ok(1)
        }
    }
}
