//! Tokenizers rebuilt from GGUF metadata, so a model is one self-contained file.
//!
//! Two families cover the llama-architecture GGUFs in use:
//! - `gpt2`: byte-level BPE (SmolLM, Qwen2, Llama 3), built with the `tokenizers` crate from the
//!   embedded vocabulary and merges;
//! - `llama`: SentencePiece BPE by scores (Llama 2, Mistral), llama.cpp's algorithm.
//!
//! A `tokenizer.json` can be given instead, for models whose metadata lacks a tokenizer.

use super::super::model::ModelError;
use candle_core::quantized::gguf_file::Content;
use std::collections::{BinaryHeap, HashMap};

/// A tokenizer for one model.
pub enum Tokenizer {
    /// Byte-level BPE (or anything loaded from tokenizer.json).
    Hf {
        /// The tokenizer.
        inner: Box<tokenizers::Tokenizer>,
        /// Beginning-of-sequence token to prepend, if the model wants one.
        bos: Option<u32>,
    },
    /// SentencePiece BPE.
    Spm(Spm),
}

fn err(msg: impl Into<String>) -> ModelError {
    ModelError::Load {
        path: "tokenizer".into(),
        message: msg.into(),
    }
}

fn strings(ct: &Content, key: &str) -> Result<Vec<String>, ModelError> {
    let v = ct
        .metadata
        .get(key)
        .ok_or_else(|| err(format!("GGUF metadata lacks {key}")))?;
    v.to_vec()
        .map_err(|e| err(format!("{key}: {e}")))?
        .iter()
        .map(|x| {
            x.to_string()
                .cloned()
                .map_err(|e| err(format!("{key}: {e}")))
        })
        .collect()
}

fn u32_of(ct: &Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn bool_of(ct: &Content, key: &str) -> Option<bool> {
    ct.metadata.get(key).and_then(|v| v.to_bool().ok())
}

fn string_of(ct: &Content, key: &str) -> Option<String> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_string().ok().cloned())
}

impl Tokenizer {
    /// Builds the tokenizer described by the GGUF metadata.
    pub fn from_gguf(ct: &Content) -> Result<Self, ModelError> {
        let model = string_of(ct, "tokenizer.ggml.model").ok_or_else(|| {
            err("GGUF metadata lacks tokenizer.ggml.model; pass a tokenizer.json")
        })?;
        let tokens = strings(ct, "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = ct
            .metadata
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|x| x.to_i32().unwrap_or(1)).collect())
            .unwrap_or_default();
        let bos = u32_of(ct, "tokenizer.ggml.bos_token_id");
        match model.as_str() {
            "gpt2" => Self::bpe(ct, &tokens, &types, bos),
            "llama" => Spm::from_gguf(ct, tokens, bos).map(Tokenizer::Spm),
            other => Err(err(format!(
                "unsupported tokenizer model {other:?} (gpt2 and llama are)"
            ))),
        }
    }

    fn bpe(
        ct: &Content,
        tokens: &[String],
        types: &[i32],
        bos: Option<u32>,
    ) -> Result<Self, ModelError> {
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::pre_tokenizers::digits::Digits;
        use tokenizers::pre_tokenizers::sequence::Sequence;
        use tokenizers::{AddedToken, PreTokenizerWrapper};
        let merges = strings(ct, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| err(format!("bad merge {m:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| err(format!("BPE: {e}")))?;
        let mut tk = tokenizers::Tokenizer::new(bpe);
        // llama.cpp's pre-tokenizer names: these split digits one by one before the GPT-2 regex.
        let pre = string_of(ct, "tokenizer.ggml.pre").unwrap_or_default();
        let mut seq: Vec<PreTokenizerWrapper> = Vec::new();
        if matches!(
            pre.as_str(),
            "smollm" | "starcoder" | "refact" | "codeshell"
        ) {
            seq.push(Digits::new(true).into());
        }
        seq.push(ByteLevel::new(false, true, true).into());
        tk.with_pre_tokenizer(Some(Sequence::new(seq)));
        tk.with_decoder(Some(ByteLevel::default()));
        // Control (3) and user-defined (4) tokens such as <|im_start|> are matched whole.
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(types)
            .filter(|(_, t)| **t == 3 || **t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        tk.add_special_tokens(specials)
            .map_err(|e| err(format!("special tokens: {e}")))?;
        let add_bos = bool_of(ct, "tokenizer.ggml.add_bos_token").unwrap_or(false);
        Ok(Tokenizer::Hf {
            inner: Box::new(tk),
            bos: bos.filter(|_| add_bos),
        })
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &std::path::Path, bos: Option<u32>) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer::Hf {
            inner: Box::new(inner),
            bos,
        })
    }

    /// Token ids of `text`; with `add_bos`, the model's BOS token first (if it uses one).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, ModelError> {
        match self {
            Tokenizer::Hf { inner, bos } => {
                let enc = inner
                    .encode(text, false)
                    .map_err(|e| ModelError::Inference(format!("tokenize: {e}")))?;
                let mut ids = Vec::with_capacity(enc.len() + 1);
                if add_bos && let Some(b) = bos {
                    ids.push(*b);
                }
                ids.extend_from_slice(enc.get_ids());
                Ok(ids)
            }
            Tokenizer::Spm(s) => s.encode(text, add_bos),
        }
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        match self {
            Tokenizer::Hf { inner, .. } => inner
                .decode(ids, false)
                .map_err(|e| ModelError::Inference(format!("detokenize: {e}"))),
            Tokenizer::Spm(s) => Ok(s.decode(ids)),
        }
    }

    /// The id of a token spelled exactly `piece`, if the vocabulary has it.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        match self {
            Tokenizer::Hf { inner, .. } => inner.token_to_id(piece),
            Tokenizer::Spm(s) => s.map.get(piece).copied(),
        }
    }
}

