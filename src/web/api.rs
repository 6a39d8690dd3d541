//! The JSON API, `/api/v1`: what the dashboard reads and what other tools may query. The field
//! names are stable and shown in `docs/API.md`; times are RFC 3339 UTC; every artefact carries
//! the SHA-256 the ledger recorded for it, its store key, and its public URL when
//! `public_base_url` is set. Errors are `{"error": {"code", "message"}}` with the status.

use super::WebState;
use crate::network::Network;
use crate::pipeline::ledger::browse::After;
use crate::pipeline::ledger::{RunRow, RunState, StageRow};
use crate::pipeline::report::utc;
use crate::store::layout::ReferendumLayout;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Items in a page when the request does not say.
const DEFAULT_PAGE: u32 = 50;

/// The API's routes.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/api/v1/referenda", get(list))
        .route("/api/v1/referenda/{network}/{id}", get(referendum))
        .route("/api/v1/runs/{network}/{id}/{run}", get(run))
}

/// An error answer: `{"error": {"code": …, "message": …}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with `status`, a stable machine-readable `code` and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure of ours (the database, the store): logged in full, answered without detail.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!("api: {what}: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// `GET /api/v1/referenda`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this network.
    pub network: Option<String>,
    /// Only referenda whose latest run is in this state (`active`, `completed`, `failed`).
    pub state: Option<String>,
    /// Items per page (1 to `server.max_page`; when absent 50, or `server.max_page` if less).
    pub limit: Option<u32>,
    /// The `next` of the page before.
    pub after: Option<String>,
}

/// A page of referenda, each with its latest run.
#[derive(Debug, Serialize)]
pub struct ReferendaPage {
    /// The referenda, by network name and number.
    pub referenda: Vec<ReferendumSummary>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// A referendum in a list.
#[derive(Debug, Serialize)]
pub struct ReferendumSummary {
    /// The network.
    pub network: String,
    /// The referendum.
    pub referendum: i64,
    /// Its latest run in the ledger.
    pub latest_run: RunSummary,
}

/// A run without its stages.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// The run number.
    pub run: i64,
    /// `active`, `completed` or `failed`.
    pub state: String,
    /// The run this one re-does, if it is a rerun.
    pub previous_run: Option<i64>,
    /// The stage a rerun started from.
    pub from_stage: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it completed or failed.
    pub finished_at: Option<String>,
}

impl From<&RunRow> for RunSummary {
    fn from(r: &RunRow) -> Self {
        Self {
            run: r.run,
            state: r.state.clone(),
            previous_run: r.previous_run,
            from_stage: r.from_stage.clone(),
            created_at: utc(r.created_at),
            finished_at: r.finished_at.map(utc),
        }
    }
}

/// One referendum: every run in the ledger with its stages.
#[derive(Debug, Serialize)]
pub struct ReferendumView {
    /// The network.
    pub network: String,
    /// The referendum.
    pub referendum: u32,
    /// The run the store's `latest.json` points at (the published one), if any.
    pub published_run: Option<u32>,
    /// Its runs, oldest first.
    pub runs: Vec<RunView>,
}

/// A run and its stages.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Its stages, in the order they were written.
    pub stages: Vec<StageView>,
}

/// A stage of a run.
#[derive(Debug, Serialize)]
pub struct StageView {
    /// The stage.
    pub stage: String,
    /// `scheduled`, `running`, `retrying`, `completed`, `failed`, …
    pub state: String,
    /// Tries started.
    pub attempts: i64,
    /// When it is (or was) due.
    pub due_at: String,
    /// When its last try started.
    pub started_at: Option<String>,
    /// When it reached a final state.
    pub finished_at: Option<String>,
    /// From the last start to the end, in milliseconds.
    pub duration_ms: Option<i64>,
    /// The last error.
    pub error: Option<String>,
    /// What the stage did ("already done", "reused from run 1", …).
    pub note: Option<String>,
    /// What it wrote.
    pub artefacts: Vec<ArtefactView>,
}

/// An artefact a stage wrote.
#[derive(Debug, Serialize)]
pub struct ArtefactView {
    /// Its name in the run (e.g. `manifest.json`).
    pub name: String,
    /// Its SHA-256, hex, as the ledger recorded it.
    pub sha256: String,
    /// Its key in the store.
    pub key: String,
    /// Where the public can fetch it (`public_base_url` + key), when set.
    pub url: Option<String>,
}

/// The view of stage `s` of a run whose artefacts are under `prefix`.
pub fn stage_view(s: &StageRow, prefix: &str, base: Option<&str>) -> StageView {
    let artefacts = s
        .recorded_outputs()
        .into_iter()
        .map(|(name, sha256)| {
            let key = format!("{prefix}{name}");
            ArtefactView {
                url: base.map(|b| crate::store::public_url(b, &key)),
                sha256,
                name,
                key,
            }
        })
        .collect();
    StageView {
        stage: s.stage.clone(),
        state: s.state.clone(),
        attempts: s.attempts,
        due_at: utc(s.due_at),
        started_at: s.started_at.map(utc),
        finished_at: s.finished_at.map(utc),
        duration_ms: s.started_at.zip(s.finished_at).map(|(a, b)| b - a),
        error: s.error.clone(),
        note: s.note.clone(),
        artefacts,
    }
}

