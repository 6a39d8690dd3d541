//! A weight matrix in whichever format the engine computes with natively — Q8_0, Q4_K, Q5_K,
//! Q6_K, Q4_1 — and the one product the transformer calls. Each format defines its own fixed
//! arithmetic (see its module); a stack of matrices of different formats (a Q4_K_M file's
//! Q4_K queries beside Q6_K values) runs each part with its own, writing its own columns.

use super::kquant::KMatrix;
use super::q6k::Q6KMatrix;
use super::q8::{self, Kernel, Q8Acts, Q8Matrix};
use super::tiles::Placement;
use super::{kquant, q6k};

/// A weight matrix.
#[derive(Clone, Debug)]
pub enum Matrix {
    /// Q8_0 (also every format the engine converts at load).
    Q8(Q8Matrix),
    /// Q4_K, Q5_K or Q4_1.
    K(KMatrix),
    /// Q6_K.
    Q6K(Q6KMatrix),
    /// Row blocks of different formats, in order.
    Stack(Vec<Matrix>),
}

impl Matrix {
    /// Output dimension.
    pub fn rows(&self) -> usize {
        match self {
            Self::Q8(m) => m.rows,
            Self::K(m) => m.rows,
            Self::Q6K(m) => m.rows,
            Self::Stack(parts) => parts.iter().map(Self::rows).sum(),
        }
    }

    /// Input dimension.
    pub fn cols(&self) -> usize {
        match self {
            Self::Q8(m) => m.cols,
            Self::K(m) => m.cols,
            Self::Q6K(m) => m.cols,
            Self::Stack(parts) => parts[0].cols(),
        }
    }

    /// The GGUF names of the formats held, e.g. `Q4_K` or `Q4_K+Q6_K`.
    pub fn format(&self) -> String {
        match self {
            Self::Q8(_) => "Q8_0".into(),
            Self::K(m) => m.format().into(),
            Self::Q6K(_) => "Q6_K".into(),
            Self::Stack(parts) => parts.iter().map(Self::format).collect::<Vec<_>>().join("+"),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Q8(m) => m.bytes(),
            Self::K(m) => m.bytes(),
            Self::Q6K(m) => m.bytes(),
            Self::Stack(parts) => parts.iter().map(Self::bytes).sum(),
        }
    }

    /// Stacks matrices with the same `cols` into one product: runs of parts in one format
    /// become one matrix (the same arithmetic per element either way), and a [`Matrix::Stack`]
    /// holds the runs when the formats differ.
    pub fn stack(parts: Vec<Matrix>) -> Self {
        let mut runs: Vec<Vec<Matrix>> = Vec::new();
        for p in parts {
            match runs.last_mut() {
                Some(run) if run[0].format() == p.format() && !matches!(p, Self::Stack(_)) => {
                    run.push(p)
                }
                _ => runs.push(vec![p]),
            }
        }
        let mut merged: Vec<Matrix> = runs.into_iter().map(Self::merge).collect();
        if merged.len() == 1 {
            merged.remove(0)
        } else {
            Self::Stack(merged)
        }
    }

    /// One matrix from parts of one format.
    fn merge(run: Vec<Matrix>) -> Self {
        let mut q8 = Vec::new();
        let mut k = Vec::new();
        let mut q6k = Vec::new();
        let mut other = Vec::new();
        for m in run {
            match m {
                Self::Q8(m) => q8.push(m),
                Self::K(m) => k.push(m),
                Self::Q6K(m) => q6k.push(m),
                Self::Stack(_) => other.push(m),
            }
        }
        if !q8.is_empty() {
            Self::Q8(Q8Matrix::stack(&q8))
        } else if !k.is_empty() {
            Self::K(KMatrix::stack(&k))
        } else if !q6k.is_empty() {
            Self::Q6K(Q6KMatrix::stack(&q6k))
        } else {
            Self::Stack(other)
        }
    }

    /// Row `r` dequantized into `out` (an embedding lookup: no whole-matrix copy).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        match self {
            Self::Q8(m) => m.dequantize_row(r, out),
            Self::K(m) => m.dequantize_row(r, out),
            Self::Q6K(m) => m.dequantize_row(r, out),
            Self::Stack(parts) => {
                let mut r = r;
                for p in parts {
                    if r < p.rows() {
                        return p.dequantize_row(r, out);
                    }
                    r -= p.rows();
                }
                panic!("row past the end of the stack");
            }
        }
    }

    /// `out[t][r] = Σ_c w[r][c] · x[t][c]` for every token `t` of `x` and row `r` (`out` is
    /// `x.n` × `rows`), on the current rayon pool, with the fastest kernel of this CPU.
    pub fn matmul(&self, x: &Q8Acts, out: &mut [f32]) {
        self.matmul_with(q8::detected(), x, out);
    }

    /// [`Matrix::matmul`] with a chosen kernel (tests compare them).
    pub fn matmul_with(&self, kernel: Kernel, x: &Q8Acts, out: &mut [f32]) {
        let at = Placement {
            stride: self.rows(),
            offset: 0,
        };
        self.matmul_at(kernel, x, out, at);
    }

    fn matmul_at(&self, kernel: Kernel, x: &Q8Acts, out: &mut [f32], at: Placement) {
        match self {
            Self::Q8(m) => q8::matmul_at(kernel, m, x, out, at),
            Self::K(m) => kquant::matmul_at(kernel, m, x, out, at),
            Self::Q6K(m) => q6k::matmul_at(kernel, m, x, out, at),
            Self::Stack(parts) => {
                let mut offset = at.offset;
                for p in parts {
                    let at = Placement {
                        stride: at.stride,
                        offset,
                    };
                    p.matmul_at(kernel, x, out, at);
                    offset += p.rows();
                }
            }
        }
    }
}

/// Bytes a `rows` × `cols` matrix stored as `dtype` in a file takes once loaded (formats the
/// engine does not compute with natively are converted to Q8_0).
pub fn loaded_bytes(dtype: candle_core::quantized::GgmlDType, rows: usize, cols: usize) -> usize {
    use candle_core::quantized::GgmlDType;
    let values = rows * cols;
    let blocks = values / q8::QK;
    match dtype {
        // Nibbles, and a scale and a minimum (f32) per block of 32; Q5_K adds 32 bits a block.
        GgmlDType::Q4K => values / 2 + blocks * 8,
        GgmlDType::Q4_1 if cols.is_multiple_of(64) => values / 2 + blocks * 8,
        GgmlDType::Q5K => values / 2 + blocks * 12,
        // A byte per value, a scale byte per 16, a f32 per 256.
        GgmlDType::Q6K => values + values / 16 + values / 256 * 4,
        _ => values + blocks * 4,
    }
}
