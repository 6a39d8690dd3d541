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
