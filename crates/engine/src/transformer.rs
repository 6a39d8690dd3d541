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
//!
//! A model holds several sequences, each with its own cache ([`Transformer::logits_batch`]):
//! jurors sharing a model decode together, one batch of rows per step, so each weight is read
//! once per step for all of them; a prefix they share is computed once and copied. For the
//! same reason as above, a sequence's logits do not depend on what it was batched with.

use super::kernels::attention::{self, Shape};
use super::kernels::matrix::Matrix;
use super::kernels::ops::{self, Activation, RopeStyle};
use super::kernels::q8::{Q8Acts, QK};
use candle_core::quantized::gguf_file;
use reader::Reader;
use std::io::{Read, Seek};

mod cache;
mod forward;
mod reader;

use cache::{KvCache, Sequence};
use forward::Segment;

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
    /// A batch of requests is malformed.
    #[error("batch: {0}")]
    Batch(String),
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
    /// Positions taken from a cache (the sequence's own, or copied from another's).
    pub reused: u64,
}

/// An attention implementation: `(q, cache, shape, p0, out)` as [`attention::causal`] takes
/// them.
pub type AttentionFn = fn(&[f32], attention::Kv<'_>, Shape, usize, &mut [f32]);

/// The most sequences a model holds at once (each has its own cache, reserved for the whole
/// context and resident as far as it is used).
pub const MAX_SEQUENCES: usize = 16;

/// One sequence's part of a batch ([`Transformer::logits_batch`]).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Which sequence, `0..MAX_SEQUENCES`: each has its own cache, created on first use.
    pub seq: usize,
    /// The sequence's tokens so far; the prefix any sequence has cached is not computed again.
    pub ids: &'a [u32],
    /// Logits are returned after each of the last `want` tokens (at least 1).
    pub want: usize,
}

/// A model with its sequences' KV caches.
pub struct Transformer {
    w: std::sync::Arc<Weights>,
    attention: AttentionFn,
    /// Sequence 0 always exists; the others are created by the first request that names them.
    seqs: Vec<Sequence>,
    scratch: Scratch,
    stats: Stats,
}

impl Transformer {
    /// A model with one empty sequence (the cache's memory is reserved, touched only when used).
    pub fn new(w: std::sync::Arc<Weights>) -> Self {
        let mut m = Self {
            w,
            attention: attention::causal,
            seqs: Vec::new(),
            scratch: Scratch::default(),
            stats: Stats::default(),
        };
        m.ensure(1);
        m
    }

    fn ensure(&mut self, seqs: usize) {
        while self.seqs.len() < seqs {
            let c = &self.w.cfg;
            self.seqs.push(Sequence {
                cache: KvCache::new(c.layers, c.kv_dim(), c.context),
                tokens: Vec::new(),
            });
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
        self.w.bytes() + c.layers * 2 * context * c.kv_dim() * size_of::<u16>()
    }

    /// Reuse counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The tokens held in sequence 0's cache.
    pub fn cached(&self) -> &[u32] {
        &self.seqs[0].tokens
    }

    /// Forgets every sequence's cache beyond `len` positions.
    pub fn rewind(&mut self, len: usize) {
        // Positions past `len` are simply overwritten by the next request.
        for s in &mut self.seqs {
            s.tokens.truncate(len);
        }
    }

    /// The next-token logits after each of the last `want` tokens of `ids` (`want ≥ 1`), in
    /// sequence 0, reusing the cached prefix `ids` shares with earlier requests.
    pub fn logits(&mut self, ids: &[u32], want: usize) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut out = self.logits_batch(&[Request { seq: 0, ids, want }])?;
        Ok(out.pop().expect("one request, one answer"))
    }

