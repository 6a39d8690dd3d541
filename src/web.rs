//! The HTTP surface of `cybergov serve` (issue #14): health checks and a read-only JSON API
//! over the ledger and the store, on one axum router that the dashboard, the metrics and the
//! OpenAI-compatible endpoint extend.
//!
//! Why it is shaped so:
//! - **Loopback unless told otherwise.** `server.bind` defaults to `127.0.0.1:8080`; any other
//!   address needs `server.allow_public = true`, so that exposing the service is a decision
//!   written in the configuration, not an accident of a default.
//! - **Bounded.** Request bodies are capped (`server.max_body_bytes`), every request has a time
//!   limit (`server.request_timeout_s`, answered 503), pages are capped (`server.max_page`),
//!   and shutdown is graceful: a SIGTERM lets requests in flight finish.
//! - **Read from the ledger page by page** (`Ledger::latest_runs`, keyset paging on the runs'
//!   primary key), never a full scan per request.

pub mod api;
pub mod settings;

use crate::pipeline::ledger::Ledger;
use crate::store::SharedStore;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use settings::ServerConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `server.bind` is not a loopback address and `server.allow_public` is not set.
    #[error(
        "server.bind {0} is not a loopback address: set server.allow_public = true to serve on it"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound or served.
    #[error("server.bind {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
pub struct WebState {
    /// The ledger.
    pub ledger: Ledger,
    /// The artefact store.
    pub store: SharedStore,
    /// Where the store's keys are served publicly (artefact links), if anywhere.
    pub public_base_url: Option<String>,
    /// The server's settings.
    pub settings: ServerConfig,
}

/// The router: `/healthz`, `/readyz` and `/api/v1/…`.
pub fn router(state: WebState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_s.max(1));
    let max_body = state.settings.max_body_bytes;
    let state = Arc::new(state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            time_limited(timeout, req, next)
        }))
        .with_state(state)
}

/// A request that outlives its limit is answered 503, in the API's error shape.
async fn time_limited(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => api::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the ledger's database answers and the store can be listed. 503 names what failed.
async fn readyz(State(s): State<Arc<WebState>>) -> Response {
    let mut failed = Vec::new();
    if let Err(e) = s.ledger.ping().await {
        failed.push(format!("database: {e}"));
    }
    if let Err(e) = s.store.list("proposals/").await {
        failed.push(format!("store: {e}"));
    }
    if failed.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", failed.join("\n")),
        )
            .into_response()
    }
}

/// Binds `settings.bind` (refusing a non-loopback address unless `allow_public`), returning
/// the listener and the address it got (port 0 picks a free one).
pub async fn bind(
    settings: &ServerConfig,
) -> Result<(tokio::net::TcpListener, SocketAddr), WebError> {
    let addr = settings.bind;
    if !addr.ip().is_loopback() && !settings.allow_public {
        return Err(WebError::NotLoopback(addr));
    }
    let io = |source| WebError::Io { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    let local = listener.local_addr().map_err(io)?;
    Ok((listener, local))
}

/// Serves `state` on `listener` until `shutdown` completes, then lets requests in flight end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let addr = state.settings.bind;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| WebError::Io { addr, source })
}
