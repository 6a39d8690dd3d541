//! The vote stage: a run's manifest and vote.json in, the vote on chain and `receipt.json` out.
//!
//! Never a vote without its manifest (the run must verify first), and never two votes for one
//! manifest:
//!
//! 1. `receipt.json` exists → done.
//! 2. A `submission-<n>.json` exists (a signed extrinsic recorded before it was sent) → look for
//!    that extrinsic in the blocks of its mortal era. Found → check its events, write the
//!    receipt. Era still open → send the same bytes again (same nonce: the chain can include
//!    them at most once) and keep looking. Era over and not found → it can never be included;
//!    only then is a new one signed (attempt n + 1).
//! 3. Otherwise check the referendum is ongoing on an allowed track, read the real account's
//!    standing vote (`ConvictionVoting.VotingFor`), sign, record `submission-<n>.json`, send,
//!    wait, check the events, write `receipt.json`.
//!
//! A rerun (run + 1, a new manifest) votes again on purpose: the new vote replaces the old one
//! on chain and carries the new manifest's remark; each run keeps its own receipt.

mod guard;
mod recover;

use crate::account::AccountId;
use crate::chain::call::{AccountVote, VoteCall, VoteInputError};
use crate::chain::outcome::{self, Failure};
use crate::chain::transport::{Included, ReferendumStatus, TransportError};
use crate::chain::tx::{self, DecodedTx, TxError};
use crate::chain::value::Value;
use crate::chain::{self, Inclusion, remark_text};
use crate::hash::Sha256Hash;
use crate::manifest::Manifest;
use crate::manifest::verify::verify_run;
use crate::network::TransportKind;
use crate::network::{Network, NetworkSpec};
pub use crate::pipeline::settings::VoteMode;
use crate::records::receipt::{
    DRY_RUN_SCHEMA, DryRunRecord, RECEIPT_SCHEMA, Receipt, ReceiptError, SUBMISSION_SCHEMA,
    Submission,
};
use crate::records::run_id::RunId;
use crate::records::vote::VoteRecord;
use crate::secret::Secret;
use crate::store::layout::{Artefact, RunLayout};
use crate::store::{ObjectStore, StoreError};
use crate::subsquare::sima;
use recover::recover;
use std::fmt;
use std::time::Duration;
use subxt::utils::H256;
use subxt_signer::sr25519::Keypair;

/// What the stage did.
// Unboxed on purpose: the job graph matches on `DryRun(VotePlan)`, and one outcome per stage
// run makes the size irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum VoteOutcome {
    /// The vote was sent by this call and is on chain.
    Submitted(Receipt),
    /// The run already had its vote on chain (a receipt, or a recorded submission found in a
    /// block): nothing was sent.
    AlreadyDone(Receipt),
    /// Dry run: what would be sent.
    DryRun(VotePlan),
}

/// A vote as it would be sent (dry run).
#[derive(Clone, Debug)]
pub struct VotePlan {
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// Its track.
    pub track: u16,
    /// The run.
    pub run: u32,
    /// SS58 of the signing proxy.
    pub signer: String,
    /// SS58 of the real account.
    pub real: String,
    /// `force_proxy_type`.
    pub proxy_type: Option<String>,
    /// The vote.
    pub account_vote: AccountVote,
    /// The remark.
    pub remark: String,
    /// The extrinsic decoded back from its bytes.
    pub decoded: DecodedTx,
    /// Its hash.
    pub extrinsic_hash: String,
    /// Its length in bytes.
    pub extrinsic_len: usize,
    /// The nonce it would use.
    pub nonce: u64,
    /// The chain's fee estimate, planck.
    pub fee_estimate: Option<u128>,
    /// The vote the real account already has on this referendum.
    pub current_vote: Option<AccountVote>,
    /// The transport.
    pub transport: TransportKind,
}

