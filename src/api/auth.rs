//! Bearer tokens, roles, and the audit of every API request.
//!
//! **Invariant:** every request under `/api/v1` (except the OpenAPI
//! document) passes [`authenticate`]. A request with a valid token is
//! recorded in the audit log — who, what, when, from where, and the outcome
//! — and that record is committed before the response (and any bytes of
//! evidence) leaves. Requests without a valid token reach no data; they are
//! counted per remote address and minute and written as one entry per
//! window (so a flood cannot grow the append-only log without bound), and a
//! remote over `api.auth_failures_per_minute` is answered 429.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::ApiState;
use crate::clock::to_ms;
use crate::config::{Role, TokenConfig};
use crate::index::audit::{self, AuditEntry};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Granted access to restricted records.
    pub restricted: bool,
}

/// The header in which a caller gives the reason for reading a restricted
/// record.
pub const REASON_HEADER: &str = "x-bodycamd-reason";

/// How a caller may see restricted records in this request.
#[derive(Debug, Clone, Default)]
pub struct Clearance {
    /// Granted, and a reason was given: restricted records are visible.
    pub sees_restricted: bool,
    pub reason: Option<String>,
}

impl Clearance {
    pub fn of(caller: &Caller, headers: &axum::http::HeaderMap) -> Clearance {
        let reason = headers
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Clearance { sees_restricted: caller.restricted && reason.is_some(), reason }
    }

    /// Check one record: restricted ones are "not found" without the grant
    /// (existence is not revealed); with the grant a reason is required.
    /// Returns the audit detail to record.
    pub fn check(
        &self,
        caller: &Caller,
        restricted: bool,
        not_found: impl FnOnce() -> ApiError,
    ) -> Result<Option<String>, ApiError> {
        if !restricted {
            return Ok(None);
        }
        if !caller.restricted {
            return Err(not_found());
        }
        match &self.reason {
            Some(r) => Ok(Some(format!("restricted record; reason: {r}"))),
            None => Err(ApiError::bad_request(
                "reason_required",
                "this record is restricted: give the reason for reading it in the X-Bodycamd-Reason header",
            )),
        }
    }
}

/// Attach what a handler adds to the audit record to its response.
pub fn with_note(resp: impl IntoResponse, note: AuditNote) -> Response {
    let mut r = resp.into_response();
    r.extensions_mut().insert(note);
    r
}

/// What a handler adds to the audit record of its request (ids only known
/// from the body, for instance).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub case_id: Option<String>,
    pub media_id: Option<String>,
    pub details: Option<String>,
}

/// Find the token (compared by SHA-256, in constant time).
pub fn lookup<'a>(tokens: &'a [TokenConfig], bearer: &str) -> Option<&'a TokenConfig> {
    let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
    tokens.iter().find(|t| constant_time_eq::constant_time_eq_32(&t.sha256, &digest))
}

fn action_of(method: &str, route: &str) -> String {
    let name = match (method, route) {
        ("PUT", "/api/v1/cases/{case_id}") => "case.put",
        ("GET", "/api/v1/cases/{case_id}") => "case.get",
        ("GET", "/api/v1/cases/{case_id}/media") => "case.media",
        ("POST", "/api/v1/cases/{case_id}/media") => "case.link",
        ("DELETE", "/api/v1/cases/{case_id}/media/{media_id}") => "case.unlink",
        ("GET", "/api/v1/media") => "media.query",
        ("GET", "/api/v1/media/{id}") => "media.get",
        ("GET" | "HEAD", "/api/v1/media/{id}/original") => "media.original",
        ("GET" | "HEAD", "/api/v1/media/{id}/rendition") => "media.rendition",
        ("GET" | "HEAD", "/api/v1/media/{id}/thumbnail") => "media.thumbnail",
        ("GET", "/api/v1/media/{id}/renditions") => "media.renditions",
        ("POST", "/api/v1/media/{id}/recover") => "media.recover",
        ("GET", "/api/v1/stations") => "stations.list",
        ("POST", "/api/v1/stations/{station}/retry") => "ingest.retry",
        ("GET", "/api/v1/alerts") => "alerts.list",
        ("POST", "/api/v1/alerts/{id}/ack") => "alert.ack",
        ("GET", "/api/v1/audit") => "audit.query",
        ("GET", "/api/v1/media/{id}/receipt") => "media.receipt",
        ("PUT", "/api/v1/media/{id}/retention") => "retention.set",
        ("POST", "/api/v1/media/{id}/holds") => "retention.hold",
        ("DELETE", "/api/v1/media/{id}/holds/{hold_id}") => "retention.lift_hold",
        ("POST", "/api/v1/media/{id}/restore") => "retention.restore",
        ("PUT", "/api/v1/media/{id}/restriction") => "media.restrict",
        ("PUT", "/api/v1/cases/{case_id}/restriction") => "case.restrict",
        ("POST", "/api/v1/cases/{case_id}/archive") => "case.archive",
        ("POST", "/api/v1/exports") => "export.request",
        ("GET", "/api/v1/exports/{export_id}") => "export.get",
        ("POST", "/api/v1/exports/{export_id}/approve") => "export.approve",
        ("POST", "/api/v1/exports/{export_id}/deny") => "export.deny",
        ("GET" | "HEAD", "/api/v1/exports/{export_id}/download") => "export.download",
        _ => return format!("{} {route}", method.to_ascii_lowercase()),
    };
    name.to_string()
}

