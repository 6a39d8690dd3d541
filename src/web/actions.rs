//! The operators' actions on the dashboard: rerun a referendum (run + 1, as `cybergov rerun`)
//! and retry a failed stage of its latest run.
//!
//! Why they are guarded so:
//! - **Only with a token, only where work runs.** The actions exist when `CYBERGOV_ADMIN_TOKEN`
//!   is set and the server runs beside the job graph (not `--web-only`); otherwise no form is
//!   shown and every action answers 404. The read-only pages need no login.
//! - **The token goes with each request** (a password field of the form, or
//!   `Authorization: Bearer`), never in a cookie, and is compared in constant time. A forged
//!   cross-site form cannot carry what the attacker does not know, and a request whose
//!   `Origin` is not this server or that the browser marks `Sec-Fetch-Site: cross-site` is
//!   refused before the token is even looked at: a CSRF-safe POST without session state.

use super::WebState;
use super::pages::PageError;
use crate::pipeline::engine::Engine;
use crate::pipeline::ledger::StageKey;
use crate::pipeline::rerun::start_rerun;
use crate::secret::Secrets;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;
use std::sync::Arc;

/// What the actions need: the job graph to start work in, and the secrets holding the token.
#[derive(Clone)]
pub struct Operator {
    /// The job graph of this `serve`.
    pub engine: Arc<Engine>,
    /// The secrets; the actions exist only when `admin_token` is set.
    pub secrets: Arc<Secrets>,
}

impl Operator {
    /// The operator of `engine` when `secrets` hold an admin token.
    pub fn new(engine: Arc<Engine>, secrets: Arc<Secrets>) -> Option<Self> {
        secrets
            .admin_token
            .is_some()
            .then_some(Self { engine, secrets })
    }
}

/// An action's form: the operator's token.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// The token, as typed.
    #[serde(default)]
    pub token: String,
}

/// The actions' routes.
pub fn routes() -> axum::Router<Arc<WebState>> {
    axum::Router::new()
        .route("/referenda/{network}/{id}/rerun", post(rerun))
        .route(
            "/referenda/{network}/{id}/runs/{run}/stages/{stage}/retry",
            post(retry),
        )
}

/// Whether the request comes from a page of this server (or from no page at all, like curl).
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if get("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match (get("origin"), get(header::HOST.as_str())) {
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or(origin.strip_prefix("https://"))
                == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The operator, if the request may act: same origin, and the right token (form or bearer).
fn authorize<'a>(
    s: &'a WebState,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<&'a Operator, PageError> {
    let Some(op) = &s.operator else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "this server offers no operator actions (CYBERGOV_ADMIN_TOKEN is not set, or it is a --web-only mirror)",
        ));
    };
    if !same_origin(headers) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "refused: the request comes from another site",
        ));
    }
    let given = super::bearer(headers).unwrap_or(&form.token);
    if !super::is_secret(given, op.secrets.admin_token.as_ref()) {
        tracing::warn!("dashboard: an operator action was refused (missing or wrong token)");
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "refused: the operator token is missing or wrong",
        ));
    }
    Ok(op)
}

/// `POST /referenda/{network}/{id}/rerun`: run + 1 from the start, then back to its page.
async fn rerun(
    State(s): State<Arc<WebState>>,
    Path((net, id)): Path<(String, u32)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let op = authorize(&s, &headers, &form)?;
    let net = super::api::network(&net)?;
    let rerun = start_rerun(&op.engine, net, id, None)
        .await
        .map_err(|e| PageError::new(StatusCode::CONFLICT, format!("rerun refused: {e}")))?;
    tracing::info!(%net, referendum = id, run = rerun.start.run, "an operator started a rerun from the dashboard");
    Ok(Redirect::to(&format!("/referenda/{net}/{id}?run={}", rerun.start.run)).into_response())
}

/// `POST /referenda/{network}/{id}/runs/{run}/stages/{stage}/retry`: the failed stage of the
/// latest run due again, then back to the page.
async fn retry(
    State(s): State<Arc<WebState>>,
    Path((net, id, run, stage)): Path<(String, u32, u32, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let op = authorize(&s, &headers, &form)?;
    let net = super::api::network(&net)?;
    if op.engine.graph.stage(&stage).is_none() {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!("no stage `{stage}` in the job graph"),
        ));
    }
    let key = StageKey {
        network: net,
        referendum: id,
        run,
        stage,
    };
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!("dashboard: retrying {key}: {e}");
        PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "the ledger failed")
    };
    let retried = op
        .engine
        .ledger
        .retry_failed(&key, "retried by an operator from the dashboard")
        .await
        .map_err(|e| internal(&e))?;
    if !retried {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            format!("{key} is not a failed stage of the latest run"),
        ));
    }
    op.engine
        .schedule_now(&key)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(%key, "an operator retried a failed stage from the dashboard");
    Ok(Redirect::to(&format!("/referenda/{net}/{id}?run={run}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_requests_from_this_server_or_no_page_may_act() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
    }
}
