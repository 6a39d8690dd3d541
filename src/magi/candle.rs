//! The local backend: quantized GGUF models run by candle, greedy, on CPU (or CUDA).
//!
//! Determinism is the point. Decoding is greedy (argmax, first index on ties), the prompt is
//! rendered in code ([`template`]), the tokenizer comes from the GGUF itself ([`tokenizer`]), and
//! the weights file is hashed on load, so a rerun with the same file and inputs reproduces the
//! same tokens — and the verifier can check that it was the same file.

pub mod template;
pub mod tokenizer;

use super::model::{
    ChatMessage, FinishReason, GenerateParams, Generation, LanguageModel, ModelError, ModelInfo,
    OptionScore, Scoring,
};
use crate::hash::Sha256Hash;
use crate::progress::Progress;
use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use candle_core::{Device, IndexOp, Tensor};
use candle_transformers::models::{quantized_llama, quantized_phi3, quantized_qwen2};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use template::ChatTemplate;
use tokenizer::Tokenizer;

/// The longest context candle's quantized llama supports; larger metadata values are capped.
const MAX_CONTEXT: usize = quantized_llama::MAX_SEQ_LEN;

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CPU (the default; reproducible everywhere).
    Cpu,
    /// CUDA GPU 0 (needs the `cuda` feature).
    Cuda,
    /// CUDA when built with it and a GPU is present, else CPU.
    Auto,
}

impl DeviceChoice {
    fn device(self) -> Result<Device, ModelError> {
        let cuda = || {
            Device::new_cuda(0).map_err(|e| ModelError::Load {
                path: "device".into(),
                message: format!("CUDA unavailable (build with --features cuda): {e}"),
            })
        };
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda => cuda(),
            DeviceChoice::Auto => Ok(cuda().unwrap_or(Device::Cpu)),
        }
    }
}

enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

impl Weights {
    /// Logits for the position after `ids`, which start at `pos` (0 resets the KV cache).
    fn logits(&mut self, ids: &[u32], pos: usize, device: &Device) -> candle_core::Result<Tensor> {
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let out = match self {
            Weights::Llama(m) => m.forward(&input, pos)?,
            Weights::Qwen2(m) => m.forward(&input, pos)?,
            Weights::Phi3(m) => m.forward(&input, pos)?,
        };
        out.squeeze(0)?.to_dtype(candle_core::DType::F32)
    }

    /// A copy sharing the weights and holding a copy of the KV cache, where the architecture
    /// allows it (qwen2's weights are not `Clone`: callers re-run the prefix instead).
    fn fork(&self) -> Option<Weights> {
        match self {
            Weights::Llama(m) => Some(Weights::Llama(m.clone())),
            Weights::Phi3(m) => Some(Weights::Phi3(m.clone())),
            Weights::Qwen2(_) => None,
        }
    }
}

struct Loaded {
    weights: Weights,
    tokenizer: Tokenizer,
}

/// A GGUF model loaded with candle. Cheap to clone: clones share the loaded weights.
#[derive(Clone)]
pub struct CandleModel {
    inner: Arc<Inner>,
}

struct Inner {
    info: ModelInfo,
    path: PathBuf,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    device: Device,
    // One inference at a time per model: the KV cache lives in the weights.
    loaded: Mutex<Loaded>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for CandleModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleModel")
            .field("path", &self.inner.path)
            .field("info", &self.inner.info)
            .field("template", &self.inner.template)
            .finish_non_exhaustive()
    }
}

/// Options for [`CandleModel::load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Model id to record (default: the GGUF's `general.name`, else the file stem).
    pub model_id: Option<String>,
    /// A `tokenizer.json` to use instead of the GGUF's metadata.
    pub tokenizer_json: Option<PathBuf>,
    /// Where to run.
    pub device: DeviceChoice,
    /// Where loading and generating report how far they are.
    pub progress: Arc<dyn Progress>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            model_id: None,
            tokenizer_json: None,
            device: DeviceChoice::Cpu,
            progress: crate::progress::quiet(),
        }
    }
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Load {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn infer_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference(e.to_string())
}

/// SHA-256 of a file, streamed.
pub fn file_sha256(path: &Path) -> std::io::Result<Sha256Hash> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Sha256Hash(h.finalize().into()))
}

