//! Logging in and out: the session cookie (random, HttpOnly, SameSite=Strict,
//! kept in the index only as its SHA-256 so that every host of a district
//! knows it), a CSRF token per session checked on every change, a login
//! CSRF cookie, throttling of failed logins per name and per address, idle
//! and absolute expiry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::{html as page, password, Problem};
use crate::api::ApiState;
use crate::clock::to_ms;
use crate::config::Role;
use crate::index::audit::AuditEntry;
use crate::index::users;

pub const COOKIE: &str = "bodycamd_session";
const LOGIN_COOKIE: &str = "bodycamd_login";
/// Failed logins allowed per name in [`THROTTLE_WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// ... and per address (an office behind one address has many people).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A session is refreshed in the index at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;
const MAX_TRACKED: usize = 10_000;

/// What the console keeps between requests on this host.
#[derive(Debug)]
pub struct Shared {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
    /// The storage deadline and its warning margin (the board's colours).
    pub storage: Duration,
    pub warn_before: Duration,
    /// A closed case's file is due for archiving this long after closing.
    pub case_archive: Duration,
    /// Failed logins: key (`name:` or `addr:`) -> (window start ms, count).
    failures: Mutex<HashMap<String, (i64, u32)>>,
    /// Password checks at once (each takes 19 MiB and tens of ms).
    hashing: tokio::sync::Semaphore,
}

impl Shared {
    pub fn new(storage: Duration, warn_before: Duration, case_archive: Duration) -> Shared {
        Shared {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            storage,
            warn_before,
            case_archive,
            failures: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(2),
        }
    }

    /// Minutes until `keys` may try again, when any of them is locked.
    fn locked(&self, keys: &[String], now: i64) -> Option<i64> {
        let g = self.failures.lock().unwrap();
        let window = THROTTLE_WINDOW.as_millis() as i64;
        keys.iter()
            .filter_map(|k| g.get(k).map(|v| (k, v)))
            .filter(|(k, (start, n))| {
                let limit = if k.starts_with("addr:") { MAX_FAILURES_PER_ADDRESS } else { MAX_FAILURES };
                *n >= limit && now - start < window
            })
            .map(|(_, (start, _))| (start + window - now + 59_999) / 60_000)
            .max()
    }

    fn failed(&self, keys: &[String], now: i64) {
        let mut g = self.failures.lock().unwrap();
        let window = THROTTLE_WINDOW.as_millis() as i64;
        if g.len() >= MAX_TRACKED {
            g.retain(|_, (start, _)| now - *start < window);
        }
        for k in keys {
            if g.len() >= MAX_TRACKED && !g.contains_key(k) {
                continue;
            }
            let e = g.entry(k.clone()).or_insert((now, 0));
            if now - e.0 >= window {
                *e = (now, 0);
            }
            e.1 += 1;
        }
    }

    fn succeeded(&self, name_key: &str) {
        self.failures.lock().unwrap().remove(name_key);
    }
}

/// The person behind a request.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub role: Role,
    pub restricted: bool,
    pub csrf: String,
    session_hash: String,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    if https {
        "; Secure"
    } else {
        ""
    }
}

/// The live session of a request, if any (refreshed in the index at most
/// once a minute).
pub async fn current(s: &ApiState, headers: &HeaderMap, now: i64) -> Result<Option<Person>, Problem> {
    let Some(token) = cookie(headers, COOKIE).filter(|t| t.len() == 64) else { return Ok(None) };
    let hash = sha256_hex(token);
    let (idle_after, made_after) =
        (now - s.console.idle.as_millis() as i64, now - s.console.absolute.as_millis() as i64);
    let h2 = hash.clone();
    let Some(row) = super::read(s, move |c| users::session(c, &h2, idle_after, made_after)).await? else {
        return Ok(None);
    };
    if now - row.seen_at >= TOUCH_EVERY_MS {
        let h2 = hash.clone();
        s.index.call(move |c| users::touch_session(c, &h2, now)).await?;
    }
    Ok(Some(Person {
        name: row.user.name,
        role: row.user.role,
        restricted: row.user.restricted,
        csrf: row.csrf,
        session_hash: hash,
    }))
}

/// No session: pages go to the login page (and come back after it).
pub fn to_login(req: &Request) -> Response {
    let back = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/console/");
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    if req.method() == axum::http::Method::GET {
        Redirect::to(&format!("/console/login?next={next}")).into_response()
    } else {
        Problem::new(StatusCode::UNAUTHORIZED, "your session has ended; log in again").into_response()
    }
}

/// A change must carry the session's CSRF token (form field `csrf`, or the
/// `X-CSRF-Token` header for scripts). Returns the request, body restored.
pub async fn check_csrf(req: Request, p: &Person, limit: usize) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()),
    };
    let from_header = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let given = from_header
        .or_else(|| url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned()));
    match given {
        Some(t) if constant_time_eq::constant_time_eq(t.as_bytes(), p.csrf.as_bytes()) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "this form is out of date or did not come from the console (CSRF check failed); reload the page and try again",
        )
        .into_response()),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    msg: Option<String>,
}

fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') && n.len() < 2000)
        .map(str::to_string)
}