impl fmt::Display for VotePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decoded.call;
        writeln!(f, "dry run: nothing was sent")?;
        writeln!(f, "network:      {} (via {})", self.network, self.transport)?;
        writeln!(
            f,
            "referendum:   #{} on track {}",
            self.referendum, self.track
        )?;
        writeln!(f, "run:          {}", self.run)?;
        writeln!(f, "signer:       {} (proxy)", self.signer)?;
        writeln!(f, "real:         {}", self.real)?;
        writeln!(f, "call:         {}([", self.decoded.outer_call)?;
        writeln!(
            f,
            "                Proxy.proxy(real: {}, force_proxy_type: {}, ConvictionVoting.vote(poll_index: {}, {})),",
            d.real,
            d.proxy_type.as_deref().unwrap_or("None"),
            d.referendum,
            d.vote.describe()
        )?;
        writeln!(
            f,
            "                System.remark_with_event({:?}),",
            d.remark
        )?;
        writeln!(f, "              ])")?;
        writeln!(
            f,
            "extrinsic:    {} ({} bytes, nonce {})",
            self.extrinsic_hash, self.extrinsic_len, self.nonce
        )?;
        match self.fee_estimate {
            Some(fee) => writeln!(f, "fee estimate: {fee} planck")?,
            None => writeln!(f, "fee estimate: unavailable")?,
        }
        match &self.current_vote {
            Some(v) => write!(f, "standing vote: {} (would be replaced)", v.describe()),
            None => write!(f, "standing vote: none"),
        }
    }
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// The run has no manifest: no vote without one.
    #[error("{key} is missing: a vote is never cast without its manifest (run the infer stage)")]
    NoManifest {
        /// The manifest's key.
        key: String,
    },
    /// The run does not verify against the store.
    #[error("run {run} does not verify, refusing to vote on it: {failures}")]
    ManifestInvalid {
        /// The run.
        run: u32,
        /// The failed checks.
        failures: String,
    },
    /// vote.json, configuration or a secret is missing or wrong.
    #[error("{0}")]
    BadInput(String),
    /// This worker lost its claim on the stage: another may be voting; nothing was signed.
    #[error(transparent)]
    ClaimLost(#[from] crate::pipeline::claim::ClaimLost),
    /// The endpoint serves another chain than the network's (`genesis_hash`).
    #[error("{0}")]
    WrongChain(String),
    /// The referendum is not open for votes.
    #[error("{network} referendum #{referendum} is not ongoing ({state}); not voting")]
    NotOngoing {
        /// The network.
        network: Network,
        /// The referendum.
        referendum: u32,
        /// What it is instead.
        state: String,
    },
    /// The referendum's track is not configured for voting.
    #[error(
        "{network} referendum #{referendum} is on track {track}, which networks.{network}.allowed_tracks does not include; not voting"
    )]
    TrackNotAllowed {
        /// The network.
        network: Network,
        /// The referendum.
        referendum: u32,
        /// Its track.
        track: u16,
    },
    /// The signer cannot pay the fee.
    #[error(
        "the proxy account {signer} cannot pay for the vote: free balance {free} planck, fee about {fee} planck; fund it and retry"
    )]
    Unfunded {
        /// SS58 of the signer.
        signer: String,
        /// Its free balance.
        free: u128,
        /// The fee estimate (0 when unknown).
        fee: u128,
    },
    /// The chain refused the transaction.
    #[error(
        "{network} referendum #{referendum} was voted already ({by}): run {run} does not vote again; a deliberate re-vote (`cybergov rerun`, or a changed proposal) records revote.json",
        network = id.network,
        referendum = id.referendum,
        run = id.run
    )]
    AlreadyVoted {
        /// This run.
        id: RunId,
        /// What shows the earlier vote.
        by: String,
    },
    #[error("the chain rejected the vote transaction: {cause}")]
    Rejected {
        /// Why.
        cause: String,
    },
    /// Included, but the events say the vote (or the remark) did not happen.
    #[error(
        "the vote failed on chain (extrinsic {extrinsic_hash} in block {block_number}): {failure}"
    )]
    Failed {
        /// What went wrong.
        failure: Failure,
        /// The extrinsic.
        extrinsic_hash: String,
        /// Its block.
        block_number: u64,
    },
    /// Sent, but not seen in a block before the timeout (it may still be included: a retry
    /// looks for it before doing anything else).
    #[error(
        "extrinsic {extrinsic_hash} was sent but not seen in a block yet; retry to keep looking"
    )]
    NotIncluded {
        /// The extrinsic.
        extrinsic_hash: String,
    },
    /// The chain refused the vote as stale: another transaction of the proxy (a vote on another
    /// referendum, signed at the same moment) took its nonce first. These bytes can never be
    /// included; a retry finds their record, confirms they are in no block, and signs anew.
    #[error(
        "extrinsic {extrinsic_hash} arrived after its nonce {nonce} was spent by another transaction of the proxy; retry to sign it anew"
    )]
    NonceSpent {
        /// The extrinsic.
        extrinsic_hash: String,
        /// Its nonce.
        nonce: u64,
    },
    /// The stage stopped right after sending, as asked ([`StageHooks::stop_after_submit`]).
    #[error("stopped after sending extrinsic {extrinsic_hash}, before any receipt")]
    Interrupted {
        /// The extrinsic.
        extrinsic_hash: String,
    },
    /// The chain could not be used.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The extrinsic could not be built.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A receipt or submission record is unreadable.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
}

