//! The comment stage: render the rationale, sign it per SIMA, post it once, record it.
//!
//! Idempotency, because there is no idempotency key at Subsquare (docs/DESIGN.md §6):
//! 1. `comment.json` exists in the run → done, nothing is sent.
//! 2. A comment by our proxy or real account that contains the manifest hash exists on
//!    Subsquare → record it as skipped (this covers a crash between the POST and writing
//!    `comment.json`) and send nothing.
//! 3. Otherwise post once, then write `comment.json`.

pub mod render;

use crate::account::AccountId;
use crate::hash::Sha256Hash;
use crate::manifest::Manifest;
use crate::network::NetworkSpec;
use crate::proposal::Proposal;
pub use crate::records::comment::CommentRecord;
use crate::records::juror::JurorRecord;
use crate::records::receipt::{Receipt, ReceiptError};
use crate::records::run_id::RunId;
use crate::records::vote::VoteRecord;
use crate::retry::Transient;
use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectKey, ObjectStore, StoreError};
use crate::subsquare::SubsquareClient;
use crate::subsquare::SubsquareError;
use crate::subsquare::sima::{self, CommentEntity};
use render::{CommentContext, CommentLinks, PreviousRun};
use serde::Deserialize;
use serde_json::Value;
use subxt_signer::sr25519::Keypair;

/// What the stage did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentOutcome {
    /// comment.json already existed; nothing was sent.
    AlreadyRecorded(CommentRecord),
    /// A comment of ours with this manifest hash was found on Subsquare; recorded, not posted.
    FoundExisting(CommentRecord),
    /// Posted and recorded.
    Posted(CommentRecord),
    /// The run has no receipt (a dry run, or not voted): the comment was rendered and kept as
    /// `comment.preview.md` under this key, and nothing was posted. A public comment saying
    /// "cybergov votes AYE" without a vote behind it would be a false claim.
    Previewed(String),
}

impl CommentOutcome {
    /// The record, unless nothing was posted or found (a preview).
    pub fn record(&self) -> Option<&CommentRecord> {
        match self {
            CommentOutcome::AlreadyRecorded(r)
            | CommentOutcome::FoundExisting(r)
            | CommentOutcome::Posted(r) => Some(r),
            CommentOutcome::Previewed(_) => None,
        }
    }
}

