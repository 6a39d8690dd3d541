//! Activations quantized for the integer matrix products: blocks of [`QK`] values, each with
//! one f32 scale (`max|x| / 127`) and values `x / scale` rounded half to even.
//!
//! Every product's arithmetic starts here, so the rule is fixed as exactly as the products':
//! [`quantize_row`] is its definition, and the AVX-512 form gives the same bytes (the maximum
//! of magnitudes is exact in any order, and every other step is the same IEEE operation on the
//! same operands), including where a value is infinite or not a number.

use super::q8::{Kernel, QK, detected};
use rayon::prelude::*;

/// Round half to even by the 1.5·2²³ trick (two additions, no library call).
const MAGIC: f32 = 12_582_912.0;

/// Quantizes `x` (a multiple of [`QK`] long) into `qs` and `d`, by the engine's own rule:
/// scale `max|x| / 127`, values `x / scale` rounded half to even.
pub fn quantize_row(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    for ((xb, qb), db) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (scale, inv) = scales(amax);
        for (q, v) in qb.iter_mut().zip(xb) {
            let r = ((v * inv).clamp(-127.0, 127.0) + MAGIC) - MAGIC;
            *q = r as i8;
        }
        *db = scale;
    }
}

/// A block's scale and the factor its values are multiplied by.
#[inline(always)]
fn scales(amax: f32) -> (f32, f32) {
    let scale = amax / 127.0;
    (scale, if scale != 0.0 { 1.0 / scale } else { 0.0 })
}

/// [`quantize_row`] and each block's sum of values, with the fastest form this CPU has.
fn quantize_with_sums(x: &[f32], qs: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if detected() == Kernel::Avx512Vnni {
        assert!(x.len() == qs.len() && x.len() == d.len() * QK && d.len() == sums.len());
        for (b, (db, sb)) in d.iter_mut().zip(sums.iter_mut()).enumerate() {
            // SAFETY: `Avx512Vnni` is detected only where AVX-512 F and BW are; block `b` of
            // `x` and of `qs` holds QK values (the lengths are checked above).
            (*db, *sb) = unsafe {
                avx512::quantize_block(x.as_ptr().add(b * QK), qs.as_mut_ptr().add(b * QK))
            };
        }
        return;
    }
    quantize_row(x, qs, d);
    for (s, qb) in sums.iter_mut().zip(qs.chunks_exact(QK)) {
        *s = qb.iter().map(|&v| i32::from(v)).sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MAGIC, scales};
    use std::arch::x86_64::*;

    /// One block of [`super::quantize_row`]; returns its scale and the sum of its values.
    ///
    /// # Safety
    /// The CPU has AVX-512 F and BW; `x` points at 32 readable `f32`s, `q` at 32 writable bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_block(x: *const f32, q: *mut i8) -> (f32, i32) {
        unsafe {
            let (a, b) = (_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16)));
            // `f32::max` skips a NaN: `max_ps` gives its second operand when either is NaN, so
            // the magnitudes go first and the running maximum (never NaN) second.
            let m = _mm512_max_ps(_mm512_abs_ps(a), _mm512_setzero_ps());
            let m = _mm512_max_ps(_mm512_abs_ps(b), m);
            let (scale, inv) = scales(_mm512_reduce_max_ps(m));
            let inv = _mm512_set1_ps(inv);
            let (lo, hi, magic) = (
                _mm512_set1_ps(-127.0),
                _mm512_set1_ps(127.0),
                _mm512_set1_ps(MAGIC),
            );
            let round = |v: __m512| {
                // `clamp` keeps a NaN: here it is the second operand of both.
                let c = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_mul_ps(v, inv)));
                let r = _mm512_sub_ps(_mm512_add_ps(c, magic), magic);
                // `NaN as i8` is 0; every other value is an integer in −127..=127.
                let r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r), r);
                _mm512_cvttps_epi32(r)
            };
            let (ra, rb) = (round(a), round(b));
            _mm_storeu_si128(q as *mut __m128i, _mm512_cvtepi32_epi8(ra));
            _mm_storeu_si128(q.add(16) as *mut __m128i, _mm512_cvtepi32_epi8(rb));
            (scale, _mm512_reduce_add_epi32(_mm512_add_epi32(ra, rb)))
        }
    }
}

/// Activations of `n` tokens quantized for the matrix products.
#[derive(Clone, Debug, Default)]
pub struct Q8Acts {
    /// Tokens.
    pub n: usize,
    /// Elements per token.
    pub cols: usize,
    /// Values, token-major.
    pub qs: Vec<i8>,
    /// Scales, token-major.
    pub d: Vec<f32>,
    /// The sum of each block's values, token-major (the K-quants' minimum term needs it).
    pub sums: Vec<i32>,
}

impl Q8Acts {
    /// Quantizes `x` (`n` × `cols`), reusing this buffer; tokens in parallel (each token is
    /// quantized on its own, so the result does not depend on the split).
    pub fn quantize(&mut self, x: &[f32], cols: usize) {
        let n = x.len() / cols;
        self.n = n;
        self.cols = cols;
        self.qs.resize(n * cols, 0);
        self.d.resize(n * cols / QK, 0.0);
        self.sums.resize(n * cols / QK, 0);
        let nb = cols / QK;
        self.qs
            .par_chunks_mut(cols)
            .zip(self.d.par_chunks_mut(nb))
            .zip(self.sums.par_chunks_mut(nb))
            .zip(x.par_chunks(cols))
            .for_each(|(((q, d), sums), x)| quantize_with_sums(x, q, d, sums));
    }
}
