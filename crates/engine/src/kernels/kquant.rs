//! Q4_K and Q5_K matrices as GGUF files store them (the bulk of a Q4_K_M or Q5_K_M file), and
//! their product with [`Q8Acts`], without converting the weights to Q8_0. Q4_1 has the same
//! form (a scale and a minimum per block of 32, with `m_b = −min`) and runs here too.
//!
//! A row is made of blocks of 32 values (eight per 256-value super-block); value `i` of block
//! `b` is `s_b · q_i − m_b`, with `q_i` an unsigned 4- or 5-bit integer, `s_b = d · sc_b` and
//! `m_b = dmin · mn_b` (an f16 times a 6-bit integer: exact in f32, computed once at load).
//! The activations are Q8 blocks of the same 32 positions, scale `dx_b`, values `x_i`, sum
//! `X_b`.
//!
//! The arithmetic of one output element is fixed by definition, like Q8_0's
//! ([`super::q8`]): each block's 32 products `q_i · x_i` are summed exactly in integers, in
//! eight lanes of four; lane `k` of block `b` is multiplied by `s_b · dx_b` and added to
//! accumulator `(b % 2) · 8 + k` in one fused multiply-add, blocks in increasing order; the
//! minimum terms go to a seventeenth accumulator, `M = fma(X_b, m_b · dx_b, M)` in block order;
//! the element is `reduce16(acc) − M`. Integer sums are exact and every float operation is the
//! same in every kernel, so portable, AVX2 and AVX-512 results are the same bits.

use super::half::f16_to_f32;
use super::q8::{Kernel, Q8Acts, QK, check_kernel, reduce16};
use super::tiles::{Placement, TILE, drive, per_token};

/// Values per super-block.
pub const QK_K: usize = 256;

/// A row-major Q4_K or Q5_K matrix (`cols` a multiple of [`QK_K`]), or Q4_1 (`cols` a
/// multiple of 64).
#[derive(Clone, Debug)]
pub struct KMatrix {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// 4 (Q4_K, Q4_1) or 5 (Q5_K).
    pub bits: u32,
    /// The GGUF name of the format the values came in.
    format: &'static str,
    /// The low four bits of every value, in the files' order: for each pair of blocks, 32
    /// bytes whose low nibbles are the first block's values and high nibbles the second's
    /// (one 32-byte load yields two blocks).
    qs: Vec<u8>,
    /// Q5_K's fifth bits: bit `i` of entry `b` belongs to value `i` of block `b`.
    qh: Vec<u32>,
    /// `s_b` of every block.
    s: Vec<f32>,
    /// `m_b` of every block.
    m: Vec<f32>,
}

