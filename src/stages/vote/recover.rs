//! Finding a recorded submission again after a crash or a timeout: in a block, still able to
//! be included (then the same bytes are sent again), or never (then the stage signs anew).

use super::{VoteError, parse_hash};
use crate::chain::transport::{Included, Transport, TransportError};
use crate::chain::{self, Inclusion};
use crate::network::NetworkSpec;
use crate::records::receipt::Submission;
use std::time::Duration;

/// A recorded submission: found in a block (→ `Some`), or expired for good (→ `None`).
pub(super) async fn recover(
    transport: &dyn Transport,
    spec: &NetworkSpec,
    sub: &Submission,
) -> Result<Option<(Included, bool)>, VoteError> {
    let hash = parse_hash(&sub.extrinsic_hash)?;
    let timeout = Duration::from_secs(spec.vote.inclusion_timeout_s);
    let (best, _) = transport.head(false).await?;
    if best < sub.era_end {
        // Still valid: send the very same bytes again in case the first send never arrived.
        // Same signature, same nonce: the chain includes them at most once.
        let bytes = sub
            .extrinsic
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| VoteError::BadInput("submission record: bad extrinsic hex".into()))?;
        // Look first: if it is already in a block, sending again is pointless.
        if let Inclusion::Found(i, f) = chain::wait_for_inclusion(
            transport,
            hash,
            sub.era_start,
            best.min(sub.era_end),
            spec.vote.wait_for,
            Duration::ZERO,
        )
        .await?
        {
            return Ok(Some((i, f)));
        }
        match transport.submit(&bytes).await {
            Ok(_) => {}
            Err(e) if e.is_stale() => {
                // Its nonce is spent. If not by this extrinsic (look once more, up to the block
                // the chain has now), then by another transaction of the proxy, and these bytes
                // can never be included: waiting for the era to end would stall the run (a
                // devnet builds no blocks while idle), so sign anew now.
                let (now, _) = transport.head(false).await?;
                return match chain::wait_for_inclusion(
                    transport,
                    hash,
                    sub.era_start,
                    now.min(sub.era_end),
                    spec.vote.wait_for,
                    timeout,
                )
                .await?
                {
                    Inclusion::Found(i, f) => Ok(Some((i, f))),
                    // In a block but not final yet: never sign anew, look again later.
                    Inclusion::TimedOut => Err(VoteError::NotIncluded {
                        extrinsic_hash: sub.extrinsic_hash.clone(),
                    }),
                    // Every block up to `now` searched: not there.
                    Inclusion::Expired => {
                        tracing::warn!(
                            extrinsic = %sub.extrinsic_hash,
                            nonce = sub.nonce,
                            "the recorded vote extrinsic's nonce was spent by another transaction"
                        );
                        Ok(None)
                    }
                };
            }
            Err(e) if e.is_already_known() => {}
            Err(TransportError::Rejected { cause }) => {
                tracing::warn!(%cause, "re-sending the recorded extrinsic was refused; still looking for it");
            }
            Err(e) => return Err(e.into()),
        }
    }
    match chain::wait_for_inclusion(
        transport,
        hash,
        sub.era_start,
        sub.era_end,
        spec.vote.wait_for,
        timeout,
    )
    .await?
    {
        Inclusion::Found(i, f) => Ok(Some((i, f))),
        Inclusion::Expired => Ok(None),
        Inclusion::TimedOut => Err(VoteError::NotIncluded {
            extrinsic_hash: sub.extrinsic_hash.clone(),
        }),
    }
}