fn run_view(
    r: &RunRow,
    stages: &[StageRow],
    layout: &ReferendumLayout,
    base: Option<&str>,
) -> RunView {
    let prefix = layout.run(u32::try_from(r.run).unwrap_or(0)).prefix();
    RunView {
        run: RunSummary::from(r),
        stages: stages
            .iter()
            .filter(|s| s.run == r.run)
            .map(|s| stage_view(s, &prefix, base))
            .collect(),
    }
}

/// `name` as a network, or a 400 naming it.
pub fn network(name: &str) -> Result<Network, ApiError> {
    name.parse()
        .map_err(|_| ApiError::bad_request(format!("unknown network `{name}`")))
}

async fn list(
    State(s): State<Arc<WebState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ReferendaPage>, ApiError> {
    let net = q.network.as_deref().map(network).transpose()?;
    let states = [RunState::Active, RunState::Completed, RunState::Failed].map(RunState::as_str);
    if let Some(st) = q.state.as_deref()
        && !states.contains(&st)
    {
        return Err(ApiError::bad_request(format!(
            "unknown state `{st}`: one of {}",
            states.join(", ")
        )));
    }
    let limit = q
        .limit
        .unwrap_or_else(|| DEFAULT_PAGE.min(s.settings.max_page));
    if limit == 0 || limit > s.settings.max_page {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: from 1 to {} (server.max_page)",
            s.settings.max_page
        )));
    }
    let after = match q.after.as_deref() {
        None => After {
            network: String::new(),
            referendum: -1,
        },
        Some(a) => {
            let bad = || ApiError::bad_request(format!("after `{a}`: expected NETWORK:REFERENDUM"));
            let (n, r) = a.split_once(':').ok_or_else(bad)?;
            After {
                network: network(n)?.as_str().to_owned(),
                referendum: r.parse::<u32>().map_err(|_| bad())?.into(),
            }
        }
    };
    // One more than asked: whether there is a next page, without a count.
    let mut rows = s
        .ledger
        .latest_runs(net, q.state.as_deref(), &after, limit + 1)
        .await
        .map_err(|e| ApiError::internal("reading the ledger", e))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more
        .then(|| {
            rows.last()
                .map(|r| format!("{}:{}", r.network, r.referendum))
        })
        .flatten();
    Ok(Json(ReferendaPage {
        referenda: rows
            .iter()
            .map(|r| ReferendumSummary {
                network: r.network.clone(),
                referendum: r.referendum,
                latest_run: r.into(),
            })
            .collect(),
        next,
    }))
}

async fn referendum(
    State(s): State<Arc<WebState>>,
    Path((net, id)): Path<(String, u32)>,
) -> Result<Json<ReferendumView>, ApiError> {
    referendum_view(&s, network(&net)?, id).await.map(Json)
}

/// `network` #`id` with all its runs: what `/api/v1/referenda/{network}/{id}` answers and what
/// the dashboard's referendum page shows.
pub async fn referendum_view(
    s: &WebState,
    net: Network,
    id: u32,
) -> Result<ReferendumView, ApiError> {
    let runs = s
        .ledger
        .runs(Some(net), Some(id))
        .await
        .map_err(|e| ApiError::internal("reading the ledger", e))?;
    if runs.is_empty() {
        return Err(ApiError::not_found(format!("{net} #{id} has no runs")));
    }
    let stages = s
        .ledger
        .stages(Some(net), Some(id), None)
        .await
        .map_err(|e| ApiError::internal("reading the ledger", e))?;
    let layout = ReferendumLayout::new(net, id);
    let published_run = layout
        .read_latest(s.store.as_ref())
        .await
        .map_err(|e| ApiError::internal("reading the store", e))?
        .map(|l| l.run);
    let base = s.public_base_url.as_deref();
    Ok(ReferendumView {
        network: net.as_str().to_owned(),
        referendum: id,
        published_run,
        runs: runs
            .iter()
            .map(|r| run_view(r, &stages, &layout, base))
            .collect(),
    })
}

async fn run(
    State(s): State<Arc<WebState>>,
    Path((net, id, run)): Path<(String, u32, u32)>,
) -> Result<Json<RunView>, ApiError> {
    let net = network(&net)?;
    let runs = s
        .ledger
        .runs(Some(net), Some(id))
        .await
        .map_err(|e| ApiError::internal("reading the ledger", e))?;
    let Some(row) = runs.iter().find(|r| r.run == i64::from(run)) else {
        return Err(ApiError::not_found(format!("{net} #{id} has no run {run}")));
    };
    let stages = s
        .ledger
        .stages(Some(net), Some(id), Some(run))
        .await
        .map_err(|e| ApiError::internal("reading the ledger", e))?;
    let layout = ReferendumLayout::new(net, id);
    Ok(Json(run_view(
        row,
        &stages,
        &layout,
        s.public_base_url.as_deref(),
    )))
}
