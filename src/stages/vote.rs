//! TEMPORARY stand-in for the vote stage (issue #5, branch `chain`), with exactly the API the
//! real one has, so that the job graph can be wired before it lands. The lead replaces this file
//! with the real one at merge: submitting is refused, a dry run plans nothing.

use crate::config::{Config, Secrets};
use crate::network::Network;
use crate::store::ObjectStore;

/// How the vote is cast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    /// Build and check the vote, submit nothing.
    DryRun,
    /// Submit it on chain.
    Submit,
}

/// An inclusion receipt (opaque in this stand-in).
#[derive(Clone, Debug)]
pub struct Receipt;

/// A planned vote (opaque in this stand-in).
#[derive(Clone, Debug)]
pub struct VotePlan;

/// What the stage did.
#[derive(Clone, Debug)]
pub enum VoteOutcome {
    /// Submitted now.
    Submitted(Receipt),
    /// Found already cast.
    AlreadyDone(Receipt),
    /// Dry run: planned, not submitted.
    DryRun(VotePlan),
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// The real stage has not been merged.
    #[error("vote stage not merged yet")]
    NotMerged,
}

impl VoteError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// Casts (or plans) the vote of run `run` of `network` #`referendum`.
pub async fn vote_stage(
    _config: &Config,
    _secrets: &Secrets,
    _store: &dyn ObjectStore,
    _network: Network,
    _referendum: u32,
    _run: u32,
    mode: VoteMode,
) -> Result<VoteOutcome, VoteError> {
    match mode {
        VoteMode::DryRun => Ok(VoteOutcome::DryRun(VotePlan)),
        VoteMode::Submit => Err(VoteError::NotMerged),
    }
}
