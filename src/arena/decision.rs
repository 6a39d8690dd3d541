//! The upgrade rule (`arena.*` in the configuration) and the decision it gives: replace the
//! incumbent juror with a candidate only when enough battles were fought and the whole 95 %
//! interval of the candidate's impact is above zero — a lucky streak does not swap a juror.
//!
//! The decision is a record ([`Decision`]) that carries its rule, the battles' count and the
//! interval it was judged on, so that anyone holding the battles can recompute it
//! ([`super::ratings`] is reproducible from the battles and the seed).

use super::ratings::{Battle, Interval, impact};
pub use crate::records::arena::{DECISION_SCHEMA, Decision, UpgradeRule};

/// Applies `rule` to the battles between `candidate` and `incumbent` among `battles`.
pub fn decide(
    battles: &[Battle],
    candidate: &str,
    incumbent: &str,
    rule: &UpgradeRule,
) -> Decision {
    let between: Vec<Battle> = battles
        .iter()
        .filter(|b| {
            (b.a == candidate && b.b == incumbent) || (b.a == incumbent && b.b == candidate)
        })
        .cloned()
        .collect();
    let decision = |impact: Option<Interval>, replace: bool, reason: String| Decision {
        schema: DECISION_SCHEMA.into(),
        candidate: candidate.to_owned(),
        incumbent: incumbent.to_owned(),
        battles: between.len(),
        impact,
        replace,
        reason,
        rule: rule.clone(),
    };
    if between.len() < rule.min_battles {
        return decision(
            None,
            false,
            format!(
                "{} battles, fewer than the {} the rule needs: keep {incumbent}",
                between.len(),
                rule.min_battles
            ),
        );
    }
    let Some(gain) = impact(
        &between,
        candidate,
        incumbent,
        rule.k,
        rule.rounds,
        rule.seed,
    ) else {
        return decision(
            None,
            false,
            format!("no impact could be computed: keep {incumbent}"),
        );
    };
    let (replace, reason) = if gain.low > 0.0 {
        (
            true,
            format!(
                "the impact's 95 % interval [{:.1}, {:.1}] is above 0: {candidate} replaces {incumbent}",
                gain.low, gain.high
            ),
        )
    } else {
        (
            false,
            format!(
                "the impact's 95 % interval [{:.1}, {:.1}] reaches 0 or below: keep {incumbent}",
                gain.low, gain.high
            ),
        )
    };
    decision(Some(gain), replace, reason)
}
