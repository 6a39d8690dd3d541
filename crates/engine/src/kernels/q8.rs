//! Q8_0 matrices and the one matrix product the engine uses: weights in Q8_0 blocks of 32
//! (one f32 scale each) times activations quantized the same way.
//!
//! The arithmetic of one output element is fixed by definition, not by the instruction set:
//! each block's 32 products are summed exactly in integers, in eight lanes of four products;
//! lane `k` of block `b` is multiplied by `d_w[b] * d_x[b]` and added to accumulator
//! `(b % 2) * 8 + k` in one fused multiply-add, blocks in increasing order; the sixteen accumulators are then reduced in
//! one fixed tree ([`reduce16`]). The AVX2 kernel and the portable one follow that definition
//! to the bit (integer sums are exact, and every float operation is the same operation in the
//! same order), so a result depends neither on the CPU, nor on the thread that computed it,
//! nor on how many tokens were multiplied together.

use super::half::f16_to_f32;
use super::tiles::{Group, Placement, TILE, TOKENS, drive};
use rayon::prelude::*;

/// Elements per block.
pub const QK: usize = 32;

/// How far ahead, in rows, the multi-token kernels prefetch the weights: a decode step streams
/// every weight once, in rows too short for the hardware prefetcher to follow.
const PREFETCH_ROWS: usize = 8;

/// A row-major Q8_0 matrix: `rows` × `cols`, `cols` a multiple of [`QK`].
#[derive(Clone, Debug, Default)]
pub struct Q8Matrix {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Quantized values, row-major.
    pub qs: Vec<i8>,
    /// One scale per block, row-major.
    pub d: Vec<f32>,
}

/// Quantizes `x` (a multiple of [`QK`] long) into `qs` and `d`, by the engine's own rule:
/// scale `max|x| / 127`, values `x / scale` rounded half to even.
pub fn quantize_row(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    for ((xb, qb), db) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (q, v) in qb.iter_mut().zip(xb) {
            // Round half to even by the 1.5·2²³ trick (two additions, no library call).
            const MAGIC: f32 = 12_582_912.0;
            let r = ((v * inv).clamp(-127.0, 127.0) + MAGIC) - MAGIC;
            *q = r as i8;
        }
        *db = scale;
    }
}

