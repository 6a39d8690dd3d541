//! The Q8_0 product with AVX2 and FMA.

use super::super::tiles::{Rows, TILE, rows_of};
use super::{Q8Acts, Q8Matrix, QK};
use crate::kernels::ops::prefetch;
use std::arch::x86_64::*;

/// How far ahead, in rows, the kernel prefetches the weights into the second-level cache: a
/// decode step streams every weight once, in rows too short for the hardware prefetcher to
/// follow. As for the AVX-512 kernel (which measured 8 to 32 rows).
const AHEAD: usize = 16;

/// Tokens per kernel call in a prefill: sixteen 256-bit registers hold the accumulators of
/// two tokens of a four-row tile and what they are computed from, not more.
const PAIR: usize = 2;

/// The definition's product for `R` rows and `T` tokens at once: each weight block is loaded
/// and its magnitude taken once for all `T` tokens. The accumulators of `2 · R · T` outputs do
/// not fit the registers, so the even blocks are summed in one pass and the odd ones in a
/// second: accumulators `0..8` only ever take even blocks and `8..16` odd ones, each in
/// increasing order, so every output has the definition's operations in its order.
///
/// Each block's scale product `d_w[b] · d_x[b]` is computed beforehand into `prod`, eight at
/// a time (the same IEEE product as the definition's scalar one), and broadcast from memory in
/// the loop: a load, where a product and a broadcast in the loop were two more operations on
/// the vector units per block, row and token, which are what a prefill waits on.
///
/// With `V` (AVX-VNNI: 256-bit `vpdpbusd` without AVX-512) the integer sum of a block is one
/// instruction instead of three, as in the AVX-512 kernel: the weights go in as `w + 128`
/// and each lane starts from `−128 · Σx` of its four activations, computed once per block and
/// token: `Σ (w + 128)·x − 128·Σx = Σ w·x`, exact in i32 either way.
///
/// # Safety
/// The CPU has AVX2 and FMA, and AVX-VNNI if `V`; every `w[r]` and `x[j]` hold
/// `nb = dx[0].len()` whole blocks, every `dw[r]` and `dx[j]` `nb` scales, and `prod`
/// `R · T · nb` values. (An `inline(always)` helper of [`span`] and [`span_vnni`], compiled
/// with their features.)
#[inline(always)]
unsafe fn dot_tokens<const R: usize, const T: usize, const V: bool>(
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: [&[i8]; T],
    dx: [&[f32]; T],
    prod: &mut [f32],
) -> [[f32; R]; T] {
    let nb = dx[0].len();
    debug_assert!((0..T).all(|j| x[j].len() >= nb * QK && dx[j].len() == nb));
    debug_assert!((0..R).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
    debug_assert!(prod.len() >= R * T * nb);
    unsafe {
        scale_products(dw, dx, prod);
        let ones = _mm256_set1_epi16(1);
        let zero = _mm256_setzero_si256();
        // As unsigned bytes 128; as a XOR mask, `w ↦ w + 128`.
        let bias = _mm256_set1_epi8(i8::MIN);
        let mut passes = [[[_mm256_setzero_ps(); R]; T]; 2];
        for (half, pass) in passes.iter_mut().enumerate() {
            let mut acc = [[_mm256_setzero_ps(); R]; T];
            let mut b = half;
            while b < nb {
                let mut xv = [zero; T];
                let mut start = [zero; T];
                for j in 0..T {
                    xv[j] = _mm256_loadu_si256(x[j].as_ptr().add(b * QK) as *const __m256i);
                    if V {
                        start[j] =
                            _mm256_sub_epi32(zero, _mm256_dpbusd_avx_epi32(zero, bias, xv[j]));
                    }
                }
                for r in 0..R {
                    if half == 0 {
                        // Rows are contiguous: the same place AHEAD rows on (a prefetch past
                        // the end reads nothing). The even pass touches every cache line.
                        prefetch(w[r].as_ptr().wrapping_add(AHEAD * nb * QK + b * QK));
                    }
                    let wv = _mm256_loadu_si256(w[r].as_ptr().add(b * QK) as *const __m256i);
                    // One of the two is used, and the other compiled away.
                    let aw = _mm256_abs_epi8(wv);
                    let wu = _mm256_xor_si256(wv, bias);
                    for j in 0..T {
                        let sum = if V {
                            _mm256_dpbusd_avx_epi32(start[j], wu, xv[j])
                        } else {
                            // |w| · (x with w's sign) = w · x; |w| ≤ 128 and |x| ≤ 127 keep
                            // the pairs in i16, and the sums of four are exact in i32.
                            let p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[j], wv));
                            _mm256_madd_epi16(p16, ones)
                        };
                        let l = _mm256_cvtepi32_ps(sum);
                        let s = _mm256_broadcast_ss(&*prod.as_ptr().add((j * R + r) * nb + b));
                        acc[j][r] = _mm256_fmadd_ps(l, s, acc[j][r]);
                    }
                }
                b += 2;
            }
            *pass = acc;
        }
        reduce_passes(&passes)
    }
}

