//! What a manifest records about where and from what code it was produced.

use crate::manifest::Provenance;
use serde::{Deserialize, Serialize};

/// Provenance settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceConfig {
    /// Repository URL of the code that runs.
    pub repository: String,
    /// Git commit of the code that runs; unset: the commit cybergov was built from.
    pub commit: Option<String>,
}

/// The commit cybergov was built from (`unknown` outside a git checkout).
pub const BUILD_COMMIT: &str = env!("CYBERGOV_BUILD_COMMIT");

/// Now, UTC, RFC 3339 with whole seconds: the manifest's timestamp format.
pub fn utc_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Provenance for a run that started at `started_at` and ends now. On GitHub Actions the
/// runner and its run id/attempt are taken from the standard `GITHUB_*` variables.
pub fn provenance(config: &ProvenanceConfig, started_at: String) -> Provenance {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let on_actions = var("GITHUB_ACTIONS").as_deref() == Some("true");
    Provenance {
        repository: config.repository.clone(),
        commit: config
            .commit
            .clone()
            .or_else(|| on_actions.then(|| var("GITHUB_SHA")).flatten())
            .unwrap_or_else(|| BUILD_COMMIT.to_owned()),
        cybergov_version: env!("CARGO_PKG_VERSION").into(),
        runner: if on_actions {
            "github-actions"
        } else {
            "local"
        }
        .into(),
        runner_run_id: on_actions.then(|| var("GITHUB_RUN_ID")).flatten(),
        runner_attempt: on_actions
            .then(|| var("GITHUB_RUN_ATTEMPT").and_then(|a| a.parse().ok()))
            .flatten(),
        started_at,
        finished_at: utc_now(),
    }
}
