//! The arena's automatic mode: how often a model's decisions agree with how referenda actually
//! ended, with a confidence interval — a check that needs no human reviewer.
//!
//! A referendum that was approved (or executed) agrees with AYE, one rejected with NAY; one that
//! ended otherwise (cancelled, killed, timed out) says nothing about the proposal's merit and is
//! left out, and an ABSTAIN is counted apart (it claims no side). The interval is Wilson's score
//! interval: unlike the normal approximation, it stays inside [0, 1] and is honest at the small
//! counts an arena starts with.

use crate::manifest::VoteKind;
use serde::Serialize;

/// How a referendum ended, as far as agreement is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Approved or executed.
    Approved,
    /// Rejected.
    Rejected,
    /// Cancelled, killed, timed out, or not over yet: left out.
    Other,
}

impl Ending {
    /// From Subsquare's state name (`Approved`, `Executed`, `Rejected`, …).
    pub fn from_state(state: &str) -> Self {
        match state {
            "Approved" | "Executed" | "Confirmed" => Ending::Approved,
            "Rejected" => Ending::Rejected,
            _ => Ending::Other,
        }
    }
}

/// A model's agreement with the endings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Decisions compared (AYE or NAY on an approved or rejected referendum).
    pub compared: u32,
    /// Of those, how many agreed.
    pub agreed: u32,
    /// ABSTAIN decisions on referenda that ended approved or rejected.
    pub abstained: u32,
    /// Referenda left out (they ended otherwise).
    pub left_out: u32,
    /// `agreed / compared` (0 when nothing was compared).
    pub rate: f64,
    /// The 95 % Wilson interval's lower bound.
    pub low: f64,
    /// Its upper bound.
    pub high: f64,
}

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson's 95 % score interval for `k` successes in `n` trials (`(0, 1)` when `n` is 0).
pub fn wilson(k: u32, n: u32) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (f64::from(n), f64::from(k) / f64::from(n));
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Agreement of `decisions` (a model's vote on each referendum, with how it ended).
pub fn agreement(decisions: &[(VoteKind, Ending)]) -> Agreement {
    let (mut compared, mut agreed, mut abstained, mut left_out) = (0, 0, 0, 0);
    for (vote, ending) in decisions {
        match (vote, ending) {
            (_, Ending::Other) => left_out += 1,
            (VoteKind::Abstain, _) => abstained += 1,
            (VoteKind::Aye, Ending::Approved) | (VoteKind::Nay, Ending::Rejected) => {
                compared += 1;
                agreed += 1;
            }
            _ => compared += 1,
        }
    }
    let (low, high) = wilson(agreed, compared);
    Agreement {
        compared,
        agreed,
        abstained,
        left_out,
        rate: if compared == 0 {
            0.0
        } else {
            f64::from(agreed) / f64::from(compared)
        },
        low,
        high,
    }
}
