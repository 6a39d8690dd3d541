//! The `[runner]` configuration: where the infer stage of the job graph runs the jurors.

use crate::github::settings::GithubSettings;
use serde::{Deserialize, Serialize};

/// `[runner]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    /// `local` (in-process, the default) or `github` (the `inference.yml` workflow).
    pub kind: RunnerKind,
    /// Settings of the `github` runner.
    pub github: GithubSettings,
}

/// Which runner the infer stage uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// Run the jurors in this process.
    Local,
    /// Dispatch the GitHub Actions inference workflow and check the hash it prints.
    Github,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            kind: RunnerKind::Local,
            github: GithubSettings {
                api_url: "https://api.github.com".into(),
                owner: None,
                repo: None,
                workflow: "inference.yml".into(),
                git_ref: "main".into(),
                poll_interval_ms: 15_000,
                find_timeout_secs: 300,
                // With find_timeout_secs, below the infer stage's 1 h timeout: a stage retry
                // must never dispatch a second public run while the first is still awaited.
                run_timeout_secs: 3000,
                rate_limit_max_wait_secs: 900,
                // A run's log zip is a few hundred kB; a listing, tens.
                max_response_bytes: 64 << 20,
                max_log_bytes: 64 << 20,
            },
        }
    }
}

impl RunnerSettings {
    /// Checks what serde cannot; returns `(key, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let g = &self.github;
        if !(g.api_url.starts_with("http://") || g.api_url.starts_with("https://")) {
            return Err((
                "runner.github.api_url".into(),
                format!("{:?} is not an http(s) URL", g.api_url),
            ));
        }
        if self.kind == RunnerKind::Github {
            for (key, v) in [("owner", &g.owner), ("repo", &g.repo)] {
                if v.as_deref().is_none_or(str::is_empty) {
                    return Err((
                        format!("runner.github.{key}"),
                        "required when runner.kind = \"github\"".into(),
                    ));
                }
            }
        }
        if g.workflow.is_empty() || g.workflow.contains('/') {
            return Err((
                "runner.github.workflow".into(),
                format!(
                    "{:?} is not a workflow file name such as inference.yml",
                    g.workflow
                ),
            ));
        }
        if g.poll_interval_ms == 0 || g.find_timeout_secs == 0 || g.run_timeout_secs == 0 {
            return Err((
                "runner.github".into(),
                "poll_interval_ms, find_timeout_secs and run_timeout_secs must be above 0".into(),
            ));
        }
        Ok(())
    }
}
