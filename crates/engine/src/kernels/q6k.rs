//! Q6_K matrices (a Q4_K_M file's value projections, down projections and output) and their
//! product with [`Q8Acts`], without converting the weights to Q8_0.
//!
//! Value `i` of a super-block of 256 is `d · sc_{i/16} · (q_i − 32)`: `d` an f16, `sc` sixteen
//! signed bytes, `q` six bits. The six bits are unpacked once at load into one signed byte per
//! value (`q − 32`), which makes the product Q8_0's with two scales per block of 32.
//!
//! The arithmetic of one output element is fixed by definition: each 32-value block's products
//! are summed exactly in integers, in eight lanes of four; lane `k` of block `b` is multiplied
//! by `(d · sc_{2b + k/4}) · dx_b` (the first product is exact: 11 by 8 bits) and added to
//! accumulator `(b % 2) · 8 + k` in one fused multiply-add, blocks in increasing order; the
//! sixteen accumulators are reduced by [`reduce16`]. Every kernel does exactly that.

use super::half::f16_to_f32;
use super::q8::{Kernel, Q8Acts, QK, check_kernel, reduce16};
use super::tiles::{Placement, TILE, drive, per_token};

/// Values per super-block.
const QK_K: usize = 256;

/// A row-major Q6_K matrix, `cols` a multiple of 256.
#[derive(Clone, Debug)]
pub struct Q6KMatrix {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// `q − 32` of every value, row-major.
    qs: Vec<i8>,
    /// One scale per 16 values.
    sc: Vec<i8>,
    /// One `d` per super-block.
    d: Vec<f32>,
}

impl Q6KMatrix {
    /// From GGUF Q6_K bytes: super-blocks of 210 bytes (128 bytes of low nibbles, 64 of high
    /// bit pairs, 16 scales, `d`), in ggml's interleaving.
    pub fn from_q6_k_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        if !cols.is_multiple_of(QK_K) || bytes.len() != rows * cols / QK_K * 210 {
            return None;
        }
        let mut m = Self {
            rows,
            cols,
            qs: Vec::with_capacity(rows * cols),
            sc: Vec::with_capacity(rows * cols / 16),
            d: Vec::with_capacity(rows * cols / QK_K),
        };
        for sb in bytes.chunks_exact(210) {
            let (ql, qh) = (&sb[..128], &sb[128..192]);
            m.sc.extend(sb[192..208].iter().map(|&v| v as i8));
            m.d.push(f16_to_f32(u16::from_le_bytes([sb[208], sb[209]])));
            // Each half of 128 values: 64 bytes of nibbles, 32 of bit pairs. Value 32·g + l
            // (g = 0..4) takes nibble g / 2 of byte l + 32·(g % 2) and bit pair g of byte l.
            for h in 0..2 {
                let (ql, qh) = (&ql[64 * h..64 * (h + 1)], &qh[32 * h..32 * (h + 1)]);
                for g in 0..4 {
                    for l in 0..32 {
                        let nibble = (ql[l + 32 * (g % 2)] >> (4 * (g / 2))) & 0xf;
                        let pair = (qh[l] >> (2 * g)) & 3;
                        m.qs.push(((nibble | (pair << 4)) as i8) - 32);
                    }
                }
            }
        }
        Some(m)
    }

    /// The scale of lane group `h` (0 or 1) of block `gb`: `d · sc`, exact.
    fn scale(&self, gb: usize, h: usize) -> f32 {
        self.d[gb * QK / QK_K] * f32::from(self.sc[2 * gb + h])
    }

    /// Stacks matrices with the same `cols` (a fused projection).
    pub fn stack(parts: &[Q6KMatrix]) -> Self {
        let mut out = parts[0].clone();
        for p in &parts[1..] {
            assert_eq!(p.cols, out.cols);
            out.rows += p.rows;
            out.qs.extend_from_slice(&p.qs);
            out.sc.extend_from_slice(&p.sc);
            out.d.extend_from_slice(&p.d);
        }
        out
    }

    /// Row `r` dequantized into `out` (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let gb = r * nb + b;
            for (i, (o, &q)) in o.iter_mut().zip(&self.qs[gb * QK..]).enumerate() {
                *o = self.scale(gb, i / 16) * f32::from(q);
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.qs.len() + self.sc.len() + 4 * self.d.len()
    }
}

