//! The tally: three votes in, one decision out, by a rule named in configuration.

use crate::manifest::VoteKind;
use crate::network::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How three juror votes become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TallyRule {
    /// Unanimous → that vote; else two AYE (or two NAY) with no vote the other way → that vote;
    /// else ABSTAIN. The default (docs/DESIGN.md §7): a split jury does not spend delegated power.
    MajorityWithoutOpposition,
    /// Two of three AYE or NAY → that vote, even against the third; else ABSTAIN.
    SimpleMajority,
    /// Only a unanimous AYE or NAY counts; everything else is ABSTAIN.
    Unanimous,
}

impl TallyRule {
    /// Every rule.
    pub const ALL: [TallyRule; 3] = [
        TallyRule::MajorityWithoutOpposition,
        TallyRule::SimpleMajority,
        TallyRule::Unanimous,
    ];

    /// The rule recorded in vote.json by its id, if this version knows it.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The id recorded in vote.json (versioned: a changed rule gets a new id).
    pub fn id(self) -> &'static str {
        match self {
            TallyRule::MajorityWithoutOpposition => "majority-without-opposition-v1",
            TallyRule::SimpleMajority => "simple-majority-v1",
            TallyRule::Unanimous => "unanimous-v1",
        }
    }
}

/// Applies `rule` to `votes` (any number of jurors; the rules are written for three).
pub fn decide(rule: TallyRule, votes: &[VoteKind]) -> (VoteKind, Agreement) {
    let c = Counts::of(votes);
    let n = votes.len() as u32;
    // No jury decides nothing: without this, "every juror votes AYE" holds vacuously.
    if n == 0 {
        return (VoteKind::Abstain, Agreement::None);
    }
    if c.abstain == n {
        return (VoteKind::Abstain, Agreement::Unanimous);
    }
    for (kind, for_, against) in [(VoteKind::Aye, c.aye, c.nay), (VoteKind::Nay, c.nay, c.aye)] {
        if for_ == n {
            return (kind, Agreement::Unanimous);
        }
        let majority = 2 * for_ > n;
        let allowed = match rule {
            TallyRule::MajorityWithoutOpposition => majority && against == 0,
            TallyRule::SimpleMajority => majority,
            TallyRule::Unanimous => false,
        };
        if allowed {
            return (kind, Agreement::Majority);
        }
    }
    (VoteKind::Abstain, Agreement::None)
}

pub use crate::records::vote::{Agreement, Counts, JurorVote, VOTE_SCHEMA, VoteRecord};

/// `[magi.tally]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TallyConfig {
    /// The rule (recorded by id in vote.json).
    pub rule: TallyRule,
    /// Conviction (0–6) of a unanimous AYE/NAY.
    pub conviction_unanimous: u8,
    /// Conviction (0–6) of a majority AYE/NAY.
    pub conviction_majority: u8,
    /// Balance voted with, in planck, per network (decimal text).
    pub balance: BTreeMap<Network, String>,
}

/// Tallies `jurors` under `config` for one run.
pub fn tally(
    config: &TallyConfig,
    network: crate::network::Network,
    referendum: u32,
    run: u32,
    jurors: Vec<JurorVote>,
    forced_abstain: Option<String>,
) -> VoteRecord {
    let votes: Vec<VoteKind> = jurors.iter().map(|j| j.vote).collect();
    let (decided, agreement) = decide(config.rule, &votes);
    let decision = if forced_abstain.is_some() {
        VoteKind::Abstain
    } else {
        decided
    };
    let conviction = match (decision, agreement) {
        (VoteKind::Abstain, _) => 0,
        (_, Agreement::Unanimous) => config.conviction_unanimous,
        _ => config.conviction_majority,
    };
    VoteRecord {
        schema: VOTE_SCHEMA.into(),
        network,
        referendum,
        run,
        rule: config.rule.id().into(),
        counts: Counts::of(&votes),
        jurors,
        agreement,
        forced_abstain,
        decision,
        conviction,
        balance: config
            .balance
            .get(&network)
            .cloned()
            .unwrap_or_else(|| "0".into()),
    }
}
