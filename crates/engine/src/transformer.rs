//! The engine's decoder-only transformer (GGUF `llama` — SmolLM2, Llama 3.x, Mistral —,
//! `qwen2`, `qwen3` and `gemma3`; the architectures differ only in [`Config`] and in which
//! optional tensors a layer has: q/k/v biases, q/k norms, post-norms).
//!
//! Weights are read with candle's GGUF reader and kept as [`Matrix`] (Q8_0, Q4_K, Q5_K and
//! Q6_K as they are; other types requantized to Q8_0 once at load by the engine's own rule). The token embedding
//! stays quantized: rows are dequantized on lookup, and it doubles as the output projection
//! when the file ties them. The KV cache is preallocated per layer and remembers the tokens it
//! holds: [`Transformer::logits`] rewinds it to the longest common prefix with the new request
//! and runs only the rest. That is safe because every kernel computes a token's values the same
//! way however tokens are batched (see [`super::kernels`]).

use super::kernels::attention::{self, Shape};
use super::kernels::matrix::Matrix;
use super::kernels::ops::{self, Activation, RopeStyle};
use super::kernels::q8::{Q8Acts, QK};
use candle_core::quantized::gguf_file;
use rayon::prelude::*;
use reader::Reader;
use std::io::{Read, Seek};

mod reader;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The file lacks something the architecture needs.
    #[error("{0}")]
    Format(String),
    /// Reading the file failed.
    #[error("reading tensor {name}: {message}")]
    Read {
        /// The tensor.
        name: String,
        /// Why.
        message: String,
    },
    /// The request does not fit the cache.
    #[error("{tokens} tokens exceed the engine's context of {context}")]
    Context {
        /// Tokens asked for.
        tokens: usize,
        /// The limit.
        context: usize,
    },
}

/// Architecture parameters, from GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// Hidden size.
    pub hidden: usize,
    /// Feed-forward size.
    pub ff: usize,
    /// Layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// RMS norm epsilon.
    pub eps: f32,
    /// Rotary base.
    pub rope_base: f64,
    /// How rotary pairs dimensions.
    pub rope_style: RopeStyle,
    /// Vocabulary size.
    pub vocab: usize,
    /// Most positions the cache holds.
    pub context: usize,
    /// Factor of the token embeddings (Gemma: √hidden; else 1).
    pub embed_scale: f32,
    /// The feed-forward's activation.
    pub activation: Activation,
    /// Gemma 3's local layers: `(window, pattern)`, every layer local but each `pattern`-th,
    /// which attends globally.
    pub sliding: Option<(usize, usize)>,
    /// Rotary base of the local layers (the global ones use `rope_base`).
    pub rope_base_local: f64,
    /// Soft-capping of attention scores, where the file asks for it.
    pub attn_softcap: Option<f32>,
    /// Soft-capping of the final logits, where the file asks for it.
    pub final_softcap: Option<f32>,
}

