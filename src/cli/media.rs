use super::{load_config, ConfigArg};
use crate::clock::{parse_time, to_ms};
use crate::index::renditions as rx;
use crate::index::{open_reader, query};
use crate::views::{render_media_table, render_renditions, MediaJson, RenditionJson};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List originals, by recording start.
    List(ListArgs),
    /// Everything known about one original.
    Show(ShowArgs),
    /// Recover a cut-short recording again, with the codec configuration of
    /// a recording you name (default: the camera's most recent complete one).
    Recover(RecoverArgs),
}

#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// The cut-short original (media id).
    id: String,
    /// A complete H.264/H.265 recording of the same camera (media id).
    #[arg(long)]
    reference: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
    /// Who asks (recorded in the audit log).
    #[arg(long, default_value = "cli")]
    by: String,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    json: bool,
    /// Device serial.
    #[arg(long)]
    device: Option<String>,
    /// Officer number.
    #[arg(long)]
    officer: Option<String>,
    /// Station id.
    #[arg(long)]
    station: Option<String>,
    /// Recording started at or after (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = parse_time)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Recording started before.
    #[arg(long, value_parser = parse_time)]
    to: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    limit: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The media id (BLAKE3 hex).
    id: String,
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long)]
    json: bool,
}

pub fn main(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::List(a) => list(a),
        Command::Show(a) => show(a),
        Command::Recover(a) => recover(a),
    }
}

fn recover(a: RecoverArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    for id in std::iter::once(&a.id).chain(a.reference.as_ref()) {
        if let Err(e) = id.parse::<crate::domain::MediaId>() {
            eprintln!("error: {e}");
            return Ok(2);
        }
    }
    let (id, reference, by) = (a.id.clone(), a.reference.clone(), a.by.clone());
    let now = to_ms(chrono::Utc::now());
    let outcome = crate::index::write_once(&cfg.index, move |c| {
        if query::media_get(c, &id)?.is_none() {
            return Ok(Err(format!("no original with id {id}")));
        }
        if let Some(r) = &reference {
            if let Some(why) = rx::unfit_reference(c, r)? {
                return Ok(Err(format!("cannot use it as the reference: {why}")));
            }
        }
        if !rx::set_reference(c, &id, reference.as_deref(), now)? {
            return Ok(Err(format!(
                "{id} is not a cut-short recording with a recovery to run (or its recovery is running now)"
            )));
        }
        let what = format!("reference {}", reference.as_deref().unwrap_or("automatic"));
        crate::index::audit::event_by(c, now, &by, "media.recover", Some(&id), Some(what))?;
        Ok(Ok(()))
    })?;
    match outcome {
        Ok(()) => {
            println!(
                "Recovery of {} queued with {} (the daemon takes it within a few seconds; see `bodycamd media show`).",
                a.id,
                a.reference
                    .as_deref()
                    .map_or("the camera's most recent complete recording".to_string(), |r| format!("reference {r}"))
            );
            Ok(0)
        }
        Err(why) => {
            eprintln!("error: {why}");
            Ok(1)
        }
    }
}

fn list(a: ListArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let filter = query::MediaFilter {
        device: a.device,
        officer: a.officer,
        station: a.station,
        from: a.from.map(to_ms),
        to: a.to.map(to_ms),
        limit: a.limit,
    };
    let rows: Vec<MediaJson> =
        query::media_list(&c, &filter)?.iter().map(|r| MediaJson::from_row(r, &cfg.archive_dir())).collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_media_table(&rows));
    }
    Ok(0)
}

fn show(a: ShowArgs) -> anyhow::Result<i32> {
    let cfg = match load_config(&a.config.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Err(e) = a.id.parse::<crate::domain::MediaId>() {
        eprintln!("error: {e}");
        return Ok(2);
    }
    let reader = open_reader(&cfg.index)?;
    let c = reader.db();
    let Some(row) = query::media_get(&c, &a.id)? else {
        eprintln!("error: no original with id {}", a.id);
        return Ok(1);
    };
    let m = MediaJson::from_row(&row, &cfg.archive_dir());
    let renditions = RenditionJson::join(&rx::jobs_of(&c, &a.id)?, &rx::of_original(&c, &a.id)?, &cfg.renditions_dir());
    if a.json {
        #[derive(serde::Serialize)]
        struct Show<'a> {
            #[serde(flatten)]
            media: &'a MediaJson,
            renditions: &'a [RenditionJson],
        }
        println!("{}", serde_json::to_string_pretty(&Show { media: &m, renditions: &renditions })?);
    } else {
        let v = serde_json::to_value(&m)?;
        for (k, v) in v.as_object().into_iter().flatten() {
            println!(
                "{k:>15}: {}",
                if v.is_string() { v.as_str().unwrap_or_default().to_string() } else { v.to_string() }
            );
        }
        print!("{}", render_renditions(&renditions));
    }
    Ok(0)
}
