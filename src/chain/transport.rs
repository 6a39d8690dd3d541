//! What the vote stage needs from a chain, whatever carries it (JSON-RPC or Sidecar).

use super::call::AccountVote;
use super::outcome::EventRecord;
use super::tx::TxMaterial;
use crate::account::AccountId;
use async_trait::async_trait;
use subxt::utils::H256;

/// A referendum's state as far as voting is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferendumStatus {
    /// Ongoing on `track`: votes are accepted.
    Ongoing {
        /// The track (the `class` of `ConvictionVoting.VotingFor`).
        track: u16,
        /// The block it was submitted in, as the runtime counts blocks (on Asset Hub that may
        /// be the relay chain's numbering, so a reader checks it against its own head).
        submitted: Option<u64>,
    },
    /// Decided or otherwise closed (`Approved`, `Rejected`, `Cancelled`, `TimedOut`, `Killed`).
    Closed(String),
    /// No such referendum.
    Unknown,
}

/// An extrinsic found in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Included {
    /// The block number.
    pub block_number: u64,
    /// The block hash.
    pub block_hash: H256,
    /// Index in the block.
    pub index: u32,
    /// Its events.
    pub events: Vec<EventRecord>,
}

/// One proxy of an account (`Proxy.Proxies`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyDefinition {
    /// The account that may act for the real one.
    pub delegate: AccountId,
    /// What it may do (`Governance`, `Any`, …).
    pub proxy_type: String,
}

/// Errors of a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The endpoint could not be reached, timed out, or answered with a server error: worth
    /// retrying later.
    #[error("{endpoint}: {message}")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The chain (or Sidecar) refused the transaction; `cause` is its explanation.
    #[error("the transaction was rejected: {cause}")]
    Rejected {
        /// Why, as the node reported it.
        cause: String,
    },
    /// The chain answered something cybergov cannot read (a runtime without a pallet it needs,
    /// an unexpected JSON shape).
    #[error("unexpected answer from the chain: {0}")]
    Unexpected(String),
}

impl TransportError {
    /// Whether the rejection says the signer cannot pay.
    pub fn is_payment(&self) -> bool {
        match self {
            TransportError::Rejected { cause } => {
                let c = cause.to_lowercase();
                c.contains("payment")
                    || c.contains("pay some fees")
                    || c.contains("balance too low")
            }
            _ => false,
        }
    }

    /// Whether the rejection says these exact bytes are already known or already used (their
    /// nonce is spent): re-sending a recorded extrinsic then is harmless.
    pub fn is_already_known(&self) -> bool {
        match self {
            TransportError::Rejected { cause } => {
                let c = cause.to_lowercase();
                c.contains("already imported")
                    || c.contains("alreadyimported")
                    || c.contains("stale")
                    || c.contains("temporarily banned")
                    || c.contains("priority is too low")
            }
            _ => false,
        }
    }
}

impl TransportError {
    /// Whether the rejection says the extrinsic's nonce is already spent in the chain's state
    /// (`Stale`, "outdated"). Then it is in a block already, or it can never be: another
    /// transaction of the same account took its nonce (two votes signed at once).
    pub fn is_stale(&self) -> bool {
        match self {
            TransportError::Rejected { cause } => {
                let c = cause.to_lowercase();
                c.contains("stale") || c.contains("outdated")
            }
            _ => false,
        }
    }
}

/// A connection to the chain that hosts governance.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The best block (or the finalized one): number and hash.
    async fn head(&self, finalized: bool) -> Result<(u64, H256), TransportError>;

    /// The canonical hash of block `number`, if it exists.
    async fn block_hash(&self, number: u64) -> Result<Option<H256>, TransportError>;

    /// Looks for the extrinsic with `hash` in block `number`.
    async fn find_in_block(
        &self,
        number: u64,
        hash: H256,
    ) -> Result<Option<Included>, TransportError>;

    /// The extrinsics of block `number` whose bytes contain `needle` (a remark's text): each
    /// one's hash, where it is and its events. This is how a verifier finds a vote without
    /// being told where it is; all of them, since anyone may copy a public remark.
    async fn find_carrying(
        &self,
        number: u64,
        needle: &[u8],
    ) -> Result<Vec<(H256, Included)>, TransportError>;

    /// `Referenda.ReferendumInfoFor(referendum)`.
    async fn referendum(&self, referendum: u32) -> Result<ReferendumStatus, TransportError>;

    /// The vote `real` has standing on `referendum` (class `track`), from
    /// `ConvictionVoting.VotingFor(real, track)`; `None` when there is none.
    async fn current_vote(
        &self,
        real: &AccountId,
        track: u16,
        referendum: u32,
    ) -> Result<Option<AccountVote>, TransportError>;

    /// The account `real` delegates its votes on `track` to, from
    /// `ConvictionVoting.VotingFor(real, track)`; `None` when it does not delegate there. A
    /// delegating account cannot vote on that track: the chain refuses its votes.
    async fn delegate_of(
        &self,
        real: &AccountId,
        track: u16,
    ) -> Result<Option<AccountId>, TransportError>;

    /// The proxies of `real` (`Proxy.Proxies(real)`), at the best block.
    async fn proxies(&self, real: &AccountId) -> Result<Vec<ProxyDefinition>, TransportError>;

    /// Metadata, versions and the best block, for signing.
    async fn material(&self) -> Result<TxMaterial, TransportError>;

    /// The next nonce of `account` (counting the transaction pool where the transport can).
    async fn nonce(&self, account: &AccountId) -> Result<u64, TransportError>;

    /// Free balance of `account`, in planck.
    async fn free_balance(&self, account: &AccountId) -> Result<u128, TransportError>;

    /// The fee the chain estimates for `tx` (planck), if it can say.
    async fn fee_estimate(&self, tx: &[u8]) -> Result<Option<u128>, TransportError>;

    /// Sends `tx`; returns its hash as the node computed it.
    async fn submit(&self, tx: &[u8]) -> Result<H256, TransportError>;
}