impl Config {
    /// Reads the configuration of `arch` from `ct`, capping the context at `max_context`.
    pub fn from_gguf(ct: &gguf_file::Content, max_context: usize) -> Result<Self, EngineError> {
        let fmt = |m: String| EngineError::Format(m);
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok().cloned())
            .ok_or_else(|| fmt("no general.architecture".into()))?;
        let rope_style = match arch.as_str() {
            "llama" | "mistral" => RopeStyle::Interleaved,
            "qwen2" | "qwen3" | "gemma3" => RopeStyle::Halves,
            other => {
                return Err(fmt(format!(
                    "unsupported architecture {other:?} (llama, mistral, qwen2, qwen3, gemma3 are)"
                )));
            }
        };
        let u = |k: &str| {
            ct.metadata
                .get(&format!("{arch}.{k}"))
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| fmt(format!("no {arch}.{k}")))
        };
        let f = |k: &str, default: f32| {
            ct.metadata
                .get(&format!("{arch}.{k}"))
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(default)
        };
        let hidden = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let kv_heads = u("attention.head_count_kv").unwrap_or(heads);
        // Qwen3 decouples the head width from the hidden size (`attention.key_length`);
        // elsewhere it is the hidden size split over the heads.
        let head_dim = match u("attention.key_length") {
            Ok(k) => {
                if u("attention.value_length").is_ok_and(|v| v != k) {
                    return Err(fmt("key and value heads of different widths".into()));
                }
                k
            }
            Err(_) => hidden / heads,
        };
        let vocab = ct
            .tensor_infos
            .get("token_embd.weight")
            .map(|i| i.shape.dims()[0])
            .ok_or_else(|| fmt("no token_embd.weight".into()))?;
        let mut cfg = Self {
            hidden,
            ff: u("feed_forward_length")?,
            layers: u("block_count")?,
            heads,
            kv_heads,
            head_dim,
            eps: f("attention.layer_norm_rms_epsilon", 1e-6),
            rope_base: f64::from(f("rope.freq_base", 10_000.0)),
            rope_style,
            vocab,
            context: u("context_length").unwrap_or(max_context).min(max_context),
            embed_scale: 1.0,
            activation: Activation::Silu,
            sliding: None,
            rope_base_local: 10_000.0,
            attn_softcap: None,
            final_softcap: None,
            arch: arch.clone(),
        };
        // Soft-capping (Gemma 2's, which a converter may carry over): applied where the file
        // names a cap; a cap that is not a positive number is refused rather than run.
        for (key, slot) in [
            ("attn_logit_softcapping", &mut cfg.attn_softcap),
            ("final_logit_softcapping", &mut cfg.final_softcap),
        ] {
            if let Some(v) = ct.metadata.get(&format!("{arch}.{key}")) {
                match v.to_f32() {
                    Ok(cap) if cap > 0.0 && cap.is_finite() => *slot = Some(cap),
                    _ => return Err(fmt(format!("{arch}.{key}: {v:?} is not a positive cap"))),
                }
            }
        }
        if arch == "gemma3" {
            // As llama.cpp runs Gemma 3: embeddings times √hidden, GELU, and five local
            // layers (a 10 000 rotary base, a sliding window) for each global one.
            cfg.embed_scale = (hidden as f32).sqrt();
            cfg.activation = Activation::GeluTanh;
            cfg.sliding = Some((u("attention.sliding_window").unwrap_or(512), 6));
        }
        if let Ok(rd) = u("rope.dimension_count")
            && rd != head_dim
        {
            return Err(fmt(format!(
                "partial rotary ({rd} of {head_dim}) is not supported"
            )));
        }
        if !hidden.is_multiple_of(QK)
            || !cfg.ff.is_multiple_of(QK)
            || !(heads * head_dim).is_multiple_of(QK)
            || !head_dim.is_multiple_of(16)
            || heads % kv_heads != 0
        {
            return Err(fmt(format!("unsupported shape {cfg:?}")));
        }
        Ok(cfg)
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Qwen3's and Gemma 3's per-head RMS norms of queries and keys, before the rotation.
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Gemma's norms of the attention and feed-forward outputs, before each residual add.
    post_norms: Option<(Vec<f32>, Vec<f32>)>,
    /// Whether the layer attends within the sliding window (Gemma 3's local layers).
    local: bool,
    /// q, k, v stacked: one product.
    wqkv: Matrix,
    bqkv: Option<Vec<f32>>,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    /// gate and up stacked.
    wgu: Matrix,
    wdown: Matrix,
}

/// The loaded weights.
pub struct Weights {
    cfg: Config,
    embed: Matrix,
    /// `None`: tied to `embed`.
    output: Option<Matrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Rotary frequency of each dimension pair.
    freqs: Vec<f64>,
    /// Those of the local layers, when the model has any.
    freqs_local: Option<Vec<f64>>,
}

