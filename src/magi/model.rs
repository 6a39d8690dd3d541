//! The language-model interface shared by the jurors and the augmentation stage.

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

/// The options' scores, and the provider's raw response for remote backends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    /// One score per option, in the order asked.
    pub scores: Vec<OptionScore>,
    /// The provider's raw response, for remote backends.
    pub raw_response: Option<serde_json::Value>,
}

// The model description is recorded in juror files and augment.json: a record type, so it
// lives with the records (below this layer) and is re-exported here for the backends.
pub use crate::records::model::{EngineId, ModelInfo};
// The juror record's parts are record types too.
pub use crate::records::juror::{FinishReason, OptionScore};

/// One token of a generation as [`LanguageModel::generate_stepwise`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenStep {
    /// The token's own text.
    pub token: String,
    /// The text it adds to the answer (empty while it ends inside a character that the next
    /// token completes); the steps' `delta`s add up to [`Generation::text`].
    pub delta: String,
    /// Its natural-log probability.
    pub logprob: f64,
    /// The most probable tokens at its position, best first, with their log-probabilities.
    pub top: Vec<(String, f64)>,
}

/// Where [`LanguageModel::generate_stepwise`] sends each token as it is chosen.
pub type TokenSink = Box<dyn FnMut(TokenStep) + Send>;

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

    /// [`LanguageModel::generate`] for each of `conversations`, in order. A backend that can
    /// decode them together (jurors sharing a model: each weight read once per step for all
    /// of them) overrides it; each result must be what `generate` gives for that conversation
    /// alone. By default they run one after the other.
    async fn generate_batch(
        &self,
        conversations: &[Vec<ChatMessage>],
        params: &GenerateParams,
    ) -> Result<Vec<Generation>, ModelError> {
        let mut out = Vec::with_capacity(conversations.len());
        for messages in conversations {
            out.push(self.generate(messages, params).await?);
        }
        Ok(out)
    }

    /// [`LanguageModel::generate`] for one conversation, each token sent to `sink` as soon as
    /// it is chosen, with its log-probability and the `top` most probable alternatives (the
    /// OpenAI-compatible endpoint's streaming and `logprobs`). The generation is the one
    /// `generate` makes. Backends that cannot report tokens refuse.
    async fn generate_stepwise(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        top: usize,
        sink: TokenSink,
    ) -> Result<Generation, ModelError> {
        let _ = (messages, params, top, sink);
        Err(ModelError::Inference(format!(
            "the {} backend does not report tokens one by one",
            self.info().backend
        )))
    }

    /// [`LanguageModel::score_options`] for each of `conversations`, in order, under the same
    /// rule as [`LanguageModel::generate_batch`].
    async fn score_batch(
        &self,
        conversations: &[Vec<ChatMessage>],
        options: &[&str],
    ) -> Result<Vec<Scoring>, ModelError> {
        let mut out = Vec::with_capacity(conversations.len());
        for messages in conversations {
            out.push(self.score_options(messages, options).await?);
        }
        Ok(out)
    }
}
