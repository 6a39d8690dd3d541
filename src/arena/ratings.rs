//! Ratings from battles: online Elo (K, scale 400, base 10, initial 1000, as FastChat), its
//! bootstrap (battles resampled with replacement, median and 95 % interval), and a
//! Bradley–Terry maximum-likelihood fit on the same scale.
//!
//! Why so:
//! - **Ties and "both bad" count half a win each**, as FastChat's `tie (bothbad)`.
//! - **Reproducible from the battles and a seed.** The resampling draws from SplitMix64
//!   ([`SplitMix64`]), a generator of a few lines that any verifier can rewrite, rather than
//!   from a library whose stream may change between versions.
//! - **Bradley–Terry by minorization–maximization** (Hunter, 2004): each step provably raises
//!   the likelihood, needs no step size, and converges for any battle graph that is connected
//!   with each model winning and losing somewhere; ratings are `400·log10(strength)`, centred
//!   so that their mean is 1000.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Elo's scale: a 400-point gap is 10:1 odds.
pub const SCALE: f64 = 400.0;
/// Elo's base.
pub const BASE: f64 = 10.0;
/// Every model's rating before its first battle.
pub const INITIAL: f64 = 1000.0;

/// What the reviewer picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The first model's answer was better.
    A,
    /// The second model's answer was better.
    B,
    /// Equally good.
    Tie,
    /// Both bad: a tie for the ratings.
    BothBad,
}

impl Outcome {
    /// The first model's score: 1, 0 or ½.
    pub fn score_a(self) -> f64 {
        match self {
            Outcome::A => 1.0,
            Outcome::B => 0.0,
            Outcome::Tie | Outcome::BothBad => 0.5,
        }
    }
}

/// One battle: two models and the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battle {
    /// The first model shown.
    pub a: String,
    /// The second.
    pub b: String,
    /// The reviewer's pick.
    pub outcome: Outcome,
}

/// Online Elo over `battles` in order, with step `k`.
pub fn elo(battles: &[Battle], k: f64) -> BTreeMap<String, f64> {
    let (names, games) = interned(battles);
    named(&names, &elo_indexed(games.iter(), names.len(), k))
}

/// The models of `battles` (in order of first appearance) and each battle as (index of a,
/// index of b, a's score): the bootstrap resamples these, not the strings.
fn interned(battles: &[Battle]) -> (Vec<String>, Vec<(usize, usize, f64)>) {
    let mut names: Vec<String> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut games = Vec::with_capacity(battles.len());
    for b in battles {
        let a = intern(&b.a, &mut index, &mut names);
        let other = intern(&b.b, &mut index, &mut names);
        games.push((a, other, b.outcome.score_a()));
    }
    (names, games)
}

fn intern<'a>(
    name: &'a str,
    index: &mut BTreeMap<&'a str, usize>,
    names: &mut Vec<String>,
) -> usize {
    *index.entry(name).or_insert_with(|| {
        names.push(name.to_owned());
        names.len() - 1
    })
}

/// Online Elo over `games` of `m` models; a model that plays no game keeps no rating (NaN).
fn elo_indexed<'a>(
    games: impl Iterator<Item = &'a (usize, usize, f64)>,
    m: usize,
    k: f64,
) -> Vec<f64> {
    let mut ratings = vec![f64::NAN; m];
    for &(a, b, sa) in games {
        let ra = if ratings[a].is_nan() {
            INITIAL
        } else {
            ratings[a]
        };
        let rb = if ratings[b].is_nan() {
            INITIAL
        } else {
            ratings[b]
        };
        let ea = 1.0 / (1.0 + BASE.powf((rb - ra) / SCALE));
        let eb = 1.0 / (1.0 + BASE.powf((ra - rb) / SCALE));
        ratings[a] = ra + k * (sa - ea);
        ratings[b] = rb + k * (1.0 - sa - eb);
    }
    ratings
}

fn named(names: &[String], ratings: &[f64]) -> BTreeMap<String, f64> {
    names
        .iter()
        .zip(ratings)
        .filter(|(_, r)| !r.is_nan())
        .map(|(n, r)| (n.clone(), *r))
        .collect()
}

/// SplitMix64 (Steele, Lea and Flood, 2014): the generator of the bootstrap, spelled out.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index below `n` (`n` > 0), by the 128-bit multiply (Lemire's method without its
    /// rejection step: a bias below 2^-40 for any n a battle list has).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A model's bootstrapped rating (the record's type: impacts are published in decisions).
