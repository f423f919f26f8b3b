//! Screens for oversight: compliance with the 24-hour rule over a period
//! (table, chart, CSV), the audit log and its chain, exports (request,
//! approve or deny by someone other than the requester, download).

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::{Extension, Form};
use maud::html;

use super::html::{at, at_opt, bars, csrf, next_link, page, span};
use super::records::{audit_table, url_part};
use super::{api_answer, cursor, done, opt, read, time, PageResult, Person, Problem};
use crate::api::error::{JsonBody, PathParams};
use crate::api::ApiState;
use crate::clock::{parse_time, to_ms};
use crate::index::audit::{self, AuditFilter};
use crate::index::{query, screens};
use crate::rules::compliance::{items, summarize, GroupBy, Row};

#[derive(serde::Deserialize, Default)]
pub struct ComplianceQuery {
    msg: Option<String>,
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
}

/// The period and grouping asked for (default: the last 7 days, by officer).
fn period(s: &ApiState, q: &ComplianceQuery) -> Result<(i64, i64, GroupBy), Problem> {
    let now = to_ms(s.clock.now());
    let day = 86_400_000;
    let parse = |name: &str, v: &Option<String>, default: i64| -> Result<i64, Problem> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(t) => parse_time(t).map(to_ms).map_err(|e| Problem::bad(format!("{name}: {e}"))),
            None => Ok(default),
        }
    };
    let to = parse("to", &q.to, (now / day + 1) * day)?;
    let from = parse("from", &q.from, to - 7 * day)?;
    if to <= from {
        return Err(Problem::bad("the period must end after it starts"));
    }
    if to - from > 400 * day {
        return Err(Problem::bad("a period of at most 400 days"));
    }
    let by = match q.by.as_deref().unwrap_or("officer") {
        "officer" => GroupBy::Officer,
        "device" => GroupBy::Device,
        "station" => GroupBy::Station,
        other => return Err(Problem::bad(format!("by {other:?}: officer, device or station"))),
    };
    Ok((from, to, by))
}

/// The report over a period, counting only what the person may see.
async fn report(s: &ApiState, p: &Person, from: i64, to: i64, by: GroupBy) -> Result<(Vec<Row>, u64), Problem> {
    let see = p.restricted;
    let (rows, lost, unassessed) = read(s, move |c| query::compliance_rows(c, from, to, by, see)).await?;
    Ok((summarize(&items(&rows, &lost)), unassessed))
}

fn hm(secs: Option<f64>) -> String {
    secs.map(|s| span((s * 1000.0) as i64)).unwrap_or_else(|| "—".into())
}

/// Groups shown on the page (the CSV has every one).
const SHOWN: usize = 100;

/// Compliance over a period: on-time share, median and worst delay.
pub async fn compliance(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<ComplianceQuery>,
) -> PageResult {
    let (from, to, by) = period(&s, &q)?;
    let (all, unassessed) = report(&s, &p, from, to, by).await?;
    let day = |t: i64| crate::clock::from_ms(t).format("%Y-%m-%d").to_string();
    // The total, then the groups that need attention first (lowest on-time
    // share, then most files); the CSV has every group.
    let groups = all.iter().filter(|r| r.key != "TOTAL").count();
    let mut worst: Vec<&Row> = all.iter().filter(|r| r.key != "TOTAL").collect();
    worst.sort_by(|a, b| a.on_time_pct.total_cmp(&b.on_time_pct).then(b.files.cmp(&a.files)));
    worst.truncate(SHOWN);
    let rows: Vec<&Row> = all.iter().filter(|r| r.key == "TOTAL").chain(worst).collect();
    let chart: Vec<(String, f64)> =
        rows.iter().filter(|r| r.key != "TOTAL").take(25).map(|r| (r.key.clone(), r.on_time_pct)).collect();
    let csv = format!("/console/compliance.csv?from={}&to={}&by={}", day(from), day(to), by.as_str());
    let body = html! {
        form.filters method="get" action="/console/compliance" {
            label { "From" input name="from" value=(day(from)) placeholder="YYYY-MM-DD"; }
            label { "To" input name="to" value=(day(to)) placeholder="YYYY-MM-DD"; }
            label { "By" select name="by" {
                @for b in ["officer", "device", "station"] { option value=(b) selected[b == by.as_str()] { (b) } }
            } }
            button type="submit" { "Show" }
            a href=(csv) { "Download CSV" }
        }
        p.muted { "Recordings that started in the period; each must be stored within " (humantime::format_duration(s.console.storage)) " of its end. Late docking is the officer's delay; late processing is the system's." }
        @if !chart.is_empty() { (bars(&chart)) }
        table #compliance {
            thead { tr {
                th { (by.as_str()) } th.num { "Files" } th.num { "On time" } th.num { "Late docking" } th.num { "Late processing" }
                th.num { "Clock invalid" } th.num { "Lost" } th.num { "On time %" } th.num { "Median delay" } th.num { "Worst delay" }
            } }
            tbody { @for r in &rows { tr {
                td { (r.key) } td.num { (r.files) } td.num { (r.on_time) } td.num { (r.late_docking) } td.num { (r.late_processing) }
                td.num { (r.clock_invalid) } td.num { (r.vanished) } td.num { (format!("{:.2}", r.on_time_pct)) }
                td.num { (hm(r.median_delay_secs)) } td.num { (hm(r.max_delay_secs)) }
            } } }
        }
        @if groups > SHOWN { p.muted { "The " (SHOWN) " " (by.as_str()) "s with the lowest on-time share of " (groups) " are shown; the CSV has them all." } }
        @if unassessed > 0 { p.muted { (unassessed) " recording(s) in the period are not assessed yet (not described) and are not counted." } }
    };
    Ok(page(&p, "compliance", "Compliance with the 24-hour rule", q.msg.as_deref(), body))
}

