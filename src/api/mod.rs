//! The HTTP listener: `/metrics`, `/healthz`, `/readyz` (and, as the API
//! grows, the case systems' routes). Handlers live in their own files;
//! this module builds the router and serves it until shutdown.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::{to_ms, SharedClock};
use crate::index::Index;
use crate::store::Archive;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub index: Index,
    pub archive: Archive,
    pub clock: SharedClock,
    /// Set once recovery and the first scan of every station are done.
    pub ready: Arc<AtomicBool>,
    pub stations: Arc<Vec<String>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: recovery or the first scan of the stations is not done\n",
        )
            .into_response()
    }
}

async fn metrics_handler(State(s): State<ApiState>) -> Response {
    let inputs = metrics::Inputs {
        now_ms: to_ms(s.clock.now()),
        free_bytes: s.archive.free_bytes().ok(),
        stations: s.stations.as_ref().clone(),
    };
    let index = s.index.clone();
    let text = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let c = index.reader()?;
        metrics::render(&c, &inputs)
    })
    .await;
    match text {
        Ok(Ok(t)) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics unavailable: {e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics unavailable: {e}\n")).into_response(),
    }
}

/// Bind the listener (so that a port in use is a start-up error).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (api.listen): {e}"))
}

/// Serve until `shutdown`.
pub async fn serve(listener: TcpListener, state: ApiState, shutdown: CancellationToken) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "the HTTP listener failed");
    }
}
