//! Causal attention over the KV cache, for any number of new queries.
//!
//! Query `t` (absolute position `p0 + t`) of head `h` attends keys `0..=p0 + t` (within a
//! sliding window, the last `window` of them) of its KV group
//! `h / (heads / kv_heads)`, read in place — no grouped-query copies, no `L × L` score matrix
//! or mask. Each value has one fixed arithmetic, computed on one thread:
//! - the score of (query, key) is `Σ_d q[d]·k[d]` accumulated in `d` order with fused
//!   multiply-adds, times `1/√d`;
//! - the softmax uses the engine's own [`exp`] and a lane-wise [`sum8`] in key order;
//! - the output is `Σ_p e_p · v_p` accumulated in key order (fused), divided by the sum.
//!
//! Keys are stored in tiles of eight positions per KV head (`[g][position / 8][d][position % 8]`),
//! so eight keys' scores are one vector, a tile is one contiguous read, and a block of queries
//! shares every key load. A score does not depend on which other
//! queries or keys were computed with it, so a prefill of many tokens, a decode step and a
//! prefill after a reused prefix give the same bits for the same position.

use super::ops::{exp, sum8};
use rayon::prelude::*;

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Dimensions per head (a multiple of 16).
    pub head_dim: usize,
    /// A sliding window: a query attends only the last `window` positions, its own included
    /// (Gemma 3's local layers); `None`: every earlier position.
    pub window: Option<usize>,
    /// Soft-capping of the scaled scores, `cap · tanh(score / cap)`, where the file asks for it
    /// (`attn_logit_softcapping`).
    pub softcap: Option<f32>,
}

/// One layer's cache as attention reads it.
#[derive(Clone, Copy)]
pub struct Kv<'a> {
    /// Keys in tiles of eight positions: key `p`, dimension `d` of KV head `g` is at
    /// [`key_index`]`(g, d, p, head_dim, cap)`.
    pub k_t: &'a [f32],
    /// Values, position-major (`kv_heads · head_dim` per position).
    pub v: &'a [f32],
    /// Positions held per KV head (a multiple of 8).
    pub cap: usize,
}

/// Where dimension `d` of key `p` of KV head `g` lives in [`Kv::k_t`].
#[inline(always)]
pub fn key_index(g: usize, d: usize, p: usize, head_dim: usize, cap: usize) -> usize {
    g * head_dim * cap + (p / 8) * head_dim * 8 + d * 8 + p % 8
}

impl Kv<'_> {
    /// Key `p` of KV head `g`, gathered (for references and tests).
    pub fn key(&self, s: Shape, g: usize, p: usize) -> Vec<f32> {
        (0..s.head_dim)
            .map(|d| self.k_t[key_index(g, d, p, s.head_dim, self.cap)])
            .collect()
    }
}

/// Queries per block in a prefill.
const QB: usize = 8;

/// Scores of `Q` queries against keys `0..n` (`n` rounded up to 8, within the row padding):
/// `out[i][p] = (Σ_d q_i[d]·k[d][p]) · scale`.
#[inline(always)]
fn scores_portable<const Q: usize>(
    q: [&[f32]; Q],
    k_t: &[f32],
    n: usize,
    scale: f32,
    out: &mut [Vec<f32>; Q],
) {
    let hd = q[0].len();
    for p in 0..n.div_ceil(8) * 8 {
        let tile = &k_t[(p / 8) * hd * 8..(p / 8 + 1) * hd * 8];
        for i in 0..Q {
            let mut acc = 0f32;
            for d in 0..hd {
                acc = q[i][d].mul_add(tile[d * 8 + p % 8], acc);
            }
            out[i][p] = acc * scale;
        }
    }
}

/// [`scores_portable`] with AVX2.
///
/// # Safety
/// The CPU has AVX2 and FMA; `k_t` holds at least `round_up(n, 8) · hd` values (one KV head's
/// tiles up to position `n`), every `q[i]` holds `hd` values and every `out[i]` at least
/// `round_up(n, 8)`. [`causal`] checks the cache's size; [`block`] sizes the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2<const Q: usize>(
    q: [&[f32]; Q],
    k_t: &[f32],
    n: usize,
    scale: f32,
    out: &mut [Vec<f32>; Q],
) {
    use std::arch::x86_64::*;
    let hd = q[0].len();
    let padded = n.div_ceil(8) * 8;
    debug_assert!(k_t.len() >= padded * hd);
    debug_assert!(q.iter().all(|r| r.len() == hd) && out.iter().all(|o| o.len() >= padded));
    let mut p = 0;
    while p < n {
        let mut acc = [_mm256_setzero_ps(); Q];
        let tile = (p / 8) * hd * 8;
        for d in 0..hd {
            // SAFETY: a head holds `cap` ≥ round_up(n, 8) positions; q rows hold `hd` values.
            let kv = unsafe { _mm256_loadu_ps(k_t.as_ptr().add(tile + d * 8)) };
            for i in 0..Q {
                let qd = _mm256_set1_ps(unsafe { *q[i].get_unchecked(d) });
                acc[i] = _mm256_fmadd_ps(qd, kv, acc[i]);
            }
        }
        let sv = _mm256_set1_ps(scale);
        for i in 0..Q {
            // SAFETY: score rows are sized to round_up(n, 8).
            unsafe { _mm256_storeu_ps(out[i].as_mut_ptr().add(p), _mm256_mul_ps(acc[i], sv)) };
        }
        p += 8;
    }
}

