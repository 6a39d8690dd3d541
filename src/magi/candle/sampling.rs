//! What happens to logits after the model: the repetition penalty, greedy choice and
//! log-probabilities, each with one fixed arithmetic.

use super::kernels::ops;

/// The usual repetition penalty: every distinct token of `recent` has its logit divided by
/// `penalty` when positive and multiplied by it otherwise.
pub fn apply_repeat_penalty(logits: &mut [f32], penalty: f32, recent: &[u32]) {
    let mut seen = std::collections::BTreeSet::new();
    for &t in recent {
        if !seen.insert(t) {
            continue;
        }
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l >= 0.0 {
                *l / penalty
            } else {
                *l * penalty
            };
        }
    }
}

/// The index of the largest logit; the first one on ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, x) in logits.iter().enumerate() {
        if *x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// `ln softmax(logits)[token]`: the max-shifted exponentials (the engine's own `exp`) summed
/// in f64, in index order.
pub fn log_prob(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let total: f64 = logits.iter().map(|&x| f64::from(ops::exp(x - max))).sum();
    f64::from(logits[token as usize] - max) - total.ln()
}
