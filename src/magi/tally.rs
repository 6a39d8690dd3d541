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

/// How much agreement produced the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agreement {
    /// Every juror voted the decision.
    Unanimous,
    /// Most jurors did.
    Majority,
    /// No AYE/NAY decision could be reached: ABSTAIN by rule.
    None,
}

/// Counts of each vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// AYE votes.
    pub aye: u32,
    /// NAY votes.
    pub nay: u32,
    /// ABSTAIN votes.
    pub abstain: u32,
}

impl Counts {
    /// Counts `votes`.
    pub fn of(votes: &[VoteKind]) -> Self {
        let mut c = Counts::default();
        for v in votes {
            match v {
                VoteKind::Aye => c.aye += 1,
                VoteKind::Nay => c.nay += 1,
                VoteKind::Abstain => c.abstain += 1,
            }
        }
        c
    }
}

/// Applies `rule` to `votes` (any number of jurors; the rules are written for three).
pub fn decide(rule: TallyRule, votes: &[VoteKind]) -> (VoteKind, Agreement) {
    let c = Counts::of(votes);
    let n = votes.len() as u32;
    if n > 0 && c.abstain == n {
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

/// The `schema` of vote.json.
pub const VOTE_SCHEMA: &str = "cybergov.vote/v1";

/// One juror's vote, as tallied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JurorVote {
    /// The juror.
    pub juror: String,
    /// Its vote.
    pub vote: VoteKind,
}

/// `vote.json`: the tally and the decision to cast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRecord {
    /// [`VOTE_SCHEMA`].
    pub schema: String,
    /// The network.
    pub network: crate::network::Network,
    /// The referendum.
    pub referendum: u32,
    /// The run.
    pub run: u32,
    /// The rule's id, e.g. `majority-without-opposition-v1`.
    pub rule: String,
    /// Each juror's vote.
    pub jurors: Vec<JurorVote>,
    /// The counts.
    pub counts: Counts,
    /// How much agreement there was.
    pub agreement: Agreement,
    /// Why ABSTAIN was forced regardless of the jurors (augmentation policy), if it was.
    pub forced_abstain: Option<String>,
    /// The decision.
    pub decision: VoteKind,
    /// Conviction 0–6 (0 for abstain).
    pub conviction: u8,
    /// Balance in planck (decimal text).
    pub balance: String,
}

impl VoteRecord {
    /// The stored bytes: pretty JSON and a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("vote records always serialize");
        v.push(b'\n');
        v
    }
}

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
