//! A juror behind an OpenAI-compatible chat-completions endpoint: a llama.cpp server, Ollama,
//! a GaiaNet node or a hosted API.
//!
//! Requests ask for greedy decoding (`temperature: 0`, fixed `seed`), but whether the provider
//! honours that is the provider's business, so such a model reports itself as not
//! deterministic, and every raw response is kept in the juror record. Options are scored from
//! the first reply token's `top_logprobs`; an option absent from them gets [`MISSING_LOGPROB`].

use super::model::{
    ChatMessage, FinishReason, GenerateParams, Generation, LanguageModel, ModelError, ModelInfo,
    OptionScore, Scoring,
};
use crate::secret::Secret;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;

/// Log-probability given to an option the provider did not list (finite, so it serializes).
pub const MISSING_LOGPROB: f64 = -1.0e4;

/// Characters per token assumed to count tokens without the provider's tokenizer.
pub const CHARS_PER_TOKEN: usize = 4;

/// Settings of an OpenAI-compatible model. The API key is not among them: it is handed to
/// [`OpenAiModel::new`] by reference and kept only inside the HTTP client, as a header marked
/// sensitive, so that the settings can be cloned and printed freely.
#[derive(Clone, Debug)]
pub struct OpenAiSettings {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1` (the path `/chat/completions` is appended).
    pub base_url: String,
    /// Model name sent in requests.
    pub model: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Context window to assume, in tokens.
    pub context_length: u32,
}

/// An OpenAI-compatible chat model.
#[derive(Debug)]
pub struct OpenAiModel {
    settings: OpenAiSettings,
    info: ModelInfo,
    http: reqwest::Client,
}

impl OpenAiModel {
    /// A client for `settings`, sending `api_key` as its bearer token when given.
    pub fn new(settings: OpenAiSettings, api_key: Option<&Secret>) -> Result<Self, ModelError> {
        let invalid = |message: String| ModelError::Remote {
            url: settings.base_url.clone(),
            message,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| invalid("the API key is not a valid header value".into()))?;
            // Sensitive values print as `Sensitive` in the client's Debug and are kept out of
            // HTTP/2 header compression tables.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = crate::http::client_builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .user_agent(concat!("cybergov/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let info = ModelInfo {
            backend: "openai".into(),
            model_id: settings.model.clone(),
            file_sha256: None,
            quantization: None,
            context_length: settings.context_length,
            deterministic: false,
            engine: None,
        };
        Ok(Self {
            settings,
            info,
            http,
        })
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.settings.base_url.trim_end_matches('/')
        )
    }

    async fn post(&self, body: Value) -> Result<Value, ModelError> {
        let url = self.url();
        let remote = |message: String| ModelError::Remote {
            url: url.clone(),
            message,
        };
        let resp = self.http.post(&url).json(&body).send().await.map_err(|e| {
            if e.is_timeout() {
                remote(format!("timed out after {:?}", self.settings.timeout))
            } else {
                remote(e.to_string())
            }
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| remote(format!("reading the body: {e}")))?;
        if !status.is_success() {
            // OpenAI-style errors carry {"error":{"message":…}}; otherwise show the body's start.
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(remote(format!("HTTP {status}: {detail}")));
        }
        serde_json::from_str(&text).map_err(|e| remote(format!("response is not JSON: {e}")))
    }

    fn request(&self, messages: &[ChatMessage], max_tokens: u32) -> Value {
        json!({
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "top_p": 1,
            "seed": 0,
            "stream": false,
        })
    }
}

fn malformed(url: String, what: &str) -> ModelError {
    ModelError::Remote {
        url,
        message: format!("response lacks {what}"),
    }
}

#[async_trait]
impl LanguageModel for OpenAiModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        Ok(text.chars().count().div_ceil(CHARS_PER_TOKEN))
    }

    async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
    ) -> Result<Generation, ModelError> {
        // The repetition penalty is not part of the OpenAI API; providers apply their own.
        let raw = self
            .post(self.request(messages, params.max_new_tokens))
            .await?;
        let choice = &raw["choices"][0];
        let text = choice["message"]["content"]
            .as_str()
            .ok_or_else(|| malformed(self.url(), "choices[0].message.content"))?
            .to_owned();
        let finish = match choice["finish_reason"].as_str() {
            Some("length") => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        Ok(Generation {
            text,
            prompt_tokens: raw["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as u32,
            completion_tokens: raw["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32,
            finish,
            raw_response: Some(raw),
        })
    }

    async fn score_options(
        &self,
        messages: &[ChatMessage],
        options: &[&str],
    ) -> Result<Scoring, ModelError> {
        let mut body = self.request(messages, 1);
        body["logprobs"] = json!(true);
        body["top_logprobs"] = json!(20);
        let raw = self.post(body).await?;
        let top = raw["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            .as_array()
            .ok_or_else(|| malformed(self.url(), "choices[0].logprobs.content[0].top_logprobs (does the endpoint support logprobs?)"))?;
        // The first token of an option is a prefix of it, e.g. "AY" for "AYE"; take the most
        // probable listed token that starts the option (case-insensitive, spaces ignored).
        let scores = options
            .iter()
            .map(|opt| {
                let best = top
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t["token"].as_str()?.trim().to_uppercase(),
                            t["logprob"].as_f64()?,
                        ))
                    })
                    .filter(|(tok, _)| {
                        !tok.is_empty() && opt.to_uppercase().starts_with(tok.as_str())
                    })
                    .map(|(_, lp)| lp)
                    .fold(None, |acc: Option<f64>, lp| {
                        Some(acc.map_or(lp, |a| a.max(lp)))
                    });
                OptionScore {
                    option: (*opt).to_owned(),
                    logprob: best.unwrap_or(MISSING_LOGPROB),
                    tokens: 1,
                    probability: None,
                }
            })
            .collect();
        Ok(Scoring {
            scores,
            raw_response: Some(raw),
        })
    }
}
