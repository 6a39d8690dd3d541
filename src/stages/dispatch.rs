//! Dispatch: find the referenda to vote on and start a run for each.
//!
//! For every enabled network: list all referenda on Subsquare, keep those that are ongoing, on
//! an allowed track and at or above `min_referendum_id`, and start a run for each one the ledger
//! has no completed or active run of. Because it looks at every listed referendum rather than at
//! ids above a cursor, an older referendum that is still ongoing, or one skipped by an earlier
//! failure, is picked up too. A referendum whose last run failed gets a new run after
//! `pipeline.failed_run_backoff_secs` (doubling), at most `failed_run_retries` times; after that
//! it is left to an operator (`cybergov rerun`): retrying every hour would change nothing. A
//! referendum whose last run completed as a dry run is dispatched again once votes are
//! submitted (`pipeline.vote_mode = "submit"`): that run was never voted. One whose proposal
//! text changed since its last completed run is dispatched again too
//! (`pipeline.revote_on_change`, at most once per `revote_min_interval_secs`).

use crate::network::{Network, NetworkSpec};
use crate::pipeline::engine::{Engine, EngineError};
use crate::pipeline::ledger::{LedgerError, RunRow, RunState, StageKey};
use crate::pipeline::settings::{PipelineConfig, VoteMode};
use crate::proposal::Proposal;
use crate::records::revote::RevoteRecord;
use crate::store::StoreError;
use crate::store::layout::{Artefact, ReferendumLayout, RunLayout};
use crate::subsquare::{ReferendumSummary, SubsquareClient, SubsquareConfig, SubsquareError};
use std::collections::BTreeMap;

/// What dispatch needs to know: each network's spec (enabled, tracks, lowest id) and how to
/// reach Subsquare.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Every network's spec.
    pub networks: BTreeMap<Network, NetworkSpec>,
    /// The Subsquare client settings.
    pub subsquare: SubsquareConfig,
}

/// Subsquare state names of a referendum that can still be voted on.
pub const ONGOING_STATES: [&str; 5] = [
    "Submitted",
    "Preparing",
    "Queueing",
    "Deciding",
    "Confirming",
];

/// Errors of dispatch.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Subsquare failed.
    #[error("listing {network} referenda: {source}")]
    Subsquare {
        /// The network.
        network: Network,
        /// Why.
        #[source]
        source: SubsquareError,
    },
    /// The ledger or queue failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What one dispatch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    /// Runs started.
    pub started: Vec<StageKey>,
    /// Referenda in scope that already had a completed, active or failed run.
    pub already: Vec<(Network, u32)>,
    /// Referenda listed but out of scope (state, track or id).
    pub out_of_scope: usize,
    /// Networks whose referenda could not be listed this time, with the error. One network's
    /// outage never stops the others' dispatch; the next tick tries it again.
    pub failed: Vec<(Network, String)>,
}

/// Whether `r` is one cybergov votes on, per `spec`.
pub fn in_scope(spec: &crate::network::NetworkSpec, r: &ReferendumSummary) -> bool {
    let ongoing = r
        .state
        .as_deref()
        .is_some_and(|s| ONGOING_STATES.iter().any(|o| o.eq_ignore_ascii_case(s)));
    ongoing && r.track.is_some_and(|t| spec.track_allowed(t)) && r.index >= spec.min_referendum_id
}