impl Q8Matrix {
    /// From GGUF Q8_0 bytes: blocks of an f16 scale and 32 `i8`.
    pub fn from_q8_0_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let nb = rows * cols / QK;
        if !cols.is_multiple_of(QK) || bytes.len() != nb * 34 {
            return None;
        }
        let mut qs = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(nb);
        for b in bytes.chunks_exact(34) {
            d.push(f16_to_f32(u16::from_le_bytes([b[0], b[1]])));
            qs.extend(b[2..].iter().map(|&v| v as i8));
        }
        Some(Self { rows, cols, qs, d })
    }

    /// From GGUF Q4_0 bytes (blocks of an f16 scale and 16 bytes: value `i` is the low nibble
    /// of byte `i`, value `i + 16` the high one, minus 8). Exact: every value is a small
    /// integer times the block's scale, which is what a Q8_0 block holds.
    pub fn from_q4_0_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Self::unpack(bytes, rows, cols, 18, |b, i| {
            let nibble = if i < 16 {
                b[2 + i] & 0xf
            } else {
                b[2 + i - 16] >> 4
            };
            nibble as i8 - 8
        })
    }

    /// From GGUF Q5_0 bytes (an f16 scale, 32 fifth bits, then Q4_0's nibbles; minus 16).
    /// Exact, as for Q4_0.
    pub fn from_q5_0_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Self::unpack(bytes, rows, cols, 22, |b, i| {
            let fifth = (u32::from_le_bytes([b[2], b[3], b[4], b[5]]) >> i) & 1;
            let nibble = if i < 16 {
                b[6 + i] & 0xf
            } else {
                b[6 + i - 16] >> 4
            };
            (nibble | ((fifth as u8) << 4)) as i8 - 16
        })
    }

    /// Blocks of `size` bytes starting with an f16 scale, value `i` given by `value`.
    fn unpack(
        bytes: &[u8],
        rows: usize,
        cols: usize,
        size: usize,
        value: impl Fn(&[u8], usize) -> i8,
    ) -> Option<Self> {
        let nb = rows * cols / QK;
        if !cols.is_multiple_of(QK) || bytes.len() != nb * size {
            return None;
        }
        let mut qs = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(nb);
        for b in bytes.chunks_exact(size) {
            d.push(f16_to_f32(u16::from_le_bytes([b[0], b[1]])));
            qs.extend((0..QK).map(|i| value(b, i)));
        }
        Some(Self { rows, cols, qs, d })
    }

    /// Quantizes a dense row-major matrix with [`quantize_row`].
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(QK) && x.len() == rows * cols);
        let mut m = Self {
            rows,
            cols,
            qs: vec![0; rows * cols],
            d: vec![0.0; rows * cols / QK],
        };
        quantize_row(x, &mut m.qs, &mut m.d);
        m
    }

    /// Stacks matrices with the same `cols` (a fused projection: one product instead of
    /// several, with the same per-element arithmetic).
    pub fn stack(parts: &[Q8Matrix]) -> Self {
        let cols = parts[0].cols;
        let mut out = Self {
            rows: 0,
            cols,
            qs: Vec::new(),
            d: Vec::new(),
        };
        for p in parts {
            assert_eq!(p.cols, cols);
            out.rows += p.rows;
            out.qs.extend_from_slice(&p.qs);
            out.d.extend_from_slice(&p.d);
        }
        out
    }

    /// Row `r` dequantized into `out` (an embedding lookup: no whole-matrix copy).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        let qs = &self.qs[r * self.cols..(r + 1) * self.cols];
        let d = &self.d[r * nb..(r + 1) * nb];
        for ((o, q), s) in out.chunks_exact_mut(QK).zip(qs.chunks_exact(QK)).zip(d) {
            for (o, &q) in o.iter_mut().zip(q) {
                *o = f32::from(q) * s;
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.qs.len() + 4 * self.d.len()
    }
}

/// Activations of `n` tokens quantized for [`matmul`].
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
            .for_each(|(((q, d), sums), x)| {
                quantize_row(x, q, d);
                for (s, qb) in sums.iter_mut().zip(q.chunks_exact(QK)) {
                    *s = qb.iter().map(|&v| i32::from(v)).sum();
                }
            });
    }
}

/// The fixed reduction of the sixteen accumulators.
#[inline(always)]
pub fn reduce16(a: &[f32; 16]) -> f32 {
    let mut t = [0f32; 8];
    for k in 0..8 {
        t[k] = a[k] + a[8 + k];
    }
    let u = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
    let v = [u[0] + u[2], u[1] + u[3]];
    v[0] + v[1]
}

