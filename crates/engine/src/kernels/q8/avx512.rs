//! The Q8_0 product with AVX-512 VNNI.

use super::super::tiles::{Rows, TILE, TOKENS, rows_of};
use super::avx2::{PRODUCTS, reduce_halves, reduce_passes};
use super::{PrefillSteps, Q8Acts, Q8Matrix, QK};
use crate::kernels::ops::prefetch;

/// How far ahead, in rows, the kernel prefetches the weights ([`prefetch`] asks for the second-
/// level cache: more lines can be in flight to L2 than L1 has fill buffers). Measured
/// on a 2-core AMD EPYC (the `decode` example at 1000 tokens, best of 5): 8 rows into L1 gave
/// 85-91 tok/s, 16 rows into L1 82-85, 8 into L2 109-111, 16 into L2 112-128, 24 or 32 into
/// L2 106-111, 16 into L3 110-113.
const AHEAD: usize = 16;
use std::arch::x86_64::*;

/// [`super::dot_portable`] for `R` rows with AVX-512 VNNI: one 512-bit step covers two
/// blocks, whose lanes are exactly accumulators `0..8` (the even block) and `8..16` (the
/// odd one) of the definition; an odd last block goes to lanes `0..8` alone.
///
/// # Safety
/// The CPU has AVX-512 F, BW, DQ and VNNI, AVX2 and FMA ([`super::detected`] checks each
/// one: `_mm512_insertf32x8` is DQ), and the slices hold whole blocks as for
/// [`super::avx2::dot_rows`].
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")]
pub unsafe fn dot_rows<const R: usize>(
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: &[i8],
    dx: &[f32],
) -> [f32; R] {
    // SAFETY: the caller's contract, for one token.
    unsafe { dot_tokens::<R, 1>(w, dw, [x], [dx])[0] }
}

/// Two consecutive block scales at `s`, each spread over its eight lanes (lanes 0..8 the
/// first, 8..16 the second): with another such pair, one vector product gives every lane
/// its `d_w[b] · d_x[b]`, the same IEEE product as the definition's scalar one.
///
/// # Safety
/// The CPU has AVX-512 F; `s` points at two readable `f32`s.
#[inline]
#[target_feature(enable = "avx512f")]
pub unsafe fn scale_pair(s: *const f32) -> __m512 {
    let pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    // SAFETY: the caller's contract.
    let two = unsafe { _mm_castsi128_ps(_mm_loadl_epi64(s as *const __m128i)) };
    _mm512_permutexvar_ps(pair, _mm512_castps128_ps512(two))
}

/// [`dot_rows`] for `T` tokens at once: each weight block is loaded, offset and its scales
/// spread once for all `T` tokens. VNNI multiplies unsigned bytes by signed ones, so the
/// weights go in as `w + 128` (one XOR) and each lane starts from `−128 · Σx` of its four
/// activations, computed once per token: `Σ (w + 128)·x − 128·Σx = Σ w·x`, exact in i32,
/// in one instruction per token and row. Every output has the definition's operations in
/// its order, so the same bits whatever `T`.
///
/// # Safety
/// As [`dot_rows`], for every token's `x` and `dx` (the same number of blocks each).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")]
pub unsafe fn dot_tokens<const R: usize, const T: usize>(
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: [&[i8]; T],
    dx: [&[f32]; T],
) -> [[f32; R]; T] {
    let nb = dx[0].len();
    debug_assert!((0..T).all(|j| x[j].len() >= nb * QK && dx[j].len() == nb));
    debug_assert!((0..R).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); R]; T];
        let zero = _mm512_setzero_si512();
        // As unsigned bytes 128; as a XOR mask, `w ↦ w + 128`.
        let bias = _mm512_set1_epi8(i8::MIN);
        let mut b = 0;
        while b + 2 <= nb {
            let mut xv = [zero; T];
            let mut sx = [_mm512_setzero_ps(); T];
            let mut start = [zero; T];
            for j in 0..T {
                xv[j] = _mm512_loadu_si512(x[j].as_ptr().add(b * QK) as *const _);
                sx[j] = scale_pair(dx[j].as_ptr().add(b));
                start[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, xv[j]));
            }
            for r in 0..R {
                // A decode step streams every weight once, in rows too short for the
                // hardware prefetcher to follow: ask for the same place AHEAD rows on (rows
                // are contiguous; a prefetch past the end reads nothing).
                let ahead = w[r].as_ptr().wrapping_add(AHEAD * nb * QK + b * QK);
                prefetch(ahead);
                let wv = _mm512_loadu_si512(w[r].as_ptr().add(b * QK) as *const _);
                let wu = _mm512_xor_si512(wv, bias);
                let sw = scale_pair(dw[r].as_ptr().add(b));
                for j in 0..T {
                    let l = _mm512_dpbusd_epi32(start[j], wu, xv[j]);
                    let s = _mm512_mul_ps(sw, sx[j]);
                    acc[j][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), s, acc[j][r]);
                }
            }
            b += 2;
        }
        let mut out = [[0f32; R]; T];
        for j in 0..T {
            for r in 0..R {
                out[j][r] = finish(acc[j][r], b, w[r], dw[r], x[j], dx[j]);
            }
        }
        out
    }
}

