//! The Q8_0 product with AVX2 and FMA.

use super::{PREFETCH_ROWS, QK};
use std::arch::x86_64::*;

/// Lane sums of one block: lane `k` = Σ of products `4k..4k+4` (exact).
///
/// # Safety
/// AVX2 is available; `w` and `x` each point at 32 readable bytes.
#[inline(always)]
unsafe fn lanes(w: *const i8, x: *const i8) -> __m256 {
    unsafe {
        let wv = _mm256_loadu_si256(w as *const __m256i);
        let xv = _mm256_loadu_si256(x as *const __m256i);
        // |w| · (x with w's sign) = w · x; |w| ≤ 128 and |x| ≤ 127 keep pairs in i16.
        let p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }
}

/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn finish(a0: __m256, a1: __m256) -> f32 {
    unsafe {
        let mut a = [0f32; 16];
        _mm256_storeu_ps(a.as_mut_ptr(), a0);
        _mm256_storeu_ps(a.as_mut_ptr().add(8), a1);
        super::reduce16(&a)
    }
}

/// [`super::dot_portable`] for `R` weight rows against one token, sharing its loads.
///
/// # Safety
/// The CPU has AVX2 and FMA, and every `w[r]` and `x` hold `dx.len()` whole blocks
/// (`dx.len() · QK` values) and every `dw[r]` holds `dx.len()` scales.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_rows<const R: usize>(
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: &[i8],
    dx: &[f32],
) -> [f32; R] {
    let nb = dx.len();
    debug_assert!(x.len() >= nb * QK);
    debug_assert!((0..R).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
    unsafe {
        // Accumulators named by a constant index stay in registers (`b % 2` as an index
        // put them on the stack, one store and reload per block): blocks go in pairs.
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let block = |acc: &mut [[__m256; 2]; R], b: usize, half: usize| {
            let xp = x.as_ptr().add(b * QK);
            for (r, a) in acc.iter_mut().enumerate() {
                let s = _mm256_set1_ps(*dw[r].get_unchecked(b) * *dx.get_unchecked(b));
                let l = lanes(w[r].as_ptr().add(b * QK), xp);
                a[half] = _mm256_fmadd_ps(l, s, a[half]);
            }
        };
        let mut b = 0;
        while b + 2 <= nb {
            block(&mut acc, b, 0);
            block(&mut acc, b + 1, 1);
            b += 2;
        }
        if b < nb {
            block(&mut acc, b, 0);
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = finish(acc[r][0], acc[r][1]);
        }
        out
    }
}

/// [`dot_rows`] for `T` tokens at once: each weight block is loaded and its magnitude taken
/// once for all `T` tokens. Sixteen 256-bit registers cannot hold `2 · R · T`
/// accumulators, so the even blocks are summed in one pass and the odd ones in a second:
/// accumulators `0..8` only ever take even blocks and `8..16` odd ones, each in increasing
/// order, so every output has the definition's operations in its order.
///
/// # Safety
/// As [`dot_rows`], for every token's `x` and `dx` (the same number of blocks each).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_tokens<const R: usize, const T: usize>(
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: [&[i8]; T],
    dx: [&[f32]; T],
) -> [[f32; R]; T] {
    let nb = dx[0].len();
    debug_assert!((0..T).all(|j| x[j].len() >= nb * QK && dx[j].len() == nb));
    debug_assert!((0..R).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
    let mut lanes16 = [[[0f32; 16]; R]; T];
    unsafe {
        let ones = _mm256_set1_epi16(1);
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_ps(); R]; T];
            let mut b = half;
            while b < nb {
                let mut xv = [_mm256_setzero_si256(); T];
                for j in 0..T {
                    xv[j] = _mm256_loadu_si256(x[j].as_ptr().add(b * QK) as *const __m256i);
                }
                for r in 0..R {
                    if half == 0 {
                        let ahead = w[r].as_ptr().wrapping_add(PREFETCH_ROWS * nb * QK + b * QK);
                        crate::kernels::ops::prefetch(ahead);
                    }
                    let wv = _mm256_loadu_si256(w[r].as_ptr().add(b * QK) as *const __m256i);
                    let aw = _mm256_abs_epi8(wv);
                    let sw = *dw[r].get_unchecked(b);
                    for j in 0..T {
                        // As `lanes`: |w| · (x with w's sign), exact in i16 pairs.
                        let p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[j], wv));
                        let l = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                        let s = _mm256_set1_ps(sw * *dx[j].get_unchecked(b));
                        acc[j][r] = _mm256_fmadd_ps(l, s, acc[j][r]);
                    }
                }
                b += 2;
            }
            for j in 0..T {
                for r in 0..R {
                    _mm256_storeu_ps(lanes16[j][r].as_mut_ptr().add(half * 8), acc[j][r]);
                }
            }
        }
    }
    let mut out = [[0f32; R]; T];
    for j in 0..T {
        for r in 0..R {
            out[j][r] = super::reduce16(&lanes16[j][r]);
        }
    }
    out
}