/// Softmax-weighted values of one query over its first `len` keys, from its `scores`
/// (overwritten with the exponentials).
#[inline(always)]
fn mix(scores: &mut [f32], v: &[f32], stride: usize, off: usize, out: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for x in scores.iter_mut() {
        *x = exp(*x - max);
    }
    let total = sum8(scores);
    // As many output dimensions as fit the registers (64, else 16), held over all keys in one
    // pass over the values (the order of each output's sum is still the key order).
    if out.len().is_multiple_of(64) {
        accumulate::<64>(scores, v, stride, off, out);
    } else {
        accumulate::<16>(scores, v, stride, off, out);
    }
    let inv = 1.0 / total;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// `out[d] = Σ_p e_p · v_p[d]` in key order, `W` dimensions per pass.
#[inline(always)]
fn accumulate<const W: usize>(e: &[f32], v: &[f32], stride: usize, off: usize, out: &mut [f32]) {
    for (c, oc) in out.chunks_exact_mut(W).enumerate() {
        let mut acc = [0f32; W];
        for (p, &w) in e.iter().enumerate() {
            let start = p * stride + off + W * c;
            let vp: &[f32; W] = v[start..start + W].try_into().expect("W values");
            for j in 0..W {
                acc[j] = w.mul_add(vp[j], acc[j]);
            }
        }
        oc.copy_from_slice(&acc);
    }
}

/// [`mix`] compiled with AVX2 and FMA (the same operations, so the same bits).
///
/// # Safety
/// The CPU has AVX2 and FMA. (Every access inside is bounds-checked.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mix_avx2(scores: &mut [f32], v: &[f32], stride: usize, off: usize, out: &mut [f32]) {
    mix(scores, v, stride, off, out)
}

fn use_avx2() -> bool {
    matches!(
        super::q8::detected(),
        super::q8::Kernel::Avx2 | super::q8::Kernel::Avx512Vnni
    )
}

/// The queries `who = [(token, head); Q]`, whose heads share one KV head, their outputs in
/// `out` (`Q · head_dim` values, in `who`'s order): the keys are read once for all of them.
/// A block is `Q` tokens of one head in a prefill, or the heads of one KV group in a decode
/// step; each query's values are the same either way.
fn block<const Q: usize>(
    q: &[f32],
    kv: Kv<'_>,
    s: Shape,
    p0: usize,
    who: [(usize, usize); Q],
    out: &mut [f32],
) {
    let hd = s.head_dim;
    let qd = s.heads * hd;
    let g = who[0].1 / (s.heads / s.kv_heads);
    debug_assert!(who.iter().all(|&(_, h)| h / (s.heads / s.kv_heads) == g));
    let k_t = &kv.k_t[g * hd * kv.cap..(g + 1) * hd * kv.cap];
    // Keys the last query sees.
    let n = p0 + who.iter().map(|&(t, _)| t).max().unwrap_or(0) + 1;
    debug_assert!(
        n <= kv.cap,
        "causal checked that every query's keys fit the cache"
    );
    let rows: [&[f32]; Q] = std::array::from_fn(|i| {
        &q[who[i].0 * qd + who[i].1 * hd..who[i].0 * qd + (who[i].1 + 1) * hd]
    });
    let mut sc: [Vec<f32>; Q] = std::array::from_fn(|_| vec![0f32; n.div_ceil(8) * 8]);
    let scale = 1.0 / (hd as f32).sqrt();
    let fast = use_avx2();
    if fast {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA were detected; `k_t` is this KV head's whole slice of a cache
        // that `causal` checked holds `cap ≥ n` positions (a multiple of 8), each row of `rows`
        // is `hd` long and each of `sc` is `round_up(n, 8)` long.
        unsafe {
            scores_avx2(rows, k_t, n, scale, &mut sc)
        };
    } else {
        scores_portable(rows, k_t, n, scale, &mut sc);
    }
    let stride = s.kv_heads * hd;
    for (i, (scores, o)) in sc.iter_mut().zip(out.chunks_exact_mut(hd)).enumerate() {
        let len = p0 + who[i].0 + 1;
        // Keys before the window are left out of the softmax altogether, as if masked.
        let first = s.window.map_or(0, |w| len.saturating_sub(w));
        let scores = &mut scores[first..len];
        if let Some(cap) = s.softcap {
            super::ops::soft_cap(scores, cap);
        }
        let off = g * hd + first * stride;
        if fast {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 and FMA were detected.
            unsafe {
                mix_avx2(scores, kv.v, stride, off, o)
            };
        } else {
            mix(scores, kv.v, stride, off, o);
        }
    }
}

