//! The language-model interface shared by the jurors and the augmentation stage.

use crate::hash::Sha256Hash;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who speaks in a chat turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The question (and, for the jurors, the proposal as quoted data).
    User,
    /// The model's own earlier words.
    Assistant,
}

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A system turn.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// How to decode: greedy, with an optional repetition penalty.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// Most new tokens.
    pub max_new_tokens: u32,
    /// Repetition penalty (1.0 = off).
    pub repeat_penalty: f32,
    /// Recent tokens the penalty looks at.
    pub repeat_last_n: usize,
}

impl GenerateParams {
    /// Plain greedy decoding of at most `max_new_tokens`.
    pub fn greedy(max_new_tokens: u32) -> Self {
        Self {
            max_new_tokens,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// A completed generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text.
    pub text: String,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The provider's raw response, for remote backends (stored verbatim in artefacts).
    pub raw_response: Option<serde_json::Value>,
}

/// The log-probability a model gives one option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionScore {
    /// The option's label as scored, e.g. `AYE`.
    pub option: String,
    /// Natural-log probability of the option's tokens as the assistant's next words.
    pub logprob: f64,
    /// How many tokens the option took.
    pub tokens: u32,
    /// `exp(logprob)` normalised over the options scored together (set by the juror; absent in
    /// records made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// The options' scores, and the provider's raw response for remote backends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    /// One score per option, in the order asked.
    pub scores: Vec<OptionScore>,
    /// The provider's raw response, for remote backends.
    pub raw_response: Option<serde_json::Value>,
}

/// What a model is, for the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `candle` or `openai`.
    pub backend: String,
    /// Model id, e.g. `SmolLM2-135M-Instruct`.
    pub model_id: String,
    /// SHA-256 of the weights file as loaded, when local.
    pub file_sha256: Option<Sha256Hash>,
    /// Quantization of the weights, when known.
    pub quantization: Option<String>,
    /// Context window in tokens.
    pub context_length: u32,
    /// Whether a rerun reproduces outputs byte for byte.
    pub deterministic: bool,
    /// The local inference engine that computed the outputs (absent for remote backends and in
    /// records made before it was recorded). A rerun reproduces the bytes only with the same
    /// kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineId>,
}

/// Which engine computed a local model's outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineId {
    /// `cybergov`.
    pub name: String,
    /// The cybergov version that ran it.
    pub version: String,
    /// The kernel arithmetic's id: equal ids compute equal bits.
    pub kernel: String,
}

impl std::fmt::Display for EngineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (kernel {})", self.name, self.version, self.kernel)
    }
}

/// Errors of a model backend.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No model is configured for this use.
    #[error("no language model is configured for {0}")]
    NotConfigured(String),
    /// The prompt does not fit the model's context; it must be fitted upstream.
    #[error(
        "prompt of {prompt_tokens} tokens plus {max_new_tokens} new tokens exceeds the model's context of {context_length} tokens; fit the input upstream (augmentation) instead of truncating"
    )]
    ContextExceeded {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Tokens asked for.
        max_new_tokens: u32,
        /// The model's context.
        context_length: u32,
    },
    /// Loading the model failed.
    #[error("loading model {path}: {message}")]
    Load {
        /// What was loaded.
        path: String,
        /// Why it failed.
        message: String,
    },
    /// Inference failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A remote backend failed.
    #[error("model endpoint {url}: {message}")]
    Remote {
        /// The endpoint.
        url: String,
        /// What happened (status, timeout, malformed body).
        message: String,
    },
}

/// A language model. Implementations must be deterministic when [`ModelInfo::deterministic`]
/// says so: the same request gives the same bytes.
#[async_trait]
pub trait LanguageModel: Send + Sync + std::fmt::Debug {
    /// What this model is.
    fn info(&self) -> &ModelInfo;

    /// Number of tokens `text` takes (no special tokens added). Used to fit inputs.
    async fn count_tokens(&self, text: &str) -> Result<usize, ModelError>;

    /// Greedy chat completion of `messages` under `params`.
    async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Generation, ModelError>;

    /// Log-probability of each of `options` as the assistant's reply to `messages`.
    async fn score_options(
        &self,
        messages: &[ChatMessage],
        options: &[&str],
    ) -> Result<Scoring, ModelError>;
}