/// SentencePiece BPE: repeatedly merge the adjacent pair whose merged piece has the highest
/// score (leftmost on ties), as llama.cpp does; unknown pieces fall back to byte tokens.
pub struct Spm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    map: HashMap<String, u32>,
    byte_tokens: Vec<Option<u32>>,
    bos: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

#[derive(PartialEq)]
struct Candidate {
    score: f32,
    left: usize,
    len: usize,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Highest score first; on ties the leftmost pair.
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Spm {
    fn from_gguf(ct: &Content, pieces: Vec<String>, bos: Option<u32>) -> Result<Self, ModelError> {
        let scores: Vec<f32> = ct
            .metadata
            .get("tokenizer.ggml.scores")
            .ok_or_else(|| err("SentencePiece GGUF lacks tokenizer.ggml.scores"))?
            .to_vec()
            .map_err(|e| err(e.to_string()))?
            .iter()
            .map(|v| v.to_f32().unwrap_or(0.0))
            .collect();
        let map: HashMap<String, u32> = pieces
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let byte_tokens = (0..256)
            .map(|b| map.get(&format!("<0x{b:02X}>")).copied())
            .collect();
        Ok(Self {
            pieces,
            scores,
            map,
            byte_tokens,
            bos,
            add_bos: bool_of(ct, "tokenizer.ggml.add_bos_token").unwrap_or(true),
            add_space_prefix: bool_of(ct, "tokenizer.ggml.add_space_prefix").unwrap_or(true),
        })
    }

    fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, ModelError> {
        let mut t = text.replace(' ', "\u{2581}");
        if self.add_space_prefix && !t.is_empty() {
            t.insert(0, '\u{2581}');
        }
        // Symbols as (start, len) byte ranges of `t`, linked left/right; merged ones get len 0.
        let starts: Vec<usize> = t.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        let mut sym: Vec<(usize, usize)> = (0..n)
            .map(|i| {
                (
                    starts[i],
                    starts.get(i + 1).copied().unwrap_or(t.len()) - starts[i],
                )
            })
            .collect();
        let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
        let mut heap = BinaryHeap::new();
        let push =
            |heap: &mut BinaryHeap<Candidate>, sym: &[(usize, usize)], l: usize, r: usize| {
                let piece = &t[sym[l].0..sym[r].0 + sym[r].1];
                if let Some(&id) = self.map.get(piece) {
                    heap.push(Candidate {
                        score: self.scores[id as usize],
                        left: l,
                        len: piece.len(),
                    });
                }
            };
        for i in 1..n {
            push(&mut heap, &sym, i - 1, i);
        }
        while let Some(c) = heap.pop() {
            let l = c.left;
            let Some(r) = next[l] else { continue };
            // Stale candidate: one side has changed since it was pushed.
            if sym[l].1 == 0 || sym[r].1 == 0 || sym[l].1 + sym[r].1 != c.len {
                continue;
            }
            sym[l].1 += sym[r].1;
            sym[r].1 = 0;
            next[l] = next[r];
            if let Some(nr) = next[r] {
                prev[nr] = Some(l);
            }
            if let Some(p) = prev[l] {
                push(&mut heap, &sym, p, l);
            }
            if let Some(nn) = next[l] {
                push(&mut heap, &sym, l, nn);
            }
        }
        let mut ids = Vec::new();
        if add_bos
            && self.add_bos
            && let Some(b) = self.bos
        {
            ids.push(b);
        }
        let mut i = (n > 0).then_some(0);
        while let Some(k) = i {
            let piece = &t[sym[k].0..sym[k].0 + sym[k].1];
            match self.map.get(piece) {
                Some(&id) => ids.push(id),
                None => {
                    for b in piece.bytes() {
                        ids.push(self.byte_tokens[b as usize].ok_or_else(|| {
                            ModelError::Inference(format!("no byte token for 0x{b:02X}"))
                        })?);
                    }
                }
            }
            i = next[k];
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(p) = self.pieces.get(id as usize) else {
                continue;
            };
            if p.len() == 6
                && p.starts_with("<0x")
                && p.ends_with('>')
                && let Ok(b) = u8::from_str_radix(&p[3..5], 16)
            {
                bytes.push(b);
                continue;
            }
            bytes.extend_from_slice(p.replace('\u{2581}', " ").as_bytes());
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