impl VoteError {
    /// Worth retrying later: connection problems, timeouts, a store that is down. Not: a
    /// closed referendum, a track not allowed, a failed or rejected vote, an unfunded signer,
    /// bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            VoteError::Transport(e) => matches!(e, TransportError::Unavailable { .. }),
            VoteError::NotIncluded { .. }
            | VoteError::Interrupted { .. }
            | VoteError::NonceSpent { .. } => true,
            VoteError::Store(e) => crate::retry::Transient::is_transient(e),
            _ => false,
        }
    }
}

impl From<VoteInputError> for VoteError {
    fn from(e: VoteInputError) -> Self {
        VoteError::BadInput(format!("vote.json: {e}"))
    }
}

/// Hooks for drills and tests; production uses the defaults.
#[derive(Clone, Debug, Default)]
pub struct StageHooks {
    /// Proxy this call instead of the vote (the remark and every check stay the same). Tests
    /// use it to show that a call the proxy type filters is reported as a failed vote.
    pub inner_call: Option<Value>,
    /// Stop right after sending, as a crash would: no waiting, no receipt.
    pub stop_after_submit: bool,
    /// Sign with the proxy's previous nonce, already spent, as when another vote of the proxy
    /// took the nonce between reading and sending this one.
    pub spent_nonce: bool,
}

/// Everything about the vote that does not need the chain.
struct Prepared {
    run_layout: RunLayout,
    manifest_sha256: Sha256Hash,
    call: VoteCall,
    keypair: Keypair,
    signer: AccountId,
}

/// One vote to cast: whose, on which run, how.
#[derive(Clone, Debug)]
pub struct VoteJob<'a> {
    /// The network's spec (endpoints, real account, proxy type, tracks).
    pub spec: &'a NetworkSpec,
    /// The proxy account's key (`CYBERGOV_PROXY_SEED`).
    pub proxy_seed: Option<&'a Secret>,
    /// The run whose manifest is voted with.
    pub id: RunId,
    /// Submit, or only show what would be submitted.
    pub mode: VoteMode,
    /// Drills and tests; production uses the default.
    pub hooks: StageHooks,
}

