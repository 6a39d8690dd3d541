//! A local HTTP server speaking the OpenAI chat-completions API (the shape llama.cpp's server,
//! Ollama and hosted APIs share), with scripted failures: an error status with an OpenAI error
//! body, and a response slower than the client's timeout.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the next request gets.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    /// A normal completion.
    #[default]
    Ok,
    /// `status` with `{"error":{"message":…}}`.
    Error(u16, &'static str),
    /// Answer after this delay.
    Slow(Duration),
}

/// Shared state: the mode and every request body received.
#[derive(Default)]
pub struct OpenAiState {
    /// Current behaviour.
    pub mode: Mutex<Mode>,
    /// Request bodies seen.
    pub requests: Mutex<Vec<Value>>,
    /// The `Authorization` header of each request, as received.
    pub authorization: Mutex<Vec<Option<String>>>,
}

/// Starts the server; returns its base URL (`…/v1`) and state.
pub async fn spawn_openai() -> (String, Arc<OpenAiState>) {
    let state = Arc::new(OpenAiState::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(state.clone());
    let url = super::serve_on_loopback(app).await;
    (format!("{url}/v1"), state)
}

async fn completions(
    State(state): State<Arc<OpenAiState>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.requests.lock().unwrap().push(body.clone());
    state.authorization.lock().unwrap().push(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Error(status, message) => {
            let body =
                json!({"error": {"message": message, "type": "server_error", "code": status}});
            return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
        Mode::Ok => {}
    }
    let wants_logprobs = body["logprobs"].as_bool().unwrap_or(false);
    let content = if wants_logprobs {
        "NAY"
    } else {
        "The budget is not itemised; delivery cannot be checked. I lean NAY."
    };
    let mut choice = json!({
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": if wants_logprobs { "length" } else { "stop" },
    });
    if wants_logprobs {
        // Real providers list the most likely first tokens, spelled as the tokenizer splits them.
        choice["logprobs"] = json!({"content": [{
            "token": "N", "logprob": -0.4, "bytes": [78],
            "top_logprobs": [
                {"token": "N", "logprob": -0.4, "bytes": [78]},
                {"token": " AY", "logprob": -1.6, "bytes": [32, 65, 89]},
                {"token": "Ab", "logprob": -2.9, "bytes": [65, 98]},
                {"token": "The", "logprob": -5.0, "bytes": [84, 104, 101]}
            ]
        }]});
    }
    Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": body["model"],
        "choices": [choice],
        "usage": {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338},
    }))
    .into_response()
}