/// `prod[(j · R + r) · nb + b] = dw[r][b] · dx[j][b]`, eight at a time.
///
/// # Safety
/// As [`dot_tokens`].
#[inline(always)]
unsafe fn scale_products<const R: usize, const T: usize>(
    dw: [&[f32]; R],
    dx: [&[f32]; T],
    prod: &mut [f32],
) {
    let nb = dx[0].len();
    for (j, dxj) in dx.iter().enumerate() {
        for (r, dwr) in dw.iter().enumerate() {
            let p = &mut prod[(j * R + r) * nb..(j * R + r + 1) * nb];
            let mut b = 0;
            while b + 8 <= nb {
                // SAFETY: b + 8 ≤ nb values of each (the caller's contract and the slice).
                unsafe {
                    let v = _mm256_mul_ps(
                        _mm256_loadu_ps(dwr.as_ptr().add(b)),
                        _mm256_loadu_ps(dxj.as_ptr().add(b)),
                    );
                    _mm256_storeu_ps(p.as_mut_ptr().add(b), v);
                }
                b += 8;
            }
            for ((p, &a), &c) in p[b..].iter_mut().zip(&dwr[b..nb]).zip(&dxj[b..]) {
                *p = a * c;
            }
        }
    }
}

/// [`super::reduce16`] of accumulators `0..8` in `a` and `8..16` in `b`: each step adds the
/// same pairs of lanes (the upper half onto the lower), so the same bits without the round
/// trip through memory.
///
/// # Safety
/// The CPU has AVX2 (an `inline(always)` helper of kernels compiled with it: a
/// `target_feature` function would not be inlined into them).
#[inline(always)]
pub(super) unsafe fn reduce_halves(a: __m256, b: __m256) -> f32 {
    // SAFETY: the caller's contract.
    unsafe {
        let t = _mm256_add_ps(a, b);
        let u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
        let v = _mm_add_ps(u, _mm_movehl_ps(u, u));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps::<1>(v, v)))
    }
}

/// Every output of a two-pass kernel: accumulators `0..8` from the even pass, `8..16` from the
/// odd one, reduced by [`reduce_halves`].
///
/// # Safety
/// As [`reduce_halves`].
#[inline(always)]
pub(super) unsafe fn reduce_passes<const R: usize, const T: usize>(
    passes: &[[[__m256; R]; T]; 2],
) -> [[f32; R]; T] {
    let mut out = [[0f32; R]; T];
    for j in 0..T {
        for r in 0..R {
            // SAFETY: the caller's contract.
            out[j][r] = unsafe { reduce_halves(passes[0][j][r], passes[1][j][r]) };
        }
    }
    out
}

/// One chunk of the product: every row of `rows` for every token of `x`, in tiles of rows by
/// pairs of tokens, written straight into the output (one call per chunk keeps the slicing
/// of a generic tile loop out of the inner loop, as in the AVX-512 kernel).
///
/// # Safety
/// The CPU has AVX2 and FMA; `w.cols == x.cols`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn span(w: &Q8Matrix, x: &Q8Acts, rows: &Rows) {
    // SAFETY: the caller's contract.
    unsafe { span_with::<false>(w, x, rows) }
}

/// [`span`] with AVX-VNNI's integer sums.
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-VNNI; `w.cols == x.cols`.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub unsafe fn span_vnni(w: &Q8Matrix, x: &Q8Acts, rows: &Rows) {
    // SAFETY: the caller's contract.
    unsafe { span_with::<true>(w, x, rows) }
}

