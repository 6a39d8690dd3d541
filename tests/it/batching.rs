//! Sequences decoded together (jurors sharing a model, issue #30): a model holds several KV
//! caches, each step computes one token of every sequence still going as one batch of rows,
//! and a prefix the sequences share is computed once. The property that makes it safe: a
//! sequence gets the same bits in a batch as alone, for 1 to 3 sequences and 1 to 3 threads.

use crate::common::greedy_decoding as decoding;
use crate::common::{engine_weights as weights, pool, tiny_model_path, tiny_model_threads};
use cybergov::magi::candle::transformer::{
    EngineError, MAX_SEQUENCES, Request, Transformer, Weights,
};
use cybergov::magi::juror::{deliberate, deliberate_together};
use cybergov::magi::prompts::{JURORS, Prompts};
use std::sync::Arc;

/// Three prompts sharing a 20-token prefix, then suffixes of different lengths.
fn prompts() -> Vec<Vec<u32>> {
    let prefix: Vec<u32> = (0..20).map(|i| (i * 7 + 3) % 250).collect();
    [5usize, 9, 2]
        .iter()
        .enumerate()
        .map(|(k, &len)| {
            let mut p = prefix.clone();
            p.extend((0..len as u32).map(|i| (i * 13 + 31 * k as u32 + 1) % 250));
            p
        })
        .collect()
}

fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best as u32
}

/// Sequence `k` decoded greedily alone for `steps - k` steps: the logits of every step.
fn alone(w: &Arc<Weights>, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
    let mut m = Transformer::new(w.clone());
    let mut ids = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..steps {
        let l = m.logits(&ids, 1).unwrap().pop().unwrap();
        ids.push(argmax(&l));
        out.push(l);
    }
    out
}

/// The same sequences decoded as one batch per step, sequence `k` leaving after
/// `steps - k` steps (a juror that ends its rationale early).
fn together(m: &mut Transformer, prompts: &[Vec<u32>], steps: usize) -> Vec<Vec<Vec<f32>>> {
    let mut ids = prompts.to_vec();
    let mut out = vec![Vec::new(); prompts.len()];
    for step in 0..steps {
        let going: Vec<usize> = (0..prompts.len()).filter(|k| step < steps - k).collect();
        let requests: Vec<Request<'_>> = going
            .iter()
            .map(|&k| Request {
                seq: k,
                ids: &ids[k],
                want: 1,
            })
            .collect();
        let logits = m.logits_batch(&requests).unwrap();
        for (&k, mut l) in going.iter().zip(logits) {
            let l = l.pop().unwrap();
            ids[k].push(argmax(&l));
            out[k].push(l);
        }
    }
    out
}

#[test]
fn sequences_decoded_together_get_the_bits_they_get_alone() {
    let w = weights(&tiny_model_path(5));
    let prompts = prompts();
    const STEPS: usize = 6;
    let solo: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .enumerate()
        .map(|(k, p)| pool(1).install(|| alone(&w, p, STEPS - k)))
        .collect();
    for threads in 1..=3 {
        for rows in 1..=3 {
            let mut m = Transformer::new(w.clone());
            let got = pool(threads).install(|| together(&mut m, &prompts[..rows], STEPS));
            for k in 0..rows {
                assert_eq!(got[k], solo[k], "sequence {k} of {rows}, {threads} threads");
            }
            // The 20-token prefix is computed once, not once per sequence.
            let suffixes: usize = prompts[..rows].iter().map(|p| p.len() - 20).sum();
            let decoded: usize = (0..rows).map(|k| STEPS - k - 1).sum();
            assert_eq!(
                m.stats().computed as usize,
                20 + suffixes + decoded,
                "{rows} sequences: {:?}",
                m.stats()
            );
        }
    }
}

#[test]
fn a_sequence_takes_a_prefix_another_sequence_has_cached() {
    let w = weights(&tiny_model_path(6));
    let p = prompts();
    let mut m = Transformer::new(w.clone());
    m.logits(&p[0], 1).unwrap();
    let before = m.stats();
    let copied = m
        .logits_batch(&[Request {
            seq: 2,
            ids: &p[1],
            want: 2,
        }])
        .unwrap();
    assert_eq!(m.stats().reused - before.reused, 20, "{:?}", m.stats());
    assert_eq!(m.stats().computed - before.computed, 9);
    let fresh = Transformer::new(w).logits(&p[1], 2).unwrap();
    assert_eq!(copied[0], fresh);
    // Sequence 0 still holds its own tokens after lending its prefix.
    assert_eq!(m.cached(), &p[0][..]);
}

#[test]
fn a_malformed_batch_is_refused_naming_why() {
    let w = weights(&tiny_model_path(6));
    let p = prompts();
    let mut m = Transformer::new(w);
    let twice = [
        Request {
            seq: 1,
            ids: &p[0],
            want: 1,
        },
        Request {
            seq: 1,
            ids: &p[1],
            want: 1,
        },
    ];
    let err = m.logits_batch(&twice).unwrap_err();
    assert!(matches!(err, EngineError::Batch(_)), "{err}");
    assert!(
        err.to_string().contains("sequence 1 is named twice"),
        "{err}"
    );
    let beyond = [Request {
        seq: MAX_SEQUENCES,
        ids: &p[0],
        want: 1,
    }];
    let err = m.logits_batch(&beyond).unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
    assert!(m.logits_batch(&[]).is_err());
}

/// The jury's use of it: jurors sharing a model deliberate together and write the records
/// they write alone, for 1 to 3 jurors and 1 to 3 threads.
#[tokio::test]
async fn jurors_deliberating_together_write_the_records_they_write_alone() {
    let prompts = Prompts::embedded();
    let content = "# Toolkit\n\nWe request 48,000 USDC for six months of light-client work.";
    let load = |threads| tiny_model_threads(4, threads);
    let mut alone = Vec::new();
    for j in JURORS {
        let record = deliberate(j, &load(1), &prompts, content, &decoding(10))
            .await
            .unwrap();
        alone.push(record.to_bytes());
    }
    for threads in 1..=3 {
        let model = load(threads);
        for rows in 1..=3 {
            let records =
                deliberate_together(&JURORS[..rows], &model, &prompts, content, &decoding(10))
                    .await
                    .unwrap();
            assert_eq!(records.len(), rows);
            for (k, r) in records.iter().enumerate() {
                assert_eq!(
                    r.to_bytes(),
                    alone[k],
                    "juror {} of {rows}, {threads} threads",
                    JURORS[k]
                );
            }
        }
    }
}
