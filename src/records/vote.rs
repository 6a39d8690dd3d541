//! `vote.json`: the jurors' votes, their tally and the decision to cast. The record lives here,
//! below the jury that computes it and the chain client that casts it, so that neither has to
//! import the other to read it.

use crate::manifest::VoteKind;
use serde::{Deserialize, Serialize};

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
    /// The run this record belongs to.
    pub fn id(&self) -> super::run_id::RunId {
        super::run_id::RunId::new(self.network, self.referendum, self.run)
    }

    /// The stored bytes: pretty JSON and a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::pretty_json(self)
    }
}
