//! The console: web pages for the people who watch ingestion, approve
//! copies and audit, served under `/console` by the API's listener.
//!
//! It stands beside the API, not in front of it: the same roles (a person
//! has one, as a token does), the same index queries and the same handlers
//! for every change (a console action calls the API's handler function, so
//! validation, restriction rules and side effects cannot drift apart), and
//! the same audit (one entry per page view or action, naming the person).
//!
//! - [`session`]: log in and out, the session cookie, CSRF, throttling.
//! - [`password`]: Argon2id hashes.
//! - [`html`]: the layout and small pieces every page uses.
//! - [`ops`]: stations, the 24-hour board, alerts, ingest problems,
//!   rendition jobs (administrators).
//! - [`records`]: media, cases, retention.
//! - [`oversight`]: compliance, the audit log, exports.
//!
//! **Invariants:** every route except the login page and the static assets
//! needs a live session; every POST carries the session's CSRF token; every
//! request that reaches a page is audited before its answer leaves;
//! restricted records are filtered by the same queries as the API's.

pub mod html;
pub mod ops;
pub mod oversight;
pub mod password;
pub mod records;
pub mod session;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{RequestExt, Router};

use crate::api::auth::{AuditNote, Caller};
use crate::api::error::ApiError;
use crate::api::ApiState;
use crate::clock::to_ms;
use crate::config::Role;
use crate::index::audit::AuditEntry;

pub use session::{Person, Shared};

/// A page that could not be shown: an HTML page with the status and why.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Problem {
        Problem { status, message: message.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad(what: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, what)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = html::bare(
            "bodycamd: cannot show this",
            maud::html! {
                main.narrow {
                    h1 { (self.status.as_u16()) " " (self.status.canonical_reason().unwrap_or("")) }
                    p.error { (self.message) }
                    p { a href="/console/" { "Back to the console" } }
                }
            },
        );
        (self.status, body).into_response()
    }
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Problem {
        let mut message = e.body.message;
        if !e.body.details.is_empty() {
            message = format!("{message}: {}", e.body.details.join("; "));
        }
        Problem { status: e.status, message }
    }
}

impl From<crate::index::IndexError> for Problem {
    fn from(e: crate::index::IndexError) -> Problem {
        ApiError::from(e).into()
    }
}

impl From<tokio::task::JoinError> for Problem {
    fn from(e: tokio::task::JoinError) -> Problem {
        ApiError::from(e).into()
    }
}

pub type PageResult = Result<Response, Problem>;

/// A query parameter, trimmed; `None` when absent or empty.
pub fn opt(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

/// A time query parameter (RFC 3339 or YYYY-MM-DD) as ms.
pub fn time(name: &str, v: &Option<String>) -> Result<Option<i64>, Problem> {
    match opt(v) {
        Some(t) => crate::clock::parse_time(&t)
            .map(|t| Some(crate::clock::to_ms(t)))
            .map_err(|e| Problem::bad(format!("{name}: {e}"))),
        None => Ok(None),
    }
}

/// A `(instant, id)` page cursor (`after=T,ID`), when given.
pub fn cursor(v: &Option<String>) -> Result<Option<(i64, String)>, Problem> {
    opt(v)
        .map(|a| {
            let (t, id) = a.split_once(',').ok_or_else(|| Problem::bad("bad page cursor"))?;
            Ok((t.parse().map_err(|_| Problem::bad("bad page cursor"))?, id.to_string()))
        })
        .transpose()
}

/// Read the index off the async threads, as the API does.
pub async fn read<T: Send + 'static>(
    s: &ApiState,
    f: impl FnOnce(&crate::index::db::Db) -> crate::index::db::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    let index = s.index.clone();
    Ok(tokio::task::spawn_blocking(move || index.read(f)).await??)
}

/// After an action: back to a page, with a message to show there.
pub fn done(to: &str, message: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let msg: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    Redirect::to(&format!("{to}{sep}msg={msg}")).into_response()
}

fn only(roles: &'static [Role], r: Router<ApiState>) -> Router<ApiState> {
    r.route_layer(from_fn(move |req: Request, next: Next| async move {
        match req.extensions().get::<Person>() {
            Some(p) if roles.contains(&p.role) => next.run(req).await,
            Some(p) => Problem::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this page is for the {} role; you ({}) are {}",
                    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "),
                    p.name,
                    p.role.as_str()
                ),
            )
            .into_response(),
            None => Redirect::to("/console/login").into_response(),
        }
    }))
}