/// The dominant quantization of the weight matrices, e.g. `Q8_0`.
fn quantization(ct: &gguf_file::Content) -> Option<String> {
    let mut counts = std::collections::BTreeMap::new();
    for info in ct.tensor_infos.values() {
        if info.shape.dims().len() >= 2 {
            *counts
                .entry(format!("{:?}", info.ggml_dtype))
                .or_insert(0usize) += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
}

impl CandleModel {
    /// Loads `path`, hashing it first.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self, ModelError> {
        let step = opts.progress.step("hashing and loading model", None);
        let file_sha256 = file_sha256(path).map_err(|e| load_err(path, e))?;
        let mut f = std::fs::File::open(path).map_err(|e| load_err(path, e))?;
        let ct = gguf_file::Content::read(&mut f)
            .map_err(|e| load_err(path, format!("not a GGUF file: {e}")))?;
        let md_str = |k: &str| ct.metadata.get(k).and_then(|v| v.to_string().ok().cloned());
        let arch = md_str("general.architecture")
            .ok_or_else(|| load_err(path, "no general.architecture"))?;
        let context = ct
            .metadata
            .get(&format!("{arch}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_CONTEXT, |c| (c as usize).min(MAX_CONTEXT));
        let model_id = opts
            .model_id
            .clone()
            .or_else(|| md_str("general.name"))
            .unwrap_or_else(|| {
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            });
        let template = ChatTemplate::detect(md_str("tokenizer.chat_template").as_deref());
        let quant = quantization(&ct);
        let tokenizer = match &opts.tokenizer_json {
            Some(p) => Tokenizer::from_file(
                p,
                ct.metadata
                    .get("tokenizer.ggml.bos_token_id")
                    .and_then(|v| v.to_u32().ok()),
            )?,
            None => Tokenizer::from_gguf(&ct)?,
        };
        let mut stop_ids: Vec<u32> = template
            .stop_pieces()
            .iter()
            .filter_map(|p| tokenizer.token_id(p))
            .collect();
        if let Some(eos) = ct
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
        {
            stop_ids.push(eos);
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let device = opts.device.device()?;
        let weights = match arch.as_str() {
            "llama" | "mistral" => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(ct, &mut f, &device)
                    .map_err(|e| load_err(path, e))?,
            ),
            "qwen2" => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(ct, &mut f, &device)
                    .map_err(|e| load_err(path, e))?,
            ),
            "phi3" => Weights::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, ct, &mut f, &device)
                    .map_err(|e| load_err(path, e))?,
            ),
            other => {
                return Err(load_err(
                    path,
                    format!("unsupported architecture {other:?} (llama, mistral, qwen2, phi3 are)"),
                ));
            }
        };
        drop(step);
        let inner = Inner {
            info: ModelInfo {
                backend: "candle".into(),
                model_id,
                file_sha256: Some(file_sha256),
                quantization: quant,
                context_length: context as u32,
                deterministic: true,
            },
            path: path.to_owned(),
            template,
            stop_ids,
            device,
            loaded: Mutex::new(Loaded { weights, tokenizer }),
            progress: opts.progress.clone(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The chat format in use.
    pub fn template(&self) -> ChatTemplate {
        self.inner.template
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| infer_err(format!("inference task failed: {e}")))?
    }
}

impl Inner {
    fn encode_prompt(
        &self,
        loaded: &Loaded,
        messages: &[ChatMessage],
        extra: u32,
    ) -> Result<Vec<u32>, ModelError> {
        let prompt = self.template.render(messages);
        let ids = loaded.tokenizer.encode(&prompt, true)?;
        if ids.len() + extra as usize > self.info.context_length as usize {
            return Err(ModelError::ContextExceeded {
                prompt_tokens: ids.len(),
                max_new_tokens: extra,
                context_length: self.info.context_length,
            });
        }
        Ok(ids)
    }

    fn generate_blocking(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Generation, ModelError> {
        let max_new_tokens = params.max_new_tokens;
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| infer_err("model lock poisoned"))?;
        let ids = self.encode_prompt(&loaded, messages, max_new_tokens)?;
        let step = self
            .progress
            .step("generating", Some(u64::from(max_new_tokens)));
        let mut logits = loaded
            .weights
            .logits(&ids, 0, &self.device)
            .map_err(infer_err)?;
        let mut out = Vec::new();
        let mut finish = FinishReason::Length;
        let mut context = ids.clone();
        for _ in 0..max_new_tokens {
            if params.repeat_penalty != 1.0 {
                let start = context.len().saturating_sub(params.repeat_last_n);
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    params.repeat_penalty,
                    &context[start..],
                )
                .map_err(infer_err)?;
            }
            let next = argmax(&logits)?;
            context.push(next);
            if self.stop_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            out.push(next);
            step.advance(1);
            logits = loaded
                .weights
                .logits(&[next], ids.len() + out.len() - 1, &self.device)
                .map_err(infer_err)?;
        }
        drop(step);
        Ok(Generation {
            text: loaded.tokenizer.decode(&out)?,
            prompt_tokens: ids.len() as u32,
            completion_tokens: out.len() as u32,
            finish,
            raw_response: None,
        })
    }

    fn score_blocking(
        &self,
        messages: &[ChatMessage],
        options: &[&str],
    ) -> Result<Vec<OptionScore>, ModelError> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| infer_err("model lock poisoned"))?;
        let option_ids: Vec<Vec<u32>> = options
            .iter()
            .map(|o| loaded.tokenizer.encode(o, false))
            .collect::<Result<_, _>>()?;
        let longest = option_ids.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let ids = self.encode_prompt(&loaded, messages, longest)?;
        let first = loaded
            .weights
            .logits(&ids, 0, &self.device)
            .map_err(infer_err)?;
        let base = loaded.weights.fork();
        let mut scores = Vec::with_capacity(options.len());
        for (i, (option, oids)) in options.iter().zip(&option_ids).enumerate() {
            // Each option continues from the prompt: on a fork of the KV cache where the
            // architecture allows, else on the model itself after re-running the prompt (qwen2).
            let mut branch = base.as_ref().and_then(Weights::fork);
            if branch.is_none() && i > 0 {
                loaded
                    .weights
                    .logits(&ids, 0, &self.device)
                    .map_err(infer_err)?;
            }
            let mut logits = first.clone();
            let mut logprob = 0f64;
            for (j, &tok) in oids.iter().enumerate() {
                let lsm = candle_nn::ops::log_softmax(&logits, 0).map_err(infer_err)?;
                let lp = lsm.i(tok as usize).and_then(|t| t.to_scalar::<f32>());
                logprob += f64::from(lp.map_err(infer_err)?);
                if j + 1 < oids.len() {
                    let w = branch.as_mut().unwrap_or(&mut loaded.weights);
                    logits = w
                        .logits(&[tok], ids.len() + j, &self.device)
                        .map_err(infer_err)?;
                }
            }
            scores.push(OptionScore {
                option: (*option).to_owned(),
                logprob,
                tokens: oids.len() as u32,
            });
        }
        Ok(scores)
    }
}

fn argmax(logits: &Tensor) -> Result<u32, ModelError> {
    // Explicit loop rather than a tensor op: first index wins on ties, on every device.
    let v: Vec<f32> = logits.to_vec1().map_err(infer_err)?;
    let mut best = 0usize;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    Ok(best as u32)
}

#[async_trait]
impl LanguageModel for CandleModel {
    fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    async fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        let text = text.to_owned();
        self.blocking(move |m| {
            let loaded = m
                .loaded
                .lock()
                .map_err(|_| infer_err("model lock poisoned"))?;
            Ok(loaded.tokenizer.encode(&text, false)?.len())
        })
        .await
    }

    async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Generation, ModelError> {
        let (messages, params) = (messages.to_vec(), params.clone());
        self.blocking(move |m| m.generate_blocking(&messages, &params))
            .await
    }

    async fn score_options(
        &self,
        messages: &[ChatMessage],
        options: &[&str],
    ) -> Result<Scoring, ModelError> {
        let messages = messages.to_vec();
        let options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
        self.blocking(move |m| {
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            let scores = m.score_blocking(&messages, &options)?;
            Ok(Scoring {
                scores,
                raw_response: None,
            })
        })
        .await
    }
}