/// Scale and minimum of block `j` of a super-block, from its twelve packed bytes (six bits
/// each: the first four blocks' in the low bits of bytes 0–7, the others split between the
/// high bits of those and bytes 8–11, as ggml packs them).
fn scale_min(q: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl KMatrix {
    /// From GGUF Q4_K bytes (super-blocks of 144 bytes: `d`, `dmin`, twelve scale bytes, 128
    /// bytes of nibbles).
    pub fn from_q4_k_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Self::from_bytes(bytes, rows, cols, 4)
    }

    /// From GGUF Q5_K bytes (super-blocks of 176: as Q4_K with 32 bytes of fifth bits before
    /// the nibbles; bit `j` of byte `l` belongs to value `l` of block `j`).
    pub fn from_q5_k_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        Self::from_bytes(bytes, rows, cols, 5)
    }

    /// From GGUF Q4_1 bytes (blocks of 20: `d`, `min`, 16 bytes whose low nibbles are values
    /// 0–15 and high nibbles 16–31; value `d · q + min`), when each row holds an even number of
    /// blocks (the kernels take blocks in pairs); `None` otherwise.
    pub fn from_q4_1_bytes(bytes: &[u8], rows: usize, cols: usize) -> Option<Self> {
        let nb = rows * cols / QK;
        if !cols.is_multiple_of(2 * QK) || bytes.len() != nb * 20 {
            return None;
        }
        let mut m = Self::empty(rows, cols, 4, "Q4_1");
        let value = |b: &[u8], i: usize| {
            if i < 16 {
                b[4 + i] & 0xf
            } else {
                b[4 + i - 16] >> 4
            }
        };
        // Rows hold whole pairs, so pairs of blocks never straddle two rows.
        for pair in bytes.chunks_exact(40) {
            let (a, b) = pair.split_at(20);
            for blk in [a, b] {
                m.s.push(f16_to_f32(u16::from_le_bytes([blk[0], blk[1]])));
                m.m.push(-f16_to_f32(u16::from_le_bytes([blk[2], blk[3]])));
            }
            m.qs.extend((0..QK).map(|i| value(a, i) | (value(b, i) << 4)));
        }
        Some(m)
    }

    fn empty(rows: usize, cols: usize, bits: u32, format: &'static str) -> Self {
        let nb = rows * cols / QK;
        Self {
            rows,
            cols,
            bits,
            format,
            qs: Vec::with_capacity(rows * cols / 2),
            qh: Vec::with_capacity(if bits == 5 { nb } else { 0 }),
            s: Vec::with_capacity(nb),
            m: Vec::with_capacity(nb),
        }
    }

    fn from_bytes(bytes: &[u8], rows: usize, cols: usize, bits: u32) -> Option<Self> {
        let size = if bits == 4 { 144 } else { 176 };
        if !cols.is_multiple_of(QK_K) || bytes.len() != rows * cols / QK_K * size {
            return None;
        }
        let format = if bits == 4 { "Q4_K" } else { "Q5_K" };
        let mut m = Self::empty(rows, cols, bits, format);
        for sb in bytes.chunks_exact(size) {
            let d = f16_to_f32(u16::from_le_bytes([sb[0], sb[1]]));
            let dmin = f16_to_f32(u16::from_le_bytes([sb[2], sb[3]]));
            for j in 0..8 {
                let (sc, mn) = scale_min(&sb[4..16], j);
                m.s.push(d * f32::from(sc));
                m.m.push(dmin * f32::from(mn));
            }
            if bits == 4 {
                m.qs.extend_from_slice(&sb[16..144]);
            } else {
                let qh = &sb[16..48];
                m.qs.extend_from_slice(&sb[48..176]);
                for j in 0..8 {
                    let fifth = (0..32).fold(0u32, |a, l| a | (u32::from((qh[l] >> j) & 1) << l));
                    m.qh.push(fifth);
                }
            }
        }
        Some(m)
    }

    /// The GGUF name of the format.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The unsigned values of block `gb` (counted over the whole matrix).
    fn block(&self, gb: usize) -> [u8; QK] {
        let pair = &self.qs[gb / 2 * QK..(gb / 2 + 1) * QK];
        let shift = if gb.is_multiple_of(2) { 0 } else { 4 };
        std::array::from_fn(|i| {
            let fifth = self.qh.get(gb).map_or(0, |h| (((h >> i) & 1) as u8) << 4);
            ((pair[i] >> shift) & 0xf) | fifth
        })
    }

    /// Stacks matrices of the same format and `cols` (a fused projection).
    pub fn stack(parts: &[KMatrix]) -> Self {
        let mut out = parts[0].clone();
        for p in &parts[1..] {
            assert!(p.cols == out.cols && p.format == out.format);
            out.rows += p.rows;
            out.qs.extend_from_slice(&p.qs);
            out.qh.extend_from_slice(&p.qh);
            out.s.extend_from_slice(&p.s);
            out.m.extend_from_slice(&p.m);
        }
        out
    }

    /// Row `r` dequantized into `out` (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let gb = r * nb + b;
            for (o, q) in o.iter_mut().zip(self.block(gb)) {
                *o = self.s[gb] * f32::from(q) - self.m[gb];
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.qs.len() + 4 * (self.qh.len() + self.s.len() + self.m.len())
    }
}