/// Runs the vote stage for one run. See the module documentation for the order of checks.
pub async fn vote_stage(
    store: &dyn ObjectStore,
    job: &VoteJob<'_>,
) -> Result<VoteOutcome, VoteError> {
    let VoteJob {
        spec,
        proxy_seed,
        id,
        mode,
        ref hooks,
    } = *job;
    let RunId {
        network,
        referendum,
        run,
    } = id;
    let run_layout = id.layout();
    if let Some(receipt) = Receipt::read(store, &run_layout).await? {
        return Ok(VoteOutcome::AlreadyDone(receipt));
    }
    let p = prepare(spec, proxy_seed, store, id).await?;
    let transport = chain::connect(spec).await?;
    let transport = transport.as_ref();
    let kind = spec.vote.transport;

    let submissions = Submission::read_all(store, &run_layout).await?;
    if mode == VoteMode::Submit
        && let Some(last) = submissions.last()
    {
        if let Some((included, finalized)) = recover(transport, spec, last).await? {
            let receipt = finish(store, spec, &p, kind, last, included, finalized).await?;
            return Ok(VoteOutcome::AlreadyDone(receipt));
        }
        tracing::warn!(
            extrinsic = %last.extrinsic_hash,
            "the recorded vote extrinsic expired without inclusion; signing a new one"
        );
    }

    let track = match transport.referendum(referendum).await? {
        ReferendumStatus::Ongoing { track, .. } => track,
        ReferendumStatus::Closed(state) => {
            return Err(VoteError::NotOngoing {
                network,
                referendum,
                state,
            });
        }
        ReferendumStatus::Unknown => {
            return Err(VoteError::NotOngoing {
                network,
                referendum,
                state: "no such referendum".into(),
            });
        }
    };
    if !spec.track_allowed(track) {
        return Err(VoteError::TrackNotAllowed {
            network,
            referendum,
            track,
        });
    }
    let current_vote = transport
        .current_vote(&p.call.real, track, referendum)
        .await?;
    if mode == VoteMode::Submit {
        guard::check_not_voted_before(
            store,
            &p.run_layout,
            current_vote.as_ref(),
            !submissions.is_empty(),
        )
        .await?;
    }
    if current_vote == Some(p.call.vote) {
        tracing::info!(
            "the real account already votes exactly this way; voting again so that this run's manifest remark is on chain"
        );
    }

    let material = transport.material().await?;
    // The extrinsic commits to this genesis: an endpoint of another chain is refused here,
    // before anything is signed for it.
    spec.check_genesis(network, &material.genesis_hash.0)
        .map_err(VoteError::WrongChain)?;
    let mut nonce = transport.nonce(&p.signer).await?;
    if hooks.spent_nonce {
        nonce = nonce.saturating_sub(1);
    }
    // The last moment to find out that another worker took this stage over: after this, a
    // vote is signed and sent.
    if mode == VoteMode::Submit {
        crate::pipeline::claim::still_held().await?;
    }
    let signed = tx::sign(
        &material,
        &p.call,
        hooks.inner_call.clone(),
        &p.keypair,
        nonce,
        spec.vote.mortality_blocks,
    )?;
    let fee = transport.fee_estimate(&signed.bytes).await?;
    let signer_ss58 = spec.address(&p.signer);

    if mode == VoteMode::DryRun {
        let decoded = tx::decode(&material, &signed.bytes).await?;
        // The run records that it was not voted, so that nothing downstream claims it was.
        let record = DryRunRecord {
            schema: DRY_RUN_SCHEMA.into(),
            network,
            referendum,
            run,
            manifest_sha256: p.manifest_sha256,
            remark: p.call.remark.clone(),
            real: spec.address(&p.call.real),
            account_vote: p.call.vote,
        };
        store
            .put(&p.run_layout.key(&Artefact::DryRun), &record.to_bytes())
            .await?;
        return Ok(VoteOutcome::DryRun(VotePlan {
            network,
            referendum,
            track,
            run,
            signer: signer_ss58,
            real: spec.address(&p.call.real),
            proxy_type: p.call.proxy_type.clone(),
            account_vote: p.call.vote,
            remark: p.call.remark.clone(),
            decoded,
            extrinsic_hash: hex_hash(&signed.hash),
            extrinsic_len: signed.bytes.len(),
            nonce,
            fee_estimate: fee,
            current_vote,
            transport: kind,
        }));
    }

    let free = transport.free_balance(&p.signer).await?;
    let unfunded = || VoteError::Unfunded {
        signer: signer_ss58.clone(),
        free,
        fee: fee.unwrap_or(0),
    };
    if free == 0 || fee.is_some_and(|f| free < f) {
        return Err(unfunded());
    }

    let submission = Submission {
        schema: SUBMISSION_SCHEMA.into(),
        attempt: submissions.len() as u32 + 1,
        manifest_sha256: p.manifest_sha256,
        remark: p.call.remark.clone(),
        signer: signer_ss58.clone(),
        transport: kind,
        extrinsic_hash: hex_hash(&signed.hash),
        extrinsic: format!("0x{}", hex::encode(&signed.bytes)),
        nonce,
        era_start: signed.era_start,
        era_end: signed.era_end,
    };
    // Recorded before sending: from here on a retry looks for this extrinsic first.
    store
        .put(
            &run_layout.key(&Artefact::Submission(submission.attempt)),
            &submission.to_bytes(),
        )
        .await?;
    tracing::info!(extrinsic = %submission.extrinsic_hash, signer = %signer_ss58, "sending the vote");
    match transport.submit(&signed.bytes).await {
        Ok(_) => {}
        Err(e) if e.is_payment() => return Err(unfunded()),
        Err(e) if e.is_stale() => {
            return Err(VoteError::NonceSpent {
                extrinsic_hash: submission.extrinsic_hash,
                nonce: submission.nonce,
            });
        }
        Err(TransportError::Rejected { cause }) => return Err(VoteError::Rejected { cause }),
        Err(e) => return Err(e.into()),
    }
    if hooks.stop_after_submit {
        return Err(VoteError::Interrupted {
            extrinsic_hash: submission.extrinsic_hash,
        });
    }
    match chain::wait_for_inclusion(
        transport,
        signed.hash,
        signed.era_start,
        signed.era_end,
        spec.vote.wait_for,
        Duration::from_secs(spec.vote.inclusion_timeout_s),
    )
    .await?
    {
        Inclusion::Found(included, finalized) => {
            let receipt = finish(store, spec, &p, kind, &submission, included, finalized).await?;
            Ok(VoteOutcome::Submitted(receipt))
        }
        Inclusion::Expired | Inclusion::TimedOut => Err(VoteError::NotIncluded {
            extrinsic_hash: submission.extrinsic_hash,
        }),
    }
}

