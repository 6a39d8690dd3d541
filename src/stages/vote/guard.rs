//! Never a second vote: the ledger is not the only guard. Before a vote is signed, the store
//! and the chain are asked whether this referendum was voted already. A lost or replaced
//! ledger makes `cybergov run` start a new run; without this, that run would vote (and
//! comment) again. A deliberate re-vote carries `revote.json` and passes.

use super::VoteError;
use crate::chain::call::AccountVote;
use crate::records::receipt::{Receipt, Submission};
use crate::records::revote::RevoteRecord;
use crate::records::run_id::RunId;
use crate::store::ObjectStore;
use crate::store::layout::{Artefact, RunLayout};

/// Refuses to vote `run` when another run of its referendum has a receipt or a recorded
/// submission, or when the chain already holds the real account's vote on it (`standing`),
/// unless `run` is a deliberate re-vote. A run that sent an extrinsic of its own already
/// (`sent_before`) may find its own vote standing: the chain does not refuse it.
pub(super) async fn check_not_voted_before(
    store: &dyn ObjectStore,
    run: &RunLayout,
    standing: Option<&AccountVote>,
    sent_before: bool,
) -> Result<(), VoteError> {
    let key = run.key(&Artefact::Revote);
    if let Some(bytes) = store.get_optional(&key).await? {
        let record = RevoteRecord::from_bytes(&bytes)
            .map_err(|e| VoteError::BadInput(format!("{key}: {e}")))?;
        tracing::info!(previous_run = record.previous_run, reason = %record.reason, "a deliberate re-vote");
        return Ok(());
    }
    let refuse = |by: String| VoteError::AlreadyVoted {
        id: RunId::from(*run),
        by,
    };
    for earlier in run.referendum.runs(store).await? {
        if earlier == run.run {
            continue;
        }
        let other = run.referendum.run(earlier);
        if Receipt::read(store, &other).await?.is_some() {
            return Err(refuse(format!("run {earlier} has a receipt.json")));
        }
        if !Submission::read_all(store, &other).await?.is_empty() {
            return Err(refuse(format!(
                "run {earlier} recorded a vote extrinsic it sent"
            )));
        }
    }
    if let Some(vote) = standing.filter(|_| !sent_before) {
        return Err(refuse(format!(
            "the chain holds the account's vote {} on it",
            vote.describe()
        )));
    }
    Ok(())
}
