//! `/`: every network's referenda, newest first, each with its latest run and every stage's
//! state; failed runs first, with their error text. A page of one network is
//! `/?network=NAME&before=N` (the referenda numbered below N).

use super::{PageError, human_duration, render};
use crate::network::Network;
use crate::pipeline::ledger::browse::After;
use crate::pipeline::ledger::{RunRow, RunState, StageRow, StageState, now_ms};
use crate::pipeline::report::utc;
use crate::web::WebState;
use crate::web::api::{ApiError, network};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Referenda per network on the overview.
const PER_NETWORK: u32 = 50;
/// Failed runs listed at the top.
const FAILED_SHOWN: u32 = 20;

/// The overview's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// Only this network.
    pub network: Option<String>,
    /// Only referenda numbered below this.
    pub before: Option<u32>,
}

#[derive(Debug, Serialize)]
struct OverviewPage {
    generated_at: String,
    failed: Vec<RunLine>,
    networks: Vec<NetworkSection>,
}

#[derive(Debug, Serialize)]
struct NetworkSection {
    name: String,
    runs: Vec<RunLine>,
    /// The link to the next page, when there is one.
    more: Option<String>,
}

/// A referendum's latest run on one line.
#[derive(Debug, Serialize)]
struct RunLine {
    network: String,
    referendum: i64,
    href: String,
    run: i64,
    state: String,
    created_at: String,
    stages: Vec<StageChip>,
    /// The first error among its stages.
    error: Option<String>,
    /// When its next stage is due, if one waits.
    next_due: Option<String>,
}

/// A stage's state as a chip: `scrape: waiting`, `infer: completed 2.1 s`, `vote: retrying ×3`.
#[derive(Debug, Serialize)]
struct StageChip {
    stage: String,
    /// The ledger's state (also the chip's CSS class).
    state: String,
    /// What a person reads: the state, or `waiting` for a stage not yet due (the scrape delay).
    label: String,
    attempts: i64,
    duration: Option<String>,
    due_at: String,
    error: Option<String>,
}

fn chip(s: &StageRow, now: i64) -> StageChip {
    let waiting = s.state == StageState::Scheduled.as_str() && s.due_at > now;
    StageChip {
        stage: s.stage.clone(),
        state: s.state.clone(),
        label: if waiting {
            "waiting".into()
        } else {
            s.state.clone()
        },
        attempts: s.attempts,
        duration: s
            .started_at
            .zip(s.finished_at)
            .map(|(a, b)| human_duration(b - a)),
        due_at: utc(s.due_at),
        error: s.error.clone(),
    }
}

fn line(run: &RunRow, stages: &[StageRow], now: i64) -> RunLine {
    let own: Vec<&StageRow> = stages
        .iter()
        .filter(|s| s.network == run.network && s.referendum == run.referendum && s.run == run.run)
        .collect();
    let pending = |s: &&&StageRow| {
        s.state == StageState::Scheduled.as_str() || s.state == StageState::Retrying.as_str()
    };
    RunLine {
        network: run.network.clone(),
        referendum: run.referendum,
        href: format!("/referenda/{}/{}", run.network, run.referendum),
        run: run.run,
        state: run.state.clone(),
        created_at: utc(run.created_at),
        stages: own.iter().map(|s| chip(s, now)).collect(),
        error: own.iter().find_map(|s| s.error.clone()),
        next_due: own.iter().filter(pending).map(|s| s.due_at).min().map(utc),
    }
}

fn internal(e: impl std::fmt::Display) -> PageError {
    ApiError::internal("reading the ledger", e).into()
}

/// `GET /`.
pub async fn page(
    State(s): State<Arc<WebState>>,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let networks: Vec<Network> = match q.network.as_deref() {
        Some(name) => vec![network(name)?],
        None => s.networks.keys().copied().collect(),
    };
    let before = q.before.map_or(i64::MAX, i64::from);
    let mut sections = Vec::new();
    for net in networks {
        let mut runs = s
            .ledger
            .newest_runs(net, before, PER_NETWORK + 1)
            .await
            .map_err(internal)?;
        let more = runs.len() > PER_NETWORK as usize;
        runs.truncate(PER_NETWORK as usize);
        let (Some(high), Some(low)) = (runs.first(), runs.last()) else {
            continue;
        };
        let stages = s
            .ledger
            .stages_between(net, low.referendum, high.referendum)
            .await
            .map_err(internal)?;
        sections.push(NetworkSection {
            name: net.as_str().to_owned(),
            more: more.then(|| format!("/?network={net}&before={}", low.referendum)),
            runs: runs.iter().map(|r| line(r, &stages, now)).collect(),
        });
    }
    let failed_runs = s
        .ledger
        .latest_runs(
            None,
            Some(RunState::Failed.as_str()),
            &After {
                network: String::new(),
                referendum: -1,
            },
            FAILED_SHOWN,
        )
        .await
        .map_err(internal)?;
    let mut failed = Vec::new();
    for r in &failed_runs {
        let net = network(&r.network)?;
        let stages = s
            .ledger
            .stages_between(net, r.referendum, r.referendum)
            .await
            .map_err(internal)?;
        failed.push(line(r, &stages, now));
    }
    Ok(render(
        "overview.html",
        &OverviewPage {
            generated_at: utc(now),
            failed,
            networks: sections,
        },
    ))
}
