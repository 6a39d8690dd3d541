//! The scrape stage: Subsquare's referendum detail → `raw_subsquare.json`, byte for byte.

use crate::retry::Transient;
use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectStore, PutOutcome, StoreError};
use crate::subsquare::{SubsquareClient, SubsquareError};

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
    if let Some(bytes) = store.get_optional(&key).await? {
        return Ok((bytes, PutOutcome::AlreadyPresent));
    }
    let bytes = client.referendum(run.referendum.referendum).await?;
    let outcome = store.put(&key, &bytes).await?;
    Ok((bytes, outcome))
}

impl Transient for ScrapeError {
    fn is_transient(&self) -> bool {
        match self {
            ScrapeError::Subsquare(e) => e.is_transient(),
            ScrapeError::Store(e) => e.is_transient(),
        }
    }

    fn is_unreachable(&self) -> bool {
        matches!(self, ScrapeError::Subsquare(e) if e.is_unreachable())
    }
}