/// [`dot_tokens`] for two or more tokens, a block per 256-bit step: accumulators `0..8` take
/// the even blocks in one pass and `8..16` the odd ones in a second, as in the AVX2 kernel, so
/// each block's scale product is one value, multiplied once into `prod` (sixteen blocks per
/// vector product) and broadcast from memory by the fused multiply-add itself. Per block, row
/// and token that is the integer dot product, its conversion and one fused multiply-add,
/// where the 512-bit form also spends a vector product on two blocks' scales: the multiply
/// units are what a prefill waits on.
///
/// # Safety
/// As [`dot_tokens`], and the CPU has AVX-512 VL; `prod` holds `R · T · nb` values.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
pub unsafe fn dot_halves<const R: usize, const T: usize>(
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
        // prod[(j · R + r) · nb + b] = dw[r][b] · dx[j][b], the definition's IEEE product.
        for (j, dxj) in dx.iter().enumerate() {
            for (r, dwr) in dw.iter().enumerate() {
                let p = prod.as_mut_ptr().add((j * R + r) * nb);
                let mut b = 0;
                while b < nb {
                    // The last sixteen may be fewer: masked loads and stores touch only the
                    // blocks there are.
                    let m: __mmask16 = if nb - b >= 16 {
                        !0
                    } else {
                        (1 << (nb - b)) - 1
                    };
                    let v = _mm512_mul_ps(
                        _mm512_maskz_loadu_ps(m, dwr.as_ptr().add(b)),
                        _mm512_maskz_loadu_ps(m, dxj.as_ptr().add(b)),
                    );
                    _mm512_mask_storeu_ps(p.add(b), m, v);
                    b += 16;
                }
            }
        }
        let zero = _mm256_setzero_si256();
        let bias = _mm256_set1_epi8(i8::MIN);
        let mut passes = [[[_mm256_setzero_ps(); R]; T]; 2];
        for (half, pass) in passes.iter_mut().enumerate() {
            let mut acc = [[_mm256_setzero_ps(); R]; T];
            let mut b = half;
            while b < nb {
                let mut xv = [zero; T];
                let mut start = [zero; T];
                for j in 0..T {
                    xv[j] = _mm256_loadu_si256(x[j].as_ptr().add(b * QK) as *const _);
                    start[j] = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, bias, xv[j]));
                }
                for r in 0..R {
                    if half == 0 {
                        let ahead = w[r].as_ptr().wrapping_add(AHEAD * nb * QK + b * QK);
                        prefetch(ahead);
                    }
                    let wv = _mm256_loadu_si256(w[r].as_ptr().add(b * QK) as *const _);
                    let wu = _mm256_xor_si256(wv, bias);
                    for j in 0..T {
                        let l = _mm256_dpbusd_epi32(start[j], wu, xv[j]);
                        let s = _mm256_broadcast_ss(&*prod.as_ptr().add((j * R + r) * nb + b));
                        acc[j][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(l), s, acc[j][r]);
                    }
                }
                b += 2;
            }
            *pass = acc;
        }
        reduce_passes(&passes)
    }
}

