//! The infer stage's runner: where the jurors run for the job graph.
//!
//! - `local`: in this process ([`crate::stages::infer::infer`]).
//! - `github`: the `inference.yml` workflow on GitHub Actions. It is dispatched once per run
//!   with a fresh correlation id, recorded first as `inference-dispatch.json` so that a retry
//!   waits for that workflow run instead of starting a second public one; the run is found by
//!   that id in its run name, polled to completion, and its log is
//!   archived into the store as `inference.log` (GitHub expires logs after ~90 days). The
//!   workflow publishes the run's artefacts and manifest to the store itself; the stage then
//!   **refuses** to succeed unless the manifest hash printed in the log equals the SHA-256 of
//!   the manifest in the store — a mismatch is an error, so no vote is cast on it.
//!
//! `cybergov infer` always runs locally: it is what the workflow itself executes.

pub mod settings;

use crate::github::log::{LogError, parse_manifest_hash};
use crate::github::settings::GithubSettings;
use crate::github::{DispatchInputs, GithubClient, GithubError, WorkflowRun};
use crate::hash::Sha256Hash;
use crate::magi::jury::JuryError;
use crate::manifest::Manifest;
use crate::network::Network;
use crate::records::dispatch::{DISPATCH_SCHEMA, DispatchRecord};
use crate::records::run_id::RunId;
use crate::retry::Transient;
use crate::stages::infer::{InferError, InferOutcome, pick_run};
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectStore, StoreError};

