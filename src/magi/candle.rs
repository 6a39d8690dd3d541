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

pub mod footprint;
pub mod sampling;
pub mod speed;
mod stepwise;
pub mod template;
pub mod tokenizer;

use super::model::{
    ChatMessage, FinishReason, GenerateParams, Generation, LanguageModel, ModelError, ModelInfo,
    OptionScore, Scoring, TokenSink,
};
use crate::hash::Sha256Hash;
use crate::progress::Progress;
use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use template::ChatTemplate;
use tokenizer::Tokenizer;
use transformer::{Request, Transformer, Weights};

/// The longest context the engine holds; larger metadata values are capped.
pub const MAX_CONTEXT: usize = 4096;

/// Names the engine's arithmetic. Change it whenever a kernel's result can change, so that a
/// record made by another engine is recognised as such rather than as tampering.
pub const KERNEL_ID: &str = "q8_0+q4_k+q5_k+q6_k-lanes16+f32-lanes8+f16kv/v3";

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
    // The model's one lock: one request at a time (one KV cache, shared by every request so
    // that a common prefix is computed once), taken *before* entering `pool` (see `run`).
    loaded: Mutex<Loaded>,
    progress: Arc<dyn Progress>,
    /// Where each generation's measured speed is recorded ([`speed`]).
    speed_dir: Option<PathBuf>,
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
    /// Worker threads (default: `RAYON_NUM_THREADS`, else one per core). Results do not
    /// depend on it.
    pub threads: Option<usize>,
    /// Where to record the speed each generation ran at (`cybergov models list` shows it);
    /// `None`: not recorded.
    pub speed_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            model_id: None,
            tokenizer_json: None,
            device: DeviceChoice::Cpu,
            progress: crate::progress::quiet(),
            threads: None,
            speed_dir: None,
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
pub(crate) fn quantization(ct: &gguf_file::Content) -> Option<String> {
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
        drop(step);
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
            loaded: Mutex::new(Loaded { model, tokenizer }),
            progress: opts.progress.clone(),
            speed_dir: opts.speed_dir.clone(),
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
        self.inner.lock().tokenizer.encode(text, add_bos)
    }

    /// Runs `f` on the engine itself, inside the model's thread pool, holding the model (for
    /// benchmarks and tests that drive the KV cache directly).
    pub fn with_engine<T: Send>(&self, f: impl FnOnce(&mut Transformer) -> T + Send) -> T {
        self.inner.run(|_, loaded| f(&mut loaded.model))
    }

    /// Forgets the KV cache: the next request computes its whole prompt (benchmarks time
    /// prefills with it).
    pub fn clear_cache(&self) {
        self.with_engine(|m| m.rewind(0));
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &mut Loaded) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.run(f))
            .await
            .map_err(|e| infer_err(format!("inference task failed: {e}")))?
    }
}

