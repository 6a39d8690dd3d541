//! Subsquare: the referendum texts cybergov reads and the comments it writes (DESIGN.md §6).
//!
//! - [`client`]: HTTP with timeouts, retries (backoff + jitter on 429, 5xx and timeouts) and a
//!   configurable User-Agent; referendum detail and list.
//! - [`comments`]: reading a referendum's comments and posting one.
//! - [`sima`]: the SIMA comment entity, and signing it with the proxy's sr25519 key.

pub mod client;
pub mod comments;
pub mod sima;
pub mod standin;

pub use client::{
    ReferendaPage, ReferendumSummary, SubsquareClient, SubsquareConfig, SubsquareError,
};

use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectStore, PutOutcome, StoreError};

/// Errors of the scrape stage.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Subsquare failed.
    #[error(transparent)]
    Subsquare(#[from] SubsquareError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The scrape stage: fetches referendum `run.referendum` and stores Subsquare's response byte
/// for byte as `raw_subsquare.json` of `run`. Returns the bytes (as stored).
pub async fn scrape(
    client: &SubsquareClient,
    store: &dyn ObjectStore,
    run: &RunLayout,
) -> Result<(Vec<u8>, PutOutcome), ScrapeError> {
    let key = run.key(&Artefact::RawSubsquare);
    // A stage that already ran must not fetch again: the stored bytes are what the jurors read.
    match store.get(&key).await {
        Ok(bytes) => return Ok((bytes, PutOutcome::AlreadyPresent)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let bytes = client.referendum(run.referendum.referendum).await?;
    let outcome = store.put(&key, &bytes).await?;
    Ok((bytes, outcome))
}