/// Who may see which screen.
pub const ADMIN: &[Role] = &[Role::Admin];
pub const AUDITOR: &[Role] = &[Role::Auditor];
pub const OVERSIGHT: &[Role] = &[Role::Admin, Role::Auditor];
pub const EVERYONE: &[Role] = &[Role::Admin, Role::Auditor, Role::Approver];
pub const EXPORTS: &[Role] = &[Role::Admin, Role::Auditor, Role::Approver];
pub const APPROVER: &[Role] = &[Role::Approver];

/// The console's routes (mounted beside the API's).
pub fn router(state: ApiState) -> Router<ApiState> {
    let admin = Router::new()
        .route("/console/stations", get(ops::stations))
        .route("/console/board", get(ops::board))
        .route("/console/alerts", get(ops::alerts))
        .route("/console/alerts/{id}", get(ops::alert_one))
        .route("/console/alerts/{id}/ack", post(ops::ack))
        .route("/console/problems", get(ops::problems))
        .route("/console/problems/retry", post(ops::retry))
        .route("/console/renditions", get(ops::renditions))
        .route("/console/renditions/retry", post(ops::retry_renditions))
        .route("/console/retention", get(records::retention))
        .route("/console/media/{id}/restore", post(records::restore))
        .route("/console/media/{id}/holds", post(records::place_hold))
        .route("/console/media/{id}/holds/{hold}/lift", post(records::lift_hold))
        .route("/console/cases/link", post(records::link_from_media))
        .route("/console/cases/{id}/link", post(records::link))
        .route("/console/cases/{id}/media/{media}/unlink", post(records::unlink));
    let everyone = Router::new()
        .route("/console/media", get(records::media))
        .route("/console/media/{id}", get(records::media_one))
        .route("/console/media/{id}/thumbnail", get(records::thumbnail))
        .route("/console/media/{id}/rendition", get(records::rendition))
        .route("/console/media/{id}/receipt", get(records::receipt))
        .route("/console/cases/find", get(records::find_case))
        .route("/console/cases", get(records::cases))
        .route("/console/cases/{id}", get(records::case_one));
    let oversight = Router::new()
        .route("/console/compliance", get(oversight::compliance))
        .route("/console/compliance.csv", get(oversight::compliance_csv));
    let auditor = Router::new()
        .route("/console/audit", get(oversight::audit))
        .route("/console/audit/verify", post(oversight::verify_chain));
    let exports = Router::new().route("/console/exports", get(oversight::exports));
    let approver = Router::new()
        .route("/console/exports/request", post(oversight::request_export))
        .route("/console/exports/{id}/approve", post(oversight::approve))
        .route("/console/exports/{id}/deny", post(oversight::deny))
        .route("/console/exports/{id}/download", get(oversight::download));
    let gated = Router::new()
        .route("/console/", get(home))
        .route("/console/live", get(ops::live))
        .route("/console/logout", post(session::logout))
        .merge(only(ADMIN, admin))
        .merge(only(EVERYONE, everyone))
        .merge(only(OVERSIGHT, oversight))
        .merge(only(AUDITOR, auditor))
        .merge(only(EXPORTS, exports))
        .merge(only(APPROVER, approver))
        .layer(from_fn_with_state(state.clone(), gate));
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/assets/console.css", get(html::css))
        .route("/console/assets/console.js", get(html::js))
        .merge(gated)
        .layer(from_fn(security_headers))
}

/// Where a person lands after logging in.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Admin => "/console/board",
        Role::Auditor => "/console/audit",
        Role::Approver | Role::CaseSystem => "/console/exports",
    }
}

async fn home(axum::Extension(p): axum::Extension<Person>) -> Response {
    Redirect::to(home_of(p.role)).into_response()
}