impl Inner {
    /// The model, for one request. A request that panicked (a bug, or an allocation failure)
    /// poisons the lock; the model is not lost with it: the cache is forgotten, since that
    /// request may have stopped half-way through writing it, and the next request starts from
    /// an empty cache — the same bits as a fresh model, only slower. Without this, one panic
    /// would fail every later juror of this model until the worker restarts.
    fn lock(&self) -> MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|poisoned| {
            let mut loaded = poisoned.into_inner();
            loaded.model.rewind(0);
            self.loaded.clear_poison();
            loaded
        })
    }

    /// Runs `f` with the model, inside the model's pool.
    ///
    /// The lock is taken on the calling thread, before entering the pool, and it is the only
    /// lock. So a request waits for another one outside the pool, and no pool worker ever
    /// blocks on it: a worker that waits inside a parallel section may pick up queued pool
    /// work, and were that a second request of this model waiting for the lock, it would
    /// wait on the very worker that holds it (the deadlock `16a0788` found in the pipeline
    /// tests). Only the holder's own parallel tasks ever reach the pool.
    fn run<T: Send>(&self, f: impl FnOnce(&Inner, &mut Loaded) -> T + Send) -> T {
        let mut loaded = self.lock();
        let loaded = &mut *loaded;
        self.pool.install(|| f(self, loaded))
    }

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

    /// Greedy generations for `conversations`, decoded together: sequence `i` of the engine
    /// holds conversation `i`, and each step computes the next token of every conversation
    /// still going as one batch. A conversation's tokens are those it gets alone (the engine
    /// computes each sequence's values independently of the batch).
    fn generate_blocking(
        &self,
        loaded: &mut Loaded,
        conversations: &[Vec<ChatMessage>],
        params: &GenerateParams,
    ) -> Result<Vec<Generation>, ModelError> {
        let max_new_tokens = params.max_new_tokens;
        let prompts: Vec<Vec<u32>> = conversations
            .iter()
            .map(|m| self.encode_prompt(loaded, m, max_new_tokens))
            .collect::<Result<_, _>>()?;
        let n = prompts.len();
        let step = self
            .progress
            .step("generating", Some(u64::from(max_new_tokens) * n as u64));
        let mut contexts = prompts.clone();
        let mut outs: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut finish = vec![FinishReason::Length; n];
        let mut active: Vec<usize> = (0..n).collect();
        let started = std::time::Instant::now();
        let computed = loaded.model.stats().computed;
        let mut prefill: Option<(u64, std::time::Duration)> = None;
        for _ in 0..max_new_tokens {
            if active.is_empty() {
                break;
            }
            // Each cache holds all of its context but the last token: one new position per
            // sequence per step.
            let requests: Vec<Request<'_>> = active
                .iter()
                .map(|&i| Request {
                    seq: i,
                    ids: &contexts[i],
                    want: 1,
                })
                .collect();
            let logits = loaded.model.logits_batch(&requests).map_err(infer_err)?;
            if prefill.is_none() {
                prefill = Some((loaded.model.stats().computed - computed, started.elapsed()));
            }
            let mut going = Vec::with_capacity(active.len());
            for (i, mut l) in active.iter().copied().zip(logits) {
                let mut logits = l.pop().ok_or_else(|| infer_err("no logits"))?;
                if params.repeat_penalty != 1.0 {
                    let start = contexts[i].len().saturating_sub(params.repeat_last_n);
                    sampling::apply_repeat_penalty(
                        &mut logits,
                        params.repeat_penalty,
                        &contexts[i][start..],
                    );
                }
                let next = sampling::argmax(&logits);
                if self.stop_ids.contains(&next) {
                    finish[i] = FinishReason::Stop;
                    continue;
                }
                contexts[i].push(next);
                outs[i].push(next);
                going.push(i);
                step.advance(1);
            }
            active = going;
        }
        drop(step);
        if let (Some(dir), Some(prefill)) = (&self.speed_dir, prefill) {
            let tokens = outs.iter().map(Vec::len).max().unwrap_or(0);
            self.record_speed(dir, prefill, (tokens, n), started.elapsed());
        }
        prompts
            .iter()
            .zip(outs)
            .zip(finish)
            .map(|((ids, out), finish)| {
                Ok(Generation {
                    text: loaded.tokenizer.decode(&out)?,
                    prompt_tokens: ids.len() as u32,
                    completion_tokens: out.len() as u32,
                    finish,
                    raw_response: None,
                })
            })
            .collect()
    }

    /// Records a generation's speed: `prefill` positions computed in the first step and its
    /// time, `tokens` generated by each of `sequences` decoded together in `total`. Failing to record is logged, never an error: it
    /// must not cost a juror its vote.
    fn record_speed(
        &self,
        dir: &Path,
        prefill: (u64, std::time::Duration),
        (tokens, sequences): (usize, usize),
        total: std::time::Duration,
    ) {
        let Some(file_sha256) = self.info.file_sha256 else {
            return;
        };
        let rate = |n: f64, t: std::time::Duration| Some(n / t.as_secs_f64().max(1e-9));
        let decode_time = total.saturating_sub(prefill.1);
        let speed = speed::ModelSpeed {
            file_sha256,
            // A prompt mostly taken from the cache measures little but the cache.
            prefill_tokens_per_second: (prefill.0 >= 16)
                .then(|| rate(prefill.0 as f64, prefill.1))
                .flatten(),
            decode_tokens_per_second: (tokens >= 2)
                .then(|| rate((tokens - 1) as f64, decode_time))
                .flatten(),
            sequences,
            threads: self.pool.current_num_threads(),
            kernel: KERNEL_ID.into(),
            measured_at: chrono::Utc::now(),
        };
        if let Err(e) = speed.write(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not record the model's speed");
        }
    }

    /// The scores of `options` after each of `conversations`, the conversations scored
    /// together: option `k` of every conversation is one batch, conversation `i` in engine
    /// sequence `i` (where its generation left its prompt).
    fn score_blocking(
        &self,
        loaded: &mut Loaded,
        conversations: &[Vec<ChatMessage>],
        options: &[&str],
    ) -> Result<Vec<Vec<OptionScore>>, ModelError> {
        let option_ids: Vec<Vec<u32>> = options
            .iter()
            .map(|o| loaded.tokenizer.encode(o, false))
            .collect::<Result<_, _>>()?;
        let longest = option_ids.iter().map(Vec::len).max().unwrap_or(0) as u32;
        let prompts: Vec<Vec<u32>> = conversations
            .iter()
            .map(|m| self.encode_prompt(loaded, m, longest))
            .collect::<Result<_, _>>()?;
        let mut scores = vec![Vec::with_capacity(options.len()); prompts.len()];
        for (option, oids) in options.iter().zip(&option_ids) {
            // Every token of the option, each predicted from the prompt and the option's
            // earlier tokens. The prompt comes from the cache (the generation that wrote the
            // rationale left it there; the first option's run leaves it for the others).
            let seqs: Vec<Vec<u32>> = prompts
                .iter()
                .map(|ids| [ids, &oids[..oids.len().saturating_sub(1)]].concat())
                .collect();
            let requests: Vec<Request<'_>> = seqs
                .iter()
                .enumerate()
                .map(|(seq, ids)| Request {
                    seq,
                    ids,
                    want: oids.len().max(1),
                })
                .collect();
            let logits = loaded.model.logits_batch(&requests).map_err(infer_err)?;
            for (scores, logits) in scores.iter_mut().zip(&logits) {
                let logprob = oids
                    .iter()
                    .zip(logits)
                    .map(|(&tok, l)| sampling::log_prob(l, tok))
                    .sum();
                scores.push(OptionScore {
                    option: (*option).to_owned(),
                    logprob,
                    tokens: oids.len() as u32,
                    probability: None,
                });
            }
        }
        Ok(scores)
    }
}