/// One output element, portably: the definition itself.
pub fn dot_portable(w: &KMatrix, r: usize, x: &[i8], dx: &[f32], xsum: &[i32]) -> f32 {
    let nb = w.cols / QK;
    let mut acc = [0f32; 16];
    let mut min = 0f32;
    for b in 0..nb {
        let gb = r * nb + b;
        let q = w.block(gb);
        let xb = &x[b * QK..(b + 1) * QK];
        let s = w.s[gb] * dx[b];
        for k in 0..8 {
            let l: i32 = (4 * k..4 * k + 4)
                .map(|i| i32::from(q[i]) * i32::from(xb[i]))
                .sum();
            acc[(b % 2) * 8 + k] = (l as f32).mul_add(s, acc[(b % 2) * 8 + k]);
        }
        min = (xsum[b] as f32).mul_add(w.m[gb] * dx[b], min);
    }
    reduce16(&acc) - min
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{KMatrix, QK};
    use std::arch::x86_64::*;

    /// Q5_K's fifth bits of one block as bytes: 16 where bit `i` is set, else 0.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn fifth(bits: u32) -> __m256i {
        unsafe {
            // Byte i takes byte i / 8 of the word (shuffles stay within 128-bit halves, and
            // the word is in both), then tests its bit i % 8.
            let spread = _mm256_shuffle_epi8(
                _mm256_set1_epi32(bits as i32),
                _mm256_setr_epi8(
                    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                    3, 3, 3, 3, 3, 3,
                ),
            );
            let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
            _mm256_and_si256(set, _mm256_set1_epi8(16))
        }
    }

    /// [`super::dot_portable`] for `R` rows against one token.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; every row of `r` is below `w.rows`; `x`, `dx` and `xsum` hold
    /// one token of `w.cols` values (checked by [`super::dot_rows`]).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows<const R: usize>(
        w: &KMatrix,
        r: [usize; R],
        x: &[i8],
        dx: &[f32],
        xsum: &[i32],
    ) -> [f32; R] {
        let nb = w.cols / QK;
        unsafe {
            let low = _mm256_set1_epi8(0xf);
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            let mut min = [0f32; R];
            for b in (0..nb).step_by(2) {
                let x0 = _mm256_loadu_si256(x.as_ptr().add(b * QK) as *const __m256i);
                let x1 = _mm256_loadu_si256(x.as_ptr().add((b + 1) * QK) as *const __m256i);
                let (dx0, dx1) = (*dx.get_unchecked(b), *dx.get_unchecked(b + 1));
                for i in 0..R {
                    let gb = r[i] * nb + b;
                    let v = _mm256_loadu_si256(w.qs.as_ptr().add(gb / 2 * QK) as *const __m256i);
                    let mut q0 = _mm256_and_si256(v, low);
                    let mut q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                    if w.bits == 5 {
                        q0 = _mm256_or_si256(q0, fifth(*w.qh.get_unchecked(gb)));
                        q1 = _mm256_or_si256(q1, fifth(*w.qh.get_unchecked(gb + 1)));
                    }
                    // q ≤ 31 and |x| ≤ 127: pairs of products fit i16 without saturating.
                    let l0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x0), ones);
                    let l1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x1), ones);
                    let s0 = _mm256_set1_ps(*w.s.get_unchecked(gb) * dx0);
                    let s1 = _mm256_set1_ps(*w.s.get_unchecked(gb + 1) * dx1);
                    acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(l0), s0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(l1), s1, acc[i][1]);
                    let (m0, m1) = (*w.m.get_unchecked(gb), *w.m.get_unchecked(gb + 1));
                    min[i] = (*xsum.get_unchecked(b) as f32).mul_add(m0 * dx0, min[i]);
                    min[i] = (*xsum.get_unchecked(b + 1) as f32).mul_add(m1 * dx1, min[i]);
                }
            }
            std::array::from_fn(|i| {
                let mut a = [0f32; 16];
                _mm256_storeu_ps(a.as_mut_ptr(), acc[i][0]);
                _mm256_storeu_ps(a.as_mut_ptr().add(8), acc[i][1]);
                super::reduce16(&a) - min[i]
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::q8::avx512::scale_pair;
    use super::{KMatrix, QK};
    use std::arch::x86_64::*;

    /// [`super::dot_portable`] for `R` rows with AVX-512 VNNI: one 512-bit step covers a pair
    /// of blocks, whose lanes are exactly accumulators `0..8` and `8..16` of the definition.
    ///
    /// # Safety
    /// As [`super::avx2::dot_rows`], and the CPU has AVX-512 F, BW, DQ and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")]
    pub unsafe fn dot_rows<const R: usize>(
        w: &KMatrix,
        r: [usize; R],
        x: &[i8],
        dx: &[f32],
        xsum: &[i32],
    ) -> [f32; R] {
        let nb = w.cols / QK;
        unsafe {
            let low = _mm256_set1_epi8(0xf);
            let sixteen = _mm512_set1_epi8(16);
            let zero = _mm512_setzero_si512();
            let mut acc = [_mm512_setzero_ps(); R];
            let mut min = [0f32; R];
            for b in (0..nb).step_by(2) {
                let xv = _mm512_loadu_si512(x.as_ptr().add(b * QK) as *const _);
                let (dx0, dx1) = (*dx.get_unchecked(b), *dx.get_unchecked(b + 1));
                // One vector product gives every lane the definition's `s_b · dx_b`.
                let sx = scale_pair(dx.as_ptr().add(b));
                for i in 0..R {
                    let gb = r[i] * nb + b;
                    let v = _mm256_loadu_si256(w.qs.as_ptr().add(gb / 2 * QK) as *const __m256i);
                    let q0 = _mm256_and_si256(v, low);
                    let q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                    let mut q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
                    if w.bits == 5 {
                        let h = u64::from(*w.qh.get_unchecked(gb))
                            | (u64::from(*w.qh.get_unchecked(gb + 1)) << 32);
                        q = _mm512_or_si512(q, _mm512_maskz_mov_epi8(h, sixteen));
                    }
                    let l = _mm512_dpbusd_epi32(zero, q, xv);
                    let s = _mm512_mul_ps(scale_pair(w.s.as_ptr().add(gb)), sx);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), s, acc[i]);
                    let (m0, m1) = (*w.m.get_unchecked(gb), *w.m.get_unchecked(gb + 1));
                    min[i] = (*xsum.get_unchecked(b) as f32).mul_add(m0 * dx0, min[i]);
                    min[i] = (*xsum.get_unchecked(b + 1) as f32).mul_add(m1 * dx1, min[i]);
                }
            }
            std::array::from_fn(|i| {
                let mut a = [0f32; 16];
                _mm512_storeu_ps(a.as_mut_ptr(), acc[i]);
                super::reduce16(&a) - min[i]
            })
        }
    }
}