/// One output element, portably: the definition itself.
pub fn dot_portable(w: &Q6KMatrix, r: usize, x: &[i8], dx: &[f32]) -> f32 {
    let nb = w.cols / QK;
    let mut acc = [0f32; 16];
    for b in 0..nb {
        let gb = r * nb + b;
        let (wb, xb) = (&w.qs[gb * QK..(gb + 1) * QK], &x[b * QK..(b + 1) * QK]);
        let s = [w.scale(gb, 0) * dx[b], w.scale(gb, 1) * dx[b]];
        for k in 0..8 {
            let l: i32 = (4 * k..4 * k + 4)
                .map(|i| i32::from(wb[i]) * i32::from(xb[i]))
                .sum();
            acc[(b % 2) * 8 + k] = (l as f32).mul_add(s[k / 4], acc[(b % 2) * 8 + k]);
        }
    }
    reduce16(&acc)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Q6KMatrix, QK};
    use std::arch::x86_64::*;

    /// [`super::dot_portable`] for `R` rows against one token.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; every row of `r` is below `w.rows`; `x` and `dx` hold one
    /// token of `w.cols` values (checked by [`super::dot_rows`]).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows<const R: usize>(
        w: &Q6KMatrix,
        r: [usize; R],
        x: &[i8],
        dx: &[f32],
    ) -> [f32; R] {
        let nb = w.cols / QK;
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            // Rows hold a multiple of eight blocks: pairs, so that each accumulator is fixed.
            for b0 in (0..nb).step_by(2) {
                for (half, b) in [b0, b0 + 1].into_iter().enumerate() {
                    let xv = _mm256_loadu_si256(x.as_ptr().add(b * QK) as *const __m256i);
                    let dxb = *dx.get_unchecked(b);
                    for i in 0..R {
                        let gb = r[i] * nb + b;
                        let wv = _mm256_loadu_si256(w.qs.as_ptr().add(gb * QK) as *const __m256i);
                        // |w| · (x with w's sign) = w · x; |w| ≤ 32 keeps pairs in i16.
                        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
                        let l = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                        let s = _mm256_set_m128(
                            _mm_set1_ps(w.scale(gb, 1) * dxb),
                            _mm_set1_ps(w.scale(gb, 0) * dxb),
                        );
                        acc[i][half] = _mm256_fmadd_ps(l, s, acc[i][half]);
                    }
                }
            }
            std::array::from_fn(|i| {
                let mut a = [0f32; 16];
                _mm256_storeu_ps(a.as_mut_ptr(), acc[i][0]);
                _mm256_storeu_ps(a.as_mut_ptr().add(8), acc[i][1]);
                super::reduce16(&a)
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Q6KMatrix, QK};
    use std::arch::x86_64::*;

    /// [`super::dot_portable`] for `R` rows with AVX-512 VNNI, a pair of blocks per step (rows
    /// hold a multiple of eight blocks, so there is no odd one).
    ///
    /// # Safety
    /// As [`super::avx2::dot_rows`], and the CPU has AVX-512 F, BW, DQ and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")]
    pub unsafe fn dot_rows<const R: usize>(
        w: &Q6KMatrix,
        r: [usize; R],
        x: &[i8],
        dx: &[f32],
    ) -> [f32; R] {
        let nb = w.cols / QK;
        unsafe {
            let zero = _mm512_setzero_si512();
            // Lane j takes scale j / 4: the four (block, half) groups of the pair.
            let spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
            let mut acc = [_mm512_setzero_ps(); R];
            for b in (0..nb).step_by(2) {
                let xv = _mm512_loadu_si512(x.as_ptr().add(b * QK) as *const _);
                let (dx0, dx1) = (*dx.get_unchecked(b), *dx.get_unchecked(b + 1));
                for i in 0..R {
                    let gb = r[i] * nb + b;
                    let wv = _mm512_loadu_si512(w.qs.as_ptr().add(gb * QK) as *const _);
                    let neg = _mm512_movepi8_mask(wv);
                    let xs = _mm512_mask_sub_epi8(xv, neg, zero, xv);
                    let l = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), xs);
                    let four = _mm_setr_ps(
                        w.scale(gb, 0) * dx0,
                        w.scale(gb, 1) * dx0,
                        w.scale(gb + 1, 0) * dx1,
                        w.scale(gb + 1, 1) * dx1,
                    );
                    let s = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(four));
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), s, acc[i]);
                }
            }
            std::array::from_fn(|i| {
                let mut a = [0f32; 16];
                _mm512_storeu_ps(a.as_mut_ptr(), acc[i]);
                super::reduce16(&a)
            })
        }
    }
}

/// Rows `r` of `w` times token `t` of `x`, with `kernel` (already checked against the CPU).
#[inline(always)]
fn dot_rows<const R: usize>(
    kernel: Kernel,
    w: &Q6KMatrix,
    r: [usize; R],
    x: &Q8Acts,
    t: usize,
) -> [f32; R] {
    let (cols, nb) = (w.cols, w.cols / QK);
    assert!(r.iter().all(|&r| r < w.rows) && x.cols == cols && t < x.n);
    let (xs, xd) = (&x.qs[t * cols..(t + 1) * cols], &x.d[t * nb..(t + 1) * nb]);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` runs only where the CPU has AVX2 and FMA (`check_kernel`); rows and
        // token are whole (checked above).
        Kernel::Avx2 => unsafe { avx2::dot_rows(w, r, xs, xd) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX-512 F/BW/DQ/VNNI.
        Kernel::Avx512Vnni => unsafe { avx512::dot_rows(w, r, xs, xd) },
        _ => r.map(|r| dot_portable(w, r, xs, xd)),
    }
}

/// `w` times `x` with `kernel`, written at `at` (see [`super::q8::matmul_at`]).
pub fn matmul_at(kernel: Kernel, w: &Q6KMatrix, x: &Q8Acts, out: &mut [f32], at: Placement) {
    check_kernel(kernel);
    drive(
        w.rows,
        x.n,
        at,
        out,
        per_token(|r, t| dot_rows::<TILE>(kernel, w, std::array::from_fn(|i| r + i), x, t)),
        |r, t| dot_rows(kernel, w, [r], x, t)[0],
    );
}