/// The audit outcome of an answer (the API's and the console's).
pub fn outcome_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=399 => "ok",
        401 | 403 => "denied",
        404 => "not_found",
        400..=499 => "rejected",
        _ => "error",
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Authenticate and audit one request.
pub async fn authenticate(
    State(s): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let uri_path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let mut params: Vec<(String, String)> = Vec::new();
    if let Ok(raw) = req.extract_parts::<RawPathParams>().await {
        params = raw.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string());
    let caller = bearer.as_deref().and_then(|b| lookup(&s.tokens, b)).map(|t| Caller {
        name: t.name.clone(),
        role: t.role,
        restricted: t.restricted,
    });
    let route_name = route.clone().unwrap_or_else(|| uri_path.clone());
    let mut resp = match &caller {
        None => {
            // Counted, not logged one by one: a flood of requests without a
            // token must not grow the append-only log without bound. One
            // audit entry per remote and minute says how many there were.
            let now = to_ms(s.clock.now());
            if s.unauthenticated.count(remote.ip(), &method, &route_name, bearer.is_some(), now) {
                let mut r = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "too many requests without a valid token from this address; try again in a minute",
                )
                .into_response();
                r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
                return r;
            }
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                if bearer.is_some() { "unknown token" } else { "an Authorization: Bearer token is required" },
            )
            .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
        Some(c) => {
            req.extensions_mut().insert(c.clone());
            next.run(req).await
        }
    };
    let note = resp.extensions_mut().remove::<AuditNote>().unwrap_or_default();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let status = resp.status();
    let entry = AuditEntry {
        id: 0,
        at: to_ms(s.clock.now()),
        actor: caller.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| "-".into()),
        role: caller.as_ref().map(|c| c.role.as_str().to_string()),
        remote: Some(remote.ip().to_string()),
        action: action_of(&method, &route_name),
        method: Some(method),
        route: Some(route_name),
        case_id: note.case_id.or_else(|| param("case_id")).or_else(|| query_param(query.as_deref(), "case")),
        media_id: note
            .media_id
            .or_else(|| param("media_id"))
            .or_else(|| param("id").filter(|_| uri_path.starts_with("/api/v1/media/"))),
        status: Some(status.as_u16()),
        outcome: outcome_of(status).into(),
        details: note.details.or(query).map(|d| d.chars().take(1000).collect()),
    };
    if let Err(e) = s.index.append_audit(entry).await {
        // Refuse to answer what cannot be audited.
        return ApiError::internal(format!("cannot record the audit entry: {e}")).into_response();
    }
    resp
}

/// Requests without a valid token in one minute from one address.
#[derive(Debug, Default, Clone)]
struct Window {
    minute: i64,
    requests: u64,
    unknown_token: u64,
    refused: u64,
    /// Requests by method and route (at most [`MAX_ROUTES`] kinds).
    routes: std::collections::BTreeMap<String, u64>,
}

type Closed = (std::net::IpAddr, Window);

/// Remotes tracked at once; beyond, requests are counted under one
/// catch-all address (`0.0.0.0`), so that memory stays bounded too.
const MAX_REMOTES: usize = 10_000;
const MAX_ROUTES: usize = 20;

/// Requests without a valid token, counted per remote address and minute:
/// one audit entry per window, and a limit per window (429 beyond it).
#[derive(Debug)]
pub struct Unauthenticated {
    limit: u32,
    /// The open window of each remote, and windows already over.
    state: std::sync::Mutex<(std::collections::HashMap<std::net::IpAddr, Window>, Vec<Closed>)>,
}

