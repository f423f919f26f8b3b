//! The HTTP listener: the API for case systems, administrators and auditors
//! under `/api/v1` (OpenAPI at `/api/v1/openapi.json`), and `/metrics`,
//! `/healthz`, `/readyz`. Handlers live in their own files:
//!
//! - [`cases`]: cases, their media, manual links.
//! - [`media`]: queries, one original, its bytes.
//! - [`admin`]: stations and alerts.
//! - [`auditlog`]: the audit log.
//! - [`custody`]: receipts, retention and holds, restriction, exports.
//! - [`auth`]: tokens, roles, and the audit of every request.
//! - [`error`]: JSON errors with stable codes; extractors that use them.
//! - [`types`]: request and response types.
//! - [`metrics`]: the Prometheus text.

pub mod admin;
pub mod auditlog;
pub mod auth;
pub mod cases;
pub mod contract;
pub mod custody;
pub mod error;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod types;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::{to_ms, SharedClock};
use crate::config::{Role, TokenConfig};
use crate::index::Index;
use crate::store::Archive;
use error::ApiError;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub index: Index,
    pub archive: Archive,
    /// Where renditions are stored.
    pub renditions: Archive,
    pub clock: SharedClock,
    /// Set once recovery and the first scan of every station are done.
    pub ready: Arc<AtomicBool>,
    /// Configured station ids.
    pub stations: Arc<Vec<String>>,
    pub tokens: Arc<Vec<TokenConfig>>,
    /// Longest window a case may give.
    pub max_window: chrono::Duration,
    pub max_body_bytes: usize,
    /// Webhook URLs (acknowledgements are delivered to them).
    pub hooks: Arc<Vec<String>>,
    /// The state directory (trash, exports).
    pub state_dir: std::path::PathBuf,
    /// Signs receipts and export manifests.
    pub key: crate::custody::key::HostKey,
    /// How long an approved export can be downloaded.
    pub export_expire: std::time::Duration,
    /// Ordinary recordings are kept this long.
    pub retention_default: std::time::Duration,
    /// A bucket lock's span: retention plus the trash period.
    pub lock_span: std::time::Duration,
    /// Wakes the stations to take retries an administrator asked for.
    pub retry_wake: Arc<tokio::sync::Notify>,
    /// Held while an export archive is built (once, whatever the number of
    /// concurrent first downloads).
    pub export_builds: Arc<tokio::sync::Mutex<()>>,
    /// Requests without a valid token, counted per remote and minute.
    pub unauthenticated: Arc<auth::Unauthenticated>,
    /// Outages this host meets now (`/readyz`, `/metrics`).
    pub faults: Arc<crate::pipeline::faults::Faults>,
    /// The console's sessions and throttling on this host.
    pub console: Arc<crate::console::Shared>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bodycamd API",
        description = "Cases, media and evidence from body-worn cameras. Every request needs a bearer token; every \
                       request is audited. Errors are JSON with a stable `code`."
    ),
    modifiers(&Bearer),
    tags(
        (name = "cases", description = "For case systems (role case_system)"),
        (name = "media", description = "For case systems (role case_system)"),
        (name = "admin", description = "For administrators (role admin)"),
        (name = "audit", description = "For auditors (role auditor)"),
        (name = "custody", description = "Receipts, retention, restriction and approved exports"),
    )
)]
struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Routes only these roles may use; each operation says so in the
/// document (`x-roles`).
fn for_roles(roles: &'static [Role], mut r: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    for item in r.get_openapi_mut().paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            op.extensions.get_or_insert_with(Default::default).insert("x-roles".into(), serde_json::json!(names));
        }
    }
    r.route_layer(from_fn(move |req, next| auth::require(roles, req, next)))
}

