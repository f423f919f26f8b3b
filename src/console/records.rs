//! Screens over the records: media (filters, thumbnails, a player with
//! ranged requests, hash, receipt, custody history, sightings), cases
//! (links by rule and by hand), retention (what expires first, the trash,
//! holds). Changes go through the API's handlers.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::html;

use super::html::{at, at_opt, bytes, csrf, next_link, next_link_as, page};
use super::{api_answer, cursor, done, opt, read, time, PageResult, Person, Problem};
use crate::api::error::{JsonBody, PathParams};
use crate::api::ApiState;
use crate::index::audit::{self, AuditFilter};
use crate::index::query::{self, MediaQuery};
use crate::index::{cases as ixcases, custody as ixc, renditions as ixr, screens};

fn valid_media_id(id: &str) -> Result<(), Problem> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Problem::not_found("no such original (an id is 64 hexadecimal digits)"))
    }
}

#[derive(serde::Deserialize, Default, Clone)]
pub struct MediaFilters {
    msg: Option<String>,
    officer: Option<String>,
    device: Option<String>,
    station: Option<String>,
    case: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
}

/// Media: filter by officer, device, station, case, kind and time; by
/// recording start, a page at a time on the matching index.
pub async fn media(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(f): Query<MediaFilters>,
) -> PageResult {
    const PAGE: u32 = 50;
    let after = match opt(&f.after) {
        Some(c) => Some(crate::api::media::decode_cursor(&c).map_err(Problem::from)?),
        None => None,
    };
    if let Some(k) = opt(&f.kind) {
        if !matches!(k.as_str(), "video" | "audio" | "photo" | "other") {
            return Err(Problem::bad("kind: video, audio, photo or other"));
        }
    }
    let q = MediaQuery {
        case: opt(&f.case),
        officer: opt(&f.officer),
        device: opt(&f.device),
        station: opt(&f.station),
        kind: opt(&f.kind),
        from: time("from", &f.from)?,
        to: time("to", &f.to)?,
        on_time: None,
        after,
        limit: PAGE,
        restricted: p.restricted,
    };
    let rows = read(&s, move |c| query::media_page(c, &q)).await?;
    let next = (rows.len() as u32 == PAGE)
        .then(|| rows.last().map(|r| crate::api::media::encode_cursor(r.start_at, &r.id)))
        .flatten();
    let keep = [
        ("officer", opt(&f.officer)),
        ("device", opt(&f.device)),
        ("station", opt(&f.station)),
        ("case", opt(&f.case)),
        ("kind", opt(&f.kind)),
        ("from", opt(&f.from)),
        ("to", opt(&f.to)),
    ];
    let field = |name: &'static str, label: &'static str, v: &Option<String>| {
        html! { label { (label) input name=(name) value=(v.clone().unwrap_or_default()); } }
    };
    let body = html! {
        form.filters method="get" action="/console/media" {
            (field("officer", "Officer", &f.officer))
            (field("device", "Device", &f.device))
            (field("station", "Station", &f.station))
            (field("case", "Case", &f.case))
            label { "Kind" select name="kind" {
                option value="" { "any" }
                @for k in ["video", "audio", "photo", "other"] { option value=(k) selected[f.kind.as_deref() == Some(k)] { (k) } }
            } }
            label { "Recorded from" input name="from" value=(f.from.clone().unwrap_or_default()) placeholder="YYYY-MM-DD"; }
            label { "to" input name="to" value=(f.to.clone().unwrap_or_default()) placeholder="YYYY-MM-DD"; }
            button type="submit" { "Find" }
        }
        table #media {
            thead { tr { th {} th { "Recorded" } th { "Officer" } th { "Device" } th { "Station" } th { "Kind" } th.num { "Length" } th.num { "Size" } th { "Stored" } } }
            tbody {
                @for m in &rows {
                    tr data-media=(m.id) {
                        td { a href={ "/console/media/" (m.id) } { img.thumb src={ "/console/media/" (m.id) "/thumbnail" } alt="" loading="lazy"; } }
                        td { a href={ "/console/media/" (m.id) } { (at(m.start_at)) } }
                        td { (m.officer.clone().unwrap_or_default()) }
                        td { (m.device.clone().unwrap_or_default()) }
                        td { (m.station) }
                        td { (m.kind.clone().unwrap_or_default()) }
                        td.num { (m.duration_secs.map(|d| format!("{d:.0} s")).unwrap_or_default()) }
                        td.num { (bytes(m.size)) }
                        td { (lateness(m.on_time, m.late.as_deref())) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No recording matches." } }
        (next_link("/console/media", &keep, next))
    };
    Ok(page(&p, "media", "Media", f.msg.as_deref(), body))
}

fn lateness(on_time: Option<bool>, late: Option<&str>) -> maud::Markup {
    match (on_time, late) {
        (Some(true), _) => html! { span.state-ok { "on time" } },
        (Some(false), Some(l)) => html! { span.state-overdue { (l.replace('_', " ")) } },
        (Some(false), None) => html! { span.state-overdue { "late" } },
        (None, _) => html! { span.muted { "not assessed yet" } },
    }
}

#[derive(serde::Deserialize, Default)]
pub struct OneQuery {
    msg: Option<String>,
    /// Why a restricted record is opened (people with the grant).
    reason: Option<String>,
    /// A case's recordings continue after this cursor.
    after: Option<String>,
    /// The holds on a case's recordings continue before this cursor.
    holds_before: Option<String>,
}

/// Whether a person may see an original: `Err(not found)` when it is
/// restricted and they have no grant; `Ok(Some(false))` when they have
/// the grant but gave no reason yet.
async fn may_see(s: &ApiState, p: &Person, id: &str, reason: Option<&str>) -> Result<bool, Problem> {
    let id2 = id.to_string();
    match read(s, move |c| query::media_restricted(c, &id2)).await? {
        None => Err(Problem::not_found(format!("no original {id}"))),
        Some(false) => Ok(true),
        Some(true) if !p.restricted => Err(Problem::not_found(format!("no original {id}"))),
        Some(true) => Ok(reason.is_some_and(|r| !r.trim().is_empty())),
    }
}

fn reason_form(action: &str, what: &str) -> maud::Markup {
    html! {
        p.error { "This " (what) " is restricted. Say why you open it: the reason is recorded in the audit log." }
        form.filters method="get" action=(action) {
            label { "Reason" input name="reason" required maxlength="500"; }
            button type="submit" { "Open" }
        }
    }
}

/// One original: facts, player, hash, receipt, sightings, cases, holds,
/// custody history.
pub async fn media_one(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Query(q): Query<OneQuery>,
) -> PageResult {
    valid_media_id(&id)?;
    let id = id.to_ascii_lowercase();
    let reason = opt(&q.reason);
    if !may_see(&s, &p, &id, reason.as_deref()).await? {
        let body = reason_form(&format!("/console/media/{id}"), "recording");
        return Ok(page(&p, "media", "Restricted recording", None, body));
    }
    let id2 = id.clone();
    let see = p.restricted;
    let (m, links, jobs, rends, holds, history, retention) = read(&s, move |c| {
        let history = audit::query(
            c,
            &AuditFilter { media: Some(id2.clone()), limit: 100, newest_first: true, ..Default::default() },
        )?;
        Ok((
            query::media_get(c, &id2)?,
            ixcases::media_links(c, &id2)?,
            ixr::jobs_of(c, &id2)?,
            ixr::of_original(c, &id2)?,
            screens::holds_of(c, &id2)?,
            history,
            ixc::retention_state(c, &id2)?,
        ))
    })
    .await?;
    let _ = see;
    let m = m.ok_or_else(|| Problem::not_found(format!("no original {id}")))?;
    let r = reason
        .as_deref()
        .map(|r| format!("?reason={}", url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()))
        .unwrap_or_default();
    let playable = rends.iter().any(|r| r.kind == "playable");
    let thumb = rends.iter().any(|r| r.kind == "thumbnail");
    // A rendition recovered from a cut-short recording says so, and from what.
    let recovered: Option<crate::media::recover::Recovery> = rends
        .iter()
        .find(|r| r.kind == "playable")
        .and_then(|r| r.recovery.as_deref())
        .and_then(|j| serde_json::from_str(j).ok());
    let body = html! {
        @if playable {
            @if m.kind.as_deref() == Some("audio") {
                audio #player controls preload="metadata" src={ "/console/media/" (id) "/rendition" (r) } {}
            } @else {
                video #player controls preload="metadata" src={ "/console/media/" (id) "/rendition" (r) } poster=[thumb.then(|| format!("/console/media/{id}/thumbnail{r}"))] {}
            }
            @if let Some(rec) = &recovered {
                p.recovered {
                    span.pill { "recovered" } " The recording was cut short; this rendition holds the "
                    (rec.video_frames) " video and " (rec.audio_frames) " audio frames ("
                    (format!("{:.1}", rec.seconds)) " s) found in bytes " (rec.bytes_from) "–" (rec.bytes_to)
                    " of the original, decoded with the codec configuration of "
                    @if let Some(reference) = &rec.reference { a href={ "/console/media/" (reference) } { (&reference[..reference.len().min(16)]) "…" } } @else { "the original itself" }
                    ". The original is unchanged."
                }
            }
        } @else if thumb {
            img src={ "/console/media/" (id) "/thumbnail" (r) } alt="thumbnail";
        } @else {
            p.muted { "No playable rendition yet." @for j in &jobs { " " (j.kind) ": " (j.state) @if let Some(e) = &j.last_error { " (" (e) ")" } "." } }
        }
        h2 { "Facts" }
        dl.facts {
            dt { "BLAKE3" } dd.hash { (m.id) }
            dt { "Recorded" } dd { (at_opt(m.recorded_start)) " to " (at_opt(m.recorded_end)) @if m.clock_trusted == Some(false) { " " span.pill.restricted { "camera clock not trusted" } } }
            dt { "Officer" } dd { (m.officer.clone().unwrap_or_else(|| "—".into())) }
            dt { "Device" } dd { (m.device.clone().unwrap_or_else(|| "—".into())) @if let Some(seq) = m.seq { " · file #" (seq) } }
            dt { "Station" } dd { (m.station) }
            dt { "Media" } dd {
                (m.kind.clone().unwrap_or_default()) " " (m.container.clone().unwrap_or_default())
                @if let Some(v) = &m.video_codec { " · " (v) } @if let Some(a) = &m.audio_codec { " · " (a) }
                @if let (Some(w), Some(h)) = (m.width, m.height) { " · " (w) "×" (h) }
                @if let Some(d) = m.duration_secs { " · " (format!("{d:.1}")) " s" }
                @if let Some(e) = &m.probe_error { br; span.error { "could not be read: " (e) } }
            }
            dt { "Size" } dd { (bytes(m.size)) }
            dt { "First seen" } dd { (at(m.first_seen)) }
            dt { "Stored" } dd { (at(m.ingested_at)) " · deadline " (at_opt(m.deadline)) " · " (lateness(m.on_time, m.late.as_deref())) }
            dt { "Retention" } dd {
                @if retention.restricted { span.pill.restricted { "restricted" } " " }
                @if retention.important { span.pill { "important" } " " }
                @if let Some(t) = retention.trashed_at { span.pill.restricted { "in the trash since " (at(t)) } " " }
                @if retention.kept_for.is_empty() { "ordinary retention" } @else { "kept for: " (retention.kept_for.join("; ")) }
            }
            dt { "Receipt" } dd { a href={ "/console/media/" (id) "/receipt" (r) } { "signed receipt (JSON)" } }
        }
        h2 { "Sightings" }
        table {
            thead { tr { th { "Station" } th { "Path on the dock" } th { "First seen" } th { "Dock file" } } }
            tbody { @for sg in &m.sightings { tr { td { (sg.station) } td.hash { (sg.path.display()) } td { (at(sg.first_seen)) } td { (sg.disposition) } } } }
        }
        h2 { "Cases" }
        table {
            thead { tr { th { "Case" } th { "How" } th { "State" } th { "By" } th { "When" } } }
            tbody { @for l in &links { tr {
                td { a href={ "/console/cases/" (url_part(&l.case_id)) } { (l.case_id) } }
                td { (l.how) } td { (l.state) } td { (l.linked_by) } td { (at(l.linked_at)) }
            } } }
        }
        @if p.role == crate::config::Role::Admin {
            form.filters method="post" action="/console/cases/link" {
                (csrf(&p))
                input type="hidden" name="media_id" value=(id);
                label { "Link to case" input name="case_id" required maxlength="128"; }
                label { "Note" input name="note" maxlength="1000"; }
                button type="submit" { "Link" }
            }
            h2 { "Holds" }
            table {
                thead { tr { th { "#" } th { "Reason" } th { "Placed by" } th { "When" } th {} } }
                tbody { @for h in &holds { tr {
                    td { (h.id) } td { (h.reason) } td { (h.placed_by) } td { (at(h.placed_at)) }
                    td { form.inline method="post" action={ "/console/media/" (id) "/holds/" (h.id) "/lift" } { (csrf(&p)) button.secondary type="submit" { "Lift" } } }
                } } }
            }
            form.filters method="post" action={ "/console/media/" (id) "/holds" } {
                (csrf(&p))
                label { "Place a hold: reason" input name="reason" required maxlength="1000"; }
                button type="submit" { "Place hold" }
            }
        }
        h2 { "Custody history" }
        (audit_table(&history))
    };
    Ok(page(&p, "media", &format!("Recording {}", &id[..16]), q.msg.as_deref(), body))
}

/// A case id in a URL path.
pub fn url_part(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Audit entries as a table (the audit screen and custody histories).
pub fn audit_table(rows: &[audit::AuditEntry]) -> maud::Markup {
    html! {
        table.audit {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Action" } th { "Outcome" } th { "Record" } th { "Details" } } }
            tbody {
                @for e in rows {
                    tr data-action=(e.action) {
                        td { (e.id) } td { (at(e.at)) }
                        td { (e.actor) @if let Some(r) = &e.role { span.muted { " (" (r) ")" } } @if let Some(ip) = &e.remote { br; span.muted { (ip) } } }
                        td { (e.action) }
                        td { (e.outcome) @if let Some(st) = e.status { span.muted { " " (st) } } }
                        td {
                            @if let Some(m) = &e.media_id { a href={ "/console/media/" (m) } { "media " (m.get(..12).unwrap_or(m)) } br; }
                            @if let Some(c) = &e.case_id { a href={ "/console/cases/" (url_part(c)) } { "case " (c) } }
                        }
                        td.muted { (e.details.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Headers for an API byte handler: the browser's (Range, If-*) and the
/// grant's reason.
fn byte_headers(p: &Person, incoming: &HeaderMap, reason: Option<&str>) -> HeaderMap {
    let mut h = p.headers(reason);
    for name in [
        axum::http::header::RANGE,
        axum::http::header::IF_RANGE,
        axum::http::header::IF_NONE_MATCH,
        axum::http::header::IF_MODIFIED_SINCE,
    ] {
        if let Some(v) = incoming.get(&name) {
            h.insert(name, v.clone());
        }
    }
    h
}

fn with_note(r: Result<(Response, crate::api::auth::AuditNote), Problem>) -> PageResult {
    let (resp, note) = r?;
    Ok(crate::api::auth::with_note(resp, note))
}

/// The playable rendition, with ranged requests (seeking), through the
/// API's handler.
pub async fn rendition(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Query(q): Query<OneQuery>,
    headers: HeaderMap,
) -> PageResult {
    let h = byte_headers(&p, &headers, opt(&q.reason).as_deref());
    with_note(api_bytes(crate::api::media::rendition(State(s), Extension(p.caller()), PathParams(id), h).await))
}

pub async fn thumbnail(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Query(q): Query<OneQuery>,
    headers: HeaderMap,
) -> PageResult {
    let h = byte_headers(&p, &headers, opt(&q.reason).as_deref());
    let r = crate::api::media::thumbnail(State(s), Extension(p.caller()), PathParams(id), h).await;
    let mut out = with_note(api_bytes(r))?;
    // Thumbnails never change: the browser may keep them for the session.
    out.headers_mut()
        .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("private, max-age=600"));
    Ok(out)
}

pub async fn receipt(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Query(q): Query<OneQuery>,
) -> PageResult {
    let h = p.headers(opt(&q.reason).as_deref());
    with_note(api_answer(crate::api::custody::receipt(State(s), Extension(p.caller()), h, PathParams(id)).await))
}

/// Byte answers keep their status (200, 206, 304, 416).
fn api_bytes(
    r: Result<Response, crate::api::error::ApiError>,
) -> Result<(Response, crate::api::auth::AuditNote), Problem> {
    let mut resp = r.map_err(Problem::from)?;
    let note = resp.extensions_mut().remove::<crate::api::auth::AuditNote>().unwrap_or_default();
    Ok((resp, note))
}

#[derive(serde::Deserialize, Default)]
pub struct CasesQuery {
    msg: Option<String>,
    after: Option<String>,
}

/// Cases, most recently changed first.
pub async fn cases(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<CasesQuery>,
) -> PageResult {
    let before = cursor(&q.after)?;
    let see = p.restricted;
    let rows = read(&s, move |c| screens::cases_page(c, before, 50, see)).await?;
    let next = (rows.len() == 50).then(|| rows.last().map(|c| format!("{},{}", c.updated_at, c.id))).flatten();
    let body = html! {
        form.filters method="get" action="/console/cases/find" {
            label { "Case id" input name="id" required maxlength="128"; }
            button type="submit" { "Open" }
        }
        table #cases {
            thead { tr { th { "Case" } th { "Title" } th { "Status" } th { "Case file" } th { "Changed" } } }
            tbody {
                @for c in &rows {
                    tr {
                        td { a href={ "/console/cases/" (url_part(&c.id)) } { (c.id) } @if c.restricted { " " span.pill.restricted { "restricted" } } }
                        td { (c.title.clone().unwrap_or_default()) }
                        td { (c.status) @if let Some(t) = c.closed_at { span.muted { " " (at(t)) } } }
                        td { (archive_state(c, s.console.case_archive)) }
                        td { (at(c.updated_at)) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No case is registered yet: case systems register them through the API." } }
        (next_link("/console/cases", &[], next))
    };
    Ok(page(&p, "cases", "Cases", q.msg.as_deref(), body))
}

/// The case-file rule (archived within `cases.archive_days` of closing) in
/// words.
fn archive_state(c: &screens::CaseLine, within: std::time::Duration) -> String {
    match (c.status.as_str(), c.closed_at, c.archived_at) {
        (_, _, Some(t)) => format!("archived {}", at(t)),
        ("closed", Some(t), None) => format!("due {}", at(t + within.as_millis() as i64)),
        _ => "—".into(),
    }
}

#[derive(serde::Deserialize)]
pub struct FindCase {
    id: String,
}

pub async fn find_case(Query(f): Query<FindCase>) -> Response {
    axum::response::Redirect::to(&format!("/console/cases/{}", url_part(f.id.trim()))).into_response()
}

/// One case: its terms and its recordings (by rule and by hand).
pub async fn case_one(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Query(q): Query<OneQuery>,
) -> PageResult {
    if !crate::rules::cases::valid_case_id(&id) {
        return Err(Problem::not_found("no such case"));
    }
    let id2 = id.clone();
    let restricted = read(&s, move |c| query::case_restricted(c, &id2)).await?;
    let reason = opt(&q.reason);
    match restricted {
        None => return Err(Problem::not_found(format!("no case {id:?}"))),
        Some(true) if !p.restricted => return Err(Problem::not_found(format!("no case {id:?}"))),
        Some(true) if reason.is_none() => {
            let body = reason_form(&format!("/console/cases/{}", url_part(&id)), "case");
            return Ok(page(&p, "cases", "Restricted case", None, body));
        }
        _ => {}
    }
    // The recordings a page at a time, on the (case, start) keyset the
    // API's media list uses; the count and the links only for what is shown.
    const PAGE: u32 = 50;
    let after = match opt(&q.after) {
        Some(c) => Some(crate::api::media::decode_cursor(&c).map_err(Problem::from)?),
        None => None,
    };
    let holds_before = hold_cursor(&q.holds_before)?;
    let mq = MediaQuery { case: Some(id.clone()), after, limit: PAGE, restricted: p.restricted, ..Default::default() };
    let (id2, see) = (id.clone(), p.restricted);
    let (case, line, rows, total, links, (holds, hold_count)) = read(&s, move |c| {
        let rows = query::media_page(c, &mq)?;
        let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
        let links = ixcases::media_links_many(c, &ids)?;
        Ok((
            ixcases::get_case(c, &id2)?,
            screens::case_line_of(c, &id2)?,
            rows,
            query::media_count(c, &MediaQuery { after: None, ..mq })?,
            links,
            // Holds on recordings this person may see (a restricted
            // recording's hold is as invisible as the recording).
            (screens::holds_of_case(c, &id2, holds_before, PAGE, see)?, screens::holds_of_case_count(c, &id2, see)?),
        ))
    })
    .await?;
    let next_holds =
        (holds.len() == PAGE as usize).then(|| holds.last().map(|h| format!("{},{}", h.placed_at, h.id))).flatten();
    let (Some(case), Some(line)) = (case, line) else { return Err(Problem::not_found(format!("no case {id:?}"))) };
    let next = (rows.len() as u32 == PAGE)
        .then(|| rows.last().map(|r| crate::api::media::encode_cursor(r.start_at, &r.id)))
        .flatten();
    let how = |mid: &str| {
        links
            .get(mid)
            .and_then(|ls| ls.iter().find(|l| l.case_id == id && l.state == "linked"))
            .map(|l| (l.how.clone(), l.linked_by.clone()))
    };
    let admin = p.role == crate::config::Role::Admin;
    let body = html! {
        dl.facts {
            dt { "Title" } dd { (case.case.title.clone().unwrap_or_default()) }
            dt { "Status" } dd { (case.case.status.as_str()) }
            dt { "Officers" } dd { (case.case.officers.join(", ")) }
            dt { "Devices" } dd { (case.case.devices.join(", ")) }
            dt { "Windows" } dd { @for w in &case.case.windows { (crate::clock::rfc3339(w.start)) " – " (crate::clock::rfc3339(w.end)) br; } }
            dt { "Changed" } dd { (at(case.updated_at)) " by " (case.updated_by) }
            dt { "Restricted" } dd { @if line.restricted { span.pill.restricted { "restricted" } " (only people with the grant see it)" } @else { "no" } }
            dt { "Case file" } dd #archive { (archive_state(&line, s.console.case_archive)) }
        }
        h2 { "Recordings (" (total) ")" }
        table #case-media {
            thead { tr { th { "Recorded" } th { "Officer" } th { "Device" } th { "Linked" } th {} } }
            tbody {
                @for m in &rows {
                    tr data-media=(m.id) {
                        td { a href={ "/console/media/" (m.id) } { (at(m.start_at)) } }
                        td { (m.officer.clone().unwrap_or_default()) }
                        td { (m.device.clone().unwrap_or_default()) }
                        td { @if let Some((h, by)) = how(&m.id) { (h) " by " (by) } }
                        td { @if admin {
                            form.inline method="post" action={ "/console/cases/" (url_part(&id)) "/media/" (m.id) "/unlink" } {
                                (csrf(&p)) button.secondary type="submit" { "Unlink" }
                            }
                        } }
                    }
                }
            }
        }
        (next_link(&format!("/console/cases/{}", url_part(&id)), &[("reason", reason.clone())], next))
        h2 { "Holds on its recordings (" (hold_count) ")" }
        @if holds.is_empty() { p.muted { "No legal hold is in force on this case's recordings." } }
        @else {
            table #case-holds {
                thead { tr { th { "Recording" } th { "Reason" } th { "Placed" } th { "By" } } }
                tbody { @for h in &holds { tr {
                    td { a href={ "/console/media/" (h.media_id) } { (h.media_id.get(..16).unwrap_or(&h.media_id)) } }
                    td { (h.reason) } td { (at(h.placed_at)) } td { (h.placed_by) }
                } } }
            }
            (next_link_as(&format!("/console/cases/{}", url_part(&id)), &[("reason", reason.clone())], "holds_before", next_holds, "More holds →"))
        }
        @if admin {
            form.filters method="post" action={ "/console/cases/" (url_part(&id)) "/link" } {
                (csrf(&p))
                label { "Link a recording (its BLAKE3 id)" input name="media_id" required pattern="[0-9a-fA-F]{64}" size="66"; }
                label { "Note" input name="note" maxlength="1000"; }
                button type="submit" { "Link" }
            }
        }
    };
    Ok(page(&p, "cases", &format!("Case {id}"), q.msg.as_deref(), body))
}

#[derive(serde::Deserialize)]
pub struct LinkForm {
    media_id: String,
    case_id: Option<String>,
    note: Option<String>,
}

/// Link a recording to a case by hand (the API's handler).
pub async fn link(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(case_id): PathParams<String>,
    Form(f): Form<LinkForm>,
) -> PageResult {
    link_to(s, p, case_id, f).await
}

/// The same from a recording's page (the case is in the form).
pub async fn link_from_media(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Form(f): Form<LinkForm>,
) -> PageResult {
    let case_id = opt(&f.case_id).ok_or_else(|| Problem::bad("which case?"))?;
    link_to(s, p, case_id, f).await
}

async fn link_to(s: ApiState, p: Person, case_id: String, f: LinkForm) -> PageResult {
    let media_id = f.media_id.trim().to_ascii_lowercase();
    let body = crate::api::types::LinkBody { media_id: media_id.clone(), note: opt(&f.note) };
    let h = p.headers(None);
    let r =
        crate::api::cases::link(State(s), Extension(p.caller()), h, PathParams(case_id.clone()), JsonBody(body)).await;
    let (_, note) = api_answer(r)?;
    let to = format!("/console/cases/{}", url_part(&case_id));
    Ok(crate::api::auth::with_note(
        done(&to, &format!("Recording {} linked to case {case_id}.", &media_id[..12.min(media_id.len())])),
        note,
    ))
}

pub async fn unlink(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams((case_id, media_id)): PathParams<(String, String)>,
) -> PageResult {
    let h = p.headers(None);
    let r =
        crate::api::cases::unlink(State(s), Extension(p.caller()), h, PathParams((case_id.clone(), media_id.clone())))
            .await
            .map(IntoResponse::into_response);
    api_answer(r)?;
    let to = format!("/console/cases/{}", url_part(&case_id));
    Ok(done(&to, "Recording unlinked (the link is kept in the history)."))
}

#[derive(serde::Deserialize, Default)]
pub struct RetentionQuery {
    msg: Option<String>,
    after: Option<String>,
    /// The trash continues before this cursor (trashed_at,id).
    trash_before: Option<String>,
    /// Holds in force continue before this cursor (placed_at,id).
    holds_before: Option<String>,
}

/// A cursor into a list of holds: `placed_at,id`, both integers.
fn hold_cursor(v: &Option<String>) -> Result<Option<(i64, i64)>, Problem> {
    match cursor(v)? {
        Some((t, id)) => Ok(Some((t, id.parse::<i64>().map_err(|_| Problem::bad("bad page cursor"))?))),
        None => Ok(None),
    }
}

/// Retention: what expires first, the trash (restore), holds in force.
pub async fn retention(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    Query(q): Query<RetentionQuery>,
) -> PageResult {
    const PAGE: u32 = 50;
    let after = cursor(&q.after)?;
    let trash_before = cursor(&q.trash_before)?;
    let holds_before = hold_cursor(&q.holds_before)?;
    let see = p.restricted;
    let (expiring, trash, holds) = read(&s, move |c| {
        Ok((
            screens::expiring(c, after, PAGE, see)?,
            screens::in_trash(c, trash_before, PAGE, see)?,
            screens::active_holds(c, holds_before, PAGE, see)?,
        ))
    })
    .await?;
    let keep = s.retention_default.as_millis() as i64;
    let full = |n: usize| n == PAGE as usize;
    let next = full(expiring.len()).then(|| expiring.last().map(|e| format!("{},{}", e.retain_from, e.id))).flatten();
    let next_trash =
        full(trash.len()).then(|| trash.last().map(|e| format!("{},{}", e.trashed_at.unwrap_or(0), e.id))).flatten();
    let next_holds = full(holds.len()).then(|| holds.last().map(|h| format!("{},{}", h.placed_at, h.id))).flatten();
    let body = html! {
        p.muted { "Ordinary recordings are kept " (humantime::format_duration(s.retention_default)) " from their recording; holds, case links and importance keep them longer. Expired recordings go to the trash first, and can be restored from it." }
        h2 { "Expiring first" }
        table #expiring {
            thead { tr { th { "Recording" } th { "Station" } th { "Officer" } th { "Retention from" } th { "Ordinary expiry" } } }
            tbody { @for e in &expiring { tr {
                td { a href={ "/console/media/" (e.id) } { (e.id.get(..16).unwrap_or(&e.id)) } }
                td { (e.station) } td { (e.officer.clone().unwrap_or_default()) } td { (at(e.retain_from)) } td { (at(e.retain_from + keep)) }
            } } }
        }
        (next_link("/console/retention", &[], next))
        h2 { "In the trash" }
        table #trash {
            thead { tr { th { "Recording" } th { "Station" } th { "Trashed" } th {} } }
            tbody { @for e in &trash { tr {
                td { a href={ "/console/media/" (e.id) } { (e.id.get(..16).unwrap_or(&e.id)) } }
                td { (e.station) } td { (at_opt(e.trashed_at)) }
                td { form.inline method="post" action={ "/console/media/" (e.id) "/restore" } {
                    (csrf(&p)) input name="reason" required placeholder="why" maxlength="1000"; button type="submit" { "Restore" }
                } }
            } } }
        }
        @if trash.is_empty() { p.muted { "The trash is empty." } }
        (next_link_as("/console/retention", &[], "trash_before", next_trash, "More of the trash →"))
        h2 { "Holds in force" }
        table #holds {
            thead { tr { th { "#" } th { "Recording" } th { "Reason" } th { "Placed by" } th { "When" } } }
            tbody { @for h in &holds { tr {
                td { (h.id) } td { a href={ "/console/media/" (h.media_id) } { (h.media_id.get(..16).unwrap_or(&h.media_id)) } }
                td { (h.reason) } td { (h.placed_by) } td { (at(h.placed_at)) }
            } } }
        }
        (next_link_as("/console/retention", &[], "holds_before", next_holds, "More holds →"))
    };
    Ok(page(&p, "retention", "Retention and holds", q.msg.as_deref(), body))
}

#[derive(serde::Deserialize)]
pub struct ReasonForm {
    reason: String,
}

pub async fn restore(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Form(f): Form<ReasonForm>,
) -> PageResult {
    let body = crate::api::custody::HoldBody { reason: f.reason };
    let r = crate::api::custody::restore(
        State(s),
        Extension(p.caller()),
        p.headers(None),
        PathParams(id.clone()),
        JsonBody(body),
    )
    .await;
    let (_, note) = api_answer(r)?;
    Ok(crate::api::auth::with_note(done("/console/retention", "Restored from the trash."), note))
}

pub async fn place_hold(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams(id): PathParams<String>,
    Form(f): Form<ReasonForm>,
) -> PageResult {
    let body = crate::api::custody::HoldBody { reason: f.reason };
    let r = crate::api::custody::place_hold(
        State(s),
        Extension(p.caller()),
        p.headers(None),
        PathParams(id.clone()),
        JsonBody(body),
    )
    .await;
    let (_, note) = api_answer(r)?;
    Ok(crate::api::auth::with_note(done(&format!("/console/media/{id}"), "Hold placed."), note))
}

pub async fn lift_hold(
    State(s): State<ApiState>,
    Extension(p): Extension<Person>,
    PathParams((id, hold)): PathParams<(String, i64)>,
) -> PageResult {
    let r = crate::api::custody::lift_hold(
        State(s),
        Extension(p.caller()),
        p.headers(None),
        PathParams((id.clone(), hold)),
    )
    .await;
    let (_, note) = api_answer(r)?;
    Ok(crate::api::auth::with_note(done(&format!("/console/media/{id}"), "Hold lifted."), note))
}