/// Every console answer: no framing, no sniffing, no referrer leaks, no
/// caching of pages that show evidence, and nothing loaded from elsewhere.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The audit action of a console request: `console.view.<screen>` for a
/// page, `console.<screen>.<action>` for a change.
fn action_of(method: &str, route: &str) -> String {
    let words: Vec<&str> = route
        .trim_start_matches("/console")
        .split('/')
        .filter(|w| !w.is_empty() && !w.starts_with('{'))
        .map(|w| w.trim_end_matches(".csv"))
        .collect();
    let what = if words.is_empty() { "home".to_string() } else { words.join(".") };
    if method == "GET" || method == "HEAD" {
        format!("console.view.{what}")
    } else {
        format!("console.{what}")
    }
}

/// Every gated request: a live session, CSRF on changes, the role's
/// screens only (route layers), and one audit entry.
async fn gate(
    State(s): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let now = to_ms(s.clock.now());
    let person = match session::current(&s, req.headers(), now).await {
        Ok(Some(p)) => p,
        Ok(None) => return session::to_login(&req),
        Err(e) => return e.into_response(),
    };
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let route = route.unwrap_or_else(|| req.uri().path().to_string());
    let query = req.uri().query().map(str::to_string);
    let mut params: Vec<(String, String)> = Vec::new();
    if let Ok(raw) = req.extract_parts::<RawPathParams>().await {
        params = raw.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    let mut resp = if method == "POST" {
        match session::check_csrf(req, &person, s.max_body_bytes).await {
            Ok(mut checked) => {
                checked.extensions_mut().insert(person.clone());
                next.run(checked).await
            }
            Err(r) => r,
        }
    } else {
        req.extensions_mut().insert(person.clone());
        next.run(req).await
    };
    // Live counts are polled every few seconds by an open page: not a page
    // view, and they name no record; auditing each would bury the log.
    if route == "/console/live" {
        return resp;
    }
    let note = resp.extensions_mut().remove::<AuditNote>().unwrap_or_default();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let status = resp.status();
    let in_route = |w: &str| route.starts_with(w);
    let entry = AuditEntry {
        id: 0,
        at: now,
        actor: person.name.clone(),
        role: Some(person.role.as_str().to_string()),
        remote: Some(remote.ip().to_string()),
        action: action_of(&method, &route),
        method: Some(method),
        route: Some(route.clone()),
        case_id: note.case_id.or_else(|| param("id").filter(|_| in_route("/console/cases/"))),
        media_id: note
            .media_id
            .or_else(|| param("media"))
            .or_else(|| param("id").filter(|_| in_route("/console/media/"))),
        status: Some(status.as_u16()),
        outcome: crate::api::auth::outcome_of(status).into(),
        details: note.details.or(query).map(|d| d.chars().take(1000).collect()),
    };
    if let Err(e) = s.index.append_audit(entry).await {
        return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot record the audit entry: {e}"))
            .into_response();
    }
    resp
}

/// The API's caller for a person: the console's actions go through the
/// API's handlers as this caller.
impl Person {
    pub fn caller(&self) -> Caller {
        Caller { name: self.name.clone(), role: self.role, restricted: self.restricted }
    }

    /// Headers for an API handler: the grant's reason, when given.
    pub fn headers(&self, reason: Option<&str>) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty() && self.restricted) {
            if let Ok(v) = HeaderValue::from_str(&format!("console: {}", r.replace(|c: char| c.is_control(), " "))) {
                h.insert(crate::api::auth::REASON_HEADER, v);
            }
        }
        h
    }
}

/// Turn an API handler's answer into a console answer, keeping its audit
/// note (the console's audit entry carries it).
pub fn api_answer(r: Result<Response, ApiError>) -> Result<(Response, AuditNote), Problem> {
    let mut resp = r.map_err(Problem::from)?;
    let note = resp.extensions_mut().remove::<AuditNote>().unwrap_or_default();
    if !resp.status().is_success() && resp.status() != StatusCode::PARTIAL_CONTENT {
        return Err(Problem::new(resp.status(), "the request was refused"));
    }
    Ok((resp, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_the_screen() {
        assert_eq!(action_of("GET", "/console/media/{id}"), "console.view.media");
        assert_eq!(action_of("GET", "/console/compliance.csv"), "console.view.compliance");
        assert_eq!(action_of("POST", "/console/alerts/{id}/ack"), "console.alerts.ack");
        assert_eq!(action_of("POST", "/console/exports/{id}/approve"), "console.exports.approve");
        assert_eq!(action_of("GET", "/console/"), "console.view.home");
    }
}
