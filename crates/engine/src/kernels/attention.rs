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
//! Keys and values are stored in half precision (as llama.cpp's default cache: a decode step at
//! a long context reads mostly its cache, and half the bytes is half the time); every kernel
//! widens them exactly to single precision before any arithmetic.
//!
//! Keys are stored in tiles of eight positions per KV head (`[g][position / 8][d][position % 8]`),
//! so eight keys' scores are one vector, a tile is one contiguous read, and a block of queries
//! shares every key load. A score does not depend on which other
//! queries or keys were computed with it, so a prefill of many tokens, a decode step and a
//! prefill after a reused prefix give the same bits for the same position.

use super::half::f16_to_f32;
use super::ops::{exp, prefetch, sum8};
use super::q8::Kernel;
use rayon::prelude::*;
use std::array::from_fn;

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
use avx512::{accumulate_avx512, accumulate_queries_avx512};

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
    pub k_t: &'a [u16],
    /// Values, head-major: value `p` of KV head `g` is the `head_dim` values at
    /// [`value_index`]`(g, 0, p, head_dim, cap)`, so a KV head's values are one contiguous
    /// stream (a decode step reads them in order, which the hardware prefetcher follows).
    pub v: &'a [u16],
    /// Positions held per KV head (a multiple of 8).
    pub cap: usize,
}

/// Where dimension `d` of key `p` of KV head `g` lives in [`Kv::k_t`].
#[inline(always)]
pub fn key_index(g: usize, d: usize, p: usize, head_dim: usize, cap: usize) -> usize {
    g * head_dim * cap + (p / 8) * head_dim * 8 + d * 8 + p % 8
}

/// Where dimension `d` of value `p` of KV head `g` lives in [`Kv::v`].
#[inline(always)]
pub fn value_index(g: usize, d: usize, p: usize, head_dim: usize, cap: usize) -> usize {
    (g * cap + p) * head_dim + d
}

impl Kv<'_> {
    /// Key `p` of KV head `g`, gathered (for references and tests).
    pub fn key(&self, s: Shape, g: usize, p: usize) -> Vec<f32> {
        (0..s.head_dim)
            .map(|d| f16_to_f32(self.k_t[key_index(g, d, p, s.head_dim, self.cap)]))
            .collect()
    }

    /// Value `p` of KV head `g` (for references and tests).
    pub fn value(&self, s: Shape, g: usize, p: usize) -> Vec<f32> {
        let at = value_index(g, 0, p, s.head_dim, self.cap);
        self.v[at..at + s.head_dim]
            .iter()
            .map(|&h| f16_to_f32(h))
            .collect()
    }
}

/// How many positions ahead the kernels ask for keys and values: a decode step streams a
/// whole KV head from memory, and what stalled it was the loads (as in the weight kernels).
const AHEAD: usize = 16;

/// Queries per block in a prefill.
const QB: usize = 8;

/// Scores of `Q` queries against keys `0..n` (`n` rounded up to 8, within the row padding):
/// `out[i][p] = (Σ_d q_i[d]·k[d][p]) · scale`.
#[inline(always)]
fn scores_portable<const Q: usize>(
    q: [&[f32]; Q],
    k_t: &[u16],
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
                acc = q[i][d].mul_add(f16_to_f32(tile[d * 8 + p % 8]), acc);
            }
            out[i][p] = acc * scale;
        }
    }
}

