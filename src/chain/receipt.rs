//! `receipt.json` (proof that the vote is on chain) and `submission-<n>.json` (what was about
//! to be sent, written before sending).
//!
//! Both are immutable artefacts of the run. The submission record holds the signed extrinsic
//! (public once sent; no secret) with its hash, nonce and mortal era, so that a stage that
//! crashed after sending can find the extrinsic on chain instead of sending a second one.

use super::call::AccountVote;
use super::outcome::EventRecord;
use crate::hash::Sha256Hash;
use crate::network::Network;
use crate::network::TransportKind;
use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectStore, StoreError};
use serde::{Deserialize, Serialize};

/// `schema` of receipt.json.
pub const RECEIPT_SCHEMA: &str = "cybergov.receipt/v1";
/// `schema` of submission-<n>.json.
pub const SUBMISSION_SCHEMA: &str = "cybergov.submission/v1";

/// `receipt.json`: the vote extrinsic as included, with its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`RECEIPT_SCHEMA`].
    pub schema: String,
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run.
    pub run: u32,
    /// SHA-256 of the run's manifest.json.
    pub manifest_sha256: Sha256Hash,
    /// The remark text (see [`super::remark`]).
    pub remark: String,
    /// SS58 address of the proxy that signed.
    pub signer: String,
    /// SS58 address of the account voted for.
    pub real: String,
    /// `force_proxy_type` used, if any.
    pub proxy_type: Option<String>,
    /// The vote cast.
    pub account_vote: AccountVote,
    /// How it was sent.
    pub transport: TransportKind,
    /// `0x` hash of the extrinsic.
    pub extrinsic_hash: String,
    /// Block it was included in.
    pub block_number: u64,
    /// `0x` hash of that block.
    pub block_hash: String,
    /// Index of the extrinsic in the block.
    pub extrinsic_index: u32,
    /// Whether the block was finalized when the receipt was written.
    pub finalized: bool,
    /// The extrinsic's events.
    pub events: Vec<EventRecord>,
}

/// Why a receipt or submission record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object is not valid JSON of its schema.
    #[error("{key} is malformed: {message}")]
    Malformed {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &dyn ObjectStore,
    run: &RunLayout,
    artefact: &Artefact,
) -> Result<Option<T>, ReceiptError> {
    let key = run.key(artefact);
    let Some(bytes) = store.get_optional(&key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ReceiptError::Malformed {
            key: key.to_string(),
            message: e.to_string(),
        })
}

impl Receipt {
    /// The stored bytes: pretty JSON and a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::records::pretty_json(self)
    }

    /// The run's receipt, if it has one.
    pub async fn read(
        store: &dyn ObjectStore,
        run: &RunLayout,
    ) -> Result<Option<Self>, ReceiptError> {
        read_json(store, run, &Artefact::Receipt).await
    }
}

/// `submission-<n>.json`: one signed vote extrinsic, recorded before it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// [`SUBMISSION_SCHEMA`].
    pub schema: String,
    /// Attempt number, from 1; a new attempt is only made once the previous one's era expired
    /// without it being included.
    pub attempt: u32,
    /// SHA-256 of the run's manifest.json.
    pub manifest_sha256: Sha256Hash,
    /// The remark.
    pub remark: String,
    /// SS58 address of the signer.
    pub signer: String,
    /// How it is sent.
    pub transport: TransportKind,
    /// `0x` hash of the extrinsic.
    pub extrinsic_hash: String,
    /// `0x` encoded extrinsic: re-sending these exact bytes can never vote twice.
    pub extrinsic: String,
    /// The nonce it carries.
    pub nonce: u64,
    /// The block its mortal era starts at.
    pub era_start: u64,
    /// The last block it may be included in.
    pub era_end: u64,
}

impl Submission {
    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::records::pretty_json(self)
    }

    /// Every submission record of the run, by attempt.
    pub async fn read_all(
        store: &dyn ObjectStore,
        run: &RunLayout,
    ) -> Result<Vec<Self>, ReceiptError> {
        let mut out = Vec::new();
        for attempt in 1.. {
            match read_json::<Self>(store, run, &Artefact::Submission(attempt)).await? {
                Some(s) => out.push(s),
                None => break,
            }
        }
        Ok(out)
    }
}

/// `schema` of vote.dry-run.json.
pub const DRY_RUN_SCHEMA: &str = "cybergov.dry-run/v1";

/// `vote.dry-run.json`: this run's vote stage ran as a dry run and sent nothing. It makes the
/// mode a run ran in part of the run, so that a dry run is never mistaken for a vote (the
/// comment stage posts nothing without a receipt) and is voted for real once the mode is
/// `submit` (dispatch starts a new run). Only what is the same on every dry run of the run:
/// no nonce, era or signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunRecord {
    /// [`DRY_RUN_SCHEMA`].
    pub schema: String,
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run.
    pub run: u32,
    /// SHA-256 of the run's manifest.json.
    pub manifest_sha256: Sha256Hash,
    /// The remark a vote would carry.
    pub remark: String,
    /// SS58 address of the account that would be voted for.
    pub real: String,
    /// The vote that would be cast.
    pub account_vote: AccountVote,
}

impl DryRunRecord {
    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::records::pretty_json(self)
    }

    /// The run's dry-run record, if its vote stage ran as a dry run.
    pub async fn read(
        store: &dyn ObjectStore,
        run: &RunLayout,
    ) -> Result<Option<Self>, ReceiptError> {
        read_json(store, run, &Artefact::DryRun).await
    }
}
