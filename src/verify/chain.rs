//! The chain, found without the store.
//!
//! Everything in the store is what a forger controls, so the chain is looked up from what the
//! verifier is given (the network, the referendum, the voting account) and the manifest's own
//! hash, never from `receipt.json`:
//!
//! - `vote on chain`: the account's standing vote on the referendum
//!   (`ConvictionVoting.VotingFor(real, track)`), compared with the manifest's decision;
//! - `remark on chain`: an extrinsic in a bounded block range whose bytes carry this manifest's
//!   remark and whose events show that it ran: no `ExtrinsicFailed`, `Proxy.ProxyExecuted` Ok,
//!   `System.Remarked` with the remark's hash, and `ConvictionVoting.Voted` by the account.
//!   `batch_all` is atomic, so the remark and the account's vote happened together.
//!
//! A receipt, when present, only says which block to search first.

use super::check;
use crate::account::AccountId;
use crate::chain::call::AccountVote;
use crate::chain::outcome::{self, EventRecord};
use crate::chain::transport::{ReferendumStatus, Transport};
use crate::hash::Sha256Hash;
use crate::manifest::Manifest;
use crate::manifest::verify::Check;

/// How the chain is reached and what is looked for, all from outside the run being checked.
pub struct ChainLookup<'a> {
    /// The network's governance chain.
    pub transport: &'a dyn Transport,
    /// The account whose vote it is (the proxy's `real`).
    pub real: AccountId,
    /// The network's SS58 prefix (Sidecar renders accounts as addresses).
    pub ss58_prefix: u16,
    /// Where to read `VotingFor` when the referendum is no longer ongoing (its track is then
    /// not on chain): the network's tracks.
    pub tracks: Vec<u16>,
    /// First block searched for the remark (default: the referendum's submission, when the
    /// chain counts blocks the same way, else `max_blocks` below the last).
    pub from_block: Option<u64>,
    /// Last block searched (default: the best block).
    pub to_block: Option<u64>,
    /// At most this many blocks are searched, the newest first.
    pub max_blocks: u64,
    /// A block to search first (receipt.json's), which changes no verdict.
    pub hint_block: Option<u64>,
}

/// What the chain says about the run.
#[derive(Clone, Debug)]
pub struct ChainFindings {
    /// `vote on chain` and `remark on chain`, passed or failed.
    pub checks: Vec<Check>,
    /// The same checks when the chain holds neither this run's vote nor any vote of the
    /// account: the run was not voted (not a contradiction).
    pub not_voted: Vec<Check>,
}

/// Where a run's remark was found, and the extrinsics that carried it without doing it.
struct Search {
    found: Option<(u64, String)>,
    failed: Vec<String>,
    range: (u64, u64),
}

/// The chain checks of `manifest`'s run.
pub async fn check_chain(
    lookup: &ChainLookup<'_>,
    manifest: &Manifest,
    manifest_sha256: Sha256Hash,
) -> ChainFindings {
    let fail = |name: &str, why: String| ChainFindings {
        checks: vec![check(false, name, why)],
        not_voted: Vec::new(),
    };
    let d = &manifest.decision;
    let want = match AccountVote::from_decision(d.vote, d.conviction, &d.balance) {
        Ok(v) => v,
        Err(e) => return fail("vote on chain", format!("the manifest's decision: {e}")),
    };
    let referendum = manifest.referendum;
    let (standing, submitted) = match standing_vote(lookup, referendum).await {
        Ok(v) => v,
        Err(e) => return fail("vote on chain", e),
    };
    let remark = crate::chain::remark_text(manifest.id(), &manifest_sha256);
    let search = match search_remark(lookup, &remark, submitted).await {
        Ok(s) => s,
        Err(e) => return fail("remark on chain", e),
    };
    let real = lookup.real.to_ss58(lookup.ss58_prefix);
    let (from, to) = search.range;
    let failed = if search.failed.is_empty() {
        String::new()
    } else {
        format!(" ({})", search.failed.join("; "))
    };

    let vote_check = match &standing {
        Some(v) if *v == want => check(
            true,
            "vote on chain",
            format!("{real} votes {} on referendum {referendum}", v.describe()),
        ),
        Some(v) => check(
            false,
            "vote on chain",
            format!(
                "{real} votes {} on referendum {referendum}; the manifest decides {}",
                v.describe(),
                want.describe()
            ),
        ),
        None => check(
            false,
            "vote on chain",
            format!("{real} has no vote on referendum {referendum}"),
        ),
    };
    let remark_check = match (&search.found, &standing) {
        (Some((block, hash)), _) => check(
            true,
            "remark on chain",
            format!("extrinsic {hash} in block {block} carries {remark:?} with {real}'s vote"),
        ),
        // The account voted, but not with this manifest: whatever this run is, the chain does
        // not back it.
        (None, Some(_)) => check(
            false,
            "remark on chain",
            format!(
                "{real} voted on referendum {referendum}, but no successful extrinsic in blocks {from}..={to} carries this manifest's remark {remark:?}{failed}"
            ),
        ),
        // Neither the vote nor the remark: not voted (reported as such, not as a failure).
        (None, None) => {
            let remark_check = check(
                false,
                "remark on chain",
                format!(
                    "no successful vote of {real} in blocks {from}..={to} carries {remark:?}{failed}"
                ),
            );
            return ChainFindings {
                checks: Vec::new(),
                not_voted: vec![vote_check, remark_check],
            };
        }
    };
    ChainFindings {
        checks: vec![vote_check, remark_check],
        not_voted: Vec::new(),
    }
}