/// [`scores_portable`] with AVX2: each score is the same chain of fused multiply-adds in `d`
/// order, but `L` tiles of eight keys are in flight at once, so that `Q · L` independent chains
/// hide the multiply-add latency (with one tile and a decode step's three queries, three
/// chains left the FMA units idle most of the time).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `k_t` holds at least `round_up(n, 8) · hd` values (one KV
/// head's tiles up to position `n`), every `q[i]` holds `hd` values and every `out[i]` at least
/// `round_up(n, 8)`. [`causal`] checks the cache's size; [`block`] sizes the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_avx2<const Q: usize>(
    q: [&[f32]; Q],
    k_t: &[u16],
    n: usize,
    scale: f32,
    out: &mut [Vec<f32>; Q],
) {
    let hd = q[0].len();
    let tiles = n.div_ceil(8);
    debug_assert!(k_t.len() >= tiles * 8 * hd);
    debug_assert!(q.iter().all(|r| r.len() == hd) && out.iter().all(|o| o.len() >= tiles * 8));
    // About eight chains, within the sixteen registers AVX2 has: 8, 4, 2 or 1 tiles.
    let lanes = (8 / Q).max(1);
    let mut t = 0;
    // SAFETY (all calls): the caller's contract covers every tile below `tiles`.
    unsafe {
        while t + lanes <= tiles {
            match lanes {
                8 => score_tiles::<Q, 8>(q, k_t, t, scale, out),
                4 => score_tiles::<Q, 4>(q, k_t, t, scale, out),
                2 => score_tiles::<Q, 2>(q, k_t, t, scale, out),
                _ => score_tiles::<Q, 1>(q, k_t, t, scale, out),
            }
            t += lanes;
        }
        while t < tiles {
            score_tiles::<Q, 1>(q, k_t, t, scale, out);
            t += 1;
        }
    }
}

/// Scores of tiles `t0..t0 + L` for the `Q` queries (see [`scores_avx2`]).
///
/// # Safety
/// As [`scores_avx2`], for tiles up to `t0 + L`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn score_tiles<const Q: usize, const L: usize>(
    q: [&[f32]; Q],
    k_t: &[u16],
    t0: usize,
    scale: f32,
    out: &mut [Vec<f32>; Q],
) {
    use std::arch::x86_64::*;
    let hd = q[0].len();
    let mut acc = [[_mm256_setzero_ps(); L]; Q];
    for d in 0..hd {
        for tile in t0 + AHEAD / 8..t0 + AHEAD / 8 + L {
            prefetch(k_t.as_ptr().wrapping_add(tile * hd * 8 + d * 8));
        }
        // SAFETY: the caller's contract: tiles below t0 + L are inside `k_t`, q rows hold `hd`.
        let kv: [__m256; L] = from_fn(|l| unsafe {
            let at = k_t.as_ptr().add((t0 + l) * hd * 8 + d * 8);
            _mm256_cvtph_ps(_mm_loadu_si128(at as *const __m128i))
        });
        for i in 0..Q {
            let qd = _mm256_set1_ps(unsafe { *q[i].get_unchecked(d) });
            for l in 0..L {
                acc[i][l] = _mm256_fmadd_ps(qd, kv[l], acc[i][l]);
            }
        }
    }
    let sv = _mm256_set1_ps(scale);
    for (o, acc) in out.iter_mut().zip(acc) {
        for (l, a) in acc.into_iter().enumerate() {
            // SAFETY: score rows are sized to whole tiles up to t0 + L.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add((t0 + l) * 8), _mm256_mul_ps(a, sv)) };
        }
    }
}

/// Turns `Q` queries' scores into their softmax numerators in place (`exp(score − max)`),
/// returning each one's denominator (their [`sum8`]).
#[inline(always)]
fn weights<const Q: usize>(scores: &mut [&mut [f32]; Q]) -> [f32; Q] {
    let mut total = [0f32; Q];
    for (t, x) in total.iter_mut().zip(scores.iter_mut()) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        for x in x.iter_mut() {
            *x = exp(*x - max);
        }
        *t = sum8(x);
    }
    total
}

/// [`weights`] with AVX2, the same bits: the maximum taken lane by lane (a maximum does not
/// depend on the order; NaN scores are passed over, as by `f32::max`), [`exp`]'s operations
/// eight at a time in its order and unfused, and the sums in [`sum8`]'s lanes. Scalar, as
/// before, the softmax took most of a prefill's attention time.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weights_avx2<const Q: usize>(scores: &mut [&mut [f32]; Q]) -> [f32; Q] {
    use std::arch::x86_64::*;
    let mut total = [0f32; Q];
    for (t, x) in total.iter_mut().zip(scores.iter_mut()) {
        let whole = x.len() / 8 * 8;
        let (body, tail) = x.split_at_mut(whole);
        let mut lanes = [0f32; 8];
        // SAFETY (the loads and stores): each chunk is eight values of `body`.
        unsafe {
            let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
            for c in body.chunks_exact(8) {
                // `max_ps` returns its second operand where either is NaN.
                m = _mm256_max_ps(_mm256_loadu_ps(c.as_ptr()), m);
            }
            _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        }
        let max = lanes
            .iter()
            .chain(tail.iter())
            .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        // SAFETY: as above.
        unsafe {
            let (mv, mut acc) = (_mm256_set1_ps(max), _mm256_setzero_ps());
            for c in body.chunks_exact_mut(8) {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mv));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                acc = _mm256_add_ps(acc, e);
            }
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        }
        for (l, x) in lanes.iter_mut().zip(tail.iter_mut()) {
            *x = exp(*x - max);
            *l += *x;
        }
        *t = super::ops::reduce8(&lanes);
    }
    total
}

