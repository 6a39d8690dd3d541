//! The arena's upgrade decisions (issue #16): `arena/{n}/decisions.json`, written when the
//! results are published (`arena::publish`) and read by the infer stage and the verifiers when
//! a juror's model was swapped on the strength of one (`magi.jurors.<name>.arena_decision`).

use serde::{Deserialize, Serialize};

/// The `schema` of a decision.
pub const DECISION_SCHEMA: &str = "cybergov.arena-decision/v1";
/// The `schema` of `decisions.json`.
pub const DECISIONS_SCHEMA: &str = "cybergov.arena-decisions/v1";

/// When a candidate replaces the incumbent (`arena.*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRule {
    /// Battles between the two needed before any decision.
    pub min_battles: usize,
    /// Bootstrap rounds of the impact's interval.
    pub rounds: u32,
    /// The bootstrap's seed (recorded: the interval is recomputed from it).
    pub seed: u64,
    /// Elo's step.
    pub k: f64,
}

impl Default for UpgradeRule {
    fn default() -> Self {
        Self {
            min_battles: 100,
            rounds: 1000,
            seed: 42,
            k: 4.0,
        }
    }
}

/// A bootstrapped quantity: the median and the 95 % interval over the rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// The median over the rounds.
    pub median: f64,
    /// The 2.5 % quantile.
    pub low: f64,
    /// The 97.5 % quantile.
    pub high: f64,
}

/// What the rule decided for one candidate and incumbent, and on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// [`DECISION_SCHEMA`].
    pub schema: String,
    /// The candidate model.
    pub candidate: String,
    /// The juror's model it would replace.
    pub incumbent: String,
    /// Battles between the two.
    pub battles: usize,
    /// The candidate's rating minus the incumbent's, bootstrapped; absent below the minimum.
    pub impact: Option<Interval>,
    /// Whether the candidate replaces the incumbent.
    pub replace: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// The rule applied.
    pub rule: UpgradeRule,
}

/// `decisions.json`: the rule applied to every prepared (candidate, incumbent) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsRecord {
    /// [`DECISIONS_SCHEMA`].
    pub schema: String,
    /// One per pair.
    pub decisions: Vec<Decision>,
}

impl DecisionsRecord {
    /// The decision that lets `model` take a juror's seat, if this record holds one.
    pub fn replacing(&self, model: &str) -> Option<&Decision> {
        self.decisions
            .iter()
            .find(|d| d.replace && d.candidate == model)
    }
}
