//! The jurors' models served as an OpenAI-compatible API (`server.openai.enabled`):
//! `GET /v1/models` and `POST /v1/chat/completions`, whole or streamed (SSE), with `logprobs`
//! and `top_logprobs`. Another cybergov's OpenAI juror backend can judge with it.
//!
//! Why it is built so:
//! - **The jury's own models** (`wiring::Services::jury`): the job graph and the endpoint share
//!   one loaded copy; a model is asked for by a juror's name or by its model id.
//! - **Greedy only, and said so.** The engine decodes greedily (`temperature: 0`, what the
//!   jurors use); a request for sampling (`temperature` above 0, `top_p` below 1, `n` above 1,
//!   `stop`) is refused with the parameter named rather than silently answered greedily.
//!   llama.cpp's `repeat_penalty` and `repeat_last_n` are honoured.
//! - **Bounded.** At most `server.openai.max_queue` requests run or wait; one more is answered
//!   429 at once instead of growing a queue in memory. The model runs one request at a time.
//! - **OpenAI's shapes**: errors are `{"error": {"message", "type", "param", "code"}}`, a
//!   missing or wrong key is 401, and the bearer key (`CYBERGOV_OPENAI_SERVER_KEY`) is compared
//!   in constant time.

use super::WebState;
use crate::magi::model::{
    ChatMessage, FinishReason, GenerateParams, LanguageModel, Role, TokenStep,
};
use crate::wiring::Services;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Most alternatives `top_logprobs` may ask for (OpenAI's own limit).
const MAX_TOP_LOGPROBS: u32 = 20;

/// The endpoint's state: the services whose jury it serves, and its queue.
#[derive(Clone)]
pub struct OpenAiServer {
    services: Arc<Services>,
    queue: Arc<Semaphore>,
}

impl OpenAiServer {
    /// The endpoint over `services`' jury, at most `max_queue` requests at once.
    pub fn new(services: Arc<Services>, max_queue: usize) -> Self {
        Self {
            services,
            queue: Arc::new(Semaphore::new(max_queue.max(1))),
        }
    }
}

impl OpenAiServer {
    /// Takes one place in the queue, as a request does, until the permit is dropped (`None`:
    /// the queue is full): lets a caller hold capacity back, e.g. to drain before a restart.
    pub fn occupy(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.queue.clone().try_acquire_owned().ok()
    }
}

/// The endpoint's routes.
pub fn routes() -> axum::Router<Arc<WebState>> {
    axum::Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
}

/// An error in OpenAI's shape.
struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<&'static str>,
    message: String,
}

impl OpenAiError {
    fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        (self.status, Json(body)).into_response()
    }
}

/// The endpoint, if it is on and the request carries its key.
fn authorize<'a>(s: &'a WebState, headers: &HeaderMap) -> Result<&'a OpenAiServer, OpenAiError> {
    let Some(server) = &s.openai else {
        return Err(OpenAiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("not_enabled"),
            param: None,
            message: "this server does not serve models (server.openai.enabled)".into(),
        });
    };
    let unauthorized = |code, message: &str| OpenAiError {
        status: StatusCode::UNAUTHORIZED,
        kind: "invalid_request_error",
        code: Some(code),
        param: None,
        message: message.into(),
    };
    let given = super::bearer(headers).ok_or_else(|| {
        unauthorized(
            "missing_api_key",
            "no API key: send Authorization: Bearer KEY",
        )
    })?;
    if !super::is_secret(given, server.services.secrets.openai_server_key.as_ref()) {
        return Err(unauthorized("invalid_api_key", "incorrect API key"));
    }
    Ok(server)
}

/// The jury's models by the names a request may use: each juror's name, then each model id.
async fn served(
    server: &OpenAiServer,
) -> Result<Vec<(String, Arc<dyn LanguageModel>)>, OpenAiError> {
    let jury = server.services.jury().await.map_err(|e| OpenAiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        kind: "server_error",
        code: Some("model_unavailable"),
        param: None,
        message: format!("the models could not be loaded: {e}"),
    })?;
    let mut names: Vec<(String, Arc<dyn LanguageModel>)> = jury.members.clone();
    for (_, model) in &jury.members {
        let id = model.info().model_id.clone();
        if !names.iter().any(|(n, _)| *n == id) {
            names.push((id, model.clone()));
        }
    }
    Ok(names)
}