/// [`exp`] of eight values: its operations, in its order, unfused.
///
/// # Safety
/// The CPU has AVX2 (an `inline(always)` helper of [`weights_avx2`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use super::ops::exp_constants::*;
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let c = |v: f32| _mm256_set1_ps(v);
        let (mul, add, sub) = (_mm256_mul_ps, _mm256_add_ps, _mm256_sub_ps);
        // `f32::clamp`: `min_ps` and `max_ps` return their second operand, x, where it is NaN.
        let x = _mm256_max_ps(c(LOW), _mm256_min_ps(c(HIGH), x));
        let n = sub(add(mul(x, c(LOG2E)), c(MAGIC)), c(MAGIC));
        let r = sub(sub(x, mul(n, c(LN2_HI))), mul(n, c(LN2_LO)));
        let mut p = c(POLY[0]);
        for &k in &POLY[1..] {
            p = add(mul(p, r), c(k));
        }
        let y = add(add(mul(mul(p, r), r), r), c(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvttps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        mul(_mm256_castsi256_ps(bits), y)
    }
}

/// Divides each query's output by its softmax denominator (as `· (1 / total)`).
#[inline(always)]
fn normalise(out: &mut [f32], total: &[f32]) {
    let hd = out.len() / total.len();
    for (o, t) in out.chunks_exact_mut(hd).zip(total) {
        let inv = 1.0 / t;
        for o in o.iter_mut() {
            *o *= inv;
        }
    }
}

/// Softmax-weighted values of `Q` queries over the same keys, from their `scores`
/// (overwritten with the exponentials); the values of key `p` are `v[off + p·hd..][..hd]`
/// and query `i`'s output is `out[i·hd..(i + 1)·hd]`: `out[i][d] = Σ_p e_i[p] · v_p[d]` in key
/// order (fused), then divided by the sum.
fn mix<const Q: usize>(mut scores: [&mut [f32]; Q], v: &[u16], off: usize, out: &mut [f32]) {
    let total = weights(&mut scores);
    let hd = out.len() / Q;
    let len = scores[0].len();
    debug_assert!(scores.iter().all(|e| e.len() == len));
    for d in 0..hd {
        let mut acc = [0f32; Q];
        for p in 0..len {
            let x = f16_to_f32(v[off + p * hd + d]);
            for i in 0..Q {
                acc[i] = scores[i][p].mul_add(x, acc[i]);
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            out[i * hd + d] = a;
        }
    }
    normalise(out, &total);
}

/// [`mix`] with AVX2, FMA and F16C: the same operations, so the same bits. As many output
/// dimensions as fit the registers (64 for one query, else 16: `8·C`) are held over all keys
/// in one pass over the values, and the queries of a KV group share every value load.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `v` holds `off + len · hd` values (`len` the scores' length,
/// `hd = out.len() / Q`, a multiple of 16). [`causal`] checks the cache's size.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mix_avx2<const Q: usize>(
    wide: bool,
    mut scores: [&mut [f32]; Q],
    v: &[u16],
    off: usize,
    out: &mut [f32],
) {
    // SAFETY: the caller's CPU.
    let total = unsafe { weights_avx2(&mut scores) };
    let hd = out.len() / Q;
    let e: [&[f32]; Q] = scores.map(|x| &*x);
    debug_assert!(e.iter().all(|x| x.len() == e[0].len()) && hd.is_multiple_of(16));
    debug_assert!(v.len() >= off + e[0].len() * hd);
    // SAFETY: the caller's contract.
    unsafe {
        if wide && Q > 1 && hd.is_multiple_of(64) {
            accumulate_avx512::<Q, 4>(e, v, off, out);
        } else if wide && Q > 1 {
            accumulate_avx512::<Q, 1>(e, v, off, out);
        } else if Q == 1 && hd.is_multiple_of(64) {
            accumulate_avx2::<Q, 8>(e, v, off, out);
        } else {
            accumulate_avx2::<Q, 2>(e, v, off, out);
        }
    }
    normalise(out, &total);
}

