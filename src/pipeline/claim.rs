//! Whether this worker still holds its claim on the stage it runs, asked right before a side
//! effect (signing a vote, sending it, posting a comment).
//!
//! A claim is a lease that heartbeats renew. A paused process (SIGSTOP, a long GC-like stall, a
//! database outage) can outlive its lease while its stage keeps running; another worker then
//! takes the stage over. Without this check both would vote. The engine runs every handler in
//! a scope that knows how to renew the claim; a stage asks [`still_held`] before each side
//! effect and abandons when the answer is no. Outside the engine (`cybergov vote` by hand)
//! there is no claim and the answer is always yes.

use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;

/// Renews the claim of the stage being run; `false` when this worker no longer holds it.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

tokio::task_local! {
    static CLAIM: Check;
}

/// The claim is gone: another worker may run the stage now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this worker no longer holds its claim on the stage (its lease lapsed; another worker may run it): abandoning it before any side effect"
)]
pub struct ClaimLost;

/// Runs `f` with `check` as the claim of the stage it runs.
pub async fn scope<F: Future>(check: Check, f: F) -> F::Output {
    CLAIM.scope(check, f).await
}

/// Renews the current stage's claim and says whether it is still this worker's.
pub async fn still_held() -> Result<(), ClaimLost> {
    let Ok(check) = CLAIM.try_with(Arc::clone) else {
        return Ok(());
    };
    fault_pause().await;
    if check().await {
        Ok(())
    } else {
        Err(ClaimLost)
    }
}

/// Test-only (`CYBERGOV_FAULT_PAUSE=claim`): the worker says it is about to check its claim and
/// waits two seconds, so that a fault test can stop it (SIGSTOP) right before a side effect,
/// let its lease lapse, and resume it.
async fn fault_pause() {
    if std::env::var(crate::env::FAULT_PAUSE_VAR).as_deref() == Ok("claim") {
        eprintln!("FAULT-PAUSE claim");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
