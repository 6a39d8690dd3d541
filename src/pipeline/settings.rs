//! The `[pipeline]` configuration: which job graph, how workers run, and the hourly dispatch.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[pipeline]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The job graph file; unset: the `jobs/pipeline.toml` compiled into the binary.
    pub graph: Option<PathBuf>,
    /// Stages one worker process runs at the same time.
    pub concurrency: u32,
    /// How long a worker may stay silent before its stage is taken to belong to a dead worker
    /// and runs again elsewhere. A live worker renews its claim every `heartbeat_secs` while the
    /// stage runs, so this can be short whatever the stage's `timeout_secs`.
    pub dead_worker_timeout_secs: u64,
    /// How often a worker renews the claim of the stage it runs, in seconds: at most half of
    /// `dead_worker_timeout_secs`, so one late renewal never loses a live claim.
    pub heartbeat_secs: u64,
    /// Overrides the graph's `scrape` delay (seconds after a referendum appears); unset: the
    /// graph's value (2 days in the bundled graph).
    pub scrape_delay_secs: Option<u64>,
    /// When `cybergov serve` dispatches: a cron expression with seconds (`sec min hour day
    /// month weekday`), UTC.
    pub dispatch_cron: String,
    /// How often a worker looks for delayed stages that have come due (retries, the scrape
    /// delay), in milliseconds. Successors that are due at once never wait for it.
    pub poll_interval_ms: u64,
    /// `dry-run` (build the vote, submit nothing) or `submit`.
    pub vote_mode: VoteMode,
    /// Start a new run when an ongoing referendum's proposal text changed since its last
    /// completed run: proposers edit after submission, and a vote should be on what is there.
    pub revote_on_change: bool,
    /// Least time after a run completed before a change starts another, in seconds: a proposer
    /// editing in small steps does not cost a run and a public vote per edit.
    pub revote_min_interval_secs: u64,
    /// How many new runs dispatch starts, one after another, for an ongoing referendum whose
    /// runs failed (a failure that outlasted every stage retry: an outage of hours, a proposal
    /// fixed by its author). After that the failure stays, visible in `status`, for an operator.
    pub failed_run_retries: u32,
    /// Wait after a failed run before dispatch starts the next, in seconds; doubles with each
    /// further failed run.
    pub failed_run_backoff_secs: u64,
}

/// How the vote stage casts votes (`pipeline.vote_mode`, and `cybergov vote --dry-run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteMode {
    /// Build, sign and estimate the vote; send nothing, write nothing.
    DryRun,
    /// Send it, wait, check, write the receipt.
    Submit,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            graph: None,
            concurrency: 2,
            // A killed worker's stage runs elsewhere within half a minute.
            dead_worker_timeout_secs: 30,
            heartbeat_secs: 10,
            scrape_delay_secs: None,
            dispatch_cron: "0 0 * * * *".into(),
            poll_interval_ms: 1000,
            vote_mode: VoteMode::DryRun,
            revote_on_change: true,
            revote_min_interval_secs: 6 * 3600,
            failed_run_retries: 3,
            failed_run_backoff_secs: 3600,
        }
    }
}

impl PipelineConfig {
    /// Checks what serde cannot; returns `(key, problem)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.concurrency == 0 {
            return Err(("pipeline.concurrency".into(), "must be at least 1".into()));
        }
        if self.dead_worker_timeout_secs == 0 {
            return Err((
                "pipeline.dead_worker_timeout_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs * 2 > self.dead_worker_timeout_secs {
            return Err((
                "pipeline.heartbeat_secs".into(),
                format!(
                    "{} s: must be at least 1 and at most half of pipeline.dead_worker_timeout_secs ({} s)",
                    self.heartbeat_secs, self.dead_worker_timeout_secs
                ),
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err((
                "pipeline.poll_interval_ms".into(),
                "must be at least 1".into(),
            ));
        }
        if let Err(e) = self.dispatch_cron.parse::<cron::Schedule>() {
            return Err((
                "pipeline.dispatch_cron".into(),
                format!("{:?} is not a cron expression: {e}", self.dispatch_cron),
            ));
        }
        Ok(())
    }
}
