//! Choosing better jurors in public (issue #16): anonymous battles between a candidate model
//! and an incumbent juror, and the ratings that decide an upgrade.
//!
//! So far: the ratings ([`ratings`]) — online Elo, its bootstrap with an interval, a
//! Bradley–Terry maximum-likelihood fit, and the impact of a candidate over the incumbent —
//! computed the way FastChat's `elo_analysis.py` does, with a pseudo-random generator written
//! out here so that anyone can recompute published ratings from the battles and the seed; and
//! the upgrade rule of the configuration with the decision it gives ([`decision`]).

pub mod agreement;
pub mod decision;
pub mod ratings;

use crate::pipeline::ledger::battles::BattleRow;
use ratings::{Battle, Outcome};

/// The ratings' battles from the ledger's rows; a row whose outcome is not one of `a`, `b`,
/// `tie`, `both_bad` is an error naming its session and round.
pub fn battles(rows: &[BattleRow]) -> Result<Vec<Battle>, String> {
    rows.iter()
        .map(|r| {
            let outcome: Outcome = serde_json::from_value(serde_json::Value::String(
                r.outcome.clone(),
            ))
            .map_err(|_| {
                format!(
                    "battle {} round {}: outcome {:?} is not a, b, tie or both_bad",
                    r.session, r.round, r.outcome
                )
            })?;
            Ok(Battle {
                a: r.model_a.clone(),
                b: r.model_b.clone(),
                outcome,
            })
        })
        .collect()
}