/// [`span`]'s body, compiled into it and into [`span_vnni`] with their features.
///
/// # Safety
/// As [`dot_tokens`].
#[inline(always)]
unsafe fn span_with<const V: bool>(w: &Q8Matrix, x: &Q8Acts, rows: &Rows) {
    // The table of scale products, kept by each thread between calls (a decode step makes
    // thousands of them), taken out here rather than lent to a closure: a closure would not
    // have this function's CPU features, and the kernel inlined into it would lose them.
    let mut prod = PRODUCTS.with_borrow_mut(std::mem::take);
    // SAFETY: the caller's contract.
    unsafe {
        // A decode step (one token, or a few sequences' tokens batched together) reads every
        // weight once for all its tokens: tiles of two rows. Measured against four and eight
        // (the `decode` example at 1000 tokens on a 2-core AMD EPYC without AVX-512, medians
        // of 7 rounds, alternating): 8 rows 62-64 tok/s, 4 rows 75-81, 2 rows 82-90. Fewer
        // rows are fewer streams in flight at once for the prefetchers to follow.
        let r = match x.n {
            1 => tiles::<2, 1, V>(w, x, rows, rows.start, &mut prod),
            2 => tiles::<2, 2, V>(w, x, rows, rows.start, &mut prod),
            3 => tiles::<2, 3, V>(w, x, rows, rows.start, &mut prod),
            // A prefill: four rows by two tokens, each weight block reused for both (the
            // multiply units bind it; other shapes measured the same).
            _ => tiles::<TILE, PAIR, V>(w, x, rows, rows.start, &mut prod),
        };
        match x.n {
            1 => tiles::<1, 1, V>(w, x, rows, r, &mut prod),
            2 => tiles::<1, 2, V>(w, x, rows, r, &mut prod),
            3 => tiles::<1, 3, V>(w, x, rows, r, &mut prod),
            _ => tiles::<1, PAIR, V>(w, x, rows, r, &mut prod),
        };
    }
    PRODUCTS.set(prod);
}

/// [`span`] from row `r` on, in tiles of `R` rows while whole tiles remain, `T` tokens at a
/// time (the last few one by one); returns the first row not done.
///
/// # Safety
/// As [`span_with`].
#[inline(always)]
unsafe fn tiles<const R: usize, const T: usize, const V: bool>(
    w: &Q8Matrix,
    x: &Q8Acts,
    rows: &Rows,
    mut r: usize,
    prod: &mut Vec<f32>,
) -> usize {
    // Whole rows of whole blocks (`cols` is a multiple of QK for every Q8Matrix and Q8Acts):
    // what `dot_tokens` reads.
    let (cols, nb) = (w.cols, w.cols / QK);
    prod.resize(prod.len().max(R * T * nb), 0.0);
    while r + R <= rows.end {
        let ws = rows_of::<_, R>(&w.qs, r, cols);
        let ds = rows_of::<_, R>(&w.d, r, nb);
        let mut t = 0;
        while t < x.n {
            // SAFETY (both calls): the caller's CPU; every slice is whole blocks (above),
            // and `prod` holds at least R · T · nb values.
            if t + T <= x.n {
                let xs = rows_of::<_, T>(&x.qs, t, cols);
                let xd = rows_of::<_, T>(&x.d, t, nb);
                let out = unsafe { dot_tokens::<R, T, V>(ws, ds, xs, xd, prod) };
                for (j, values) in out.iter().enumerate() {
                    rows.set_tile(t + j, r, values);
                }
                t += T;
            } else {
                let xs = rows_of::<_, 1>(&x.qs, t, cols);
                let xd = rows_of::<_, 1>(&x.d, t, nb);
                let out = unsafe { dot_tokens::<R, 1, V>(ws, ds, xs, xd, prod) };
                rows.set_tile(t, r, &out[0]);
                t += 1;
            }
        }
        r += R;
    }
    r
}

thread_local! {
    /// The table of scale products of [`dot_tokens`] (and of the AVX-512 kernel's 256-bit
    /// form), kept by each thread between calls.
    pub(super) static PRODUCTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
