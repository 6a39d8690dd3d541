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

/// The `k` most probable tokens, best first (the lower index first on ties), each with
/// `ln softmax(logits)` computed as [`log_prob`] does.
pub fn top_log_probs(logits: &[f32], k: usize) -> Vec<(u32, f64)> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let total: f64 = logits.iter().map(|&x| f64::from(ops::exp(x - max))).sum();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(order.len());
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, by_logit);
    }
    order.truncate(k);
    order.sort_by(by_logit);
    order
        .into_iter()
        .map(|t| (t, f64::from(logits[t as usize] - max) - total.ln()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_tokens_are_the_best_first_with_the_same_log_probs() {
        let logits = [0.5, 3.0, -1.0, 3.0, 2.0];
        let top = top_log_probs(&logits, 3);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, [1, 3, 4]);
        for (t, lp) in top {
            assert_eq!(lp, log_prob(&logits, t));
        }
        assert_eq!(top_log_probs(&logits, 0), []);
        assert_eq!(top_log_probs(&logits, 9).len(), 5);
    }
}