/// The sums of [`mix_avx2`], `8·C` output dimensions per pass over the keys.
///
/// # Safety
/// As [`mix_avx2`].
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn accumulate_avx2<const Q: usize, const C: usize>(
    e: [&[f32]; Q],
    v: &[u16],
    off: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let hd = out.len() / Q;
    let len = e[0].len();
    for c in 0..hd / (8 * C) {
        let mut acc = [[_mm256_setzero_ps(); C]; Q];
        for p in 0..len {
            let start = off + p * hd + 8 * C * c;
            prefetch(v.as_ptr().wrapping_add(start + AHEAD * hd));
            // SAFETY: key p < len, dimensions below hd: inside `v` by the caller's contract.
            let vp: [__m256; C] = from_fn(|k| unsafe {
                _mm256_cvtph_ps(_mm_loadu_si128(
                    v.as_ptr().add(start + 8 * k) as *const __m128i
                ))
            });
            for i in 0..Q {
                // SAFETY: p < len, the length of every row of `e`.
                let w = _mm256_set1_ps(unsafe { *e[i].get_unchecked(p) });
                for k in 0..C {
                    acc[i][k] = _mm256_fmadd_ps(w, vp[k], acc[i][k]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                let at = i * hd + 8 * C * c + 8 * k;
                // SAFETY: at + 8 ≤ (i + 1) · hd ≤ out.len().
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(at), a) };
            }
        }
    }
}

/// The queries `who = [(token, head); Q]`, whose heads share one KV head, their outputs in
/// `out` (`Q · head_dim` values, in `who`'s order): the keys are read once for all of them.
/// A block is `Q` tokens of one head in a prefill, or the heads of one KV group in a decode
/// step; each query's values are the same either way.
fn block<const Q: usize>(
    kernel: Kernel,
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
    let rows: [&[f32]; Q] =
        from_fn(|i| &q[who[i].0 * qd + who[i].1 * hd..who[i].0 * qd + (who[i].1 + 1) * hd]);
    let mut sc: [Vec<f32>; Q] = from_fn(|_| vec![0f32; n.div_ceil(8) * 8]);
    let scale = 1.0 / (hd as f32).sqrt();
    if kernel != Kernel::Portable {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2, FMA and F16C were detected; `k_t` is this KV head's whole slice of a cache
        // that `causal` checked holds `cap ≥ n` positions (a multiple of 8), each row of `rows`
        // is `hd` long and each of `sc` is `round_up(n, 8)` long.
        unsafe {
            scores_avx2(rows, k_t, n, scale, &mut sc)
        };
    } else {
        scores_portable(rows, k_t, n, scale, &mut sc);
    }
    // The keys query `i` attends: the window before them is left out of the softmax
    // altogether, as if masked.
    let range = |i: usize| {
        let len = p0 + who[i].0 + 1;
        (s.window.map_or(0, |w| len.saturating_sub(w)), len)
    };
    for (i, scores) in sc.iter_mut().enumerate() {
        let (first, len) = range(i);
        if let Some(cap) = s.softcap {
            super::ops::soft_cap(&mut scores[first..len], cap);
        }
    }
    if Q > 1 && who.iter().all(|&(t, _)| t == who[0].0) {
        // The heads of a KV group in a decode step: one pass over the values for all.
        let (first, len) = range(0);
        let scores = sc.each_mut().map(|x| &mut x[first..len]);
        mix_on(
            kernel,
            scores,
            kv.v,
            value_index(g, 0, first, hd, kv.cap),
            out,
        );
    } else {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512Vnni && Q.is_multiple_of(4) && hd.is_multiple_of(64) {
            // A prefill block of one head: four queries at a time share each value load.
            let ranges: [(usize, usize); Q] = from_fn(range);
            let base = value_index(g, 0, 0, hd, kv.cap);
            let groups = sc.chunks_exact_mut(4).zip(ranges.chunks_exact(4));
            for ((sc, ranges), out) in groups.zip(out.chunks_exact_mut(4 * hd)) {
                let ranges: [(usize, usize); 4] = from_fn(|i| ranges[i]);
                let mut total = [0f32; 4];
                for ((t, e), &(first, len)) in total.iter_mut().zip(sc.iter_mut()).zip(&ranges) {
                    // SAFETY: the kernel's CPU has AVX2.
                    *t = unsafe { weights_avx2(&mut [&mut e[first..len]]) }[0];
                }
                let e: [&[f32]; 4] = from_fn(|i| &sc[i][..]);
                // SAFETY: the kernel's CPU has AVX-512 F, AVX2, FMA and F16C; `causal` checked
                // that `v` holds every KV head's `cap ≥ len` positions; each score row holds
                // its query's keys; hd is a multiple of 64.
                unsafe { accumulate_queries_avx512(e, ranges, kv.v, base, out) };
                normalise(out, &total);
            }
            return;
        }
        for (i, (scores, o)) in sc.iter_mut().zip(out.chunks_exact_mut(hd)).enumerate() {
            let (first, len) = range(i);
            let off = value_index(g, 0, first, hd, kv.cap);
            mix_on(kernel, [&mut scores[first..len]], kv.v, off, o);
        }
    }
}