async fn models(State(s): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let server = match authorize(&s, &headers) {
        Ok(server) => server,
        Err(e) => return e.into_response(),
    };
    match served(server).await {
        Ok(names) => Json(json!({
            "object": "list",
            "data": names.iter().map(|(id, _)| json!({
                "id": id, "object": "model", "created": 0, "owned_by": "cybergov",
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The request fields this endpoint reads; others are ignored, as OpenAI's clients send many.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Value>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u32>,
    stop: Option<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    logprobs: bool,
    top_logprobs: Option<u32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
}

/// A message's text: a string, or the text parts of an array of parts.
fn message(v: &Value) -> Result<ChatMessage, OpenAiError> {
    let bad = |m: String| OpenAiError::invalid(Some("messages"), m);
    let role = match v["role"].as_str() {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        other => return Err(bad(format!("unsupported role {other:?}"))),
    };
    let content = match &v["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => Ok(t),
                _ => Err(bad("only text content parts are supported".into())),
            })
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        _ => {
            return Err(bad(
                "a message's content must be a string or text parts".into()
            ));
        }
    };
    Ok(ChatMessage { role, content })
}

/// The request's decoding, or the parameter this engine cannot honour.
fn decoding(r: &ChatRequest, cap: u32) -> Result<(GenerateParams, Option<usize>), OpenAiError> {
    if r.temperature.is_some_and(|t| t != 0.0) {
        return Err(OpenAiError::invalid(
            Some("temperature"),
            "only temperature 0 is served: the engine decodes greedily, as the jurors do",
        ));
    }
    if r.top_p.is_some_and(|p| p != 1.0) {
        return Err(OpenAiError::invalid(
            Some("top_p"),
            "only top_p 1 is served (greedy decoding)",
        ));
    }
    if r.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid(Some("n"), "only n 1 is served"));
    }
    if r.stop.as_ref().is_some_and(|s| !s.is_null()) {
        return Err(OpenAiError::invalid(
            Some("stop"),
            "stop sequences are not supported",
        ));
    }
    let max = r
        .max_completion_tokens
        .or(r.max_tokens)
        .unwrap_or(cap.min(256));
    if max == 0 || max > cap {
        return Err(OpenAiError::invalid(
            Some("max_tokens"),
            format!("max_tokens {max}: from 1 to {cap} (server.openai.max_tokens)"),
        ));
    }
    let top = match (r.logprobs, r.top_logprobs) {
        (false, Some(_)) => {
            return Err(OpenAiError::invalid(
                Some("top_logprobs"),
                "top_logprobs needs logprobs: true",
            ));
        }
        (_, Some(k)) if k > MAX_TOP_LOGPROBS => {
            return Err(OpenAiError::invalid(
                Some("top_logprobs"),
                format!("top_logprobs {k}: at most {MAX_TOP_LOGPROBS}"),
            ));
        }
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, None) => None,
    };
    let params = GenerateParams {
        max_new_tokens: max,
        repeat_penalty: r.repeat_penalty.unwrap_or(1.0),
        repeat_last_n: r.repeat_last_n.unwrap_or(64),
    };
    Ok((params, top))
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// A token as OpenAI's `logprobs.content[]` shows it.
fn token_logprobs(step: &TokenStep) -> Value {
    json!({
        "token": step.token,
        "logprob": step.logprob,
        "bytes": step.token.as_bytes(),
        "top_logprobs": step.top.iter().map(|(t, lp)| json!({
            "token": t, "logprob": lp, "bytes": t.as_bytes(),
        })).collect::<Vec<_>>(),
    })
}

fn model_error(e: impl std::fmt::Display) -> OpenAiError {
    OpenAiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "server_error",
        code: None,
        param: None,
        message: e.to_string(),
    }
}

async fn chat(State(s): State<Arc<WebState>>, headers: HeaderMap, body: Bytes) -> Response {
    match chat_inner(&s, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(
    s: &WebState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OpenAiError> {
    let server = authorize(s, headers)?;
    let request: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| OpenAiError::invalid(None, format!("the request body: {e}")))?;
    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    let (params, top) = decoding(&request, s.settings.openai.max_tokens)?;
    let names = served(server).await?;
    let Some((_, model)) = names.iter().find(|(n, _)| *n == request.model) else {
        return Err(OpenAiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model"),
            message: format!(
                "model `{}`: this server serves {}",
                request.model,
                names
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let permit = server
        .queue
        .clone()
        .try_acquire_owned()
        .map_err(|_| OpenAiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: Some("queue_full"),
            param: None,
            message: format!(
                "{} requests are running or waiting (server.openai.max_queue): try again later",
                s.settings.openai.max_queue
            ),
        })?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let head = json!({"id": id, "created": created, "model": request.model});
    if request.stream {
        return Ok(stream(model.clone(), messages, params, top, head, permit));
    }
    let steps: Arc<Mutex<Vec<TokenStep>>> = Arc::default();
    let generation = match top {
        // The jurors' own call when no token detail is asked for.
        None => model.generate(&messages, &params).await,
        Some(k) => {
            let into = steps.clone();
            let sink = Box::new(move |step| into.lock().expect("steps").push(step));
            model.generate_stepwise(&messages, &params, k, sink).await
        }
    }
    .map_err(model_error)?;
    drop(permit);
    let logprobs = top.map(|_| {
        let steps = steps.lock().expect("steps");
        json!({"content": steps.iter().filter(|s| !s.token.is_empty()).map(token_logprobs).collect::<Vec<_>>()})
    });
    let mut answer = head;
    answer["object"] = json!("chat.completion");
    answer["choices"] = json!([{
        "index": 0,
        "message": {"role": "assistant", "content": generation.text},
        "logprobs": logprobs,
        "finish_reason": finish_reason(generation.finish),
    }]);
    answer["usage"] = json!({
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    });
    Ok(Json(answer).into_response())
}

/// The answer as server-sent events: a first chunk with the role, one chunk per token as the
/// model chooses it, a last chunk with the finish reason and the usage, then `[DONE]`.
fn stream(
    model: Arc<dyn LanguageModel>,
    messages: Vec<ChatMessage>,
    params: GenerateParams,
    top: Option<usize>,
    head: Value,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let chunk = move |delta: Value, logprobs: Value, finish: Value| {
        let mut c = head.clone();
        c["object"] = json!("chat.completion.chunk");
        c["choices"] =
            json!([{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]);
        c
    };
    let _ = tx.send(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        Value::Null,
    ));
    tokio::spawn(async move {
        let (steps, chunks) = (tx.clone(), chunk.clone());
        let sink = Box::new(move |step: TokenStep| {
            let logprobs = match top {
                Some(_) if !step.token.is_empty() => json!({"content": [token_logprobs(&step)]}),
                _ => Value::Null,
            };
            // A client that went away closes the channel; the generation just runs out.
            let _ = steps.send(chunks(
                json!({"content": step.delta}),
                logprobs,
                Value::Null,
            ));
        });
        let generated = model
            .generate_stepwise(&messages, &params, top.unwrap_or(0), sink)
            .await;
        drop(permit);
        let last = match generated {
            Ok(g) => {
                let mut c = chunk(json!({}), Value::Null, json!(finish_reason(g.finish)));
                c["usage"] = json!({
                    "prompt_tokens": g.prompt_tokens,
                    "completion_tokens": g.completion_tokens,
                    "total_tokens": g.prompt_tokens + g.completion_tokens,
                });
                c
            }
            Err(e) => {
                json!({"error": {"message": e.to_string(), "type": "server_error", "param": null, "code": null}})
            }
        };
        let _ = tx.send(last);
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| {
            (
                Ok::<_, std::convert::Infallible>(Event::default().data(v.to_string())),
                rx,
            )
        })
    });
    let done = futures::stream::once(async { Ok(Event::default().data("[DONE]")) });
    Sse::new(futures::StreamExt::chain(events, done)).into_response()
}
