//! Writes a tiny random llama-architecture GGUF (≈100 kB) with a byte-level BPE tokenizer and a
//! ChatML template in its metadata: loads in milliseconds, exercises the real loading,
//! tokenizer-from-metadata, generation and scoring code paths.

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use std::path::Path;

/// GPT-2's byte-to-unicode table: how byte-level BPE vocabularies spell raw bytes.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in printable.into_iter().zip(chars) {
        table[b as usize] = char::from_u32(c).expect("valid char");
    }
    table
}

/// A small deterministic pseudo-random generator (xorshift64*), so the same seed always
/// writes the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// How a random model's weight matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Every matrix Q8_0.
    Q8_0,
    /// llama.cpp's Q4_K_M mixture: Q6_K for the values, the down projection and the output,
    /// Q4_K for everything else.
    Q4KM,
}

/// The shape of a random model: the architecture and its sizes.
#[derive(Clone, Debug)]
pub struct Shape {
    /// `general.architecture`: `llama`, `qwen2` (q/k/v biases, halves rotary) or `qwen3`
    /// (per-head q/k norms, halves rotary, its own head width).
    pub arch: &'static str,
    /// Hidden size.
    pub dim: usize,
    /// Feed-forward size.
    pub ff: usize,
    /// Layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Separate output projection (else tied to the embedding).
    pub output: bool,
    /// Width of a head when it is not `dim / heads` (Qwen3's `attention.key_length`).
    pub head_dim: Option<usize>,
    /// Rotary base.
    pub rope_base: f32,
    /// Llama 3's rotary scaling: per-pair divisors in `rope_freqs.weight`.
    pub rope_freqs: bool,
    /// The storage of the weight matrices.
    pub weights: Weights,
    /// Gemma 3's sliding window of its local layers.
    pub sliding_window: Option<usize>,
    /// Soft-capping of attention scores and final logits (`attn_logit_softcapping`,
    /// `final_logit_softcapping`).
    pub softcaps: Option<(f32, f32)>,
}

impl Shape {
    /// The tiny llama: 2 layers, hidden 64, 4 heads over 2 KV heads.
    pub const TINY_LLAMA: Shape = Shape {
        arch: "llama",
        dim: 64,
        ff: 128,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        output: true,
        head_dim: None,
        rope_base: 10_000.0,
        rope_freqs: false,
        weights: Weights::Q8_0,
        sliding_window: None,
        softcaps: None,
    };
    /// Qwen2.5-0.5B's widths (hidden 896, feed-forward 4864, GQA 14/2, tied embedding) with
    /// `layers` layers.
    pub fn qwen25_05b(layers: usize) -> Shape {
        Shape {
            arch: "qwen2",
            dim: 896,
            ff: 4864,
            layers,
            heads: 14,
            kv_heads: 2,
            output: false,
            head_dim: None,
            rope_base: 1_000_000.0,
            rope_freqs: false,
            weights: Weights::Q8_0,
            sliding_window: None,
            softcaps: None,
        }
    }

    /// Llama-3.2-1B's widths (hidden 2048, feed-forward 8192, GQA 32/8, rotary base 500 000
    /// with Llama 3 scaling, tied embedding) with `layers` layers, stored as Q4_K_M.
    pub fn llama32_1b(layers: usize) -> Shape {
        Shape {
            arch: "llama",
            dim: 2048,
            ff: 8192,
            layers,
            heads: 32,
            kv_heads: 8,
            output: false,
            head_dim: None,
            rope_base: 500_000.0,
            rope_freqs: true,
            weights: Weights::Q4KM,
            sliding_window: None,
            softcaps: None,
        }
    }

    /// Gemma 3 270M's widths (hidden 640, heads of 256 over 4/1, feed-forward 2048, q/k norms,
    /// norms after attention and feed-forward, GELU, tied embedding) with `layers` layers whose
    /// local ones see the last `window` positions, stored as Q4_K_M.
    pub fn gemma3_270m(layers: usize, window: usize) -> Shape {
        Shape {
            arch: "gemma3",
            dim: 640,
            ff: 2048,
            layers,
            heads: 4,
            kv_heads: 1,
            output: false,
            head_dim: Some(256),
            rope_base: 1_000_000.0,
            rope_freqs: false,
            weights: Weights::Q4KM,
            sliding_window: Some(window),
            softcaps: None,
        }
    }

