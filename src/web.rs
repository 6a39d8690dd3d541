//! The HTTP surface of `cybergov serve` (issue #14): health checks, a read-only JSON API and the
//! dashboard's pages over the ledger and the store, on one axum router that the metrics and the
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

pub mod actions;
pub mod api;
pub mod arena;
pub mod openai;
pub mod pages;
pub mod settings;

use crate::network::{Network, NetworkSpec};
use crate::pipeline::ledger::Ledger;
use crate::store::SharedStore;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use settings::ServerConfig;
use std::collections::BTreeMap;
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
    /// The configured networks (the dashboard's sections, proposal parsing, explorer and
    /// Subsquare links).
    pub networks: BTreeMap<Network, NetworkSpec>,
    /// The dispatch `/readyz` watches, when this process dispatches.
    pub dispatch: Option<DispatchWatch>,
    /// The operators' actions, when this server offers them (`actions::Operator::new`).
    pub operator: Option<actions::Operator>,
    /// The OpenAI-compatible endpoint, when `server.openai.enabled`.
    pub openai: Option<openai::OpenAiServer>,
    /// The arena's leaderboard and review sessions.
    pub arena: arena::ArenaPages,
}

/// What `/readyz` expects of this process's dispatch: each network dispatched within two of
/// the schedule's intervals, once the process has run that long.
#[derive(Clone, Debug)]
pub struct DispatchWatch {
    /// When the process started (Unix seconds).
    pub since: i64,
    /// The schedule's interval, in seconds.
    pub interval: i64,
    /// The networks dispatched.
    pub networks: Vec<Network>,
}

impl DispatchWatch {
    /// The networks overdue at `now` (Unix seconds), with when each was last dispatched.
    pub fn overdue(&self, now: i64) -> Vec<String> {
        let limit = now - 2 * self.interval;
        if self.since >= limit {
            return Vec::new();
        }
        self.networks
            .iter()
            .filter_map(|n| match crate::metrics::last_dispatch(n.as_str()) {
                Some(at) if at >= limit => None,
                Some(at) => Some(format!(
                    "dispatch: {n} last dispatched {} s ago, more than two intervals ({} s)",
                    now - at,
                    2 * self.interval
                )),
                None => Some(format!(
                    "dispatch: {n} not dispatched in {} s, more than two intervals ({} s)",
                    now - self.since,
                    2 * self.interval
                )),
            })
            .collect()
    }
}

/// The router: `/healthz`, `/readyz`, `/metrics`, `/api/v1/…` and the dashboard.
pub fn router(state: WebState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_s.max(1));
    let max_body = state.settings.max_body_bytes;
    let state = Arc::new(state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api::routes())
        .merge(pages::routes())
        .merge(actions::routes())
        .merge(arena::routes())
        .merge(openai::routes())
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

/// Ready: the ledger's database answers, the store can be listed, and (in a process that
/// dispatches) every network was dispatched within two intervals. 503 names what failed.
async fn readyz(State(s): State<Arc<WebState>>) -> Response {
    let mut failed = Vec::new();
    if let Err(e) = s.ledger.ping().await {
        failed.push(format!("database: {e}"));
    }
    if let Err(e) = s.store.list("proposals/").await {
        failed.push(format!("store: {e}"));
    }
    if let Some(d) = &s.dispatch {
        failed.extend(d.overdue(chrono::Utc::now().timestamp()));
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

/// `/metrics`: the process's metrics (`crate::metrics`) with the ledger's queue as of now, in
/// the OpenMetrics text format Prometheus scrapes.
async fn metrics(State(s): State<Arc<WebState>>) -> Response {
    let now = crate::pipeline::ledger::now_ms();
    let queue = match (
        s.ledger.stages_by_state().await,
        s.ledger.oldest_due(now).await,
    ) {
        (Ok(by_state), Ok(oldest)) => crate::metrics::QueueSnapshot {
            by_state,
            oldest_due_secs: oldest.map_or(0.0, |due| (now - due).max(0) as f64 / 1000.0),
        },
        (Err(e), _) | (_, Err(e)) => {
            return api::ApiError::internal("reading the ledger", e).into_response();
        }
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&queue),
    )
        .into_response()
}

/// The token of an `Authorization: Bearer TOKEN` header, if the request has one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether `given` is the configured secret `want`, compared in constant time; never true when
/// either is missing or empty.
fn is_secret(given: &str, want: Option<&crate::secret::Secret>) -> bool {
    use subtle::ConstantTimeEq;
    let want = want.map_or("", |w| w.expose());
    !given.is_empty() && !want.is_empty() && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
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
    // Without TCP_NODELAY a streamed answer's second small write waits for the client's
    // delayed acknowledgement of the first (about 40 ms per token on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| WebError::Io { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_not_dispatched_for_two_intervals_is_overdue() {
        let now = 1_000_000;
        let watch = DispatchWatch {
            since: now - 10_000,
            interval: 3_600,
            networks: vec![Network::Paseo],
        };
        // Never dispatched, and the process is older than two intervals.
        assert_eq!(watch.overdue(now).len(), 1);
        crate::metrics::dispatched("paseo", now - 8_000);
        let overdue = watch.overdue(now);
        assert!(overdue[0].contains("8000 s ago"), "{overdue:?}");
        crate::metrics::dispatched("paseo", now - 60);
        assert!(watch.overdue(now).is_empty());
        // A young process is not judged yet.
        let young = DispatchWatch {
            since: now - 100,
            networks: vec![Network::Kusama],
            ..watch
        };
        assert!(young.overdue(now).is_empty());
    }
}