/// Attention for `n` new queries `q` (`n` × `heads · head_dim`) at positions `p0..p0 + n`,
/// whose keys and values are already in the cache; writes `out` (`n` × `heads · head_dim`,
/// token-major). Blocks of queries of one head run in parallel on the current rayon pool.
///
/// # Panics
/// When the arguments break the contract the kernels' unchecked reads rely on: `kv_heads`
/// divides `heads`, `head_dim` is a non-zero multiple of 16, `q` and `out` hold whole tokens,
/// the cache's capacity is a multiple of 8 that holds positions `0..p0 + n`, and `k_t` and `v`
/// are that large. Checked once here, so that the kernels below may index without checks.
pub fn causal(q: &[f32], kv: Kv<'_>, s: Shape, p0: usize, out: &mut [f32]) {
    let hd = s.head_dim;
    assert!(
        s.heads > 0 && s.kv_heads > 0 && s.heads.is_multiple_of(s.kv_heads),
        "attention: {} heads over {} KV heads",
        s.heads,
        s.kv_heads
    );
    assert!(
        hd > 0 && hd.is_multiple_of(16),
        "attention: head_dim {hd} is not a multiple of 16"
    );
    let qd = s.heads * hd;
    assert!(
        q.len().is_multiple_of(qd) && out.len() == q.len(),
        "attention: {} query values, {} outputs, {qd} per token",
        q.len(),
        out.len()
    );
    let n = q.len() / qd;
    let kvd = s.kv_heads * hd;
    assert!(
        kv.cap.is_multiple_of(8) && p0 + n <= kv.cap,
        "attention: positions {p0}..{} do not fit a cache of {}",
        p0 + n,
        kv.cap
    );
    assert!(
        kv.k_t.len() >= kvd * kv.cap && kv.v.len() >= (p0 + n) * kvd,
        "attention: the cache holds {} keys and {} values, {} and {} are needed",
        kv.k_t.len(),
        kv.v.len(),
        kvd * kv.cap,
        (p0 + n) * kvd
    );
    // Head-major scratch, so that each task owns one contiguous slice.
    let mut hm = vec![0f32; s.heads * n * hd];
    let group = s.heads / s.kv_heads;
    if n == 1 && (2..=4).contains(&group) {
        // A decode step: the heads of a KV group read its keys together, once.
        hm.par_chunks_mut(group * hd)
            .enumerate()
            .for_each(|(g, o)| {
                let h0 = g * group;
                match group {
                    2 => block::<2>(q, kv, s, p0, [(0, h0), (0, h0 + 1)], o),
                    3 => block::<3>(q, kv, s, p0, std::array::from_fn(|i| (0, h0 + i)), o),
                    _ => block::<4>(q, kv, s, p0, std::array::from_fn(|i| (0, h0 + i)), o),
                }
            });
    } else {
        hm.par_chunks_mut(n * hd).enumerate().for_each(|(h, ho)| {
            ho.par_chunks_mut(QB * hd).enumerate().for_each(|(b, o)| {
                let t0 = b * QB;
                if o.len() == QB * hd {
                    block::<QB>(q, kv, s, p0, std::array::from_fn(|i| (t0 + i, h)), o);
                } else {
                    for (j, oj) in o.chunks_exact_mut(hd).enumerate() {
                        block::<1>(q, kv, s, p0, [(t0 + j, h)], oj);
                    }
                }
            });
        });
    }
    for h in 0..s.heads {
        for t in 0..n {
            out[t * s.heads * hd + h * hd..t * s.heads * hd + (h + 1) * hd]
                .copy_from_slice(&hm[(h * n + t) * hd..(h * n + t + 1) * hd]);
        }
    }
}