/// Errors of the comment stage.
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    /// An input artefact is missing.
    #[error("cannot comment on this run: {key} is missing ({why})")]
    MissingInput {
        /// The missing key.
        key: String,
        /// What it is needed for.
        why: &'static str,
    },
    /// An input artefact cannot be read.
    #[error("cannot read {key}: {message}")]
    BadInput {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Subsquare failed.
    #[error(transparent)]
    Subsquare(#[from] SubsquareError),
    /// This worker lost its claim on the stage; nothing was posted.
    #[error(transparent)]
    ClaimLost(#[from] crate::pipeline::claim::ClaimLost),
}

/// What the stage needs besides the store and the client.
#[derive(Debug)]
pub struct CommentJob<'a> {
    /// The run to comment on.
    pub run: RunLayout,
    /// Its network's settings.
    pub spec: &'a NetworkSpec,
    /// The proxy's key (signs the comment).
    pub proxy: &'a Keypair,
    /// The proxied (real) account, if the proxy acts for one.
    pub real: Option<AccountId>,
    /// Public base URL of the store, for links.
    pub public_base_url: Option<&'a str>,
    /// The entity's timestamp, in milliseconds since the epoch.
    pub timestamp_ms: u64,
}

async fn get_required(
    store: &dyn ObjectStore,
    key: ObjectKey,
    why: &'static str,
) -> Result<Vec<u8>, CommentError> {
    match store.get(&key).await {
        Ok(b) => Ok(b),
        Err(StoreError::NotFound(_)) => Err(CommentError::MissingInput {
            key: key.to_string(),
            why,
        }),
        Err(e) => Err(e.into()),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(key: &ObjectKey, bytes: &[u8]) -> Result<T, CommentError> {
    serde_json::from_slice(bytes).map_err(|e| CommentError::BadInput {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Reads the run's artefacts and renders the comment HTML; returns it with the manifest hash
/// and the referendum's submission block.
pub async fn prepare(
    store: &dyn ObjectStore,
    job: &CommentJob<'_>,
) -> Result<(String, Sha256Hash, u64), CommentError> {
    let run = &job.run;
    let manifest_key = run.key(&Artefact::Manifest);
    let manifest_bytes =
        get_required(store, manifest_key.clone(), "the comment carries its hash").await?;
    let manifest_sha256 = Sha256Hash::of(&manifest_bytes);
    let manifest =
        Manifest::from_canonical_bytes(&manifest_bytes).map_err(|e| CommentError::BadInput {
            key: manifest_key.to_string(),
            message: e.to_string(),
        })?;
    let vote_key = run.key(&Artefact::Vote);
    let vote: VoteRecord = parse(
        &vote_key,
        &get_required(store, vote_key.clone(), "the tally").await?,
    )?;
    let jurors_prefix = format!("{}jurors/", run.prefix());
    let mut jurors = Vec::new();
    for key in store.list(&jurors_prefix).await? {
        jurors.push(parse::<JurorRecord>(&key, &store.get(&key).await?)?);
    }
    if jurors.is_empty() {
        return Err(CommentError::MissingInput {
            key: format!("{jurors_prefix}*.json"),
            why: "the jurors' rationales",
        });
    }
    let raw_key = run.key(&Artefact::RawSubsquare);
    // The submission block comes from raw_subsquare.json read through the one parser of
    // that record, the one the augment stage uses.
    let raw = get_required(store, raw_key.clone(), "the referendum's submission block").await?;
    let proposed_height = Proposal::from_subsquare(run.referendum.network, job.spec, &raw)
        .map_err(|e| CommentError::BadInput {
            key: raw_key.to_string(),
            message: e.to_string(),
        })?
        .proposed_height;
    let public = |key: &ObjectKey| {
        job.public_base_url
            .map(|b| crate::store::public_url(b, key.as_str()))
    };
    let receipt_key = run.key(&Artefact::Receipt);
    let receipt = Receipt::read(store, run).await.map_err(receipt_error)?;
    let extrinsic_hash = receipt.as_ref().map(|r| r.extrinsic_hash.clone());
    let p = &manifest.provenance;
    let inference = match (&p.runner_run_id, p.runner.as_str()) {
        (Some(id), "github-actions") => Some(format!(
            "{}/actions/runs/{id}",
            p.repository.trim_end_matches('/')
        )),
        _ => public(&run.key(&Artefact::InferenceLog)),
    };
    let previous = previous_run(store, run).await?;
    let ctx = CommentContext {
        id: RunId::from(*run),
        manifest_sha256,
        vote,
        jurors,
        links: CommentLinks {
            manifest: public(&manifest_key),
            content: public(&run.key(&Artefact::Content)),
            inference,
            extrinsic_url: receipt.as_ref().and_then(|_| public(&receipt_key)),
            extrinsic_hash,
        },
        previous,
    };
    Ok((
        render::render_comment(&ctx),
        manifest_sha256,
        proposed_height,
    ))
}

/// Runs the comment stage for `job.run` (see the module documentation for idempotency).
pub async fn comment_run(
    store: &dyn ObjectStore,
    client: &SubsquareClient,
    job: &CommentJob<'_>,
) -> Result<CommentOutcome, CommentError> {
    let record_key = job.run.key(&Artefact::Comment);
    if let Some(bytes) = store.get_optional(&record_key).await? {
        return Ok(CommentOutcome::AlreadyRecorded(parse(&record_key, &bytes)?));
    }
    let receipt = Receipt::read(store, &job.run)
        .await
        .map_err(receipt_error)?;
    if receipt.is_none() {
        let (html, _, _) = prepare(store, job).await?;
        let key = job.run.key(&Artefact::CommentPreview);
        match store.put(&key, html.as_bytes()).await {
            // A preview rendered again with other settings (a public base URL) is no claim
            // either: the first one stays.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(CommentOutcome::Previewed(key.to_string()));
    }
    let (html, manifest_sha256, proposed_height) = prepare(store, job).await?;
    let index = job.run.referendum.referendum;
    let proxy_account = sima::account_of(job.proxy);
    let ours: Vec<AccountId> = std::iter::once(proxy_account).chain(job.real).collect();
    let hex = manifest_sha256.to_hex();
    if let Some(found) = client.find_comment(index, &ours, &hex).await? {
        let record = CommentRecord {
            posted: false,
            skipped_reason: Some(format!(
                "a comment by our account already carries manifest {hex} (comment {})",
                found.id.as_deref().unwrap_or("without id")
            )),
            comment_id: found.id,
            manifest_sha256,
            entity: None,
            address: None,
            signature: None,
        };
        write_record(store, &record_key, &record).await?;
        return Ok(CommentOutcome::FoundExisting(record));
    }
    let entity = CommentEntity::referendum_html(
        index,
        proposed_height,
        html,
        job.timestamp_ms,
        job.real.map(|r| job.spec.address(&r)),
    );
    let signed = sima::sign(&entity, job.proxy, job.spec.ss58_prefix);
    crate::pipeline::claim::still_held().await?;
    let response = client.post_comment(index, &signed).await?;
    let comment_id = ["_id", "id", "cid"]
        .iter()
        .find_map(|k| response.get(*k).and_then(Value::as_str).map(str::to_owned))
        .or_else(|| response.as_str().map(str::to_owned));
    let record = CommentRecord {
        posted: true,
        skipped_reason: None,
        comment_id,
        manifest_sha256,
        entity: Some(signed.entity),
        address: Some(signed.address),
        signature: Some(signed.signature),
    };
    write_record(store, &record_key, &record).await?;
    crate::metrics::comment_posted(job.run.referendum.network.as_str());
    Ok(CommentOutcome::Posted(record))
}

/// The nearest earlier run with a manifest, and whether the proposal text (content.md) this run
/// read differs from that run's: a re-vote says why it happened.
async fn previous_run(
    store: &dyn ObjectStore,
    run: &RunLayout,
) -> Result<Option<PreviousRun>, CommentError> {
    let content = |r: &RunLayout| r.key(&Artefact::Content);
    let ours = store.get_optional(&content(run)).await?;
    for earlier in (1..run.run).rev() {
        let other = run.referendum.run(earlier);
        if !store.exists(&other.key(&Artefact::Manifest)).await? {
            continue;
        }
        let theirs = store.get_optional(&content(&other)).await?;
        return Ok(Some(PreviousRun {
            run: earlier,
            text_changed: ours != theirs,
        }));
    }
    Ok(None)
}

fn receipt_error(e: ReceiptError) -> CommentError {
    match e {
        ReceiptError::Store(e) => CommentError::Store(e),
        ReceiptError::Malformed { key, message } => CommentError::BadInput { key, message },
    }
}

async fn write_record(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    record: &CommentRecord,
) -> Result<(), StoreError> {
    store.put(key, &record.to_bytes()).await.map(|_| ())
}

impl Transient for CommentError {
    fn is_transient(&self) -> bool {
        match self {
            CommentError::Store(e) => e.is_transient(),
            CommentError::Subsquare(_) => true,
            _ => false,
        }
    }

    fn is_unreachable(&self) -> bool {
        matches!(self, CommentError::Subsquare(e) if e.is_unreachable())
    }
}
