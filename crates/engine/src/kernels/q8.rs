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

pub use super::acts::{Q8Acts, quantize_row};
use super::half::f16_to_f32;
use super::tiles::{Placement, TILE, drive, per_token, spans};

/// Elements per block.
pub const QK: usize = 32;

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
mod avx2;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;

/// Which kernel runs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The portable definition.
    Portable,
    /// AVX2 and FMA (x86_64).
    Avx2,
    /// AVX-512 F/BW/DQ/VL with VNNI (x86_64); attention uses the AVX2 code, but for the
    /// values a KV group's heads mix together in a decode step (AVX-512 F).
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
                && std::arch::is_x86_feature_detected!("avx512vl")
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

/// How the AVX-512 kernel steps through a prefill's blocks; the same bits either way (each
/// form has the definition's operations in its order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefillSteps {
    /// Two blocks per 512-bit step, their scale products one vector product per row and
    /// token: four vector operations per two blocks.
    Wide,
    /// One block per 256-bit step, its scale product broadcast from a table: three
    /// operations per block, but each one half as wide.
    Halves,
}

/// The prefill form for this CPU. Zen 4 (AMD family 19h) runs a 512-bit operation as two
/// 256-bit halves, so there the narrower form with fewer operations is faster; cores with
/// whole 512-bit units do the wide form's two blocks per operation. Measured with the `decode`
/// example's prefill of 957 tokens, 2 threads: on Zen 5 (AMD family 1Ah) the wide form gave
/// 739-1108 tok/s (medians) against 690-731 for the halves; on the earlier AVX-512 AMD
/// machine of commit `fc6802f` (taken to be Zen 4: its family was not recorded) the halves
/// were the faster, by 0-10 %. Intel's AVX-512 cores get the wide form, unmeasured.
pub fn prefill_steps() -> PrefillSteps {
    #[cfg(target_arch = "x86_64")]
    {
        static S: std::sync::OnceLock<PrefillSteps> = std::sync::OnceLock::new();
        *S.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            // Leaves 0 (the vendor) and 1 (the family) exist on every x86_64 CPU.
            let (vendor, signature) = (__cpuid(0), __cpuid(1).eax);
            let amd =
                (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
            let base = (signature >> 8) & 0xf;
            let family = if base == 0xf {
                base + ((signature >> 20) & 0xff)
            } else {
                base
            };
            if amd && family == 0x19 {
                PrefillSteps::Halves
            } else {
                PrefillSteps::Wide
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    PrefillSteps::Wide
}

/// Whether this CPU has AVX-VNNI (the 256-bit `vpdpbusd` of CPUs without AVX-512, such as
/// Intel's Alder Lake and later client cores): the AVX2 kernel then sums a block's integers in
/// one instruction instead of three.
pub fn has_avx_vnni() -> bool {
    // The standard library caches what it detects.
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avxvnni");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The forms of the vector kernels, each with the definition's bits: which one runs is a
/// matter of speed on the CPU at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forms {
    /// How the AVX-512 kernel steps through a prefill's blocks.
    pub prefill: PrefillSteps,
    /// Whether the AVX2 kernel sums a block's integers with AVX-VNNI.
    pub avx_vnni: bool,
}

impl Forms {
    /// The forms this CPU runs fastest.
    pub fn detected() -> Self {
        Forms {
            prefill: prefill_steps(),
            avx_vnni: has_avx_vnni(),
        }
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
    matmul_forms(kernel, Forms::detected(), w, x, out, at);
}

/// [`matmul_at`] in chosen forms (tests compare them).
pub fn matmul_forms(
    kernel: Kernel,
    forms: Forms,
    w: &Q8Matrix,
    x: &Q8Acts,
    out: &mut [f32],
    at: Placement,
) {
    check_kernel(kernel);
    assert!(
        !forms.avx_vnni || has_avx_vnni(),
        "this CPU has no AVX-VNNI"
    );
    assert_eq!(w.cols, x.cols);
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY (both): `check_kernel` passed, so the CPU has what the kernel needs; the
        // columns agree (above).
        Kernel::Avx512Vnni => {
            spans(w.rows, x.n, at, out, |rows| unsafe {
                avx512::span(w, x, rows, forms.prefill)
            });
            return;
        }
        Kernel::Avx2 => {
            spans(w.rows, x.n, at, out, |rows| unsafe {
                if forms.avx_vnni {
                    avx2::span_vnni(w, x, rows)
                } else {
                    avx2::span(w, x, rows)
                }
            });
            return;
        }
        Kernel::Portable => {}
    }
    let (cols, nb) = (w.cols, w.cols / QK);
    let wrow = |i: usize| &w.qs[i * cols..(i + 1) * cols];
    let drow = |i: usize| &w.d[i * nb..(i + 1) * nb];
    let xrow = |t: usize| (&x.qs[t * cols..(t + 1) * cols], &x.d[t * nb..(t + 1) * nb]);
    drive(
        w.rows,
        x.n,
        at,
        out,
        per_token(|r, t| {
            let (xs, xd) = xrow(t);
            let ws: [&[i8]; TILE] = std::array::from_fn(|i| wrow(r + i));
            let ds: [&[f32]; TILE] = std::array::from_fn(|i| drow(r + i));
            dot_rows(kernel, ws, ds, xs, xd)
        }),
        |r, t| {
            let (xs, xd) = xrow(t);
            dot_rows(kernel, [wrow(r)], [drow(r)], xs, xd)[0]
        },
    );
}