/// [`mix`], with the vector code of `kernel` (AVX2, and the AVX-512 sums for a KV group's
/// heads where the kernel is [`Kernel::Avx512Vnni`]).
fn mix_on<const Q: usize>(
    kernel: Kernel,
    scores: [&mut [f32]; Q],
    v: &[u16],
    off: usize,
    out: &mut [f32],
) {
    if kernel != Kernel::Portable {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2, FMA and F16C were detected (AVX-512 F too for Avx512Vnni); `causal`
        // checked that `v` holds every KV head's `cap` positions, and the keys mixed are below
        // `p0 + n ≤ cap`.
        unsafe {
            mix_avx2(kernel == Kernel::Avx512Vnni, scores, v, off, out)
        };
    } else {
        mix(scores, v, off, out);
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
    causal_with(super::q8::detected(), q, kv, s, p0, out);
}

/// [`causal`] with a chosen kernel: [`Kernel::Portable`] the definition, any other the AVX2
/// code (and AVX-512 for the values a KV group mixes; tests compare them bit for bit).
///
/// # Panics
/// As [`causal`], and when this CPU lacks the kernel's instructions.
pub fn causal_with(kernel: Kernel, q: &[f32], kv: Kv<'_>, s: Shape, p0: usize, out: &mut [f32]) {
    super::q8::check_kernel(kernel);
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
        kv.k_t.len() >= kvd * kv.cap && kv.v.len() >= kvd * kv.cap,
        "attention: the cache holds {} keys and {} values, {} and {} are needed",
        kv.k_t.len(),
        kv.v.len(),
        kvd * kv.cap,
        kvd * kv.cap
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
                    2 => block::<2>(kernel, q, kv, s, p0, [(0, h0), (0, h0 + 1)], o),
                    3 => block::<3>(kernel, q, kv, s, p0, from_fn(|i| (0, h0 + i)), o),
                    _ => block::<4>(kernel, q, kv, s, p0, from_fn(|i| (0, h0 + i)), o),
                }
            });
    } else {
        hm.par_chunks_mut(n * hd).enumerate().for_each(|(h, ho)| {
            ho.par_chunks_mut(QB * hd).enumerate().for_each(|(b, o)| {
                let t0 = b * QB;
                if o.len() == QB * hd {
                    block::<QB>(kernel, q, kv, s, p0, from_fn(|i| (t0 + i, h)), o);
                } else {
                    for (j, oj) in o.chunks_exact_mut(hd).enumerate() {
                        block::<1>(kernel, q, kv, s, p0, [(t0 + j, h)], oj);
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
