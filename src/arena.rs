//! Choosing better jurors in public (issue #16): anonymous battles between a candidate model
//! and an incumbent juror, and the ratings that decide an upgrade.
//!
//! - [`session`]: a review session — both models write rationales on stored proposals, a
//!   reviewer judges the anonymous pairs in the terminal or on the dashboard, each answer a
//!   battle in the ledger.
//! - [`ratings`]: online Elo, its bootstrap with an interval, a Bradley–Terry
//!   maximum-likelihood fit, and the impact of a candidate over the incumbent — computed the
//!   way FastChat's `elo_analysis.py` does, with a pseudo-random generator written out here so
//!   that anyone can recompute published ratings from the battles and the seed.
//! - [`decision`]: the upgrade rule of the configuration and the decision it gives.
//! - [`publish`]: battles, ratings and decisions as artefacts with a manifest, and the check
//!   that recomputes them.
//! - [`agreement`]: the automatic mode, each model's votes against how referenda ended.

pub mod agreement;
pub mod decision;
pub mod publish;
pub mod ratings;
pub mod session;

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