    /// [`Transformer::logits`] for several sequences at once, each request in its own
    /// sequence: what every request shares with any cached sequence is taken from there (a
    /// copy), a prefix all requests share beyond that is computed once, and the rest of all of
    /// them runs as one batch. Each request's logits are bit for bit those it would get alone.
    pub fn logits_batch(
        &mut self,
        reqs: &[Request<'_>],
    ) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
        self.check(reqs)?;
        self.ensure(reqs.iter().map(|r| r.seq + 1).max().unwrap_or(1));
        let wants: Vec<usize> = reqs.iter().map(|r| r.want.clamp(1, r.ids.len())).collect();
        // The most of each request that may come from a cache: its last `want` positions are
        // computed, since their hidden states are needed.
        let limits: Vec<usize> = reqs
            .iter()
            .zip(&wants)
            .map(|(r, w)| r.ids.len() - w)
            .collect();
        let mut starts: Vec<usize> = reqs
            .iter()
            .zip(&limits)
            .map(|(r, &limit)| self.take_prefix(r.seq, r.ids, limit))
            .collect();
        // A prefix every request shares, beyond what is cached, is computed once and copied.
        let shared = reqs
            .iter()
            .map(|r| common(reqs[0].ids, r.ids))
            .chain(limits.iter().copied())
            .min()
            .unwrap_or(0);
        if reqs.len() > 1 && starts.iter().any(|&s| s < shared) {
            let src = (0..reqs.len()).max_by_key(|&i| starts[i]).unwrap_or(0);
            if starts[src] < shared {
                let (seq, ids) = (reqs[src].seq, reqs[src].ids);
                self.run(&[Segment {
                    seq,
                    p0: starts[src],
                    ids: &ids[starts[src]..shared],
                }])?;
                starts[src] = shared;
            }
            for (i, r) in reqs.iter().enumerate() {
                if starts[i] < shared {
                    self.copy_prefix(reqs[src].seq, r.seq, shared);
                    self.stats.reused += (shared - starts[i]) as u64;
                    starts[i] = shared;
                }
            }
        }
        let segs: Vec<Segment<'_>> = reqs
            .iter()
            .zip(&starts)
            .map(|(r, &p0)| Segment {
                seq: r.seq,
                p0,
                ids: &r.ids[p0..],
            })
            .collect();
        self.run(&segs)?;
        // Each request's last `want` rows, one product over the vocabulary for all of them.
        let mut rows = Vec::new();
        let mut end = 0;
        for (g, &want) in segs.iter().zip(&wants) {
            end += g.ids.len();
            rows.extend(end - want..end);
        }
        let mut logits = self.head(&rows).into_iter();
        Ok(wants
            .iter()
            .map(|&w| logits.by_ref().take(w).collect())
            .collect())
    }

    fn check(&self, reqs: &[Request<'_>]) -> Result<(), EngineError> {
        let context = self.w.cfg.context;
        if reqs.is_empty() {
            return Err(EngineError::Batch("no requests".into()));
        }
        for (i, r) in reqs.iter().enumerate() {
            if r.ids.is_empty() {
                return Err(EngineError::Format("no tokens".into()));
            }
            if r.ids.len() > context {
                return Err(EngineError::Context {
                    tokens: r.ids.len(),
                    context,
                });
            }
            if r.seq >= MAX_SEQUENCES {
                return Err(EngineError::Batch(format!(
                    "sequence {} is beyond the {MAX_SEQUENCES} a model holds",
                    r.seq
                )));
            }
            if reqs[..i].iter().any(|o| o.seq == r.seq) {
                return Err(EngineError::Batch(format!(
                    "sequence {} is named twice",
                    r.seq
                )));
            }
        }
        Ok(())
    }

    /// Makes sequence `seq` hold the longest prefix of `ids` (at most `limit` positions) that
    /// any sequence has cached, copying it from another sequence when that one has more of
    /// it; returns its length.
    fn take_prefix(&mut self, seq: usize, ids: &[u32], limit: usize) -> usize {
        let own = common(&self.seqs[seq].tokens, ids).min(limit);
        let (best, len) = self
            .seqs
            .iter()
            .enumerate()
            .map(|(j, s)| (j, common(&s.tokens, ids).min(limit)))
            .fold((seq, own), |b, c| if c.1 > b.1 { c } else { b });
        if best != seq {
            self.copy_prefix(best, seq, len);
        }
        self.seqs[seq].tokens.truncate(len);
        self.stats.reused += len as u64;
        len
    }

    /// Copies positions `0..len` of sequence `from` into sequence `to`.
    fn copy_prefix(&mut self, from: usize, to: usize, len: usize) {
        let (kv_heads, hd) = (self.w.cfg.kv_heads, self.w.cfg.head_dim);
        let (src, dst) = if from < to {
            let (a, b) = self.seqs.split_at_mut(to);
            (&a[from], &mut b[0])
        } else {
            let (a, b) = self.seqs.split_at_mut(from);
            (&b[0], &mut a[to])
        };
        dst.cache.copy_prefix(&src.cache, len, kv_heads, hd);
        dst.tokens.clear();
        dst.tokens.extend_from_slice(&src.tokens[..len]);
    }

    /// Runs `segs` and records their tokens as cached.
    fn run(&mut self, segs: &[Segment<'_>]) -> Result<(), EngineError> {
        for g in segs {
            // A sequence's cache must end where its segment starts.
            self.seqs[g.seq].tokens.truncate(g.p0);
        }
        self.forward(segs)?;
        for g in segs {
            self.seqs[g.seq].tokens.extend_from_slice(g.ids);
            self.stats.computed += g.ids.len() as u64;
        }
        Ok(())
    }
}

/// How many leading tokens `a` and `b` share.
fn common(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