impl Weights {
    /// Loads every tensor the architecture needs.
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        f: &mut R,
        cfg: Config,
    ) -> Result<Self, EngineError> {
        let mut r = Reader { ct, f };
        let (h, kv, q, ff) = (cfg.hidden, cfg.kv_dim(), cfg.q_dim(), cfg.ff);
        let embed = r.matrix("token_embd.weight", cfg.vocab, h)?;
        let output = if r.has("output.weight") {
            Some(r.matrix("output.weight", cfg.vocab, h)?)
        } else {
            None
        };
        let output_norm = r.vector("output_norm.weight", h)?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = |n: &str| format!("blk.{l}.{n}");
            let bqkv = if r.has(&p("attn_q.bias")) {
                let mut b = r.vector(&p("attn_q.bias"), q)?;
                b.extend(r.vector(&p("attn_k.bias"), kv)?);
                b.extend(r.vector(&p("attn_v.bias"), kv)?);
                Some(b)
            } else {
                None
            };
            let qk_norm = if r.has(&p("attn_q_norm.weight")) {
                Some((
                    r.vector(&p("attn_q_norm.weight"), cfg.head_dim)?,
                    r.vector(&p("attn_k_norm.weight"), cfg.head_dim)?,
                ))
            } else if cfg.arch == "qwen3" || cfg.arch == "gemma3" {
                return Err(Reader::<R>::err(&p("attn_q_norm.weight"), "missing"));
            } else {
                None
            };
            let post_norms = if cfg.arch == "gemma3" {
                Some((
                    r.vector(&p("post_attention_norm.weight"), h)?,
                    r.vector(&p("post_ffw_norm.weight"), h)?,
                ))
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: r.vector(&p("attn_norm.weight"), h)?,
                qk_norm,
                post_norms,
                local: cfg
                    .sliding
                    .is_some_and(|(_, every)| !(l + 1).is_multiple_of(every)),
                wqkv: Matrix::stack(vec![
                    r.matrix(&p("attn_q.weight"), q, h)?,
                    r.matrix(&p("attn_k.weight"), kv, h)?,
                    r.matrix(&p("attn_v.weight"), kv, h)?,
                ]),
                bqkv,
                wo: r.matrix(&p("attn_output.weight"), h, q)?,
                ffn_norm: r.vector(&p("ffn_norm.weight"), h)?,
                wgu: Matrix::stack(vec![
                    r.matrix(&p("ffn_gate.weight"), ff, h)?,
                    r.matrix(&p("ffn_up.weight"), ff, h)?,
                ]),
                wdown: r.matrix(&p("ffn_down.weight"), h, ff)?,
            });
        }
        let hd = cfg.head_dim;
        let factors = if r.has("rope_freqs.weight") {
            Some(r.vector("rope_freqs.weight", hd / 2)?)
        } else {
            None
        };
        let table = |base: f64| -> Vec<f64> {
            (0..hd / 2)
                .map(|i| {
                    let f = 1.0 / base.powf((2 * i) as f64 / hd as f64);
                    // Llama 3.1-style scaling: per-pair divisors stored in the file.
                    factors.as_ref().map_or(f, |fs| f / f64::from(fs[i]))
                })
                .collect()
        };
        let freqs = table(cfg.rope_base);
        let freqs_local = cfg.sliding.map(|_| table(cfg.rope_base_local));
        Ok(Self {
            freqs_local,
            cfg,
            embed,
            output,
            output_norm,
            layers,
            freqs,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        let l: usize = self
            .layers
            .iter()
            .map(|l| l.wqkv.bytes() + l.wo.bytes() + l.wgu.bytes() + l.wdown.bytes())
            .sum();
        l + self.embed.bytes() + self.output.as_ref().map_or(0, Matrix::bytes)
    }
}

/// Per-layer keys (in tiles of eight positions, see [`attention::key_index`]) and values
/// (position-major), sized
/// for the whole context up front. The buffers are zero-allocated, so the memory becomes
/// resident only as positions are written.
struct KvCache {
    k_t: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Positions per key row: the context rounded up to 8 (attention reads keys 8 at a time).
    cap: usize,
}

/// Scratch buffers reused across calls.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    acts: Q8Acts,
}

/// Counters of the prefix reuse (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Positions computed.
    pub computed: u64,
    /// Positions taken from the cache.
    pub reused: u64,
}