/// The account's standing vote on `referendum`: on its track while it is ongoing, else on
/// whichever of the network's tracks holds one. Also the block it was submitted in, if known.
async fn standing_vote(
    lookup: &ChainLookup<'_>,
    referendum: u32,
) -> Result<(Option<AccountVote>, Option<u64>), String> {
    let status = lookup
        .transport
        .referendum(referendum)
        .await
        .map_err(|e| format!("reading referendum {referendum}: {e}"))?;
    let (tracks, submitted) = match status {
        ReferendumStatus::Ongoing { track, submitted } => (vec![track], submitted),
        ReferendumStatus::Closed(_) | ReferendumStatus::Unknown => (lookup.tracks.clone(), None),
    };
    for track in tracks {
        let vote = lookup
            .transport
            .current_vote(&lookup.real, track, referendum)
            .await
            .map_err(|e| format!("reading VotingFor on track {track}: {e}"))?;
        if vote.is_some() {
            return Ok((vote, submitted));
        }
    }
    Ok((None, submitted))
}

/// Searches the hint block, then the range from the newest block down, for an extrinsic that
/// carries `remark` and did what a cybergov vote does.
async fn search_remark(
    lookup: &ChainLookup<'_>,
    remark: &str,
    submitted: Option<u64>,
) -> Result<Search, String> {
    let t = lookup.transport;
    let (best, _) = t.head(false).await.map_err(|e| e.to_string())?;
    let to = lookup.to_block.unwrap_or(best).min(best);
    let from = match lookup.from_block {
        Some(f) => f,
        None => {
            // A submission block above our head is another chain's numbering (Asset Hub's
            // referenda may count relay-chain blocks): it bounds nothing here.
            let floor = to.saturating_sub(lookup.max_blocks.saturating_sub(1));
            submitted.filter(|s| *s <= to).unwrap_or(floor).max(floor)
        }
    };
    let mut search = Search {
        found: None,
        failed: Vec::new(),
        range: (from, to),
    };
    // The hint only reorders the search: a block outside the range is not searched.
    let hint = lookup.hint_block.filter(|h| (from..=to).contains(h));
    let blocks = hint
        .into_iter()
        .chain((from..=to).rev().filter(|n| Some(*n) != hint));
    for number in blocks {
        let carrying = t
            .find_carrying(number, remark.as_bytes())
            .await
            .map_err(|e| format!("reading block {number}: {e}"))?;
        for (hash, included) in carrying {
            let hash = format!("0x{}", hex::encode(hash.0));
            match did_vote(&included.events, remark, lookup) {
                Ok(()) => {
                    search.found = Some((number, hash));
                    return Ok(search);
                }
                Err(why) => search
                    .failed
                    .push(format!("extrinsic {hash} in block {number}: {why}")),
            }
        }
    }
    Ok(search)
}

/// Whether the events of an extrinsic carrying the remark show a cybergov vote that ran.
fn did_vote(events: &[EventRecord], remark: &str, lookup: &ChainLookup<'_>) -> Result<(), String> {
    outcome::check(events, remark).map_err(|e| e.to_string())?;
    let hex = hex::encode(lookup.real.0);
    let ss58 = lookup.real.to_ss58(lookup.ss58_prefix);
    let voted = events
        .iter()
        .filter(|e| e.pallet == "ConvictionVoting" && e.variant == "Voted")
        .any(|e| {
            let f = e.fields.to_string();
            f.contains(&hex) || f.contains(&ss58)
        });
    if voted {
        Ok(())
    } else {
        Err("no ConvictionVoting.Voted event by the account".into())
    }
}
