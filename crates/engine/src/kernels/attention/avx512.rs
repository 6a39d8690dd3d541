//! The AVX-512 sums of attention's values: sixteen lanes a register and thirty-two registers
//! hold 64 dimensions of each of four queries at once, so a KV group's heads (a decode step)
//! or four queries of one head (a prefill block) share every value load in one pass. Each lane
//! does the definition's fused multiply-adds in key order: the same bits as [`super::mix`].

use super::AHEAD;
use crate::kernels::ops::prefetch;
use std::arch::x86_64::*;
use std::array::from_fn;

/// [`super::accumulate_avx2`] with AVX-512: sixteen dimensions a register and twice the
/// registers, so the two to four heads of a KV group hold 64 dimensions each (`16·C`) over all
/// keys — one pass over the values where AVX2 makes four (a decode step at 1000 tokens of
/// context spent an eighth of its time mixing values). Each lane does the same fused multiply-adds in
/// key order, so the same bits.
///
/// # Safety
/// As [`super::mix_avx2`], and the CPU has AVX-512 F; `hd` is a multiple of `16·C`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(super) unsafe fn accumulate_avx512<const Q: usize, const C: usize>(
    e: [&[f32]; Q],
    v: &[u16],
    off: usize,
    out: &mut [f32],
) {
    let hd = out.len() / Q;
    let len = e[0].len();
    for c in 0..hd / (16 * C) {
        let mut acc = [[_mm512_setzero_ps(); C]; Q];
        for p in 0..len {
            let start = off + p * hd + 16 * C * c;
            // A cache line holds 32 values: ask for each line of this pass's values AHEAD
            // keys on.
            for line in 0..C.div_ceil(2) {
                prefetch(v.as_ptr().wrapping_add(start + AHEAD * hd + 32 * line));
            }
            // SAFETY: key p < len, dimensions below hd: inside `v` and every row of `e` by the
            // caller's contract.
            unsafe {
                let vp = values::<C>(v, start);
                for (acc, e) in acc.iter_mut().zip(&e) {
                    add(acc, *e.get_unchecked(p), vp);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                let at = i * hd + 16 * C * c + 16 * k;
                // SAFETY: at + 16 ≤ (i + 1) · hd ≤ out.len().
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(at), a) };
            }
        }
    }
}

/// [`super::mix`]'s sums for four queries of one head in a prefill block, query `i` over keys
/// `ranges[i]` (its weights at the same indices of `e[i]`): the keys all four see are read
/// once for all, 64 dimensions of each query in sixteen registers; the keys only some see
/// (the last few of the later queries, or the first few of the earlier ones in a window)
/// are added for those alone, before or after, so every query's sums stay in key order and
/// give the same bits. (With AVX2 the registers hold too few dimensions for this to pay.)
///
/// # Safety
/// As [`accumulate_avx512`]; value `p` of the head is at `v[base + p · hd..]` for every key
/// of `ranges`, `hd = out.len() / 4` is a multiple of 64, and `e[i]` holds index `p` for every
/// key of `ranges[i]`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(super) unsafe fn accumulate_queries_avx512(
    e: [&[f32]; 4],
    ranges: [(usize, usize); 4],
    v: &[u16],
    base: usize,
    out: &mut [f32],
) {
    let hd = out.len() / 4;
    // The keys every query sees; none (both past every key) when they share none.
    let (mut from, mut to) = (
        ranges.iter().map(|r| r.0).max().unwrap_or(0),
        ranges.iter().map(|r| r.1).min().unwrap_or(0),
    );
    if from >= to {
        (from, to) = (usize::MAX, usize::MAX);
    }
    for c in 0..hd / 64 {
        let at = |p: usize| base + p * hd + 64 * c;
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        // SAFETY (every `values` and `add` below): each key is inside its query's range, so
        // inside `v` and `e[i]` by the caller's contract.
        for (i, &(first, len)) in ranges.iter().enumerate() {
            let head = first..from.min(len);
            for (p, &w) in head.clone().zip(&e[i][head]) {
                unsafe { add(&mut acc[i], w, values::<4>(v, at(p))) };
            }
        }
        for p in from..to {
            prefetch(v.as_ptr().wrapping_add(at(p + AHEAD)));
            prefetch(v.as_ptr().wrapping_add(at(p + AHEAD) + 32));
            let vp = unsafe { values::<4>(v, at(p)) };
            for (acc, e) in acc.iter_mut().zip(&e) {
                unsafe { add(acc, *e.get_unchecked(p), vp) };
            }
        }
        for (i, &(_, len)) in ranges.iter().enumerate() {
            let tail = to.min(len)..len;
            for (p, &w) in tail.clone().zip(&e[i][tail]) {
                unsafe { add(&mut acc[i], w, values::<4>(v, at(p))) };
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                // SAFETY: i · hd + 64 · c + 16 · k + 16 ≤ (i + 1) · hd ≤ out.len().
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(i * hd + 64 * c + 16 * k), a) };
            }
        }
    }
}

/// `16·C` values from `v[at..]`, widened.
///
/// # Safety
/// The CPU has AVX-512 F (an `inline(always)` helper of the kernels above); `16·C` values from
/// `at` are inside `v`.
#[inline(always)]
unsafe fn values<const C: usize>(v: &[u16], at: usize) -> [__m512; C] {
    // SAFETY: the caller's contract.
    from_fn(|k| unsafe {
        _mm512_cvtph_ps(_mm256_loadu_si256(
            v.as_ptr().add(at + 16 * k) as *const __m256i
        ))
    })
}

/// `acc += w · vp`, lane by lane, fused.
///
/// # Safety
/// As [`values`].
#[inline(always)]
unsafe fn add<const C: usize>(acc: &mut [__m512; C], w: f32, vp: [__m512; C]) {
    // SAFETY: the caller's contract.
    unsafe {
        let w = _mm512_set1_ps(w);
        for (a, v) in acc.iter_mut().zip(vp) {
            *a = _mm512_fmadd_ps(w, v, *a);
        }
    }
}