/// One output element, portably: the definition itself.
pub fn dot_portable(w: &[i8], dw: &[f32], x: &[i8], dx: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, (&sw, &sx)) in dw.iter().zip(dx).enumerate() {
        let s = sw * sx;
        let base = (b % 2) * 8;
        let wb = &w[b * QK..(b + 1) * QK];
        let xb = &x[b * QK..(b + 1) * QK];
        for k in 0..8 {
            let mut l = 0i32;
            for i in 4 * k..4 * k + 4 {
                l += i32::from(wb[i]) * i32::from(xb[i]);
            }
            acc[base + k] = (l as f32).mul_add(s, acc[base + k]);
        }
    }
    reduce16(&acc)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
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
                            let ahead =
                                w[r].as_ptr().wrapping_add(PREFETCH_ROWS * nb * QK + b * QK);
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
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::{PREFETCH_ROWS, QK};
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

    /// [`dot_rows`] for `T` tokens at once: each weight block is loaded, its sign and
    /// magnitude split (`|w|` as u8 times x with w's sign: exact i32 lanes of four products)
    /// and its scales spread once for all `T` tokens. Every output has the definition's
    /// operations in its order, so the same bits whatever `T`.
    ///
    /// # Safety
    /// As [`dot_rows`], for every token's `x` and `dx` (the same number of blocks each).
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
            let mut b = 0;
            while b + 2 <= nb {
                let mut xv = [zero; T];
                let mut sx = [_mm512_setzero_ps(); T];
                for j in 0..T {
                    xv[j] = _mm512_loadu_si512(x[j].as_ptr().add(b * QK) as *const _);
                    sx[j] = scale_pair(dx[j].as_ptr().add(b));
                }
                for r in 0..R {
                    // A decode step streams every weight once, in rows too short for the
                    // hardware prefetcher to follow: ask for the same place PREFETCH_ROWS rows
                    // on (rows are contiguous; a prefetch past the end reads nothing).
                    let ahead = w[r].as_ptr().wrapping_add(PREFETCH_ROWS * nb * QK + b * QK);
                    crate::kernels::ops::prefetch(ahead);
                    let wv = _mm512_loadu_si512(w[r].as_ptr().add(b * QK) as *const _);
                    let neg = _mm512_movepi8_mask(wv);
                    let aw = _mm512_abs_epi8(wv);
                    let sw = scale_pair(dw[r].as_ptr().add(b));
                    for j in 0..T {
                        let xs = _mm512_mask_sub_epi8(xv[j], neg, zero, xv[j]);
                        let l = _mm512_dpbusd_epi32(zero, aw, xs);
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

    /// One output from its sixteen accumulators after the block pairs: the odd last block
    /// `b` (if `b < nb`) into lanes 0..8, as in the definition, then the fixed reduction.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")]
    unsafe fn finish(acc: __m512, b: usize, w: &[i8], dw: &[f32], x: &[i8], dx: &[f32]) -> f32 {
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
}

/// Which kernel runs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The portable definition.
    Portable,
    /// AVX2 and FMA (x86_64).
    Avx2,
    /// AVX-512 F/BW/DQ with VNNI (x86_64); attention uses the AVX2 code.
    Avx512Vnni,
}

/// The fastest kernel this CPU has (they all give the same bits).
pub fn detected() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *K.get_or_init(|| {
            // F16C: the attention kernels widen the half-precision cache with it.
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            let vnni = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vnni");
            if std::env::var_os("CYBERGOV_ENGINE_NO_AVX512").is_none() && avx2 && vnni {
                Kernel::Avx512Vnni
            } else if avx2 {
                Kernel::Avx2
            } else {
                Kernel::Portable
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Kernel::Portable
}

/// `group[..k]`: the rows `w` of tokens `x(0)..x(k)`, several tokens per kernel call where
/// the kernel has such a form.
#[inline(always)]
fn dot_group<'a>(
    kernel: Kernel,
    w: [&[i8]; TILE],
    dw: [&[f32]; TILE],
    x: impl Fn(usize) -> (&'a [i8], &'a [f32]),
    k: usize,
    group: &mut Group,
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 && k > 1 {
        // Sixteen 256-bit registers hold the accumulators of two tokens of a tile, not more.
        let mut j = 0;
        while j + 2 <= k {
            let (x0, d0) = x(j);
            let (x1, d1) = x(j + 1);
            let nb = d0.len();
            assert!(x0.len() >= nb * QK && x1.len() >= nb * QK && d1.len() == nb);
            assert!((0..TILE).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
            // SAFETY: `Avx2` is chosen only when the CPU has AVX2 and FMA (`matmul_at`
            // checked the kernel); every slice holds whole blocks (above).
            let out = unsafe { avx2::dot_tokens::<TILE, 2>(w, dw, [x0, x1], [d0, d1]) };
            group[j..j + 2].copy_from_slice(&out);
            j += 2;
        }
        if j < k {
            let (xs, xd) = x(j);
            group[j] = dot_rows(kernel, w, dw, xs, xd);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx512Vnni && k > 1 {
        let nb = x(0).1.len();
        for j in 0..k {
            let (xs, xd) = x(j);
            assert!(xs.len() >= nb * QK && xd.len() == nb);
        }
        assert!((0..TILE).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
        macro_rules! tokens {
            ($t:literal) => {{
                let xs: [&[i8]; $t] = std::array::from_fn(|j| x(j).0);
                let xd: [&[f32]; $t] = std::array::from_fn(|j| x(j).1);
                // SAFETY: chosen only when the CPU has AVX-512 F/BW/DQ/VNNI, AVX2 and FMA
                // (`matmul_at` checked the kernel); every slice holds whole blocks (above).
                let out = unsafe { avx512::dot_tokens::<TILE, $t>(w, dw, xs, xd) };
                group[..$t].copy_from_slice(&out);
            }};
        }
        match k {
            2 => tokens!(2),
            3 => tokens!(3),
            4 => tokens!(4),
            _ => unreachable!("a group holds at most {TOKENS} tokens"),
        }
        return;
    }
    for (j, o) in group.iter_mut().take(k).enumerate() {
        let (xs, xd) = x(j);
        *o = dot_rows(kernel, w, dw, xs, xd);
    }
}

#[inline(always)]
fn dot_rows<const R: usize>(
    kernel: Kernel,
    w: [&[i8]; R],
    dw: [&[f32]; R],
    x: &[i8],
    dx: &[f32],
) -> [f32; R] {
    // The unchecked kernels read `dx.len()` whole blocks of every row: checked here, once per
    // call of R · cols products. (`kernel` itself was checked against the CPU by `matmul_at`,
    // this function's only caller.)
    let nb = dx.len();
    assert!(x.len() >= nb * QK && (0..R).all(|r| w[r].len() >= nb * QK && dw[r].len() >= nb));
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only chosen when the CPU has AVX2 and FMA; slices are whole blocks
        // (checked above).
        Kernel::Avx2 => unsafe { avx2::dot_rows(w, dw, x, dx) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only when the CPU has AVX-512 F/BW/DQ/VNNI, AVX2 and FMA; slices are
        // whole blocks (checked above).
        Kernel::Avx512Vnni => unsafe { avx512::dot_rows(w, dw, x, dx) },
        _ => std::array::from_fn(|r| dot_portable(w[r], dw[r], x, dx)),
    }
}

/// `out[t][r] = Σ_c w[r][c] · x[t][c]` for every token `t` of `x` and row `r` of `w`
/// (`out` is `x.n` × `w.rows`). Weight rows are split over the current rayon pool; each
/// element is computed whole by one thread with [`dot_portable`]'s arithmetic.
pub fn matmul(w: &Q8Matrix, x: &Q8Acts, out: &mut [f32]) {
    matmul_with(detected(), w, x, out);
}

/// [`matmul`] with a chosen kernel (tests compare them).
pub fn matmul_with(kernel: Kernel, w: &Q8Matrix, x: &Q8Acts, out: &mut [f32]) {
    let at = Placement {
        stride: w.rows,
        offset: 0,
    };
    matmul_at(kernel, w, x, out, at);
}

/// Panics unless `kernel` can run on this CPU (every kernel's `unsafe` code relies on it).
pub fn check_kernel(kernel: Kernel) {
    let here = detected();
    assert!(
        kernel == Kernel::Portable
            || kernel == here
            || (kernel == Kernel::Avx2 && here == Kernel::Avx512Vnni),
        "kernel {kernel:?} is not available on this CPU ({here:?})"
    );
}

/// [`matmul_with`] writing at `at` in a wider output (a part of a stacked projection).
pub fn matmul_at(kernel: Kernel, w: &Q8Matrix, x: &Q8Acts, out: &mut [f32], at: Placement) {
    check_kernel(kernel);
    assert_eq!(w.cols, x.cols);
    let (cols, nb) = (w.cols, w.cols / QK);
    let wrow = |i: usize| &w.qs[i * cols..(i + 1) * cols];
    let drow = |i: usize| &w.d[i * nb..(i + 1) * nb];
    let xrow = |t: usize| (&x.qs[t * cols..(t + 1) * cols], &x.d[t * nb..(t + 1) * nb]);
    drive(
        w.rows,
        x.n,
        at,
        out,
        |r, t, k, group| {
            let ws: [&[i8]; TILE] = std::array::from_fn(|i| wrow(r + i));
            let ds: [&[f32]; TILE] = std::array::from_fn(|i| drow(r + i));
            dot_group(kernel, ws, ds, |j| xrow(t + j), k, group);
        },
        |r, t| {
            let (xs, xd) = xrow(t);
            dot_rows(kernel, [wrow(r)], [drow(r)], xs, xd)[0]
        },
    );
}
