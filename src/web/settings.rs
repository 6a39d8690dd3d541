//! The `server` section of the configuration.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Settings of the HTTP server in `cybergov serve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Whether `cybergov serve` starts the HTTP server beside the scheduler
    /// (`serve --web-only` always does).
    pub enabled: bool,
    /// The address to listen on.
    pub bind: SocketAddr,
    /// Allow a `bind` address that is not loopback (the server is then public).
    pub allow_public: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time limit of one request, in seconds.
    pub request_timeout_s: u64,
    /// Most items in one page of the JSON API (`limit` is capped to it).
    pub max_page: u32,
    /// The OpenAI-compatible endpoint.
    pub openai: OpenAiServerConfig,
}

/// `server.openai`: the jurors' models served as an OpenAI-compatible API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiServerConfig {
    /// Whether `/v1/models` and `/v1/chat/completions` are served.
    pub enabled: bool,
    /// Requests running or waiting at once; one more is answered 429.
    pub max_queue: usize,
    /// Most tokens one request may generate.
    pub max_tokens: u32,
}

impl Default for OpenAiServerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_queue: 4,
            max_tokens: 1024,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_public: false,
            max_body_bytes: 64 << 10,
            request_timeout_s: 30,
            max_page: 500,
            openai: OpenAiServerConfig::default(),
        }
    }
}
