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

/// Writes the tiny model to `path`. Different seeds give different (random) models.
pub fn write_tiny_llama(path: &Path, seed: u64) {
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
    let (dim, ff, layers, heads, kv_heads) = (64usize, 128usize, 2usize, 4usize, 2usize);
    let head_dim = dim / heads;
    let mut rng = Rng(seed.max(1));
    let mut random = |shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.next() * scale).collect();
        QTensor::quantize(
            &Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap()
    };
    let ones = |n: usize| {
        QTensor::quantize(
            &Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap()
    };
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), random(&[vocab, dim], 0.5)),
        ("output_norm.weight".into(), ones(dim)),
        ("output.weight".into(), random(&[vocab, dim], 0.2)),
    ];
    for l in 0..layers {
        let p = format!("blk.{l}");
        tensors.push((format!("{p}.attn_norm.weight"), ones(dim)));
        tensors.push((format!("{p}.ffn_norm.weight"), ones(dim)));
        tensors.push((format!("{p}.attn_q.weight"), random(&[dim, dim], 0.2)));
        tensors.push((
            format!("{p}.attn_k.weight"),
            random(&[kv_heads * head_dim, dim], 0.2),
        ));
        tensors.push((
            format!("{p}.attn_v.weight"),
            random(&[kv_heads * head_dim, dim], 0.2),
        ));
        tensors.push((format!("{p}.attn_output.weight"), random(&[dim, dim], 0.2)));
        tensors.push((format!("{p}.ffn_gate.weight"), random(&[ff, dim], 0.2)));
        tensors.push((format!("{p}.ffn_up.weight"), random(&[ff, dim], 0.2)));
        tensors.push((format!("{p}.ffn_down.weight"), random(&[dim, ff], 0.2)));
    }
    let strings = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    let metadata: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("general.name", V::String("tiny-random-llama".into())),
        ("general.alignment", V::U32(32)),
        ("llama.context_length", V::U32(4096)),
        ("llama.embedding_length", V::U32(dim as u32)),
        ("llama.block_count", V::U32(layers as u32)),
        ("llama.feed_forward_length", V::U32(ff as u32)),
        ("llama.attention.head_count", V::U32(heads as u32)),
        ("llama.attention.head_count_kv", V::U32(kv_heads as u32)),
        ("llama.rope.dimension_count", V::U32(head_dim as u32)),
        ("llama.rope.freq_base", V::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("llama.vocab_size", V::U32(vocab as u32)),
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
    let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md, &ts).unwrap();
}