/// One output from its sixteen accumulators after the block pairs: the odd last block
/// `b` (if `b < nb`) into lanes 0..8, as in the definition, then the fixed reduction.
///
/// # Safety
/// The CPU has AVX-512 F and DQ (an `inline(always)` helper of the kernels above, compiled
/// with their features: a `target_feature` function would not be inlined into them).
#[inline(always)]
unsafe fn finish(acc: __m512, b: usize, w: &[i8], dw: &[f32], x: &[i8], dx: &[f32]) -> f32 {
    if b == dx.len() {
        // SAFETY: the caller's contract.
        return unsafe { reduce(acc) };
    }
    let mut a = [0f32; 16];
    // SAFETY: `a` holds sixteen values.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), acc) };
    if b < dx.len() {
        let wb = &w[b * QK..(b + 1) * QK];
        let xb = &x[b * QK..(b + 1) * QK];
        let s = dw[b] * dx[b];
        for (k, ak) in a.iter_mut().take(8).enumerate() {
            let mut l = 0i32;
            for i in 4 * k..4 * k + 4 {
                l += i32::from(wb[i]) * i32::from(xb[i]);
            }
            *ak = (l as f32).mul_add(s, *ak);
        }
    }
    super::reduce16(&a)
}

/// [`super::reduce16`] in registers: each step adds the same pairs of lanes (the upper
/// half onto the lower), so the same bits without the round trip through memory.
///
/// # Safety
/// As [`finish`].
#[inline(always)]
unsafe fn reduce(a: __m512) -> f32 {
    // SAFETY: the caller's contract.
    unsafe { reduce_halves(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps::<1>(a)) }
}

/// One chunk of the product: every row of `rows` for every token of `x`, in tiles of [`TILE`]
/// rows by groups of up to [`TOKENS`] tokens, written straight into the output. One call per
/// chunk rather than per tile keeps the slicing and the copies of a generic tile loop out of
/// the inner loop (a decode step spent 8 % of its time there); the kernel calls are the same.
///
/// # Safety
/// The CPU has AVX-512 F, BW, DQ, VL and VNNI, AVX2 and FMA; `w.cols == x.cols`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
pub unsafe fn span(w: &Q8Matrix, x: &Q8Acts, rows: &Rows, steps: PrefillSteps) {
    // A prefill's token groups in the form this CPU runs faster; a few sequences' decode
    // steps together (memory binds them) always the 512-bit one, which reads each weight once.
    let halves = x.n > TOKENS && steps == PrefillSteps::Halves;
    // The 256-bit form's table of scale products: the AVX2 kernel's, kept per thread.
    let mut prod = PRODUCTS.with_borrow_mut(std::mem::take);
    if halves {
        prod.resize(prod.len().max(TILE * TOKENS * w.cols / QK), 0.0);
    }
    // SAFETY: the caller's contract.
    unsafe {
        let mut r = rows.start;
        if x.n == 1 {
            // One token: twice the rows per tile put more weight loads in flight at once.
            r = tiles::<{ 2 * TILE }>(w, x, rows, r, halves, &mut prod);
        }
        r = tiles::<TILE>(w, x, rows, r, halves, &mut prod);
        tiles::<1>(w, x, rows, r, halves, &mut prod);
    }
    PRODUCTS.set(prod);
}

/// [`span`] from row `r` on, in tiles of `R` rows while whole tiles remain; returns the first
/// row not done.
///
/// # Safety
/// As [`span`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
unsafe fn tiles<const R: usize>(
    w: &Q8Matrix,
    x: &Q8Acts,
    rows: &Rows,
    mut r: usize,
    halves: bool,
    prod: &mut [f32],
) -> usize {
    // Whole rows of whole blocks (`cols` is a multiple of QK for every Q8Matrix and Q8Acts):
    // what `dot_tokens` reads.
    let (cols, nb) = (w.cols, w.cols / QK);
    while r + R <= rows.end {
        let ws = rows_of::<_, R>(&w.qs, r, cols);
        let ds = rows_of::<_, R>(&w.d, r, nb);
        let mut t = 0;
        while t < x.n {
            let k = (x.n - t).min(TOKENS);
            macro_rules! tokens {
                ($k:literal) => {{
                    let xs = rows_of::<_, $k>(&x.qs, t, cols);
                    let xd = rows_of::<_, $k>(&x.d, t, nb);
                    // SAFETY: the caller's CPU; every slice is whole blocks (above), and
                    // `prod` holds R · TOKENS · nb values where there are several tokens.
                    let out = unsafe {
                        if $k > 1 && halves {
                            dot_halves::<R, $k>(ws, ds, xs, xd, prod)
                        } else {
                            dot_tokens::<R, $k>(ws, ds, xs, xd)
                        }
                    };
                    for (j, values) in out.iter().enumerate() {
                        rows.set_tile(t + j, r, values);
                    }
                }};
            }
            match k {
                1 => tokens!(1),
                2 => tokens!(2),
                3 => tokens!(3),
                _ => tokens!(4),
            }
            t += k;
        }
        r += R;
    }
    r
}
