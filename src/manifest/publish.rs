//! Publishing a manifest: the last write of a run, after every artefact it lists.
//!
//! Order matters for the "no vote without its manifest, no manifest without its artefacts" rule:
//! the listed artefacts must already be in the store with the listed hashes, then the manifest
//! is written (immutably), then `latest.json` is pointed at it.

use super::{Manifest, ManifestError};
use crate::hash::Sha256Hash;
use crate::store::layout::{Artefact, Latest, ReferendumLayout};
use crate::store::{ObjectKey, ObjectStore, StoreError};

/// Why a manifest was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The manifest itself is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A listed artefact is missing or differs from its listing.
    #[error("artefact {name} at {path} does not match the manifest: {problem}")]
    Artefact {
        /// Its name.
        name: String,
        /// Its key.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// `previous` does not match the manifest of the nearest earlier run that has one.
    #[error(
        "manifest of run {run} records previous = {recorded:?}, but the nearest earlier manifest (run {prev:?}) hashes to {actual:?}"
    )]
    BrokenChain {
        /// This run.
        run: u32,
        /// The nearest earlier run with a manifest.
        prev: Option<u32>,
        /// What this manifest records.
        recorded: Option<Sha256Hash>,
        /// Its hash (None: no earlier manifest).
        actual: Option<Sha256Hash>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks every listed artefact, stores the manifest's canonical bytes, and points
/// `latest.json` at it. Returns the manifest's SHA-256 (the on-chain hash). Idempotent.
pub async fn publish(
    store: &dyn ObjectStore,
    manifest: &Manifest,
) -> Result<Sha256Hash, PublishError> {
    let bytes = manifest.to_canonical_bytes()?;
    for a in manifest.artefacts() {
        let key = ObjectKey::new(a.path.as_str())?;
        let problem = match store.get(&key).await {
            Err(StoreError::NotFound(_)) => Some("missing".to_owned()),
            Err(e) => return Err(e.into()),
            Ok(b) if Sha256Hash::of(&b) != a.sha256 || b.len() as u64 != a.bytes => Some(format!(
                "stored sha256 {} ({} bytes), listed {} ({} bytes)",
                Sha256Hash::of(&b),
                b.len(),
                a.sha256,
                a.bytes
            )),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            return Err(PublishError::Artefact {
                name: a.name.clone(),
                path: a.path.clone(),
                problem,
            });
        }
    }
    let layout = ReferendumLayout::new(manifest.network, manifest.referendum);
    let prev = super::previous_manifest(store, layout, manifest.run).await?;
    if prev.map(|(_, h)| h) != manifest.previous {
        return Err(PublishError::BrokenChain {
            run: manifest.run,
            prev: prev.map(|(r, _)| r),
            recorded: manifest.previous,
            actual: prev.map(|(_, h)| h),
        });
    }
    store
        .put(&layout.run(manifest.run).key(&Artefact::Manifest), &bytes)
        .await?;
    let hash = Sha256Hash::of(&bytes);
    point_latest(store, &layout, manifest.run, hash).await?;
    Ok(hash)
}

/// Points `latest.json` at `run` (whose manifest hashes to `hash`) unless a newer run is there
/// already: latest.json never moves backwards, so republishing an older run cannot hide a newer
/// one. Also what a retry calls after a crash between the manifest and the pointer.
pub async fn point_latest(
    store: &dyn ObjectStore,
    layout: &ReferendumLayout,
    run: u32,
    hash: Sha256Hash,
) -> Result<(), StoreError> {
    let latest = layout.read_latest(store).await?;
    if latest.is_some_and(|l| l.run > run || (l.run == run && l.manifest_sha256 == hash)) {
        return Ok(());
    }
    let latest = Latest {
        run,
        manifest_sha256: hash,
    };
    let json = serde_json::to_vec(&latest).expect("latest.json always serializes");
    store.put_pointer(&layout.latest(), &json).await
}