/// Dispatches `networks` (default: every enabled network).
pub async fn dispatch(
    engine: &Engine,
    settings: &DispatchSettings,
    networks: Option<&[Network]>,
) -> Result<DispatchReport, DispatchError> {
    let chosen: Vec<Network> = match networks {
        Some(n) => n.to_vec(),
        None => Network::ALL
            .into_iter()
            .filter(|n| settings.networks.get(n).is_some_and(|s| s.enabled))
            .collect(),
    };
    let mut report = DispatchReport::default();
    for network in chosen {
        let Some(spec) = settings.networks.get(&network) else {
            continue;
        };
        let client = match SubsquareClient::new(network, spec, &settings.subsquare) {
            Ok(client) => client,
            Err(source) => {
                let e = DispatchError::Subsquare { network, source };
                report
                    .failed
                    .push((network, crate::secret::redact_urls(&e.to_string())));
                continue;
            }
        };
        let listed = client.referenda().await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(source) => {
                let e = DispatchError::Subsquare { network, source };
                tracing::warn!(%network, error = %crate::secret::redact_urls(&e.to_string()), "dispatch skipped this network this time");
                report.failed.push((network, e.to_string()));
                continue;
            }
        };
        let mut wanted: Vec<u32> = Vec::new();
        for r in &listed {
            if in_scope(spec, r) {
                wanted.push(r.index);
            } else {
                report.out_of_scope += 1;
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        for index in wanted {
            let started = match engine.start_run(network, index, Some(0)).await? {
                Some(key) => Some(key),
                None => run_again(engine, &client, spec, network, index).await?,
            };
            match started {
                Some(key) => {
                    tracing::info!(%network, referendum = index, run = key.run, "dispatched");
                    report.started.push(key);
                }
                None => report.already.push((network, index)),
            }
        }
        crate::metrics::dispatched(network.as_str(), chrono::Utc::now().timestamp());
    }
    Ok(report)
}

/// A store failure while dispatch looks at a run: reported like a ledger failure, since both
/// stop this tick alike.
fn store_error(e: StoreError) -> EngineError {
    LedgerError::Invalid(e.to_string()).into()
}

/// Starts another run of a referendum that already has runs, when one is due: its last run
/// completed as a dry run that votes now submit, or its proposal changed since (a recorded
/// re-vote), or it failed with retries left. The ledger's runs are read once for all three.
async fn run_again(
    engine: &Engine,
    client: &SubsquareClient,
    spec: &NetworkSpec,
    network: Network,
    referendum: u32,
) -> Result<Option<StageKey>, EngineError> {
    let runs = engine.ledger.runs(Some(network), Some(referendum)).await?;
    let Some(last) = runs.last() else {
        return Ok(None);
    };
    let Ok(last_run) = u32::try_from(last.run) else {
        return Ok(None);
    };
    let layout = ReferendumLayout::new(network, referendum).run(last_run);
    if last.state == RunState::Completed.as_str() {
        if was_dry_run(engine, &layout).await? {
            return engine.start_run(network, referendum, None).await;
        }
        if proposal_changed(engine, client, spec, last, &layout).await? {
            return revote(engine, network, referendum, last_run).await;
        }
        return Ok(None);
    }
    if retry_failed(&engine.settings, &runs) {
        tracing::info!(%network, referendum, failed_run = last_run, "starting a new run after a failed one");
        return engine.start_run(network, referendum, None).await;
    }
    Ok(None)
}

/// Whether the completed run `layout` was a dry run (it recorded `vote.dry-run.json` and has
/// no receipt) while votes are now submitted: then the referendum has not been voted.
async fn was_dry_run(engine: &Engine, layout: &RunLayout) -> Result<bool, EngineError> {
    if engine.settings.vote_mode != VoteMode::Submit {
        return Ok(false);
    }
    let store = engine.store.as_ref();
    let dry = store
        .exists(&layout.key(&Artefact::DryRun))
        .await
        .map_err(store_error)?;
    let voted = store
        .exists(&layout.key(&Artefact::Receipt))
        .await
        .map_err(store_error)?;
    Ok(dry && !voted)
}

/// Whether the proposal (title, body, format) differs from what the completed run `last`
/// read, at least `revote_min_interval_secs` after that run: then it is voted again on what is
/// there now. A detail that cannot be fetched or read now changes nothing (the next hour tries
/// again); the scrape stage reports such errors.
async fn proposal_changed(
    engine: &Engine,
    client: &SubsquareClient,
    spec: &NetworkSpec,
    last: &RunRow,
    layout: &RunLayout,
) -> Result<bool, EngineError> {
    let settings = &engine.settings;
    if !settings.revote_on_change {
        return Ok(false);
    }
    let min_interval_ms = i64::try_from(settings.revote_min_interval_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let now = chrono::Utc::now().timestamp_millis();
    if last
        .finished_at
        .is_none_or(|t| now.saturating_sub(t) < min_interval_ms)
    {
        return Ok(false);
    }
    let (network, referendum) = (layout.referendum.network, layout.referendum.referendum);
    let before = match engine.store.get(&layout.key(&Artefact::RawSubsquare)).await {
        Ok(bytes) => Proposal::from_subsquare(network, spec, &bytes).ok(),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(store_error(e)),
    };
    let Some(before) = before else {
        return Ok(false);
    };
    let after = match client.referendum(referendum).await {
        Ok(bytes) => Proposal::from_subsquare(network, spec, &bytes).ok(),
        Err(e) => {
            tracing::warn!(%network, referendum, error = %crate::secret::redact_urls(&e.to_string()), "could not compare the proposal with its last run");
            None
        }
    };
    let Some(after) = after else {
        return Ok(false);
    };
    let changed = (&before.title, &before.content, &before.content_type)
        != (&after.title, &after.content, &after.content_type);
    if changed {
        tracing::info!(%network, referendum, run = layout.run, "the proposal changed since its last run: voting again");
    }
    Ok(changed)
}

/// Whether the last `runs` failed, fewer times than `failed_run_retries` allows, and the
/// backoff since the last failure (doubling per failed run) has passed. Only failures since
/// the last completed run count.
fn retry_failed(settings: &PipelineConfig, runs: &[RunRow]) -> bool {
    let failed = RunState::Failed.as_str();
    let trailing = runs.iter().rev().take_while(|r| r.state == failed).count();
    let Some(last) = runs.last().filter(|_| trailing > 0) else {
        return false;
    };
    // The first run is not a retry: `trailing - 1` retries were made already.
    let retries_made = u32::try_from(trailing - 1).unwrap_or(u32::MAX);
    if retries_made >= settings.failed_run_retries {
        return false;
    }
    let backoff_ms = settings
        .failed_run_backoff_secs
        .saturating_mul(1000)
        .saturating_mul(1u64 << retries_made.min(16));
    let now = chrono::Utc::now().timestamp_millis();
    last.finished_at
        .is_some_and(|t| now.saturating_sub(t) >= i64::try_from(backoff_ms).unwrap_or(i64::MAX))
}

/// Starts the next run as a deliberate re-vote after run `previous`, recording why
/// (`revote.json`), so that the vote stage lets it vote again.
async fn revote(
    engine: &Engine,
    network: Network,
    referendum: u32,
    previous: u32,
) -> Result<Option<StageKey>, EngineError> {
    let Some(key) = engine.start_run(network, referendum, None).await? else {
        return Ok(None);
    };
    let record = RevoteRecord::new(
        key.run_id(),
        previous,
        format!("the proposal changed since run {previous}"),
    );
    let layout = ReferendumLayout::new(network, referendum).run(key.run);
    engine
        .store
        .put(&layout.key(&Artefact::Revote), &record.to_bytes())
        .await
        .map_err(store_error)?;
    Ok(Some(key))
}