pub use crate::records::arena::Interval;

/// The `q` quantile of `sorted`, linearly interpolated (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + (next - sorted[i]) * frac,
        None => sorted[i],
    }
}

fn interval(mut values: Vec<f64>) -> Interval {
    values.sort_by(f64::total_cmp);
    Interval {
        median: quantile(&values, 0.5),
        low: quantile(&values, 0.025),
        high: quantile(&values, 0.975),
    }
}

/// Each round's online Elo over `battles` resampled with replacement (`rounds` rounds, step
/// `k`, drawn from `seed`).
pub fn bootstrap_rounds(
    battles: &[Battle],
    k: f64,
    rounds: u32,
    seed: u64,
) -> Vec<BTreeMap<String, f64>> {
    let (names, games) = interned(battles);
    let mut rng = SplitMix64::new(seed);
    (0..rounds)
        .map(|_| {
            let n = games.len();
            let sample = (0..n).map(|_| &games[rng.below(n)]);
            named(&names, &elo_indexed(sample, names.len(), k))
        })
        .collect()
}

/// The bootstrap of [`elo`]: each model's median and 95 % interval over the rounds.
pub fn bootstrap(battles: &[Battle], k: f64, rounds: u32, seed: u64) -> BTreeMap<String, Interval> {
    let per_round = bootstrap_rounds(battles, k, rounds, seed);
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &per_round {
        for (model, rating) in r {
            values.entry(model.clone()).or_default().push(*rating);
        }
    }
    values.into_iter().map(|(m, v)| (m, interval(v))).collect()
}

/// A candidate's impact over the incumbent: its rating minus the incumbent's in each bootstrap
/// round, as a median and 95 % interval (`None` when a round lacks either model).
pub fn impact(
    battles: &[Battle],
    candidate: &str,
    incumbent: &str,
    k: f64,
    rounds: u32,
    seed: u64,
) -> Option<Interval> {
    let diffs = bootstrap_rounds(battles, k, rounds, seed)
        .iter()
        .map(|r| Some(r.get(candidate)? - r.get(incumbent)?))
        .collect::<Option<Vec<f64>>>()?;
    (!diffs.is_empty()).then(|| interval(diffs))
}

/// The Bradley–Terry fit: each model's rating on the Elo scale (mean 1000). Stops when no
/// strength moves by more than 1e-10 relative, or after 10 000 steps.
pub fn bradley_terry(battles: &[Battle]) -> BTreeMap<String, f64> {
    let mut names: Vec<&str> = battles
        .iter()
        .flat_map(|b| [b.a.as_str(), b.b.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    let index = |n: &str| names.binary_search(&n).expect("listed");
    let m = names.len();
    // wins[i]: i's score summed; games[i][j]: battles between i and j.
    let mut wins = vec![0.0; m];
    let mut games = vec![vec![0.0; m]; m];
    for b in battles {
        let (i, j) = (index(&b.a), index(&b.b));
        if i == j {
            continue;
        }
        let s = b.outcome.score_a();
        wins[i] += s;
        wins[j] += 1.0 - s;
        games[i][j] += 1.0;
        games[j][i] += 1.0;
    }
    let mut p = vec![1.0; m];
    for _ in 0..10_000 {
        let mut next = vec![0.0; m];
        for i in 0..m {
            let denom: f64 = (0..m)
                .filter(|&j| j != i && games[i][j] > 0.0)
                .map(|j| games[i][j] / (p[i] + p[j]))
                .sum();
            next[i] = if denom > 0.0 { wins[i] / denom } else { p[i] };
        }
        // Strengths are defined up to a factor: keep their geometric mean at 1.
        let mean_log = next.iter().map(|x: &f64| x.max(1e-300).ln()).sum::<f64>() / m as f64;
        for x in &mut next {
            *x = x.max(1e-300) / mean_log.exp();
        }
        let moved = p
            .iter()
            .zip(&next)
            .map(|(a, b)| ((a - b) / a).abs())
            .fold(0.0, f64::max);
        p = next;
        if moved < 1e-10 {
            break;
        }
    }
    names
        .iter()
        .zip(p)
        .map(|(n, s)| ((*n).to_owned(), INITIAL + SCALE * s.log(BASE)))
        .collect()
}