/// The same report as CSV (the columns of `bodycamd report compliance`).
pub async fn compliance_csv(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<ComplianceQuery>,
) -> PageResult {
    let (from, to, by) = period(&s, &q)?;
    let (rows, _) = report(&s, &p, from, to, by).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let cell = |v: Option<f64>| v.map(|s| format!("{s:.0}")).unwrap_or_default();
    let io = |e: csv::Error| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    w.write_record([
        by.as_str(),
        "files",
        "on_time",
        "late_docking",
        "late_processing",
        "clock_invalid",
        "vanished_unstored",
        "on_time_pct",
        "median_delay_secs",
        "max_delay_secs",
    ])
    .map_err(io)?;
    for r in &rows {
        w.write_record([
            r.key.clone(),
            r.files.to_string(),
            r.on_time.to_string(),
            r.late_docking.to_string(),
            r.late_processing.to_string(),
            r.clock_invalid.to_string(),
            r.vanished.to_string(),
            format!("{:.2}", r.on_time_pct),
            cell(r.median_delay_secs),
            cell(r.max_delay_secs),
        ])
        .map_err(io)?;
    }
    let body =
        w.into_inner().map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"compliance.csv\""));
    Ok(r)
}

#[derive(serde::Deserialize, Default)]
pub struct AuditQuery {
    msg: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    media: Option<String>,
    case: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The id of the last (oldest) entry shown.
    after: Option<String>,
    verified: Option<String>,
}

/// The audit log, newest first: search by actor, action, record and time;
/// the chain's head and verification.
pub async fn audit(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    const PAGE: u32 = 100;
    let before = opt(&q.after).map(|a| a.parse::<i64>().map_err(|_| Problem::bad("bad page cursor"))).transpose()?;
    let f = AuditFilter {
        media: opt(&q.media).map(|m| m.to_ascii_lowercase()),
        case: opt(&q.case),
        actor: opt(&q.actor),
        action: opt(&q.action),
        from: time("from", &q.from)?,
        to: time("to", &q.to)?,
        before,
        newest_first: true,
        limit: PAGE,
        hide_restricted: !p.restricted,
        ..Default::default()
    };
    let (rows, head) = read(&s, move |c| Ok((audit::query(c, &f)?, audit::head(c)?))).await?;
    let next = (rows.len() as u32 == PAGE).then(|| rows.last().map(|e| e.id.to_string())).flatten();
    let keep = [
        ("actor", opt(&q.actor)),
        ("action", opt(&q.action)),
        ("media", opt(&q.media)),
        ("case", opt(&q.case)),
        ("from", opt(&q.from)),
        ("to", opt(&q.to)),
    ];
    let field = |name: &'static str, label: &'static str, v: &Option<String>| {
        html! { label { (label) input name=(name) value=(v.clone().unwrap_or_default()); } }
    };
    let body = html! {
        div.cards {
            div.card { b { (head.0) } "entries in the chain" }
            div.card.hash { "head " (head.1) }
            div.card {
                @match q.verified.as_deref() { Some(v) => { b { (v) } }, None => { "not verified on this page" } }
                form.inline method="post" action="/console/audit/verify" { (csrf(&p)) button.secondary type="submit" { "Verify the chain now" } }
            }
        }
        form.filters method="get" action="/console/audit" {
            (field("actor", "Who", &q.actor))
            (field("action", "Action", &q.action))
            (field("media", "Recording", &q.media))
            (field("case", "Case", &q.case))
            label { "From" input name="from" value=(q.from.clone().unwrap_or_default()) placeholder="YYYY-MM-DD"; }
            label { "To" input name="to" value=(q.to.clone().unwrap_or_default()) placeholder="YYYY-MM-DD"; }
            button type="submit" { "Search" }
        }
        (audit_table(&rows))
        @if rows.is_empty() { p.muted { "No entry matches." } }
        (next_link("/console/audit", &keep, next))
    };
    Ok(page(&p, "audit", "Audit log", q.msg.as_deref(), body))
}

