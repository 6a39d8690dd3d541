//! The local backend: quantized GGUF models run by cybergov's own engine on CPU, greedy.
//!
//! Determinism is the point. Decoding is greedy (argmax, first index on ties), the prompt is
//! rendered in code ([`template`]), the tokenizer comes from the GGUF itself ([`tokenizer`]), and
//! the weights file is hashed on load, so a rerun with the same file and inputs reproduces the
//! same tokens — and the verifier can check that it was the same file. The engine
//! (`crates/engine`: [`transformer`] on [`kernels`]) fixes the arithmetic of every value it computes, whatever
//! the thread count and however tokens are batched, so its KV cache can be reused across
//! requests that share a prefix (the scoring after a generation, jurors sharing a model).
//! candle provides the GGUF reader.

pub use cybergov_engine::{kernels, transformer};

pub mod sampling;
pub mod template;
pub mod tokenizer;

use super::model::{
    ChatMessage, FinishReason, GenerateParams, Generation, LanguageModel, ModelError, ModelInfo,
    OptionScore, Scoring,
};
use crate::hash::Sha256Hash;
use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use template::ChatTemplate;
use tokenizer::Tokenizer;
use transformer::{Transformer, Weights};

/// The longest context the engine holds; larger metadata values are capped.
pub const MAX_CONTEXT: usize = 4096;

/// Names the engine's arithmetic. Change it whenever a kernel's result can change, so that a
/// record made by another engine is recognised as such rather than as tampering.
pub const KERNEL_ID: &str = "q8_0-lanes16+f32-lanes8/v1";

/// The engine identity recorded with every local model.
pub fn engine_id() -> super::model::EngineId {
    super::model::EngineId {
        name: "cybergov".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: KERNEL_ID.into(),
    }
}

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
    /// Checks that the engine can run here: it is CPU-only, so `cuda` is refused and `auto`
    /// means the CPU.
    fn check(self) -> Result<(), ModelError> {
        match self {
            DeviceChoice::Cpu | DeviceChoice::Auto => Ok(()),
            DeviceChoice::Cuda => Err(ModelError::Load {
                path: "device".into(),
                message: "the cybergov engine runs on CPU only; use device = \"cpu\"".into(),
            }),
        }
    }
}

struct Loaded {
    model: Transformer,
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
    // Every computation of this model runs inside this pool: its workers stay warm between
    // kernels, and the thread count is the model's, not the caller's.
    pool: rayon::ThreadPool,
    // Admits one job of this model into `pool` at a time (see `blocking`).
    gate: Mutex<()>,
    // One inference at a time per model: one KV cache, shared by every request so that a
    // common prefix is computed once.
    loaded: Mutex<Loaded>,
    show_progress: bool,
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
    /// Draw progress bars (only ever on a terminal).
    pub progress: bool,
    /// Worker threads (default: `RAYON_NUM_THREADS`, else one per core). Results do not
    /// depend on it.
    pub threads: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            model_id: None,
            tokenizer_json: None,
            device: DeviceChoice::Cpu,
            progress: false,
            threads: None,
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
        let bar = progress_bar(opts.progress, None, "hashing and loading model");
        let file_sha256 = file_sha256(path).map_err(|e| load_err(path, e))?;
        let mut f = std::fs::File::open(path).map_err(|e| load_err(path, e))?;
        let ct = gguf_file::Content::read(&mut f)
            .map_err(|e| load_err(path, format!("not a GGUF file: {e}")))?;
        let md_str = |k: &str| ct.metadata.get(k).and_then(|v| v.to_string().ok().cloned());
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
        opts.device.check()?;
        let config =
            transformer::Config::from_gguf(&ct, MAX_CONTEXT).map_err(|e| load_err(path, e))?;
        let context = config.context;
        let weights = Weights::load(&ct, &mut f, config).map_err(|e| load_err(path, e))?;
        drop(ct);
        let threads = opts
            .threads
            .unwrap_or_else(candle_core::utils::get_num_threads)
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cybergov-engine-{i}"))
            .build()
            .map_err(|e| load_err(path, e))?;
        let model = Transformer::new(Arc::new(weights));
        bar.finish_and_clear();
        let inner = Inner {
            info: ModelInfo {
                backend: "candle".into(),
                model_id,
                file_sha256: Some(file_sha256),
                quantization: quant,
                context_length: context as u32,
                deterministic: true,
                engine: Some(engine_id()),
            },
            path: path.to_owned(),
            template,
            stop_ids,
            pool,
            gate: Mutex::new(()),
            loaded: Mutex::new(Loaded { model, tokenizer }),
            show_progress: opts.progress,
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

    /// Tokenizes `text` with the model's tokenizer (`add_bos` as a prompt would).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, ModelError> {
        let loaded = self
            .inner
            .loaded
            .lock()
            .map_err(|_| infer_err("model lock poisoned"))?;
        loaded.tokenizer.encode(text, add_bos)
    }

