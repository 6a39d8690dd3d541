//! Small element-wise and reduction kernels with a fixed arithmetic: plain IEEE operations in a
//! written-down order (no fused multiply-add, no library `exp`), so every CPU computes the
//! same bits.

/// Asks the cache hierarchy for the line at `p` (a hint: an address past the end is harmless,
/// nothing is read or faulted), into the second-level cache: the first level has too few fill
/// buffers for the streams a decode step reads (into L2, decode at 4000 tokens went from 69-71
/// to 75-77 tok/s on a 2-core AMD EPYC).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Σ a·b over eight lanes (`i % 8`), then one fixed tree; `a.len()` a multiple of 8.
#[inline(always)]
pub fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    reduce8(&acc)
}

/// Σ a over eight lanes (`i % 8`, a tail in lane order), then [`reduce8`].
#[inline(always)]
pub fn sum8(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    for (k, v) in tail.iter().enumerate() {
        acc[k] += v;
    }
    reduce8(&acc)
}

/// The fixed reduction of eight accumulators.
#[inline(always)]
pub fn reduce8(a: &[f32; 8]) -> f32 {
    let u = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (u[0] + u[2]) + (u[1] + u[3])
}

#[allow(clippy::excessive_precision)] // Cephes' coefficients, as published
/// eˣ from IEEE operations alone (Cephes' single-precision polynomial, ≈1 ulp), so it is the
/// same everywhere and vectorises; `x` is clamped to [-87, 88].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    use exp_constants::*;
    let x = x.clamp(LOW, HIGH);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((POLY[0] * r + POLY[1]) * r + POLY[2]) * r + POLY[3]) * r + POLY[4]) * r + POLY[5];
    let y = p * r * r + r + 1.0;
    f32::from_bits(((n as i32 + 127) as u32) << 23) * y
}

/// [`exp`]'s constants, shared with the attention's vector form of it.
#[allow(clippy::excessive_precision)] // Cephes' coefficients, as published
pub mod exp_constants {
    /// The clamp.
    pub const LOW: f32 = -87.0;
    /// The clamp.
    pub const HIGH: f32 = 88.0;
    /// log₂ e.
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 in two parts, for an exact `x − n·ln 2`.
    pub const LN2_HI: f32 = 0.693_359_4;
    /// The rest of ln 2.
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Round to nearest by the 1.5·2²³ trick: two additions, no library call, vectorises.
    pub const MAGIC: f32 = 12_582_912.0;
    /// The polynomial's coefficients, highest degree first.
    pub const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ];
}

/// RMS normalisation of one row: `x · w / sqrt(mean(x²) + eps)`.
#[inline(always)]
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mut sq = [0f32; 8];
    for c in x.chunks_exact(8) {
        for k in 0..8 {
            sq[k] += c[k] * c[k];
        }
    }
    let mut ss = reduce8(&sq);
    for v in x.chunks_exact(8).remainder() {
        ss += v * v;
    }
    let inv = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * w;
    }
}

/// `silu(g) · u` element-wise: the gated feed-forward activation.
#[inline(always)]
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// `gelu(g) · u` element-wise with GELU's tanh approximation (Gemma's gated feed-forward).
/// `0.5·x·(1 + tanh y)` is written as `x / (1 + e^(−2y))`, the same value, so that it needs
/// only the engine's own [`exp`] and no library `tanh`.
#[inline(always)]
pub fn gelu_tanh_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
        let y = C * (g + 0.044_715 * g * g * g);
        *o = g / (1.0 + exp(-2.0 * y)) * u;
    }
}

/// `cap · tanh(x / cap)` in place (Gemma 2-style soft-capping of attention scores or final
/// logits), with `tanh y` written as `2 / (1 + e^(−2y)) − 1` on the engine's own [`exp`].
#[inline(always)]
pub fn soft_cap(x: &mut [f32], cap: f32) {
    for v in x {
        *v = cap * (2.0 / (1.0 + exp(-2.0 * (*v / cap))) - 1.0);
    }
}

/// The gated feed-forward's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (llama, qwen).
    Silu,
    /// GELU, tanh approximation (gemma).
    GeluTanh,
}

/// How rotary embeddings pair a head's dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)` (GGUF llama, whose q/k rows are permuted for it).
    Interleaved,
    /// Halves `(i, i + d/2)` (GGUF qwen2, GPT-NeoX).
    Halves,
}

/// Rotary embedding tables for one position: `cos`, `sin` of `pos · freq[i]`, computed in f64
/// and rounded once, so they do not depend on the platform's single-precision `sin`.
pub fn rope_table(freqs: &[f64], pos: usize, cos: &mut [f32], sin: &mut [f32]) {
    for ((f, c), s) in freqs.iter().zip(cos.iter_mut()).zip(sin.iter_mut()) {
        let a = pos as f64 * f;
        *c = a.cos() as f32;
        *s = a.sin() as f32;
    }
}

/// Rotates one head vector in place.
#[inline(always)]
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = match style {
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            RopeStyle::Halves => (i, i + half),
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos[i] - x1 * sin[i];
        x[b] = x0 * sin[i] + x1 * cos[i];
    }
}