/// The API routes and their OpenAPI document.
pub fn api_routes(state: ApiState) -> (Router<ApiState>, serde_json::Value) {
    let case_system = OpenApiRouter::new()
        .routes(routes!(cases::put_case, cases::get_case))
        .routes(routes!(cases::case_media, cases::link))
        .routes(routes!(cases::unlink))
        .routes(routes!(media::list))
        .routes(routes!(media::get))
        .routes(routes!(media::original))
        .routes(routes!(media::rendition))
        .routes(routes!(media::thumbnail))
        .routes(routes!(media::renditions));
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::stations))
        .routes(routes!(admin::retry))
        .routes(routes!(admin::alerts))
        .routes(routes!(admin::ack))
        .routes(routes!(custody::set_retention))
        .routes(routes!(custody::place_hold))
        .routes(routes!(custody::lift_hold))
        .routes(routes!(custody::restore))
        .routes(routes!(custody::restrict_media))
        .routes(routes!(custody::restrict_case))
        .routes(routes!(custody::archive_case))
        .routes(routes!(media::recover));
    let auditor = OpenApiRouter::new().routes(routes!(auditlog::list));
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(for_roles(&[Role::CaseSystem], case_system))
        .merge(for_roles(&[Role::Admin], admin))
        .merge(for_roles(&[Role::Auditor], auditor))
        .merge(for_roles(&[Role::CaseSystem, Role::Auditor], OpenApiRouter::new().routes(routes!(custody::receipt))))
        .merge(for_roles(
            &[Role::CaseSystem, Role::Approver],
            OpenApiRouter::new()
                .routes(routes!(custody::request_export))
                .routes(routes!(custody::get_export))
                .routes(routes!(custody::download)),
        ))
        .merge(for_roles(
            &[Role::Approver],
            OpenApiRouter::new().routes(routes!(custody::approve)).routes(routes!(custody::deny)),
        ))
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    let api = contract::state(api);
    let router = router
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
                .into_response()
        })
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    (router, api)
}

pub fn router(state: ApiState) -> Router {
    let (api, doc) = api_routes(state.clone());
    let doc = Arc::new(doc);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .merge(api)
        .merge(crate::console::router(state.clone()))
        .fallback(|| async { ApiError::not_found("no such route").into_response() })
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if !s.ready.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting: recovery or the first scan of the stations is not done\n")
            .into_response();
    }
    let outages = s.faults.current();
    if !outages.is_empty() {
        let why: Vec<String> =
            outages.iter().map(|(k, _, reason)| format!("{}: {reason}", k.alert().as_str())).collect();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: files wait on the docks until this clears: {}\n", why.join("; ")),
        )
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics_handler(State(s): State<ApiState>) -> Response {
    let inputs = metrics::Inputs {
        now_ms: to_ms(s.clock.now()),
        free_bytes: s.archive.free_bytes().ok(),
        stations: s.stations.as_ref().clone(),
        outages: s.faults.current().into_iter().map(|(k, since, _)| (k.alert().as_str(), to_ms(since))).collect(),
    };
    let index = s.index.clone();
    let text = tokio::task::spawn_blocking(move || {
        index.read_any(|c| metrics::render(c, &inputs)).map_err(|e| (e, metrics::render_local(&inputs, false)))
    })
    .await;
    let ok = |t: String| ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t).into_response();
    match text {
        Ok(Ok(t)) => ok(t),
        // The index does not answer: what this host knows still goes out
        // (an outage must be visible where it matters most).
        Ok(Err((e, local))) => {
            tracing::warn!(error = %e, "metrics: the index does not answer");
            ok(local)
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Bind the listener (so that a port in use is a start-up error).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (api.listen): {e}"))
}

/// Serve until `shutdown`; requests without a valid token, counted per
/// remote and minute, are written to the audit log as each window closes
/// (and at the end).
pub async fn serve(listener: TcpListener, state: ApiState, limits: listener::Limits, shutdown: CancellationToken) {
    let flusher = {
        let (state, stop) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => auth::flush_unauthenticated(&state, false).await,
                    _ = stop.cancelled() => break,
                }
            }
        })
    };
    listener::serve(listener, router(state.clone()), limits, shutdown).await;
    let _ = flusher.await;
    auth::flush_unauthenticated(&state, true).await;
}