/// Reads and checks everything local: manifest (verified), vote.json (matching it), real
/// account, proxy key, remark.
async fn prepare(
    spec: &NetworkSpec,
    proxy_seed: Option<&Secret>,
    store: &dyn ObjectStore,
    id: RunId,
) -> Result<Prepared, VoteError> {
    let RunId {
        network,
        referendum,
        run,
    } = id;
    let run_layout = id.layout();
    let manifest_key = run_layout.key(&Artefact::Manifest);
    let manifest_bytes = match store.get(&manifest_key).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => {
            return Err(VoteError::NoManifest {
                key: manifest_key.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let report = verify_run(store, network, referendum, Some(run)).await;
    if !report.passed() {
        let failures: Vec<String> = report
            .failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(VoteError::ManifestInvalid {
            run,
            failures: failures.join("; "),
        });
    }
    let manifest = Manifest::from_canonical_bytes(&manifest_bytes)
        .map_err(|e| VoteError::BadInput(format!("{manifest_key}: {e}")))?;
    let manifest_sha256 = Sha256Hash::of(&manifest_bytes);

    let vote_key = run_layout.key(&Artefact::Vote);
    let vote_bytes = match store.get(&vote_key).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => {
            return Err(VoteError::BadInput(format!("{vote_key} is missing")));
        }
        Err(e) => return Err(e.into()),
    };
    let record: VoteRecord = serde_json::from_slice(&vote_bytes)
        .map_err(|e| VoteError::BadInput(format!("{vote_key} is not a vote record: {e}")))?;
    let vote = AccountVote::from_record(&record)?;
    let d = &manifest.decision;
    let listed = AccountVote::from_decision(d.vote, d.conviction, &d.balance)
        .map_err(|e| VoteError::BadInput(format!("{manifest_key} decision: {e}")))?;
    if listed != vote {
        return Err(VoteError::BadInput(format!(
            "{vote_key} asks for {} but the manifest's decision is {}; refusing to vote",
            vote.describe(),
            listed.describe()
        )));
    }

    let real = spec
        .real_account_id(network)
        .map_err(VoteError::BadInput)?
        .ok_or_else(|| {
            VoteError::BadInput(format!(
                "networks.{network}.real_account is not set: the account to vote for"
            ))
        })?;
    let keypair =
        sima::proxy_keypair(proxy_seed).map_err(|e| VoteError::BadInput(e.to_string()))?;
    let signer = sima::account_of(&keypair);
    Ok(Prepared {
        run_layout,
        manifest_sha256,
        call: VoteCall {
            real,
            // An empty name is how configuration (TOML has no null) says: do not force a type.
            proxy_type: spec.vote.proxy_type.clone().filter(|t| !t.is_empty()),
            referendum,
            vote,
            remark: remark_text(id, &manifest_sha256),
        },
        keypair,
        signer,
    })
}

/// Checks the events; writes the receipt only when the vote and the remark both happened.
async fn finish(
    store: &dyn ObjectStore,
    spec: &NetworkSpec,
    p: &Prepared,
    kind: TransportKind,
    sub: &Submission,
    included: Included,
    finalized: bool,
) -> Result<Receipt, VoteError> {
    if let Err(failure) = outcome::check(&included.events, &sub.remark) {
        return Err(VoteError::Failed {
            failure,
            extrinsic_hash: sub.extrinsic_hash.clone(),
            block_number: included.block_number,
        });
    }
    let receipt = Receipt {
        schema: RECEIPT_SCHEMA.into(),
        network: p.run_layout.referendum.network,
        referendum: p.call.referendum,
        run: p.run_layout.run,
        manifest_sha256: p.manifest_sha256,
        remark: sub.remark.clone(),
        signer: sub.signer.clone(),
        real: spec.address(&p.call.real),
        proxy_type: p.call.proxy_type.clone(),
        account_vote: p.call.vote,
        transport: kind,
        extrinsic_hash: sub.extrinsic_hash.clone(),
        block_number: included.block_number,
        block_hash: hex_hash(&included.block_hash),
        extrinsic_index: included.index,
        finalized,
        events: included.events,
    };
    store
        .put(&p.run_layout.key(&Artefact::Receipt), &receipt.to_bytes())
        .await?;
    tracing::info!(block = receipt.block_number, extrinsic = %receipt.extrinsic_hash, "vote on chain");
    let decision = match receipt.account_vote {
        AccountVote::Standard { aye: true, .. } => "aye",
        AccountVote::Standard { aye: false, .. } => "nay",
        AccountVote::SplitAbstain { .. } => "abstain",
    };
    crate::metrics::vote_cast(receipt.network.as_str(), decision);
    Ok(receipt)
}

fn hex_hash(h: &H256) -> String {
    format!("0x{}", hex::encode(h.0))
}

fn parse_hash(s: &str) -> Result<H256, VoteError> {
    s.strip_prefix("0x")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(H256)
        .ok_or_else(|| VoteError::BadInput(format!("submission record: bad extrinsic hash {s:?}")))
}

impl crate::retry::Transient for VoteError {
    fn is_transient(&self) -> bool {
        VoteError::is_transient(self)
    }
}