#[async_trait]
impl LanguageModel for CandleModel {
    fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    async fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        let text = text.to_owned();
        self.blocking(move |_, loaded| Ok(loaded.tokenizer.encode(&text, false)?.len()))
            .await
    }

    async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Generation, ModelError> {
        let mut out = self.generate_batch(&[messages.to_vec()], params).await?;
        out.pop().ok_or_else(|| infer_err("no generation"))
    }

    async fn generate_batch(
        &self,
        conversations: &[Vec<ChatMessage>],
        params: &GenerateParams,
    ) -> Result<Vec<Generation>, ModelError> {
        let (conversations, params) = (conversations.to_vec(), params.clone());
        self.blocking(move |m, loaded| m.generate_blocking(loaded, &conversations, &params))
            .await
    }

    async fn generate_stepwise(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        top: usize,
        sink: TokenSink,
    ) -> Result<Generation, ModelError> {
        let (messages, params) = (messages.to_vec(), params.clone());
        self.blocking(move |m, loaded| {
            m.generate_stepwise_blocking(loaded, &messages, &params, top, sink)
        })
        .await
    }

    async fn score_options(
        &self,
        messages: &[ChatMessage],
        options: &[&str],
    ) -> Result<Scoring, ModelError> {
        let mut out = self.score_batch(&[messages.to_vec()], options).await?;
        out.pop().ok_or_else(|| infer_err("no scores"))
    }

    async fn score_batch(
        &self,
        conversations: &[Vec<ChatMessage>],
        options: &[&str],
    ) -> Result<Vec<Scoring>, ModelError> {
        let conversations = conversations.to_vec();
        let options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
        self.blocking(move |m, loaded| {
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            let scores = m.score_blocking(loaded, &conversations, &options)?;
            Ok(scores
                .into_iter()
                .map(|scores| Scoring {
                    scores,
                    raw_response: None,
                })
                .collect())
        })
        .await
    }
}
