//! Screens for administrators who watch ingestion: stations, the 24-hour
//! board, alerts, ingest problems, rendition jobs; and the live counts.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use maud::html;

use super::html::{at, at_opt, bytes, csrf, page, span};
use super::{done, read, PageResult, Person, Problem};
use crate::api::error::{JsonBody, PathParams};
use crate::api::ApiState;
use crate::clock::to_ms;
use crate::index::alerts::{self as ax, StateFilter};
use crate::index::{query, screens};

#[derive(serde::Deserialize, Default)]
pub struct Msg {
    msg: Option<String>,
}

fn sees_restricted(p: &Person) -> bool {
    p.restricted
}

/// Stations: online or not, newest recording, free space, pending and
/// failed files, throughput in the last hour.
pub async fn stations(State(s): State<ApiState>, Extension(p): Extension<Person>, Query(q): Query<Msg>) -> PageResult {
    let now = to_ms(s.clock.now());
    let rows = read(&s, move |c| {
        let near: std::collections::HashMap<String, query::StationPending> =
            query::pending_by_station(c)?.into_iter().map(|r| (r.station.clone(), r)).collect();
        let mut out = Vec::new();
        for st in query::stations(c)? {
            let activity = screens::station_activity(c, &st.id, now - 3_600_000)?;
            let nearest = near.get(&st.id).and_then(|n| n.nearest_deadline);
            out.push((st, activity, nearest));
        }
        Ok(out)
    })
    .await?;
    let free = |path: &str| -> String {
        match rustix::fs::statvfs(path) {
            Ok(v) => bytes(v.f_bavail.saturating_mul(v.f_frsize)),
            Err(_) => "—".into(),
        }
    };
    let body = html! {
        table {
            thead { tr {
                th { "Station" } th { "State" } th { "Folder" } th.num { "Free" } th { "Newest recording" }
                th.num { "Stored in the last hour" } th.num { "Camera clock not trusted" } th.num { "Pending" } th.num { "Failed" } th { "Nearest deadline" }
                th { "Last scan" }
            } }
            tbody {
                @for (st, act, nearest) in &rows {
                    tr {
                        td { (st.id) }
                        td {
                            @if st.available { span.state-ok { "online" } }
                            @else {
                                span.state-overdue { "unavailable" }
                                @if let Some(t) = st.unavailable_since { br; span.muted { "since " (at(t)) } }
                                @if let Some(e) = &st.last_error { br; span.muted { (e) } }
                            }
                        }
                        td.hash { (st.path) }
                        td.num { (free(&st.path)) }
                        td { (at_opt(act.newest)) }
                        td.num { (act.recent) }
                        td.num { (act.clock_untrusted) }
                        td.num { (st.pending) }
                        td.num { @if st.failed > 0 { a.error href="/console/problems" { (st.failed) } } @else { "0" } }
                        td { @match nearest { Some(d) => { (at(*d)) " (" (span(d - now)) ")" }, None => "—" } }
                        td { (at_opt(st.last_scan_at)) }
                    }
                }
            }
        }
        p.muted { "An unavailable station is a dock that is not mounted or not reachable: its files are not lost, they wait on the dock." }
    };
    Ok(page(&p, "stations", "Stations", q.msg.as_deref(), body))
}

#[derive(serde::Deserialize, Default)]
pub struct BoardQuery {
    msg: Option<String>,
    /// `deadline,station,hex(rel_path)` of the last row shown.
    after: Option<String>,
}

fn board_cursor(v: &Option<String>) -> Result<Option<(i64, String, Vec<u8>)>, Problem> {
    let parse = |s: &str| {
        let mut it = s.splitn(3, ',');
        let t = it.next()?.parse().ok()?;
        let st = it.next()?.to_string();
        let rel = hex::decode(it.next()?).ok()?;
        Some((t, st, rel))
    };
    v.as_deref().map(|a| parse(a).ok_or_else(|| Problem::bad("bad page cursor"))).transpose()
}

