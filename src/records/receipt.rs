//! The chain's records: `receipt.json` (proof that the vote is on chain), `submission-<n>.json`
//! (what was about to be sent, written before sending) and `vote.dry-run.json`, with the two
//! chain values they hold, the `AccountVote` cast and the extrinsic's events.
//!
//! Both are immutable artefacts of the run. The submission record holds the signed extrinsic
//! (public once sent; no secret) with its hash, nonce and mortal era, so that a stage that
//! crashed after sending can find the extrinsic on chain instead of sending a second one.

use crate::hash::Sha256Hash;
use crate::manifest::VoteKind;
use crate::network::Network;
use crate::network::TransportKind;
use crate::records::vote::VoteRecord;
use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectStore, StoreError};
use serde::{Deserialize, Serialize};

/// `schema` of receipt.json.
pub const RECEIPT_SCHEMA: &str = "cybergov.receipt/v1";
/// `schema` of submission-<n>.json.
pub const SUBMISSION_SCHEMA: &str = "cybergov.submission/v1";

/// `ConvictionVoting`'s `AccountVote`, as cybergov casts it. Serialized into `receipt.json` as
/// `{"Standard": {"aye", "conviction", "balance"}}` or `{"SplitAbstain": {"aye", "nay",
/// "abstain"}}`, balances as decimal text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountVote {
    /// An aye or nay with conviction.
    Standard {
        /// Aye (true) or nay.
        aye: bool,
        /// Conviction 0–6 (0 = 0.1x, no lock).
        conviction: u8,
        /// Balance in planck.
        #[serde(with = "decimal")]
        balance: u128,
    },
    /// Abstain: cybergov always puts the whole balance on `abstain`, nothing on aye or nay.
    SplitAbstain {
        /// Planck for aye.
        #[serde(with = "decimal")]
        aye: u128,
        /// Planck for nay.
        #[serde(with = "decimal")]
        nay: u128,
        /// Planck for abstain.
        #[serde(with = "decimal")]
        abstain: u128,
    },
}

/// Why a vote record cannot be turned into a vote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VoteInputError {
    /// Conviction outside 0–6.
    #[error("conviction {0} is outside 0–6")]
    Conviction(u8),
    /// Balance not a planck amount.
    #[error("balance {0:?} is not a planck amount (decimal digits)")]
    Balance(String),
    /// Zero balance: ConvictionVoting refuses it and it would say nothing.
    #[error("balance is 0; a vote needs a positive balance")]
    ZeroBalance,
}

impl AccountVote {
    /// The vote a decision asks for: aye/nay as `Standard` with its conviction, abstain as
    /// `SplitAbstain { aye: 0, nay: 0, abstain: balance }`.
    pub fn from_decision(
        kind: VoteKind,
        conviction: u8,
        balance: &str,
    ) -> Result<Self, VoteInputError> {
        if conviction > 6 {
            return Err(VoteInputError::Conviction(conviction));
        }
        let balance: u128 = if !balance.is_empty() && balance.bytes().all(|b| b.is_ascii_digit()) {
            balance
                .parse()
                .map_err(|_| VoteInputError::Balance(balance.to_owned()))?
        } else {
            return Err(VoteInputError::Balance(balance.to_owned()));
        };
        if balance == 0 {
            return Err(VoteInputError::ZeroBalance);
        }
        Ok(match kind {
            VoteKind::Aye | VoteKind::Nay => AccountVote::Standard {
                aye: kind == VoteKind::Aye,
                conviction,
                balance,
            },
            VoteKind::Abstain => AccountVote::SplitAbstain {
                aye: 0,
                nay: 0,
                abstain: balance,
            },
        })
    }

    /// The vote `vote.json` asks for.
    pub fn from_record(record: &VoteRecord) -> Result<Self, VoteInputError> {
        Self::from_decision(record.decision, record.conviction, &record.balance)
    }

    /// Human-readable, for dry runs and logs: `aye, conviction 1, 1000 planck`.
    pub fn describe(&self) -> String {
        match self {
            AccountVote::Standard {
                aye,
                conviction,
                balance,
            } => format!(
                "{}, conviction {conviction}, {balance} planck",
                if *aye { "aye" } else { "nay" }
            ),
            AccountVote::SplitAbstain { aye, nay, abstain } => {
                format!("abstain {abstain} planck (aye {aye}, nay {nay})")
            }
        }
    }
}

/// One event of the vote extrinsic, as recorded in `receipt.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Pallet name as in the metadata (`Proxy`, `System`, …).
    pub pallet: String,
    /// Event name (`ProxyExecuted`, …).
    pub variant: String,
    /// The event's fields as JSON (shape depends on the transport's rendering).
    pub fields: serde_json::Value,
}

impl EventRecord {
    /// Whether this is `pallet.variant`.
    pub fn is(&self, pallet: &str, variant: &str) -> bool {
        self.pallet == pallet && self.variant == variant
    }
}

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
    /// The run this record belongs to.
    pub fn id(&self) -> super::run_id::RunId {
        super::run_id::RunId::new(self.network, self.referendum, self.run)
    }

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
    /// The run this record belongs to.
    pub fn id(&self) -> super::run_id::RunId {
        super::run_id::RunId::new(self.network, self.referendum, self.run)
    }

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

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_become_votes() {
        assert_eq!(
            AccountVote::from_decision(VoteKind::Nay, 3, "1000").unwrap(),
            AccountVote::Standard {
                aye: false,
                conviction: 3,
                balance: 1000
            }
        );
        let abstain = AccountVote::from_decision(VoteKind::Abstain, 0, "5").unwrap();
        assert_eq!(
            serde_json::to_value(abstain).unwrap(),
            serde_json::json!({"SplitAbstain": {"aye": "0", "nay": "0", "abstain": "5"}})
        );
        assert!(AccountVote::from_decision(VoteKind::Aye, 7, "1").is_err());
        assert!(AccountVote::from_decision(VoteKind::Aye, 1, "-1").is_err());
        assert!(AccountVote::from_decision(VoteKind::Aye, 1, "0").is_err());
    }
}
