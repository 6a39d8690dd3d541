//! The `[runner.github]` configuration: which repository's workflow runs the jurors, and how
//! long to wait for it.

use serde::{Deserialize, Serialize};

/// `[runner.github]`. The token is a secret: `CYBERGOV_GITHUB_TOKEN`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// REST API base URL (GitHub Enterprise or a test server can be given here).
    pub api_url: String,
    /// Owner of the repository holding the workflow (required with `kind = "github"`).
    pub owner: Option<String>,
    /// The repository (required with `kind = "github"`).
    pub repo: Option<String>,
    /// File name of the workflow under `.github/workflows/`.
    pub workflow: String,
    /// Git ref the workflow runs on.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Pause between two status polls, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long to look for the dispatched run before giving up, in seconds (the dispatch
    /// API returns no run id; the run is found by the correlation id in its name).
    pub find_timeout_secs: u64,
    /// How long a run may take from dispatch to completion, in seconds.
    pub run_timeout_secs: u64,
    /// Longest wait for a rate limit to reset, in seconds; a later reset is an error.
    pub rate_limit_max_wait_secs: u64,
    /// Largest answer read from the API, in bytes (a listing, or the run's log zip as sent).
    pub max_response_bytes: u64,
    /// Largest run log read out of the zip, in bytes inflated, all files together: a small zip
    /// can inflate to gigabytes.
    pub max_log_bytes: u64,
}