/// The 24-hour board: files waiting on the docks by time left; late files
/// split into late docking (officer) and late processing (system).
pub async fn board(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<BoardQuery>,
) -> PageResult {
    let now = to_ms(s.clock.now());
    let warn = s.console.warn_before.as_millis() as i64;
    let after = board_cursor(&q.after)?;
    let see = sees_restricted(&p);
    let (counts, rows, by_station, late) = read(&s, move |c| {
        Ok((
            screens::waiting_counts(c, now, warn)?,
            screens::waiting_by_deadline(c, after, 100)?,
            query::pending_by_station(c)?,
            screens::lateness_since(c, now - 7 * 86_400_000, see)?,
        ))
    })
    .await?;
    let late_of = |k: &str| late.iter().find(|(n, _)| n == k).map(|(_, n)| *n).unwrap_or(0);
    let next = (rows.len() == 100)
        .then(|| rows.last().map(|r| format!("{},{},{}", r.deadline, r.station, hex::encode(&r.rel_path))))
        .flatten();
    let body = html! {
        div.cards {
            div.card { b data-count="waiting" { (counts.0) } "files waiting on the docks" }
            div.card { b.state-at_risk { (counts.1) } "at risk (deadline within " (span(warn)) ")" }
            div.card { b.state-overdue { (counts.2) } "overdue" }
            div.card { b { (late_of("on_time")) } "stored on time (last 7 days)" }
            div.card { b { (late_of("late_docking")) } "stored late, docked late (officer)" }
            div.card { b { (late_of("late_processing")) } "stored late, processed late (system)" }
        }
        h2 { "By station" }
        table {
            thead { tr { th { "Station" } th.num { "Waiting" } th { "Waiting since" } th { "Nearest deadline" } th { "Time left" } } }
            tbody {
                @for st in by_station.iter().filter(|b| b.files > 0) {
                    tr {
                        td { (st.station) }
                        td.num { (st.files) }
                        td { (at_opt(st.oldest_first_seen)) }
                        td { (at_opt(st.nearest_deadline)) }
                        td { @if let Some(d) = st.nearest_deadline { span class=(state_class(d - now, warn)) { (span(d - now)) } } }
                    }
                }
            }
        }
        h2 { "Files by time left" }
        table {
            thead { tr { th { "Time left" } th { "Deadline" } th { "Station" } th { "File" } th.num { "Size" } th { "Seen" } th { "State" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td { span class=(state_class(r.deadline - now, warn)) { (span(r.deadline - now)) } }
                        td { (at(r.deadline)) }
                        td { (r.station) }
                        td.hash { (String::from_utf8_lossy(&r.rel_path)) }
                        td.num { (r.size.map(bytes).unwrap_or_default()) }
                        td { (at(r.first_seen)) }
                        td { (r.state) @if let Some(why) = &r.reason { br; span.muted { (why) } } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "Nothing is waiting: every docked file with a known deadline is stored." } }
        (super::html::next_link("/console/board", &[], next))
    };
    Ok(page(&p, "board", "The 24-hour board", q.msg.as_deref(), body))
}

fn state_class(left_ms: i64, warn_ms: i64) -> &'static str {
    if left_ms <= 0 {
        "state-overdue"
    } else if left_ms <= warn_ms {
        "state-at_risk"
    } else {
        "state-ok"
    }
}

#[derive(serde::Deserialize, Default)]
pub struct AlertQuery {
    msg: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    /// `opened_at,id` of the last alert shown.
    after: Option<String>,
}

/// Alerts per page.
const ALERTS_PAGE: u32 = 100;

/// An alert list's page cursor: `opened_at,id` of the last alert shown.
fn alert_cursor(v: &Option<String>) -> Result<Option<(i64, i64)>, Problem> {
    super::cursor(v)?.map(|(t, id)| Ok((t, id.parse().map_err(|_| Problem::bad("bad page cursor"))?))).transpose()
}

fn alert_next(rows: &[ax::AlertRow], page: u32) -> Option<String> {
    (rows.len() == page as usize).then(|| rows.last().map(|a| format!("{},{}", a.opened_at, a.id))).flatten()
}

/// Alerts (open, acknowledged, resolved), acknowledge with a note; webhook
/// deliveries and their state.
pub async fn alerts(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<AlertQuery>,
) -> PageResult {
    let state_name = q.state.clone().unwrap_or_else(|| "open".into());
    let state = match state_name.as_str() {
        "open" => StateFilter::Open,
        "acked" => StateFilter::Acked,
        "resolved" => StateFilter::Resolved,
        "all" => StateFilter::All,
        other => return Err(Problem::bad(format!("state {other:?}: open, acked, resolved or all"))),
    };
    let kind = q.kind.clone().filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if crate::rules::alerts::AlertKind::parse(k).is_none() {
            return Err(Problem::bad(format!("unknown alert kind {k:?}")));
        }
    }
    let before = alert_cursor(&q.after)?;
    let hide = !sees_restricted(&p);
    let (rows, deliveries) = read(&s, move |c| {
        Ok((
            ax::list(c, state, kind.as_deref(), before, Some(ALERTS_PAGE), hide)?,
            screens::recent_deliveries(c, 20, hide)?,
        ))
    })
    .await?;
    let next = alert_next(&rows, ALERTS_PAGE);
    let body = html! {
        form.filters method="get" action="/console/alerts" {
            label { "State" select name="state" {
                @for st in ["open", "acked", "resolved", "all"] { option value=(st) selected[st == state_name] { (st) } }
            } }
            label { "Kind" input name="kind" value=(q.kind.clone().unwrap_or_default()) placeholder="any"; }
            button type="submit" { "Show" }
        }
        table #alerts {
            thead { tr { th { "#" } th { "Severity" } th { "Kind" } th { "Subject" } th { "Opened" } th { "State" } th { "Details" } th { "Acknowledge" } } }
            tbody {
                @for a in &rows {
                    tr data-alert=(a.id) {
                        td { a href={ "/console/alerts/" (a.id) } title="History" { (a.id) } }
                        td { span class={ "sev-" (a.severity) } { (a.severity) } }
                        td { (a.kind) }
                        td {
                            @if a.subject_type == "media" { a href={ "/console/media/" (a.subject) } { (a.subject_type) " " (short(&a.subject)) } }
                            @else { (a.subject_type) " " (a.subject) }
                        }
                        td { (at(a.opened_at)) }
                        td {
                            (a.state())
                            @if let Some(by) = &a.acked_by { br; span.muted { "by " (by) " " (at_opt(a.acked_at)) } }
                            @if let Some(n) = &a.ack_note { br; span.muted { "“" (n) "”" } }
                            @if let Some(t) = a.resolved_at { br; span.muted { "resolved " (at(t)) } }
                        }
                        td.muted { (details_text(&a.details)) }
                        td {
                            @if a.state() == "open" {
                                form.inline method="post" action={ "/console/alerts/" (a.id) "/ack" } {
                                    (csrf(&p))
                                    input name="note" placeholder="note" maxlength="1000";
                                    button type="submit" { "Acknowledge" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No alerts in this state." } }
        (super::html::next_link("/console/alerts", &[("state", Some(state_name.clone())), ("kind", q.kind.clone())], next))
        h2 { "Webhook deliveries" }
        table {
            thead { tr { th { "#" } th { "Alert" } th { "URL" } th.num { "Attempts" } th { "State" } th { "Last error" } } }
            tbody {
                @for d in &deliveries {
                    tr {
                        td { (d.id) } td { (d.alert_id) } td.hash { (d.url) } td.num { (d.attempts) }
                        td { @match d.delivered_at { Some(t) => { "delivered " (at(t)) }, None => { "next try " (at(d.next_try)) } } }
                        td.muted { (d.last_error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    Ok(page(&p, "alerts", "Alerts", q.msg.as_deref(), body))
}

/// One alert and its history: when it was opened, acknowledged (by whom,
/// with what note) and resolved, and its webhook deliveries.
pub async fn alert_one(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<i64>,
    Query(q): Query<Msg>,
) -> PageResult {
    let hide = !sees_restricted(&p);
    let (a, events) = read(&s, move |c| {
        let Some(a) = ax::get_visible(c, id, hide)? else { return Ok((None, Vec::new())) };
        Ok((Some(a), ax::events_of(c, id)?))
    })
    .await?;
    let a = a.ok_or_else(|| Problem::not_found(format!("no alert {id}")))?;
    let body = html! {
        table.facts {
            tr { th { "Kind" } td { (a.kind) } }
            tr { th { "Severity" } td { span class={ "sev-" (a.severity) } { (a.severity) } } }
            tr { th { "Subject" } td {
                @if a.subject_type == "media" { a href={ "/console/media/" (a.subject) } { (a.subject_type) " " (a.subject) } }
                @else { (a.subject_type) " " (a.subject) }
            } }
            tr { th { "State" } td { (a.state()) } }
            tr { th { "Details" } td { (details_text(&a.details)) } }
        }
        h2 { "History" }
        table #history {
            thead { tr { th { "When" } th { "Event" } th { "By" } th { "Note" } } }
            tbody {
                @for (event, when, body) in &events {
                    @let ack = &body["alert"]["acknowledged"];
                    tr {
                        td { (at(*when)) }
                        td { (event) }
                        td { @if event == "acknowledged" { (ack["by"].as_str().unwrap_or("")) } @else { "bodycamd" } }
                        td.muted { @if event == "acknowledged" { (ack["note"].as_str().unwrap_or("")) } }
                    }
                }
            }
        }
        @if a.state() == "open" {
            form.inline method="post" action={ "/console/alerts/" (a.id) "/ack" } {
                (csrf(&p))
                input name="note" placeholder="note" maxlength="1000";
                button type="submit" { "Acknowledge" }
            }
        }
        p { a href="/console/alerts" { "← All alerts" } }
    };
    Ok(page(&p, "alerts", &format!("Alert {id}"), q.msg.as_deref(), body))
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

/// An alert's details in one line of words.
fn details_text(d: &serde_json::Value) -> String {
    match d {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}: {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect::<Vec<_>>()
            .join("; ")
            .chars()
            .take(400)
            .collect(),
        other => other.to_string(),
    }
}

#[derive(serde::Deserialize)]
pub struct AckForm {
    note: Option<String>,
}

/// Acknowledge an alert (through the API's handler).
pub async fn ack(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<i64>,
    Form(f): Form<AckForm>,
) -> PageResult {
    let note = f.note.filter(|n| !n.trim().is_empty());
    let _acked = crate::api::admin::ack(
        State(s),
        Extension(p.caller()),
        PathParams(id),
        JsonBody(crate::api::types::AckBody { note }),
    )
    .await
    .map_err(Problem::from)?;
    Ok(done("/console/alerts", &format!("Alert {id} acknowledged.")))
}

/// What a person can do about a file in each state.
fn advice(state: &str) -> &'static str {
    match state {
        "failed" => "Tried several times and failed: fix the cause shown (permissions, a full archive, a file that keeps changing), then retry. Retries also happen by themselves.",
        "blocked" => "Cannot be read from the dock (permissions or an I/O error): fix access to the file, then retry.",
        "missing" => "It was seen, then left the dock before it was stored: find the file (the camera, the dock's recycle bin) and dock it again.",
        "rejected" => "Refused by policy (a symlink, a special file, or a name the station does not take): it stays on the dock untouched.",
        "retrying" => "A recent attempt failed; bodycamd tries again by itself.",
        _ => "Waiting to be stored.",
    }
}

/// Rows per page on the problems screen.
const PROBLEMS_PAGE: u32 = 100;

#[derive(serde::Deserialize, Default)]
pub struct ProblemsQuery {
    msg: Option<String>,
    /// `first_seen,station,hex(rel_path)` of the last file shown.
    after: Option<String>,
    /// `opened_at,id` of the last unreadable original shown.
    unreadable_after: Option<String>,
}

/// Ingest problems: files that failed or could not be read, the reason in
/// words, where the file is, what to do; retry. Both lists are pages of an
/// index (`pending_problems`, `alerts_kind_time`).
pub async fn problems(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<ProblemsQuery>,
) -> PageResult {
    let hide = !sees_restricted(&p);
    let after = board_cursor(&q.after)?;
    let unreadable_after = alert_cursor(&q.unreadable_after)?;
    let (rows, unreadable) = read(&s, move |c| {
        Ok((
            query::problems(c, after, PROBLEMS_PAGE)?,
            ax::list(c, StateFilter::Open, Some("media_unreadable"), unreadable_after, Some(ALERTS_PAGE), hide)?,
        ))
    })
    .await?;
    let next = (rows.len() == PROBLEMS_PAGE as usize)
        .then(|| rows.last().map(|r| format!("{},{},{}", r.first_seen, r.station, hex::encode(&r.rel_path))))
        .flatten();
    let next_unreadable = alert_next(&unreadable, ALERTS_PAGE);
    let body = html! {
        p.muted { "One bad file never stops a station: the others go on being stored while these wait here." }
        table #problems {
            thead { tr { th { "Station" } th { "File (where it is now)" } th { "State" } th.num { "Attempts" } th { "Why" } th { "What to do" } th {} } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (r.station) }
                        td.hash { (r.path.display()) }
                        td { span class=(if r.state == "retrying" { "state-at_risk" } else { "state-overdue" }) { (r.state) } }
                        td.num { (r.attempts) }
                        td { (r.reason.clone().unwrap_or_default()) }
                        td.muted { (advice(&r.state)) }
                        td {
                            @if matches!(r.state.as_str(), "failed" | "blocked" | "retrying") {
                                form.inline method="post" action="/console/problems/retry" {
                                    (csrf(&p))
                                    input type="hidden" name="station" value=(r.station);
                                    input type="hidden" name="path" value=(r.path.display().to_string());
                                    button type="submit" { "Retry now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No file is failing on any station." } }
        (super::html::next_link("/console/problems", &[], next))
        h2 { "Stored, but could not be read" }
        p.muted { "These originals are stored and fingerprinted exactly as recorded; their media could not be parsed, so they have no metadata or rendition." }
        table {
            thead { tr { th { "Original" } th { "Since" } th { "Why" } } }
            tbody {
                @for a in &unreadable {
                    tr { td { a href={ "/console/media/" (a.subject) } { (short(&a.subject)) } } td { (at(a.opened_at)) } td { (details_text(&a.details)) } }
                }
            }
        }
        @if let Some(n) = next_unreadable {
            p.pager { a rel="next" href={ "/console/problems?unreadable_after=" (n) } { "More unreadable originals →" } }
        }
    };
    Ok(page(&p, "problems", "Ingest problems", q.msg.as_deref(), body))
}

#[derive(serde::Deserialize)]
pub struct RetryForm {
    station: String,
    path: Option<String>,
}

/// Retry a station's failed file (or all of them) now, through the API.
pub async fn retry(State(s): State<ApiState>, Extension(p): Extension<Person>, Form(f): Form<RetryForm>) -> PageResult {
    let st = f.station.clone();
    let root = read(&s, {
        let st = st.clone();
        move |c| Ok(query::stations(c)?.into_iter().find(|r| r.id == st).map(|r| r.path))
    })
    .await?
    .ok_or_else(|| Problem::not_found(format!("no station {st:?}")))?;
    let rel = match f.path.filter(|p| !p.is_empty()) {
        Some(abs) => Some(
            std::path::Path::new(&abs)
                .strip_prefix(&root)
                .map_err(|_| Problem::bad("that file is not in the station's folder"))?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    let r = crate::api::admin::retry(
        State(s),
        Extension(p.caller()),
        PathParams(st.clone()),
        JsonBody(crate::api::admin::RetryBody { path: rel }),
    )
    .await;
    let (_resp, _note) = super::api_answer(r)?;
    Ok(done("/console/problems", &format!("Asked station {st} to try again now.")))
}

#[derive(serde::Deserialize, Default)]
pub struct JobsQuery {
    msg: Option<String>,
    /// `updated_at,original_id` of the last row shown.
    after: Option<String>,
}

/// Rendition jobs: queued, running and failed per kind; retry failed.
pub async fn renditions(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<JobsQuery>,
) -> PageResult {
    let before = super::cursor(&q.after)?;
    let see = sees_restricted(&p);
    let (counts, failed) =
        read(&s, move |c| Ok((screens::open_jobs(c, see)?, screens::failed_jobs(c, before, 50, see)?))).await?;
    let next =
        (failed.len() == 50).then(|| failed.last().map(|j| format!("{},{}", j.updated_at, j.original_id))).flatten();
    let body = html! {
        table {
            thead { tr { th { "Kind" } th { "State" } th.num { "Jobs" } } }
            tbody { @for (k, st, n) in &counts { tr { td { (k) } td { (st) } td.num { (n) } } } }
        }
        @if counts.is_empty() { p.muted { "No rendition job is queued, running or failed." } }
        h2 { "Failed jobs" }
        @if !failed.is_empty() {
            form.inline method="post" action="/console/renditions/retry" {
                (csrf(&p))
                button type="submit" { "Retry every failed job" }
            }
        }
        table {
            thead { tr { th { "Original" } th { "Kind" } th.num { "Attempts" } th { "When" } th { "Why" } th {} } }
            tbody {
                @for j in &failed {
                    tr {
                        td { a href={ "/console/media/" (j.original_id) } { (short(&j.original_id)) } }
                        td { (j.kind) } td.num { (j.attempts) } td { (at(j.updated_at)) }
                        td.muted { (j.last_error.clone().unwrap_or_default()) }
                        td { form.inline method="post" action="/console/renditions/retry" {
                            (csrf(&p)) input type="hidden" name="original" value=(j.original_id);
                            button.secondary type="submit" { "Retry" }
                        } }
                    }
                }
            }
        }
        (super::html::next_link("/console/renditions", &[], next))
    };
    Ok(page(&p, "renditions", "Renditions and jobs", q.msg.as_deref(), body))
}

#[derive(serde::Deserialize)]
pub struct RetryJobsForm {
    original: Option<String>,
}

pub async fn retry_renditions(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Form(f): Form<RetryJobsForm>,
) -> PageResult {
    let now = to_ms(s.clock.now());
    let original = f.original.filter(|o| !o.is_empty());
    if let Some(o) = &original {
        if o.len() != 64 || !o.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Problem::bad("an original's id is 64 hexadecimal digits"));
        }
    }
    let by = p.name.clone();
    let n = s.index.call(move |c| screens::retry_failed_jobs(c, original.as_deref(), &by, now)).await?;
    Ok(done("/console/renditions", &format!("{n} failed job(s) queued again.")))
}

/// Counts for the menu's badges, refreshed by the page's script: with the
/// same filters as the screens (restricted records never counted for a
/// person without the grant).
pub async fn live(State(s): State<ApiState>, Extension(p): Extension<Person>) -> Result<Response, Problem> {
    let now = to_ms(s.clock.now());
    let warn = s.console.warn_before.as_millis() as i64;
    let see = sees_restricted(&p);
    let v = read(&s, move |c| {
        let (waiting, at_risk, overdue) = screens::waiting_counts(c, now, warn)?;
        let alerts: u64 = ax::open_counts(c, see)?.iter().map(|(_, _, n)| n).sum();
        let failed_jobs: u64 =
            screens::open_jobs(c, see)?.iter().filter(|(_, st, _)| st == "failed").map(|(_, _, n)| n).sum();
        Ok(serde_json::json!({
            "waiting": waiting, "board": at_risk + overdue, "at_risk": at_risk, "overdue": overdue,
            "alerts": alerts, "problems": screens::problem_count(c)?,
            "renditions": failed_jobs, "exports": screens::exports_pending(c)?,
        }))
    })
    .await?;
    Ok(Json(v).into_response())
}