/// An attention implementation: `(q, cache, shape, p0, out)` as [`attention::causal`] takes
/// them.
pub type AttentionFn = fn(&[f32], attention::Kv<'_>, Shape, usize, &mut [f32]);

/// A model with its KV cache.
pub struct Transformer {
    w: std::sync::Arc<Weights>,
    attention: AttentionFn,
    cache: KvCache,
    /// The tokens whose keys and values the cache holds, in order.
    tokens: Vec<u32>,
    scratch: Scratch,
    stats: Stats,
}

impl Transformer {
    /// A model with an empty cache (the cache's memory is reserved, touched only when used).
    pub fn new(w: std::sync::Arc<Weights>) -> Self {
        let cap = w.cfg.context.div_ceil(8) * 8;
        let n = cap * w.cfg.kv_dim();
        let layers = w.cfg.layers;
        Self {
            cache: KvCache {
                k_t: (0..layers).map(|_| vec![0f32; n]).collect(),
                v: (0..layers).map(|_| vec![0f32; n]).collect(),
                cap,
            },
            w,
            attention: attention::causal,
            tokens: Vec::new(),
            scratch: Scratch::default(),
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.w.cfg
    }

    /// Replaces the attention kernel (tests compare the engine's with a reference).
    pub fn with_attention(mut self, f: AttentionFn) -> Self {
        self.attention = f;
        self
    }

    /// Bytes one decode step at `context` positions must read: every weight matrix once (the
    /// output projection included) and every layer's keys and values (benchmarks compare the
    /// achieved rate with the machine's read bandwidth).
    pub fn bytes_per_step(&self, context: usize) -> usize {
        let c = &self.w.cfg;
        self.w.bytes() + c.layers * 2 * context * c.kv_dim() * 4
    }

    /// Reuse counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The tokens held in the cache.
    pub fn cached(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets the cache beyond `len` positions.
    pub fn rewind(&mut self, len: usize) {
        // Positions past `len` are simply overwritten by the next request.
        self.tokens.truncate(len.min(self.tokens.len()));
    }

    /// The next-token logits after each of the last `want` tokens of `ids` (`want ≥ 1`),
    /// reusing the cached prefix `ids` shares with earlier requests.
    pub fn logits(&mut self, ids: &[u32], want: usize) -> Result<Vec<Vec<f32>>, EngineError> {
        let want = want.clamp(1, ids.len().max(1));
        if ids.is_empty() {
            return Err(EngineError::Format("no tokens".into()));
        }
        if ids.len() > self.w.cfg.context {
            return Err(EngineError::Context {
                tokens: ids.len(),
                context: self.w.cfg.context,
            });
        }
        let common = self
            .tokens
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - want);
        self.rewind(common);
        self.stats.reused += common as u64;
        self.stats.computed += (ids.len() - common) as u64;
        let new = &ids[common..];
        self.forward(new, common)?;
        self.tokens.extend_from_slice(new);
        Ok(self.head(new.len(), want))
    }

    /// Runs `new` at positions `p0..`, appending to the cache; leaves the final hidden states
    /// in `scratch.x`.
    fn forward(&mut self, new: &[u32], p0: usize) -> Result<(), EngineError> {
        let w = self.w.clone();
        let c = &w.cfg;
        let (n, hd) = (new.len(), c.head_dim);
        let (hidden, qd, kvd, ff) = (c.hidden, c.q_dim(), c.kv_dim(), c.ff);
        let qkvd = qd + 2 * kvd;
        let s = &mut self.scratch;
        s.x.resize(n * hidden, 0.0);
        for (t, &id) in new.iter().enumerate() {
            if id as usize >= c.vocab {
                return Err(EngineError::Format(format!(
                    "token {id} outside the vocabulary"
                )));
            }
            let row = &mut s.x[t * hidden..(t + 1) * hidden];
            w.embed.dequantize_row(id as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        s.h.resize(n * hidden, 0.0);
        s.qkv.resize(n * qkvd, 0.0);
        s.q.resize(n * qd, 0.0);
        s.att.resize(n * qd, 0.0);
        s.o.resize(n * hidden, 0.0);
        s.gu.resize(n * 2 * ff, 0.0);
        s.act.resize(n * ff, 0.0);
        let half = hd / 2;
        // (cos, sin) of every new position, for the global and for the local layers.
        let tables = |freqs: &[f64]| {
            let (mut cos, mut sin) = (vec![0f32; n * half], vec![0f32; n * half]);
            for t in 0..n {
                let range = t * half..(t + 1) * half;
                ops::rope_table(freqs, p0 + t, &mut cos[range.clone()], &mut sin[range]);
            }
            (cos, sin)
        };
        let global = tables(&w.freqs);
        let mut normed = vec![0f32; hd];
        let local = w.freqs_local.as_deref().map(tables);
        for (li, l) in w.layers.iter().enumerate() {
            let (cos, sin) = match (&local, l.local) {
                (Some(t), true) => t,
                _ => &global,
            };
            let shape = Shape {
                heads: c.heads,
                kv_heads: c.kv_heads,
                head_dim: hd,
                window: c.sliding.filter(|_| l.local).map(|(window, _)| window),
                softcap: c.attn_softcap,
            };
            // Attention block.
            norm_rows(&s.x, &l.attn_norm, c.eps, hidden, &mut s.h);
            s.acts.quantize(&s.h, hidden);
            l.wqkv.matmul(&s.acts, &mut s.qkv);
            let (kc, vc, cap) = (
                &mut self.cache.k_t[li],
                &mut self.cache.v[li],
                self.cache.cap,
            );
            for t in 0..n {
                let row = &mut s.qkv[t * qkvd..(t + 1) * qkvd];
                if let Some(b) = &l.bqkv {
                    for (x, b) in row.iter_mut().zip(b) {
                        *x += b;
                    }
                }
                let (cs, sn) = (
                    &cos[t * half..(t + 1) * half],
                    &sin[t * half..(t + 1) * half],
                );
                if let Some((qn, kn)) = &l.qk_norm {
                    for (i, head) in row[..qd + kvd].chunks_exact_mut(hd).enumerate() {
                        let w = if i < c.heads { qn } else { kn };
                        ops::rms_norm(head, w, c.eps, &mut normed);
                        head.copy_from_slice(&normed);
                    }
                }
                for head in row[..qd + kvd].chunks_exact_mut(hd) {
                    ops::rope(head, cs, sn, c.rope_style);
                }
                s.q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                let p = p0 + t;
                for (j, &x) in row[qd..qd + kvd].iter().enumerate() {
                    // Element j is dimension j % hd of KV head j / hd.
                    kc[attention::key_index(j / hd, j % hd, p, hd, cap)] = x;
                }
                vc[p * kvd..(p + 1) * kvd].copy_from_slice(&row[qd + kvd..]);
            }
            let kv = attention::Kv {
                k_t: kc,
                v: vc,
                cap,
            };
            (self.attention)(&s.q, kv, shape, p0, &mut s.att);
            s.acts.quantize(&s.att, qd);
            l.wo.matmul(&s.acts, &mut s.o);
            add_normed(
                &mut s.x,
                &s.o,
                l.post_norms.as_ref().map(|n| n.0.as_slice()),
                c.eps,
                &mut s.h,
            );
            // Feed-forward block.
            norm_rows(&s.x, &l.ffn_norm, c.eps, hidden, &mut s.h);
            s.acts.quantize(&s.h, hidden);
            l.wgu.matmul(&s.acts, &mut s.gu);
            s.act
                .par_chunks_mut(ff)
                .zip(s.gu.par_chunks(2 * ff))
                .for_each(|(a, gu)| match c.activation {
                    Activation::Silu => ops::silu_mul(&gu[..ff], &gu[ff..], a),
                    Activation::GeluTanh => ops::gelu_tanh_mul(&gu[..ff], &gu[ff..], a),
                });
            s.acts.quantize(&s.act, ff);
            l.wdown.matmul(&s.acts, &mut s.o);
            add_normed(
                &mut s.x,
                &s.o,
                l.post_norms.as_ref().map(|n| n.1.as_slice()),
                c.eps,
                &mut s.h,
            );
        }
        Ok(())
    }

    /// Logits of the last `want` of the `n` hidden states in `scratch.x`.
    fn head(&mut self, n: usize, want: usize) -> Vec<Vec<f32>> {
        let w = &self.w;
        let hidden = w.cfg.hidden;
        let s = &mut self.scratch;
        let last = &s.x[(n - want) * hidden..n * hidden];
        let mut h = vec![0f32; want * hidden];
        norm_rows(last, &w.output_norm, w.cfg.eps, hidden, &mut h);
        s.acts.quantize(&h, hidden);
        let out_w = w.output.as_ref().unwrap_or(&w.embed);
        let rows = out_w.rows();
        let mut logits = vec![0f32; want * rows];
        out_w.matmul(&s.acts, &mut logits);
        if let Some(cap) = w.cfg.final_softcap {
            ops::soft_cap(&mut logits, cap);
        }
        logits.chunks_exact(rows).map(<[f32]>::to_vec).collect()
    }
}

fn norm_rows(x: &[f32], w: &[f32], eps: f32, dim: usize, out: &mut [f32]) {
    for (xr, o) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        ops::rms_norm(xr, w, eps, o);
    }
}

/// `x += y`, with `y` first RMS-normalised by `norm` when there is one (Gemma's post-norms),
/// through `scratch` (a free buffer as long as `x`).
fn add_normed(x: &mut [f32], y: &[f32], norm: Option<&[f32]>, eps: f32, scratch: &mut [f32]) {
    match norm {
        Some(w) => {
            norm_rows(y, w, eps, w.len(), scratch);
            add(x, scratch);
        }
        None => add(x, y),
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
