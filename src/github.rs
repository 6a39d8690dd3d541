//! Inference on GitHub Actions: dispatching `.github/workflows/inference.yml`, finding the run
//! it started, waiting for it, and reading the manifest hash it printed in its log.
//!
//! The dispatch API returns no run id, so every dispatch carries a fresh correlation id that
//! the workflow puts in its `run-name`; the run is found by that id in the runs' display titles.
//! The log line `cybergov-manifest-sha256: <hex>` (see [`log`]) is the public anchor: anyone can
//! read it on GitHub, and the orchestrator refuses to vote unless it equals the hash of the
//! manifest in the store.

pub mod client;
pub mod log;
pub mod settings;

pub use client::{GithubClient, GithubError, WorkflowRun};

use crate::records::run_id::RunId;

/// The `workflow_dispatch` inputs the orchestrator sends, in order. `inference.yml` declares
/// exactly these (a test reads the workflow file and compares).
pub const DISPATCH_INPUTS: [&str; 4] = ["network", "referendum", "run", "correlation_id"];

/// What one dispatch asks the workflow to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchInputs {
    /// The run to infer (already chosen by the orchestrator).
    pub id: RunId,
    /// Unique per dispatch; appears in the run's name so the run can be found.
    pub correlation_id: String,
}

impl DispatchInputs {
    /// Inputs for `run` of `network` #`referendum`, with a fresh correlation id.
    pub fn new(id: RunId) -> Self {
        let RunId {
            network,
            referendum,
            run,
        } = id;
        Self {
            id,
            correlation_id: format!(
                "cg-{network}-{referendum}-{run}-{}",
                uuid::Uuid::new_v4().simple()
            ),
        }
    }

    /// Inputs for `run` with a correlation id chosen earlier (a retry of a recorded dispatch).
    pub fn with_correlation_id(id: RunId, correlation_id: String) -> Self {
        Self { id, correlation_id }
    }

    /// The inputs as the dispatch API takes them: an object of strings, keyed by
    /// [`DISPATCH_INPUTS`].
    pub fn to_json(&self) -> serde_json::Value {
        let values = [
            self.id.network.to_string(),
            self.id.referendum.to_string(),
            self.id.run.to_string(),
            self.correlation_id.clone(),
        ];
        serde_json::Value::Object(
            DISPATCH_INPUTS
                .iter()
                .zip(values)
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v)))
                .collect(),
        )
    }
}