/// Rows `r` of `w` times token `t` of `x`, with `kernel` (already checked against the CPU).
#[inline(always)]
fn dot_rows<const R: usize>(
    kernel: Kernel,
    w: &KMatrix,
    r: [usize; R],
    x: &Q8Acts,
    t: usize,
) -> [f32; R] {
    // The unchecked kernels read whole rows of `w` and one whole token: checked here, once
    // per R · cols products.
    let (cols, nb) = (w.cols, w.cols / QK);
    assert!(r.iter().all(|&r| r < w.rows) && x.cols == cols && t < x.n);
    let (xs, xd, xsum) = (
        &x.qs[t * cols..(t + 1) * cols],
        &x.d[t * nb..(t + 1) * nb],
        &x.sums[t * nb..(t + 1) * nb],
    );
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` runs only where the CPU has AVX2 and FMA (`check_kernel`); rows and
        // token are whole (checked above).
        Kernel::Avx2 => unsafe { avx2::dot_rows(w, r, xs, xd, xsum) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX-512 F/BW/DQ/VNNI.
        Kernel::Avx512Vnni => unsafe { avx512::dot_rows(w, r, xs, xd, xsum) },
        _ => r.map(|r| dot_portable(w, r, xs, xd, xsum)),
    }
}

/// `w` times `x` with `kernel`, written at `at` (see [`super::q8::matmul_at`]).
pub fn matmul_at(kernel: Kernel, w: &KMatrix, x: &Q8Acts, out: &mut [f32], at: Placement) {
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