    /// Qwen3-0.6B's widths (hidden 1024, heads of 128 over 16/8, feed-forward 3072, q/k
    /// norms, tied embedding) with `layers` layers, stored as Q4_K_M.
    pub fn qwen3_06b(layers: usize) -> Shape {
        Shape {
            arch: "qwen3",
            dim: 1024,
            ff: 3072,
            layers,
            heads: 16,
            kv_heads: 8,
            output: false,
            head_dim: Some(128),
            rope_base: 1_000_000.0,
            rope_freqs: false,
            weights: Weights::Q4KM,
            sliding_window: None,
            softcaps: None,
        }
    }
}

/// Writes the tiny model to `path`. Different seeds give different (random) models.
pub fn write_tiny_llama(path: &Path, seed: u64) {
    write_random(path, seed, &Shape::TINY_LLAMA);
}

/// Writes a random model of `shape` with the tiny byte-level tokenizer.
pub fn write_random(path: &Path, seed: u64, shape: &Shape) {
    use gguf_file::Value as V;
    let table = byte_chars();
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types: Vec<i32> = vec![3, 3, 3];
    for c in &table {
        tokens.push(c.to_string());
        types.push(1);
    }
    // A few merges, so that BPE is really exercised ("AYE" becomes one token).
    let merge_pairs = [
        ("A", "Y"),
        ("AY", "E"),
        ("N", "A"),
        ("NA", "Y"),
        ("t", "h"),
        ("th", "e"),
        ("Ġ", "the"),
    ];
    let mut merges = Vec::new();
    for (a, b) in merge_pairs {
        merges.push(format!("{a} {b}"));
        tokens.push(format!("{a}{b}"));
        types.push(1);
    }
    while !tokens.len().is_multiple_of(32) {
        tokens.push(format!("<|pad{}|>", tokens.len()));
        types.push(4);
    }
    let vocab = tokens.len();
    let (dim, ff, layers, heads, kv_heads) = (
        shape.dim,
        shape.ff,
        shape.layers,
        shape.heads,
        shape.kv_heads,
    );
    let arch = shape.arch;
    let head_dim = shape.head_dim.unwrap_or(dim / heads);
    let q_dim = heads * head_dim;
    let mut rng = Rng(seed.max(1));
    let mut bias_rng = Rng(seed.max(1) ^ 0x9E37_79B9);
    let rng_bias = |r: &mut Rng| r.next() * 0.1;
    // (dims, scale, stored as Q6_K in a Q4_K_M file)
    let mut random_as = |dims: &[usize], scale: f32, q6: bool| {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.next() * scale).collect();
        // K-quants need rows of 256; llama.cpp falls back to Q5_0 / Q8_0 for narrower ones
        // (Gemma 3 270M's hidden size is 640).
        let k_ok = dims[dims.len() - 1].is_multiple_of(256);
        let dtype = match (shape.weights, q6, k_ok) {
            (Weights::Q8_0, _, _) => GgmlDType::Q8_0,
            (Weights::Q4KM, false, true) => GgmlDType::Q4K,
            (Weights::Q4KM, true, true) => GgmlDType::Q6K,
            (Weights::Q4KM, false, false) => GgmlDType::Q5_0,
            (Weights::Q4KM, true, false) => GgmlDType::Q8_0,
        };
        QTensor::quantize(&Tensor::from_vec(v, dims, &Device::Cpu).unwrap(), dtype).unwrap()
    };
    let ones = |n: usize| {
        QTensor::quantize(
            &Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let f32_tensor = |v: Vec<f32>| {
        let n = v.len();
        QTensor::quantize(
            &Tensor::from_vec(v, n, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            random_as(&[vocab, dim], 0.5, false),
        ),
        ("output_norm.weight".into(), ones(dim)),
    ];
    if shape.output {
        tensors.push(("output.weight".into(), random_as(&[vocab, dim], 0.2, true)));
    }
    if shape.rope_freqs {
        // Llama 3.1's scaling leaves the fast pairs alone and slows the slow ones by up to 8.
        let factors = (0..head_dim / 2)
            .map(|i| 1.0 + 7.0 * (i as f32 / (head_dim / 2) as f32))
            .collect();
        tensors.push(("rope_freqs.weight".into(), f32_tensor(factors)));
    }
    let kv_dim = kv_heads * head_dim;
    for l in 0..layers {
        let p = format!("blk.{l}");
        tensors.push((format!("{p}.attn_norm.weight"), ones(dim)));
        tensors.push((format!("{p}.ffn_norm.weight"), ones(dim)));
        tensors.push((
            format!("{p}.attn_q.weight"),
            random_as(&[q_dim, dim], 0.2, false),
        ));
        tensors.push((
            format!("{p}.attn_k.weight"),
            random_as(&[kv_dim, dim], 0.2, false),
        ));
        tensors.push((
            format!("{p}.attn_v.weight"),
            random_as(&[kv_dim, dim], 0.2, true),
        ));
        tensors.push((
            format!("{p}.attn_output.weight"),
            random_as(&[dim, q_dim], 0.2, false),
        ));
        tensors.push((
            format!("{p}.ffn_gate.weight"),
            random_as(&[ff, dim], 0.2, false),
        ));
        tensors.push((
            format!("{p}.ffn_up.weight"),
            random_as(&[ff, dim], 0.2, false),
        ));
        tensors.push((
            format!("{p}.ffn_down.weight"),
            random_as(&[dim, ff], 0.2, true),
        ));
        // Norm weights near one, but not one, so that a skipped norm shows.
        let mut near_one =
            |n: usize| f32_tensor((0..n).map(|_| 1.0 + rng_bias(&mut bias_rng)).collect());
        if arch == "qwen3" || arch == "gemma3" {
            tensors.push((format!("{p}.attn_q_norm.weight"), near_one(head_dim)));
            tensors.push((format!("{p}.attn_k_norm.weight"), near_one(head_dim)));
        }
        if arch == "gemma3" {
            tensors.push((format!("{p}.post_attention_norm.weight"), near_one(dim)));
            tensors.push((format!("{p}.post_ffw_norm.weight"), near_one(dim)));
        }
        if arch == "qwen2" {
            let mut bias = |name: &str, n: usize| {
                let v: Vec<f32> = (0..n).map(|_| rng_bias(&mut bias_rng)).collect();
                (format!("{p}.{name}.bias"), f32_tensor(v))
            };
            let b = [
                bias("attn_q", q_dim),
                bias("attn_k", kv_dim),
                bias("attn_v", kv_dim),
            ];
            tensors.extend(b);
        }
    }
    let strings = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    let keys: Vec<String> = [
        "context_length",
        "embedding_length",
        "block_count",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "rope.dimension_count",
        "rope.freq_base",
        "attention.layer_norm_rms_epsilon",
        "vocab_size",
        "attention.key_length",
        "attention.value_length",
        "attention.sliding_window",
        "attn_logit_softcapping",
        "final_logit_softcapping",
    ]
    .iter()
    .map(|n| format!("{arch}.{n}"))
    .collect();
    let k = |n: &str| -> &str {
        keys.iter()
            .find(|x| x[arch.len() + 1..] == *n)
            .expect("a listed key")
    };
    let metadata: Vec<(&str, V)> = vec![
        ("general.architecture", V::String(arch.into())),
        ("general.name", V::String(format!("tiny-random-{arch}"))),
        ("general.alignment", V::U32(32)),
        (k("context_length"), V::U32(4096)),
        (k("embedding_length"), V::U32(dim as u32)),
        (k("block_count"), V::U32(layers as u32)),
        (k("feed_forward_length"), V::U32(ff as u32)),
        (k("attention.head_count"), V::U32(heads as u32)),
        (k("attention.head_count_kv"), V::U32(kv_heads as u32)),
        (k("rope.dimension_count"), V::U32(head_dim as u32)),
        (k("rope.freq_base"), V::F32(shape.rope_base)),
        (k("attention.layer_norm_rms_epsilon"), V::F32(1e-5)),
        (k("vocab_size"), V::U32(vocab as u32)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("smollm".into())),
        ("tokenizer.ggml.tokens", strings(&tokens)),
        ("tokenizer.ggml.token_type", V::Array(types.iter().map(|&t| V::I32(t)).collect())),
        ("tokenizer.ggml.merges", strings(&merges)),
        ("tokenizer.ggml.bos_token_id", V::U32(1)),
        ("tokenizer.ggml.eos_token_id", V::U32(2)),
        ("tokenizer.ggml.add_bos_token", V::Bool(false)),
        (
            "tokenizer.chat_template",
            V::String("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}".into()),
        ),
    ];
    let mut metadata = metadata;
    if let Some((attn, last)) = shape.softcaps {
        metadata.push((k("attn_logit_softcapping"), V::F32(attn)));
        metadata.push((k("final_logit_softcapping"), V::F32(last)));
    }
    if let Some(w) = shape.sliding_window {
        metadata.push((k("attention.sliding_window"), V::U32(w as u32)));
    }
    if shape.head_dim.is_some() {
        metadata.push((k("attention.key_length"), V::U32(head_dim as u32)));
        metadata.push((k("attention.value_length"), V::U32(head_dim as u32)));
    }
    let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md, &ts).unwrap();
}
