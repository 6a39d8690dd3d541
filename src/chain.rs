//! Casting the vote on chain: the proxied `ConvictionVoting.vote` plus the manifest remark, in
//! one `Utility.batch_all`, signed by the proxy account (docs/DESIGN.md §5).
//!
//! - [`call`]: the call and the `AccountVote` as values against the chain's metadata.
//! - [`remark`]: the remark text `cybergov:v1:<network>:<ref>:<run>:<manifest sha256>`.
//! - [`tx`]: offline building, signing and decoding of the extrinsic.
//! - [`transport`], [`rpc`], [`sidecar`]: what the vote needs from a chain, over JSON-RPC or
//!   Substrate API Sidecar.
//! - [`outcome`]: the events that prove the vote and the remark happened.
//! - [`value`]: walking dynamically decoded values.
//!
//! The records the vote writes (`receipt.json`, `submission-<n>.json`, `vote.dry-run.json`) are
//! in [`crate::records::receipt`], with every other artefact's type.
//!
//! The stage that uses all this is [`crate::stages::vote`].

pub mod call;
pub mod outcome;
pub mod remark;
pub mod rpc;
pub mod sidecar;
pub mod transport;
pub mod tx;
pub mod value;

use crate::network::TransportKind;
use crate::network::{NetworkSpec, WaitFor};
use std::time::{Duration, Instant};
use subxt::utils::H256;
use transport::{Included, Transport, TransportError};

pub use remark::{parse_remark, remark_text};

/// Opens the transport `spec` configures (a failure is counted in the `request_errors`
/// metric).
pub async fn connect(spec: &NetworkSpec) -> Result<Box<dyn Transport>, TransportError> {
    let opened = open(spec).await;
    if opened.is_err() {
        let service = match spec.vote.transport {
            TransportKind::Rpc => "rpc",
            TransportKind::Sidecar => "sidecar",
        };
        crate::metrics::request_failed(service, "connect");
    }
    opened
}

async fn open(spec: &NetworkSpec) -> Result<Box<dyn Transport>, TransportError> {
    match spec.vote.transport {
        TransportKind::Rpc => Ok(Box::new(
            rpc::RpcTransport::connect(&spec.rpc_url, spec.vote.legacy_backend).await?,
        )),
        TransportKind::Sidecar => {
            let url = spec.sidecar_url.as_deref().ok_or_else(|| {
                TransportError::Unexpected(
                    "vote.transport is \"sidecar\" but sidecar_url is not set".into(),
                )
            })?;
            Ok(Box::new(sidecar::SidecarTransport::new(
                url,
                spec.ss58_prefix,
                spec.vote.sidecar_max_body_bytes,
            )?))
        }
    }
}

/// What watching for an extrinsic found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inclusion {
    /// Included; `finalized` tells whether its block was final when last looked at.
    Found(Included, bool),
    /// Every block of its mortal era was searched and it is in none: it can never be included.
    Expired,
    /// Neither, before the timeout.
    TimedOut,
}

/// Looks for extrinsic `hash`, signed with a mortal era from `era_start` to `era_end`, block
/// by block, polling for new blocks until it is found (and, with [`WaitFor::Finalization`], its
/// block is finalized and still canonical), the era is over, or `timeout` passes.
///
/// The same search serves a fresh submission and a retry after a crash, so both end the same way.
pub async fn wait_for_inclusion(
    transport: &dyn Transport,
    hash: H256,
    era_start: u64,
    era_end: u64,
    wait_for: WaitFor,
    timeout: Duration,
) -> Result<Inclusion, TransportError> {
    let deadline = Instant::now() + timeout;
    let mut next = era_start + 1;
    let mut delay = Duration::from_millis(100);
    loop {
        let (best, _) = transport.head(false).await?;
        while next <= best.min(era_end) {
            if let Some(found) = transport.find_in_block(next, hash).await? {
                let (finalized, _) = transport.head(true).await?;
                let is_final = finalized >= found.block_number;
                if wait_for == WaitFor::Inclusion || is_final {
                    if is_final
                        && transport.block_hash(found.block_number).await? != Some(found.block_hash)
                    {
                        // Raced with a re-organisation: look at this height again shortly.
                        break;
                    }
                    return Ok(Inclusion::Found(found, is_final));
                }
                // Wait for finality, then re-check this block is still the canonical one.
                break;
            }
            next += 1;
        }
        if next > era_end {
            return Ok(Inclusion::Expired);
        }
        if Instant::now() >= deadline {
            return Ok(Inclusion::TimedOut);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