/// Why the infer stage failed under a runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The jury could not be assembled (local runner).
    #[error(transparent)]
    Jury(#[from] JuryError),
    /// The stage failed (local runner, or choosing the run).
    #[error(transparent)]
    Infer(#[from] InferError),
    /// GitHub failed.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// The workflow run did not succeed.
    #[error("inference run {url} ended with conclusion {conclusion}")]
    RunFailed {
        /// The run's page.
        url: String,
        /// Its conclusion.
        conclusion: String,
    },
    /// The log does not name one manifest hash.
    #[error("inference log of run {run_id}: {source}")]
    Log {
        /// The run.
        run_id: String,
        /// Why.
        #[source]
        source: LogError,
    },
    /// The workflow finished but the store has no manifest for the run.
    #[error("the inference workflow finished, but {key} is not in the store; did it publish?")]
    NoManifest {
        /// The manifest's key.
        key: String,
    },
    /// The hash the run printed is not the hash of the stored manifest: never vote on it.
    #[error(
        "the inference log prints manifest hash {logged} but {key} in the store hashes to {stored}; refusing to continue (no vote)"
    )]
    LogHashMismatch {
        /// The manifest's key.
        key: String,
        /// What the log prints.
        logged: Sha256Hash,
        /// What the store holds.
        stored: Sha256Hash,
    },
    /// A stored record (the manifest, the dispatch record) is not valid.
    #[error("{key}: {message}")]
    Malformed {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The dispatch of this run: the one an earlier attempt recorded, with its workflow run when
/// GitHub lists it (then it is waited for, not dispatched again), or a new one, recorded
/// before anything is sent. An earlier dispatch that GitHub never shows within the find
/// timeout was lost (a crash before the request): it is sent again under the same id.
async fn recorded_dispatch(
    store: &dyn ObjectStore,
    client: &GithubClient,
    settings: &GithubSettings,
    id: RunId,
) -> Result<(DispatchInputs, Option<WorkflowRun>), RunnerError> {
    let key = id.layout().key(&Artefact::InferenceDispatch);
    match store.get(&key).await {
        Ok(bytes) => {
            let record =
                DispatchRecord::from_bytes(&bytes).map_err(|e| RunnerError::Malformed {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
            let inputs = DispatchInputs::with_correlation_id(id, record.correlation_id);
            let found = match client.find_run(&inputs.correlation_id).await {
                Ok(found) => Some(found),
                Err(GithubError::RunNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            Ok((inputs, found))
        }
        Err(StoreError::NotFound(_)) => {
            let inputs = DispatchInputs::new(id);
            let record = DispatchRecord {
                schema: DISPATCH_SCHEMA.into(),
                network: id.network,
                referendum: id.referendum,
                run: id.run,
                correlation_id: inputs.correlation_id.clone(),
                workflow: settings.workflow.clone(),
            };
            store.put(&key, &record.to_bytes()).await?;
            Ok((inputs, None))
        }
        Err(e) => Err(e.into()),
    }
}

/// The `github` runner: dispatch (once per run), find, wait, archive the log, check the hash.
pub async fn infer_on_github(
    store: &dyn ObjectStore,
    client: &GithubClient,
    settings: &GithubSettings,
    network: Network,
    referendum: u32,
    run: Option<u32>,
) -> Result<InferOutcome, RunnerError> {
    let run = pick_run(store, network, referendum, run).await?;
    let run_layout = ReferendumLayout::new(network, referendum).run(run);
    let log_key = run_layout.key(&Artefact::InferenceLog);

    // An archived log settles the run: check it again instead of dispatching once more (its
    // key is immutable, and a second workflow run would write a different log).
    let (log, already_done) = match store.get(&log_key).await {
        Ok(bytes) => (String::from_utf8_lossy(&bytes).into_owned(), true),
        Err(StoreError::NotFound(_)) => {
            let (inputs, earlier) = recorded_dispatch(
                store,
                client,
                settings,
                RunId::new(network, referendum, run),
            )
            .await?;
            let started = std::time::Instant::now();
            let found = match earlier {
                Some(found) => {
                    tracing::info!(run_id = found.id, url = %found.html_url, correlation_id = %inputs.correlation_id, "waiting for the inference run an earlier attempt dispatched");
                    found
                }
                None => {
                    client.dispatch(&inputs).await?;
                    tracing::info!(%network, referendum, run, correlation_id = %inputs.correlation_id, workflow = %settings.workflow, "inference workflow dispatched");
                    client.find_run(&inputs.correlation_id).await?
                }
            };
            tracing::info!(run_id = found.id, url = %found.html_url, "inference run found");
            let done = client.wait_for_completion(found, started).await?;
            let log = client.download_log(done.id).await?;
            // Archive first: the log is the evidence, whatever it says.
            store.put(&log_key, log.as_bytes()).await?;
            let conclusion = done.conclusion.clone().unwrap_or_default();
            if conclusion != "success" {
                return Err(RunnerError::RunFailed {
                    url: done.html_url,
                    conclusion,
                });
            }
            (log, false)
        }
        Err(e) => return Err(e.into()),
    };

    let logged = parse_manifest_hash(&log).map_err(|source| RunnerError::Log {
        run_id: log_key.to_string(),
        source,
    })?;
    let manifest_key = run_layout.key(&Artefact::Manifest);
    let bytes = match store.get(&manifest_key).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => {
            return Err(RunnerError::NoManifest {
                key: manifest_key.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let stored = Sha256Hash::of(&bytes);
    if stored != logged {
        return Err(RunnerError::LogHashMismatch {
            key: manifest_key.to_string(),
            logged,
            stored,
        });
    }
    let manifest = Manifest::from_canonical_bytes(&bytes).map_err(|e| RunnerError::Malformed {
        key: manifest_key.to_string(),
        message: e.to_string(),
    })?;
    Ok(InferOutcome {
        run,
        manifest_sha256: stored,
        manifest,
        already_done,
    })
}

impl Transient for RunnerError {
    fn is_transient(&self) -> bool {
        match self {
            RunnerError::Infer(e) => e.is_transient(),
            RunnerError::Github(_) => true,
            // A run that failed, a log without the hash or with another one: the vote must not
            // follow, and trying again would start a second public run.
            _ => false,
        }
    }
}