/// Check the whole chain (every entry's hash and link), as `verify` does.
pub async fn verify_chain(State(s): State<ApiState>, Extension(_p): Extension<Person>) -> PageResult {
    let (n, _head, faults) = read(&s, audit::verify_chain).await?;
    let verdict = if faults.is_empty() {
        format!("verified: {n} entries, chain intact")
    } else {
        format!(
            "BROKEN: {} fault(s) in {n} entries; first: entry {}: {}",
            faults.len(),
            faults[0].entry,
            faults[0].problem
        )
    };
    let v: String = url::form_urlencoded::byte_serialize(verdict.as_bytes()).collect();
    Ok(axum::response::Redirect::to(&format!("/console/audit?verified={v}")).into_response())
}

#[derive(serde::Deserialize, Default)]
pub struct ExportsQuery {
    msg: Option<String>,
    after: Option<String>,
    pending: Option<String>,
}

/// Whether a person may see an export (its case and every original in it
/// visible to them).
async fn export_visible(s: &ApiState, p: &Person, e: &crate::index::custody::ExportRecord) -> Result<bool, Problem> {
    if p.restricted {
        return Ok(true);
    }
    let (case, media) = (e.case_id.clone(), e.media.clone());
    read(s, move |c| {
        if let Some(k) = &case {
            if query::case_restricted(c, k)? == Some(true) {
                return Ok(false);
            }
        }
        for m in &media {
            if query::media_restricted(c, m)? == Some(true) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Exports: requests awaiting approval, their state, downloads.
pub async fn exports(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<ExportsQuery>,
) -> PageResult {
    let before = cursor(&q.after)?;
    let pending_only = q.pending.as_deref() == Some("1");
    let all = read(&s, move |c| screens::exports_page(c, pending_only, before, 50)).await?;
    let next = (all.len() == 50).then(|| all.last().map(|e| format!("{},{}", e.created_at, e.id))).flatten();
    let mut rows = Vec::with_capacity(all.len());
    for e in all {
        if export_visible(&s, &p, &e).await? {
            rows.push(e);
        }
    }
    let now = to_ms(s.clock.now());
    let approver = p.role == crate::config::Role::Approver;
    let body = html! {
        @if approver {
            h2 { "Request a copy" }
            form.filters method="post" action="/console/exports/request" {
                (csrf(&p))
                label { "Case" input name="case_id" maxlength="128"; }
                label { "or recordings (ids, comma-separated)" input name="media" size="40"; }
                label { "Why, and for whom" input name="reason" required maxlength="1000"; }
                label { "Reviewed by" input name="reviewer" maxlength="200"; }
                button type="submit" { "Request" }
            }
            p.muted { "A request waits until another approver approves it; nobody approves their own." }
        }
        p { a href="/console/exports?pending=1" { "Awaiting a decision" } " · " a href="/console/exports" { "All" } }
        table #exports {
            thead { tr { th { "Export" } th { "Requested" } th { "By" } th { "What" } th { "Why" } th { "State" } th {} } }
            tbody {
                @for e in &rows {
                    tr data-export=(e.id) {
                        td.hash { (e.id) }
                        td { (at(e.created_at)) }
                        td { (e.requester) @if let Some(r) = &e.reviewer { br; span.muted { "reviewed by " (r) } } }
                        td {
                            @if let Some(k) = &e.case_id { "case " a href={ "/console/cases/" (url_part(k)) } { (k) } @if e.case_file { " (case file)" } br; }
                            (e.media.len()) " recording(s)"
                        }
                        td { (e.reason) }
                        td {
                            @let expired = e.state == "approved" && e.expires_at.is_some_and(|t| t <= now);
                            (if expired { "expired" } else { e.state.as_str() })
                            @if let Some(a) = &e.approver { br; span.muted { "by " (a) " " (at_opt(e.decided_at)) } }
                            @if let Some(n) = &e.decision_note { br; span.muted { "“" (n) "”" } }
                            @if let Some(v) = &e.void_reason { br; span.error { (v) } }
                        }
                        td {
                            @if e.state == "pending" && approver && e.requester != p.name {
                                form.inline method="post" action={ "/console/exports/" (e.id) "/approve" } {
                                    (csrf(&p)) input name="note" placeholder="note" maxlength="1000"; button type="submit" { "Approve" }
                                }
                                form.inline method="post" action={ "/console/exports/" (e.id) "/deny" } {
                                    (csrf(&p)) input type="hidden" name="note" value=""; button.secondary type="submit" { "Deny" }
                                }
                            }
                            @if e.state == "pending" && e.requester == p.name { span.muted { "awaiting another approver" } }
                            @if e.state == "approved" && e.void_reason.is_none() && e.expires_at.is_none_or(|t| t > now) && approver {
                                a href={ "/console/exports/" (e.id) "/download" } { "Download" }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No export here." } }
        (next_link("/console/exports", &[("pending", q.pending.clone())], next))
    };
    Ok(page(&p, "exports", "Exports", q.msg.as_deref(), body))
}

#[derive(serde::Deserialize)]
pub struct RequestForm {
    case_id: Option<String>,
    media: Option<String>,
    reason: String,
    reviewer: Option<String>,
}

/// Ask for a copy (the API's handler; it stays pending until another
/// approver decides).
pub async fn request_export(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Form(f): Form<RequestForm>,
) -> PageResult {
    let media: Option<Vec<String>> = opt(&f.media).map(|m| {
        m.split([',', ' ', '\n']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_ascii_lowercase).collect()
    });
    let body = crate::api::custody::ExportRequest {
        case_id: opt(&f.case_id),
        media,
        reason: f.reason,
        reviewer: opt(&f.reviewer),
        case_file: false,
    };
    let r = crate::api::custody::request_export(State(s), Extension(p.caller()), p.headers(None), JsonBody(body)).await;
    let (_, note) = api_answer(r)?;
    Ok(crate::api::auth::with_note(
        done("/console/exports", "Export requested; another approver must approve it."),
        note,
    ))
}

#[derive(serde::Deserialize)]
pub struct DecisionForm {
    note: Option<String>,
}

pub async fn approve(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    decide(s, p, id, f, true).await
}

pub async fn deny(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Form(f): Form<DecisionForm>,
) -> PageResult {
    decide(s, p, id, f, false).await
}

/// Approve or deny through the API's handler (which refuses the requester).
async fn decide(s: ApiState, p: Person, id: String, f: DecisionForm, approve: bool) -> PageResult {
    let body = crate::api::custody::DecisionBody { note: opt(&f.note) };
    let (caller, h, path) = (Extension(p.caller()), p.headers(None), PathParams(id.clone()));
    let r = if approve {
        crate::api::custody::approve(State(s), caller, h, path, JsonBody(body)).await
    } else {
        crate::api::custody::deny(State(s), caller, h, path, JsonBody(body)).await
    };
    let (_, note) = api_answer(r)?;
    let what = if approve { "approved" } else { "denied" };
    Ok(crate::api::auth::with_note(done("/console/exports", &format!("Export {id} {what}.")), note))
}

pub async fn download(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let mut h = p.headers(None);
    if let Some(r) = headers.get(header::RANGE) {
        h.insert(header::RANGE, r.clone());
    }
    let mut resp = crate::api::custody::download(State(s), Extension(p.caller()), h, PathParams(id))
        .await
        .map_err(Problem::from)?;
    let note = resp.extensions_mut().remove::<crate::api::auth::AuditNote>().unwrap_or_default();
    Ok(crate::api::auth::with_note(resp, note))
}
