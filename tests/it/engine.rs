//! The juror engine (`crates/engine`: kernels and transformer) on random GGUFs written by the
//! tests: its attention against a naive reference built from plain candle ops, and the
//! determinism the KV-cache reuse depends on — the same bits across kernels, thread counts and
//! batchings, a rewound cache equal to a fresh prefill, jurors sharing a model equal to jurors
//! run alone. Correctness and determinism only, never time.

use crate::common::tiny_gguf::{Shape as ModelShape, write_random};
use crate::common::{
    engine_weights as weights, pool, tiny_model, tiny_model_path, tiny_model_threads,
};
use candle_core::{D, Device, Tensor};
use cybergov::magi::candle::kernels::attention::{self, Kv, Shape};
use cybergov::magi::candle::kernels::half::{f16_to_f32, f32_to_f16};
use cybergov::magi::candle::kernels::q8::{self, Kernel, Q8Acts, Q8Matrix};
use cybergov::magi::candle::transformer::{Transformer, Weights};
use cybergov::magi::candle::{CandleModel, LoadOptions};
use cybergov::magi::juror::deliberate;
use cybergov::magi::model::{ChatMessage, GenerateParams, LanguageModel};
use cybergov::magi::prompts::{JURORS, Prompts};
use std::sync::Arc;

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Naive attention with plain candle ops: the full masked score matrix, grouped-query heads
/// repeated, softmax, then the weighted values. The reference for the engine's kernel.
fn naive_attention(q: &[f32], kv: Kv<'_>, s: Shape, p0: usize, out: &mut [f32]) {
    let dev = Device::Cpu;
    let hd = s.head_dim;
    let n = q.len() / (s.heads * hd);
    let len = p0 + n;
    // Position-major keys, gathered from the cache's transposed rows.
    let k: Vec<f32> = (0..len)
        .flat_map(|p| (0..s.kv_heads).flat_map(move |g| kv.key(s, g, p)))
        .collect();
    let v: Vec<f32> = (0..len)
        .flat_map(|p| (0..s.kv_heads).flat_map(move |g| kv.value(s, g, p).to_vec()))
        .collect();
    let q = Tensor::from_slice(q, (n, s.heads, hd), &dev).unwrap();
    let k = Tensor::from_slice(&k[..len * s.kv_heads * hd], (len, s.kv_heads, hd), &dev).unwrap();
    let v = Tensor::from_slice(&v[..len * s.kv_heads * hd], (len, s.kv_heads, hd), &dev).unwrap();
    let group = s.heads / s.kv_heads;
    let mask: Vec<f32> = (0..n)
        .flat_map(|t| (0..len).map(move |p| if p <= p0 + t { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    let mask = Tensor::from_vec(mask, (n, len), &dev).unwrap();
    let mut heads = Vec::new();
    for h in 0..s.heads {
        let g = h / group;
        let qh = q.narrow(1, h, 1).unwrap().squeeze(1).unwrap(); // n × hd
        let kh = k.narrow(1, g, 1).unwrap().squeeze(1).unwrap(); // len × hd
        let vh = v.narrow(1, g, 1).unwrap().squeeze(1).unwrap();
        let scores = (qh.matmul(&kh.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
        let scores = scores.broadcast_add(&mask).unwrap();
        let max = scores.max_keepdim(D::Minus1).unwrap();
        let e = scores.broadcast_sub(&max).unwrap().exp().unwrap();
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        heads.push(p.matmul(&vh).unwrap()); // n × hd
    }
    let o = Tensor::stack(&heads, 1).unwrap().flatten_all().unwrap();
    out.copy_from_slice(&o.to_vec1::<f32>().unwrap());
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn half_precision_round_trips_and_rounds_to_nearest_even() {
    // Every half value (NaNs aside) survives single precision and back.
    for h in 0..=u16::MAX {
        let x = f16_to_f32(h);
        if x.is_nan() {
            assert!(f16_to_f32(f32_to_f16(x)).is_nan(), "NaN {h:#06x}");
            continue;
        }
        assert_eq!(f32_to_f16(x), h, "{h:#06x} = {x}");
    }
    // Between two neighbours (subnormals, normals, either sign): the midpoint goes to the even
    // one, anything off the midpoint to the nearer one.
    for h in (0..0x7bffu16).chain(0x8000..0xfbff) {
        let (a, b) = (f16_to_f32(h), f16_to_f32(h + 1));
        let mid = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
        assert_eq!(
            f64::from(mid),
            (f64::from(a) + f64::from(b)) / 2.0,
            "exact midpoint"
        );
        let even = if h % 2 == 0 { h } else { h + 1 };
        assert_eq!(f32_to_f16(mid), even, "midpoint of {h:#06x}");
        // One unit in the last place smaller or larger in magnitude (b is the larger).
        let (toward_a, toward_b) = (
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        );
        assert_eq!(f32_to_f16(toward_a), h, "just nearer {h:#06x}");
        assert_eq!(f32_to_f16(toward_b), h + 1, "just nearer {:#06x}", h + 1);
    }
    // Past the largest half (65504): to infinity from the midpoint to the next binade on.
    assert_eq!(f32_to_f16(65519.99), 0x7bff);
    assert_eq!(f32_to_f16(65520.0), 0x7c00);
    assert_eq!(f32_to_f16(-1e9), 0xfc00);
    assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
    assert_eq!(f32_to_f16(1e-9), 0);
    assert_eq!(f32_to_f16(-0.0), 0x8000);
}

/// A cache of `len` random positions in the engine's layout, for `s`.
fn random_cache(s: Shape, len: usize, seed: u64) -> (Vec<u16>, Vec<u16>, usize) {
    let kvd = s.kv_heads * s.head_dim;
    let cap = len.div_ceil(8) * 8;
    let (k, v) = (values(len * kvd, seed), values(len * kvd, seed + 1));
    let (mut k_t, mut v_h) = (vec![0u16; kvd * cap], vec![0u16; kvd * cap]);
    for p in 0..len {
        for j in 0..kvd {
            let (g, d) = (j / s.head_dim, j % s.head_dim);
            k_t[attention::key_index(g, d, p, s.head_dim, cap)] = f32_to_f16(k[p * kvd + j]);
            v_h[attention::value_index(g, d, p, s.head_dim, cap)] = f32_to_f16(v[p * kvd + j]);
        }
    }
    (k_t, v_h, cap)
}

/// Every vector kernel this CPU can run (AVX-512 implies AVX2 here).
fn kernels_here() -> &'static [Kernel] {
    match q8::detected() {
        Kernel::Portable => &[],
        Kernel::Avx2 => &[Kernel::Avx2],
        Kernel::Avx512Vnni => &[Kernel::Avx2, Kernel::Avx512Vnni],
    }
}

#[test]
fn attention_kernels_agree_to_the_bit() {
    // Decode steps (one query; KV groups of 3 and 4 read together: with AVX-512 in one pass
    // of 64 dimensions, in four, or 16 at a time), prefills of a few and of more than a block
    // of queries, with and without a window and soft-capping; every kernel this CPU runs.
    let available = kernels_here();
    for (heads, kv_heads, hd) in [(9, 3, 64), (8, 2, 16), (4, 4, 32), (4, 1, 256)] {
        for (p0, n) in [(0, 1), (37, 1), (200, 1), (5, 3), (13, 19)] {
            // A window of 5 leaves the eight queries of a prefill block no key in common.
            for (window, softcap) in [(None, None), (Some(16), Some(30.0)), (Some(5), None)] {
                let s = Shape {
                    heads,
                    kv_heads,
                    head_dim: hd,
                    window,
                    softcap,
                };
                let (k_t, v, cap) = random_cache(s, p0 + n, (p0 * 31 + n) as u64);
                let kv = Kv {
                    k_t: &k_t,
                    v: &v,
                    cap,
                };
                let q = values(n * heads * hd, 7 + p0 as u64);
                let mut portable = vec![0f32; q.len()];
                attention::causal_with(Kernel::Portable, &q, kv, s, p0, &mut portable);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                for &here in available {
                    let mut fast = vec![0f32; q.len()];
                    attention::causal_with(here, &q, kv, s, p0, &mut fast);
                    assert_eq!(
                        bits(&portable),
                        bits(&fast),
                        "{here:?} vs portable: {heads}/{kv_heads} heads of {hd}, positions \
                         {p0}+{n}, window {window:?}, softcap {softcap:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn attention_kernel_matches_the_naive_reference() {
    let s = Shape {
        heads: 6,
        kv_heads: 2,
        head_dim: 16,
        window: None,
        softcap: None,
    };
    let (p0, n) = (5, 7);
    let q = values(n * s.heads * s.head_dim, 1);
    // The reference reads the cache's half-precision values through `Kv`, as the kernel does.
    let (k_t, v, cap) = random_cache(s, p0 + n, 2);
    let kv = Kv {
        k_t: &k_t,
        v: &v,
        cap,
    };
    let mut ours = vec![0f32; q.len()];
    let mut reference = vec![0f32; q.len()];
    attention::causal(&q, kv, s, p0, &mut ours);
    naive_attention(&q, kv, s, p0, &mut reference);
    assert!(
        max_diff(&ours, &reference) < 1e-5,
        "{}",
        max_diff(&ours, &reference)
    );
}

#[test]
fn model_logits_with_the_engine_attention_match_the_naive_attention() {
    let w = weights(&tiny_model_path(1));
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 250).collect();
    let ours = Transformer::new(w.clone()).logits(&ids, 5).unwrap();
    let reference = Transformer::new(w)
        .with_attention(naive_attention)
        .logits(&ids, 5)
        .unwrap();
    for (a, b) in ours.iter().zip(&reference) {
        assert!(max_diff(a, b) < 1e-4, "logits differ by {}", max_diff(a, b));
    }
}

#[test]
fn q8_kernels_agree_to_the_bit_and_do_not_depend_on_the_batch() {
    // One block, an odd number and an even number of blocks: the kernels pair blocks up (the
    // even and the odd accumulators of the definition), so a lone last block is its own path.
    for cols in [32, 96, 128] {
        q8_kernels_agree(37, cols, 9);
    }
    // SmolLM2's width, in chunks with tiles of eight rows for one token (then four, then one).
    q8_kernels_agree(77, 576, 5);
}

fn q8_kernels_agree(rows: usize, cols: usize, n: usize) {
    let mut w = Q8Matrix::quantize(&values(rows * cols, 4), rows, cols);
    // A file may hold −128, which no quantizer here writes: the AVX-512 kernel offsets the
    // weights by 128, the AVX2 one takes their magnitude.
    for q in w.qs.iter_mut().step_by(7) {
        *q = i8::MIN;
    }
    let x = values(n * cols, 5);
    let mut acts = Q8Acts::default();
    acts.quantize(&x, cols);
    let mut portable = vec![0f32; n * rows];
    q8::matmul_with(Kernel::Portable, &w, &acts, &mut portable);
    let mut fast = vec![0f32; n * rows];
    q8::matmul(&w, &acts, &mut fast);
    assert_eq!(
        portable,
        fast,
        "kernel {:?} differs from the definition",
        q8::detected()
    );
    // Every kernel this CPU can run (AVX-512 implies AVX2 here) gives the definition's bits.
    let available = kernels_here();
    for &k in available {
        let mut out = vec![0f32; n * rows];
        q8::matmul_with(k, &w, &acts, &mut out);
        assert_eq!(portable, out, "kernel {k:?}, {cols} columns");
        // Every form this CPU can run (both forms of the AVX-512 prefill, AVX2's integer sums
        // with AVX-VNNI where there is AVX-VNNI), whichever is the faster here.
        let vnni: &[bool] = if q8::has_avx_vnni() {
            &[false, true]
        } else {
            &[false]
        };
        let at = cybergov::magi::candle::kernels::tiles::Placement {
            stride: rows,
            offset: 0,
        };
        for prefill in [q8::PrefillSteps::Wide, q8::PrefillSteps::Halves] {
            for &avx_vnni in vnni {
                let forms = q8::Forms { prefill, avx_vnni };
                let mut out = vec![0f32; n * rows];
                q8::matmul_forms(k, forms, &w, &acts, &mut out, at);
                assert_eq!(portable, out, "kernel {k:?} in {forms:?}, {cols} columns");
            }
        }
    }
    // Groups of two and three tokens (the kernels take up to four at once) too.
    for k in [2, 3] {
        let mut few = Q8Acts::default();
        few.quantize(&x[..k * cols], cols);
        let mut out = vec![0f32; k * rows];
        q8::matmul(&w, &few, &mut out);
        assert_eq!(out, portable[..k * rows], "{k} tokens, {cols} columns");
    }
    // Each token alone gives the same row as within the batch.
    for t in 0..n {
        let mut one = Q8Acts::default();
        one.quantize(&x[t * cols..(t + 1) * cols], cols);
        let mut out = vec![0f32; rows];
        q8::matmul(&w, &one, &mut out);
        assert_eq!(out, fast[t * rows..(t + 1) * rows]);
    }
}

#[test]
fn activations_quantize_by_the_definition_whatever_the_values() {
    // Blocks of ordinary values, of zeros, of NaNs, with infinities, a subnormal and a negative
    // zero: the fast form gives the definition's bytes, scales and block sums for all of them.
    let mut x = values(64 * 32, 9);
    (x[3], x[40], x[70], x[100], x[101]) =
        (f32::NAN, f32::INFINITY, -f32::INFINITY, f32::NAN, -0.0);
    x[32 * 10..32 * 11].fill(0.0);
    x[32 * 12..32 * 13].fill(f32::NAN);
    x[32 * 14 + 5] = 1e-40;
    let mut acts = Q8Acts::default();
    acts.quantize(&x, 64);
    let (mut qs, mut d) = (vec![0i8; x.len()], vec![0f32; x.len() / 32]);
    q8::quantize_row(&x, &mut qs, &mut d);
    assert_eq!(acts.qs, qs);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&acts.d), bits(&d));
    let sums: Vec<i32> = qs
        .chunks(32)
        .map(|b| b.iter().map(|&v| i32::from(v)).sum())
        .collect();
    assert_eq!(acts.sums, sums);
    assert!(
        acts.qs[..32].iter().any(|&q| q != 0),
        "ordinary values quantize to something"
    );
}

/// The logits after every position of `ids`, computed three ways, must be the same bits.
fn batchings_agree(w: &Arc<Weights>, ids: &[u32]) {
    let n = ids.len();
    let all = Transformer::new(w.clone()).logits(ids, n).unwrap();
    let mut one_by_one = Transformer::new(w.clone());
    for i in 1..=n {
        let l = one_by_one.logits(&ids[..i], 1).unwrap();
        assert_eq!(l[0], all[i - 1], "position {} one by one", i - 1);
    }
    let mut split = Transformer::new(w.clone());
    split.logits(&ids[..n / 3], 1).unwrap();
    let rest = split.logits(ids, n - n / 3).unwrap();
    assert_eq!(rest, all[n / 3..], "prefix then the rest");
}

#[test]
fn a_token_computes_the_same_however_tokens_are_batched() {
    let w = weights(&tiny_model_path(1));
    let ids: Vec<u32> = (0..30).map(|i| (i * 11 + 5) % 250).collect();
    batchings_agree(&w, &ids);
}

#[test]
fn thread_counts_give_the_same_bits() {
    let w = weights(&tiny_model_path(2));
    let ids: Vec<u32> = (0..50).map(|i| (i * 13 + 1) % 250).collect();
    let run = |threads: usize| {
        pool(threads).install(|| Transformer::new(w.clone()).logits(&ids, 3).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn a_rewound_cache_equals_a_fresh_prefill() {
    let w = weights(&tiny_model_path(3));
    let a: Vec<u32> = (0..40).map(|i| (i * 3 + 7) % 250).collect();
    let mut b = a[..25].to_vec();
    b.extend((0..10).map(|i| (i * 5 + 2) % 250));
    let mut m = Transformer::new(w.clone());
    m.logits(&a, 1).unwrap();
    let reused = m.logits(&b, 2).unwrap();
    assert_eq!(m.stats().reused, 25, "{:?}", m.stats());
    assert_eq!(m.cached(), &b[..]);
    let fresh = Transformer::new(w).logits(&b, 2).unwrap();
    assert_eq!(reused, fresh);
}

/// Not a check: writes the random-weight model of Qwen2.5-0.5B's shape, all 24 layers
/// (≈ 380 MB), that docs/BENCHMARKS.md measures against llama.cpp, to the file named by
/// `CYBERGOV_QWEN_SHAPED` (`cargo test --test it -- --ignored engine::write_qwen`).
#[test]
#[ignore = "writes a 380 MB file for the jurors benchmark"]
fn write_qwen25_05b_shaped_model() {
    let path = std::env::var_os("CYBERGOV_QWEN_SHAPED").expect("CYBERGOV_QWEN_SHAPED names a file");
    write_random(std::path::Path::new(&path), 7, &ModelShape::qwen25_05b(24));
}

#[test]
fn a_qwen2_shaped_model_runs_through_configuration_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qwen.gguf");
    // Qwen2.5-0.5B's widths and heads (qkv biases, halves rotary, tied embedding); two of
    // its 24 layers keep the file and the test small.
    write_random(&path, 7, &ModelShape::qwen25_05b(2));
    let w = weights(&path);
    let c = w.config();
    assert_eq!(
        (c.arch.as_str(), c.hidden, c.heads, c.kv_heads),
        ("qwen2", 896, 14, 2)
    );
    let ids: Vec<u32> = (0..12).map(|i| (i * 17 + 3) % 250).collect();
    batchings_agree(&w, &ids);
    let a = pool(1).install(|| Transformer::new(w.clone()).logits(&ids, 1).unwrap());
    let b = pool(2).install(|| Transformer::new(w.clone()).logits(&ids, 1).unwrap());
    assert_eq!(a, b);
    assert!(a[0].iter().all(|x| x.is_finite()));
}

use crate::common::greedy_decoding as decoding;

#[tokio::test]
async fn one_and_two_threads_generate_byte_identical_text() {
    let msgs = [ChatMessage::user("Say something about the treasury.")];
    let with = |threads| tiny_model_threads(1, threads);
    let params = GenerateParams {
        max_new_tokens: 24,
        repeat_penalty: 1.1,
        repeat_last_n: 64,
    };
    let a = with(1).generate(&msgs, &params).await.unwrap();
    let b = with(2).generate(&msgs, &params).await.unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn jurors_sharing_a_model_give_the_records_of_jurors_run_alone() {
    let prompts = Prompts::embedded();
    let content = "# Toolkit\n\nWe request 48,000 USDC for six months of light-client work.";
    let shared = tiny_model(4);
    let mut together = Vec::new();
    for j in JURORS {
        together.push(
            deliberate(j, &shared, &prompts, content, &decoding(12))
                .await
                .unwrap()
                .to_bytes(),
        );
    }
    for (j, bytes) in JURORS.iter().zip(&together) {
        let alone = deliberate(j, &tiny_model(4), &prompts, content, &decoding(12))
            .await
            .unwrap();
        assert_eq!(&alone.to_bytes(), bytes, "juror {j}");
        let p: f64 = alone.scores.iter().map(|s| s.probability.unwrap()).sum();
        assert!(
            (p - 1.0).abs() < 1e-9,
            "normalised probabilities sum to {p}"
        );
        assert_eq!(
            alone.model.engine,
            Some(cybergov::magi::candle::engine_id())
        );
    }
}

/// Stages running jurors of the same model at once (the pipeline's infer stages of several
/// referenda, on tokio's blocking threads) all finish, and each gets the records it would get
/// alone. When the model's lock was taken inside its pool, a pool worker waiting inside a
/// parallel section could pick up a queued request, which then waited for the model on the
/// very worker that held it: the pipeline tests hung.
#[test]
fn stages_running_jurors_of_one_model_at_once_all_finish() {
    let prompts = Arc::new(Prompts::embedded());
    // Four pool threads and four stages. With the lock inside the pool, one worker picks up a
    // queued request and blocks on the model, a second steals half of the holder's parallel
    // section, and the holder, waiting for that half, picks up the next queued request.
    let load = || {
        CandleModel::load(
            &tiny_model_path(5),
            &LoadOptions {
                threads: Some(4),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let model = load();
    let contents = [
        "# Toolkit\n\nWe request 48,000 USDC for six months of light-client work.",
        "# Events\n\nA conference in Lisbon, 120,000 DOT for venue and travel.",
        "# Audit\n\nTwo audits of the XCM executor, 30,000 USDT.",
        "# Wallet\n\nA hardware wallet integration, 9,000 DOT over three milestones.",
    ];
    let stage = |content: &'static str| {
        let (model, prompts) = (model.clone(), prompts.clone());
        tokio::spawn(async move {
            let mut records = Vec::new();
            for j in JURORS {
                let r = deliberate(j, &model, &prompts, content, &decoding(12))
                    .await
                    .unwrap();
                records.push(r.to_bytes());
            }
            records
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    // A hang guard, not a timing assertion: together the stages take a few seconds.
    let all = rt.block_on(async {
        let stages: Vec<_> = contents.iter().map(|c| stage(c)).collect();
        let all = async {
            let mut records = Vec::new();
            for s in stages {
                records.push(s.await.unwrap());
            }
            records
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), all).await
    });
    let Ok(all) = all else {
        // Dropping the runtime would wait for the deadlocked blocking threads forever.
        rt.shutdown_background();
        panic!("stages running one model at once deadlocked");
    };
    rt.block_on(async {
        for (content, together) in contents.iter().zip(all) {
            let alone = load();
            for (j, bytes) in JURORS.iter().zip(&together) {
                let r = deliberate(j, &alone, &prompts, content, &decoding(12))
                    .await
                    .unwrap();
                assert_eq!(&r.to_bytes(), bytes, "juror {j} on {content:?}");
            }
        }
    });
}

/// A request that panics inside the engine does not take the model down with it: the next
/// juror of the same model runs, and gives the bytes a fresh model gives.
#[tokio::test]
async fn a_juror_that_panics_does_not_poison_the_model() {
    let prompts = Prompts::embedded();
    let content = "# Toolkit\n\nWe request 48,000 USDC for six months of light-client work.";
    let model = tiny_model(6);
    // Fill the cache, then panic while holding the model (a bug in the engine would do it).
    deliberate("balthazar", &model, &prompts, content, &decoding(8))
        .await
        .unwrap();
    let m = model.clone();
    let panicked = std::thread::spawn(move || {
        m.with_engine(|_| panic!("a bug in the engine"));
    })
    .join();
    assert!(panicked.is_err(), "the request panicked");
    let after = deliberate("melchior", &model, &prompts, content, &decoding(8))
        .await
        .expect("the model still answers after a panic");
    let fresh = deliberate("melchior", &tiny_model(6), &prompts, content, &decoding(8))
        .await
        .unwrap();
    assert_eq!(after.to_bytes(), fresh.to_bytes());
    assert!(model.with_engine(|m| m.cached().len()) > 0);
}

#[tokio::test]
async fn a_generation_records_its_speed_and_models_list_shows_it() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    let path = tiny_model_path(1);
    let m = CandleModel::load(
        &path,
        &LoadOptions {
            threads: Some(2),
            speed_dir: Some(models.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let msgs = [ChatMessage::user("Say something about the treasury.")];
    let params = GenerateParams {
        max_new_tokens: 24,
        repeat_penalty: 1.1,
        repeat_last_n: 64,
    };
    let g = m.generate(&msgs, &params).await.unwrap();
    let sha = m.info().file_sha256.unwrap();
    let speed = cybergov::magi::candle::speed::ModelSpeed::read(&models, &sha)
        .expect("a speed record for the model file");
    assert_eq!(speed.threads, 2);
    assert_eq!(speed.kernel, cybergov::magi::candle::KERNEL_ID);
    assert_eq!(
        speed.prefill_tokens_per_second.is_some(),
        g.prompt_tokens >= 16
    );
    assert_eq!(
        speed.decode_tokens_per_second.is_some(),
        g.completion_tokens >= 2
    );
    assert!(speed.decode_tokens_per_second.unwrap_or(1.0) > 0.0);

    // The operator's view: the juror on that file shows what it measured, one not run yet
    // says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cybergov"))
        .args(["models", "list"])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CYBERGOV_MAGI__MODELS_DIR", &models)
        .env("CYBERGOV_MAGI__JURORS__BALTHAZAR__MODEL", &path)
        .env("CYBERGOV_MAGI__JURORS__CASPAR__MODEL", tiny_model_path(2))
        .output()
        .unwrap();
    let text = crate::common::output_text(&out);
    assert!(out.status.success(), "{text}");
    let line = |juror: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(juror))
            .unwrap_or_else(|| panic!("no line for {juror}: {text}"))
            .to_owned()
    };
    assert!(
        line("balthazar").contains("tok/s decode on 2 threads"),
        "{text}"
    );
    assert!(line("caspar").contains("not run here yet"), "{text}");
}
