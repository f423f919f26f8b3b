//! The listener loop under axum: a cap on the connections served at once,
//! a time limit on request headers (an idle keep-alive connection is closed
//! too) and on stalled request bodies, and accept errors (descriptors
//! exhausted) that never end the loop. Idle or slow clients, however many,
//! cannot starve `/healthz`, the API, or the docks of descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

/// Serve `app` on `listener` until `shutdown`; in-flight requests finish
/// (or are cut after `grace`).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: CancellationToken) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_timeout));
    // Never more connections than a quarter of the descriptors: the docks,
    // the index and the media workers keep the rest.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    let cap = limits.max_connections.min((nofile / 4).max(16) as usize).max(1);
    if cap < limits.max_connections {
        tracing::info!(cap, configured = limits.max_connections, nofile, "connections capped by the open-files limit");
    }
    let slots = Arc::new(Semaphore::new(cap));
    let conns = TaskTracker::new();
    // HTTP/1.1 only: the header timeout then runs from the first byte a
    // connection owes (protocol detection for HTTP/2 would wait untimed).
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        // A free slot first: past the cap, connections wait in the backlog
        // (costing no descriptor of ours) until one is released.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and the like: wait a little; never stop serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = tower::service_fn(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let (builder, stop) = (builder.clone(), shutdown.clone());
        conns.spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "connection ended");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                }
            }
            drop(permit);
        });
    }
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(15), conns.wait()).await;
}