impl Unauthenticated {
    pub fn new(limit_per_minute: u32) -> Unauthenticated {
        Unauthenticated { limit: limit_per_minute, state: Default::default() }
    }

    /// Count one request; true when the remote is over its limit (answer
    /// 429 without looking further).
    pub fn count(&self, ip: std::net::IpAddr, method: &str, route: &str, had_token: bool, now_ms: i64) -> bool {
        let minute = now_ms.div_euclid(60_000);
        let mut g = self.state.lock().unwrap();
        let (open, closed) = &mut *g;
        let key = if open.len() >= MAX_REMOTES && !open.contains_key(&ip) {
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            ip
        };
        let w = open.entry(key).or_default();
        if w.minute != minute {
            if w.requests > 0 {
                closed.push((key, std::mem::take(w)));
            }
            w.minute = minute;
        }
        w.requests += 1;
        w.unknown_token += u64::from(had_token);
        let r: String = format!("{method} {route}").chars().take(120).collect();
        if w.routes.len() < MAX_ROUTES || w.routes.contains_key(&r) {
            *w.routes.entry(r).or_default() += 1;
        }
        let over = w.requests > u64::from(self.limit);
        w.refused += u64::from(over);
        over
    }

    /// Windows that are over (all of them with `all`), taken for writing.
    fn take(&self, now_ms: i64, all: bool) -> Vec<(std::net::IpAddr, Window)> {
        let minute = now_ms.div_euclid(60_000);
        let mut g = self.state.lock().unwrap();
        let (open, closed) = &mut *g;
        let mut out = std::mem::take(closed);
        open.retain(|ip, w| {
            if all || w.minute < minute {
                if w.requests > 0 {
                    out.push((*ip, std::mem::take(w)));
                }
                false
            } else {
                true
            }
        });
        out
    }
}

/// Write one audit entry for each finished window of requests without a
/// valid token (every window with `all`, at shutdown).
pub async fn flush_unauthenticated(s: &ApiState, all: bool) {
    let now = to_ms(s.clock.now());
    let windows = s.unauthenticated.take(now, all);
    if windows.is_empty() {
        return;
    }
    let entries: Vec<AuditEntry> = windows
        .into_iter()
        .map(|(ip, w)| {
            let start = crate::clock::rfc3339(crate::clock::from_ms(w.minute * 60_000));
            let routes: Vec<String> = w.routes.iter().map(|(r, n)| format!("{r} x{n}")).collect();
            AuditEntry {
                id: 0,
                at: now,
                actor: "-".into(),
                role: None,
                remote: Some(ip.to_string()),
                action: "http.unauthenticated".into(),
                method: None,
                route: None,
                case_id: None,
                media_id: None,
                status: Some(401),
                outcome: "denied".into(),
                details: Some(format!(
                    "{} request(s) without a valid token in the minute from {start} ({} with an unknown token, {} refused \
                     with 429): {}",
                    w.requests,
                    w.unknown_token,
                    w.refused,
                    routes.join(", ")
                )),
            }
        })
        .collect();
    let n = entries.len();
    let r = s
        .index
        .call(move |c| {
            for e in &entries {
                audit::append(c, e)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, windows = n, "recording requests without a valid token failed");
    }
}

/// Allow only callers with one of `roles` (a route layer).
pub async fn require(roles: &'static [Role], req: Request, next: Next) -> Response {
    match req.extensions().get::<Caller>() {
        Some(c) if roles.contains(&c.role) => next.run(req).await,
        Some(c) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {} role; token {:?} has {}",
                roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "),
                c.name,
                c.role.as_str()
            ),
        )
        .into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "an Authorization: Bearer token is required")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        let t = TokenConfig {
            name: "cms".into(),
            role: Role::CaseSystem,
            sha256: Sha256::digest(b"s3cret").into(),
            restricted: false,
        };
        let tokens = [t];
        assert_eq!(lookup(&tokens, "s3cret").unwrap().name, "cms");
        assert!(lookup(&tokens, "s3cret ").is_none());
        assert!(lookup(&tokens, "").is_none());
    }

    #[test]
    fn actions_are_named() {
        assert_eq!(action_of("GET", "/api/v1/media/{id}/original"), "media.original");
        assert_eq!(action_of("PATCH", "/x"), "patch /x");
    }
}