fn login_form(next: Option<&str>, error: Option<&str>, login_token: &str) -> maud::Markup {
    html! {
        main.narrow {
            h1 { "bodycamd" }
            p.muted { "Evidence ingest console. Log in as yourself: every page you open is recorded in the audit log." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                input type="hidden" name="login" value=(login_token);
                @if let Some(n) = next { input type="hidden" name="next" value=(n); }
                label { "Name" input name="username" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        }
    }
}

fn with_login_cookie(status: StatusCode, body: maud::Markup, token: &str, headers: &HeaderMap) -> Response {
    let mut r = (status, page::bare("bodycamd: log in", body)).into_response();
    let c = format!("{LOGIN_COOKIE}={token}; Path=/console/login; HttpOnly; SameSite=Strict{}", secure(headers));
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_page(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let token = random_hex(16);
    let next = safe_next(q.next.as_deref());
    with_login_cookie(StatusCode::OK, login_form(next.as_deref(), q.msg.as_deref(), &token), &token, &headers)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    login: Option<String>,
    next: Option<String>,
}

/// A hash to check against when the name is unknown, so that a wrong name
/// takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| password::hash(&random_hex(16)).unwrap_or_default())
}

pub async fn login(
    State(s): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let now = to_ms(s.clock.now());
    let name: String = f.username.trim().chars().take(64).collect();
    let next = safe_next(f.next.as_deref());
    let fresh = random_hex(16);
    let again = |status: StatusCode, why: &str| {
        with_login_cookie(status, login_form(next.as_deref(), Some(why), &fresh), &fresh, &headers)
    };
    // Login CSRF: the form must come from our login page (double submit).
    let expected = cookie(&headers, LOGIN_COOKIE);
    if expected.is_none() || f.login.as_deref() != expected {
        return again(StatusCode::FORBIDDEN, "this login form is out of date; try again");
    }
    let keys = [format!("name:{name}"), format!("addr:{}", remote.ip())];
    if let Some(minutes) = s.console.locked(&keys, now) {
        // Counted per address and minute, one audit entry per window.
        s.unauthenticated.count(remote.ip(), "POST", "/console/login", true, now);
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many failed logins; try again in {minutes} minute(s) or ask an administrator"),
        );
    }
    let user = {
        let n2 = name.clone();
        match super::read(&s, move |c| users::get(c, &n2)).await {
            Ok(u) => u,
            Err(e) => return e.into_response(),
        }
    };
    let ok = {
        let Ok(_permit) = s.console.hashing.acquire().await else {
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| decoy().to_string());
        let pw = f.password.clone();
        let matches = tokio::task::spawn_blocking(move || password::verify(&pw, &hash)).await.unwrap_or(false);
        matches && user.as_ref().is_some_and(|u| u.disabled_at.is_none())
    };
    let audit = |actor: &str, role: Option<&str>, outcome: &str, status: u16, details: String| AuditEntry {
        id: 0,
        at: now,
        actor: actor.into(),
        role: role.map(str::to_string),
        remote: Some(remote.ip().to_string()),
        action: "console.login".into(),
        method: Some("POST".into()),
        route: Some("/console/login".into()),
        status: Some(status),
        outcome: outcome.into(),
        details: Some(details),
        ..Default::default()
    };
    let Some(user) = user.filter(|_| ok) else {
        s.console.failed(&keys, now);
        let e = audit("-", None, "denied", 401, format!("failed login as {name:?}"));
        if let Err(e) = s.index.append_audit(e).await {
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot record the audit entry: {e}"))
                .into_response();
        }
        return again(StatusCode::UNAUTHORIZED, "wrong name or password, or the account is disabled");
    };
    s.console.succeeded(&keys[0]);
    let token = random_hex(32);
    let csrf = random_hex(32);
    let (hash, uname, ip) = (sha256_hex(&token), user.name.clone(), remote.ip().to_string());
    let (idle_before, made_before) =
        (now - s.console.idle.as_millis() as i64, now - s.console.absolute.as_millis() as i64);
    let entry = audit(&user.name, Some(user.role.as_str()), "ok", 303, "logged in to the console".into());
    let r = s
        .index
        .call(move |c| {
            users::expire_sessions(c, idle_before, made_before)?;
            users::create_session(c, &hash, &uname, &csrf, &ip, now)?;
            crate::index::audit::append(c, &entry)?;
            Ok(())
        })
        .await;
    if let Err(e) = r {
        return Problem::from(e).into_response();
    }
    let to = next.unwrap_or_else(|| super::home_of(user.role).to_string());
    let mut resp = Redirect::to(&to).into_response();
    let c = format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        s.console.absolute.as_secs(),
        secure(&headers)
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("bodycamd_login=; Path=/console/login; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

pub async fn logout(State(s): State<ApiState>, Extension(p): Extension<Person>) -> Result<Response, Problem> {
    let h = p.session_hash.clone();
    s.index.call(move |c| users::end_session(c, &h)).await?;
    let mut r = Redirect::to("/console/login?msg=You+are+logged+out.").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("bodycamd_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_lock_a_name_for_the_window() {
        let s = Shared::new(Duration::from_secs(86400), Duration::from_secs(3600), Duration::from_secs(30 * 86400));
        let keys = ["name:ann".to_string(), "addr:127.0.0.1".to_string()];
        for i in 0..MAX_FAILURES {
            assert!(s.locked(&keys, 1000 + i64::from(i)).is_none());
            s.failed(&keys, 1000 + i64::from(i));
        }
        assert_eq!(s.locked(&keys, 2000), Some(15));
        assert!(s.locked(&["name:bob".to_string()], 2000).is_none());
        let after = 1000 + THROTTLE_WINDOW.as_millis() as i64;
        assert!(s.locked(&keys, after).is_none(), "the lock ends with its window");
    }

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/console/media?officer=1")).as_deref(), Some("/console/media?officer=1"));
        assert!(safe_next(Some("https://evil.example/")).is_none());
        assert!(safe_next(Some("/console//evil.example")).is_none());
        assert!(safe_next(Some("/api/v1/media")).is_none());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; bodycamd_session=abc; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