    /// Runs `f` on the engine itself, inside the model's thread pool, holding the model (for
    /// benchmarks and tests that drive the KV cache directly).
    pub fn with_engine<T: Send>(
        &self,
        f: impl FnOnce(&mut Transformer) -> T + Send,
    ) -> Result<T, ModelError> {
        // The gate first, then the model: the order `blocking` takes them in.
        let _admitted = self
            .inner
            .gate
            .lock()
            .map_err(|_| infer_err("model gate poisoned"))?;
        let mut loaded = self
            .inner
            .loaded
            .lock()
            .map_err(|_| infer_err("model lock poisoned"))?;
        let model = &mut loaded.model;
        Ok(self.inner.pool.install(|| f(model)))
    }

    /// Forgets the KV cache: the next request computes its whole prompt (benchmarks time
    /// prefills with it).
    pub fn clear_cache(&self) -> Result<(), ModelError> {
        self.with_engine(|m| m.rewind(0))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let inner = self.inner.clone();
        // One job in the model's pool at a time, admitted before it enters: a pool worker that
        // waits inside a parallel section may run another queued job, and a second job of this
        // model would then block on the model's lock on that very worker (a deadlock).
        tokio::task::spawn_blocking(move || {
            let _admitted = inner
                .gate
                .lock()
                .map_err(|_| infer_err("model gate poisoned"))?;
            inner.pool.install(|| f(&inner))
        })
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
        let bar = progress_bar(
            self.show_progress,
            Some(u64::from(max_new_tokens)),
            "generating",
        );
        let mut context = ids.clone();
        let mut out = Vec::new();
        let mut finish = FinishReason::Length;
        for _ in 0..max_new_tokens {
            // The cache holds all of `context` but its last token: one new position per step.
            let mut logits = last_logits(&mut loaded.model, &context)?;
            if params.repeat_penalty != 1.0 {
                let start = context.len().saturating_sub(params.repeat_last_n);
                sampling::apply_repeat_penalty(
                    &mut logits,
                    params.repeat_penalty,
                    &context[start..],
                );
            }
            let next = sampling::argmax(&logits);
            if self.stop_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            context.push(next);
            out.push(next);
            bar.inc(1);
        }
        bar.finish_and_clear();
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
        let mut scores = Vec::with_capacity(options.len());
        for (option, oids) in options.iter().zip(&option_ids) {
            // Every token of the option, each predicted from the prompt and the option's
            // earlier tokens. The prompt comes from the cache (the generation that wrote the
            // rationale left it there; the first option's run leaves it for the others).
            let mut seq = ids.clone();
            seq.extend_from_slice(&oids[..oids.len().saturating_sub(1)]);
            let logits = loaded
                .model
                .logits(&seq, oids.len().max(1))
                .map_err(infer_err)?;
            let logprob = oids
                .iter()
                .zip(&logits)
                .map(|(&tok, l)| sampling::log_prob(l, tok))
                .sum();
            scores.push(OptionScore {
                option: (*option).to_owned(),
                logprob,
                tokens: oids.len() as u32,
                probability: None,
            });
        }
        Ok(scores)
    }
}

/// The logits after the last token of `ids`.
fn last_logits(model: &mut Transformer, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
    let mut l = model.logits(ids, 1).map_err(infer_err)?;
    l.pop().ok_or_else(|| infer_err("no logits"))
}

/// A progress bar on a terminal, hidden otherwise (logs and CI stay quiet).
pub(crate) fn progress_bar(
    enabled: bool,
    len: Option<u64>,
    msg: &'static str,
) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(msg);
    bar
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
