//! The Subsquare HTTP client: one network's API, with a retry policy.
//!
//! Retry policy (docs/ARCHITECTURE.md):
//! - 404 → [`SubsquareError::NotFound`] at once: the referendum does not exist (yet).
//! - 429 → wait `Retry-After` seconds (capped by `retry_after_max_ms`; without the header, the
//!   backoff below), then retry.
//! - 5xx, timeouts and connection failures → exponential backoff with jitter
//!   (`backoff_base_ms · 2^attempt`, capped by `backoff_max_ms`, a random point in its upper
//!   half), at most `max_retries` retries, then [`SubsquareError::Exhausted`] naming the URL and
//!   the last status.
//! - other 4xx → [`SubsquareError::Status`] at once (retrying a bad request changes nothing).
//! - a 2xx body that is not JSON (truncated, HTML error page) → [`SubsquareError::Malformed`].

use crate::network::{Network, NetworkSpec};
use rand::Rng;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The most pages of one listing (referenda or comments) followed: far more than any network
/// has (Polkadot has about 1,800 referenda: 36 pages of 50).
pub const MAX_PAGES: u32 = 1000;

/// Subsquare client settings (`[subsquare]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsquareConfig {
    /// User-Agent header of every request.
    pub user_agent: String,
    /// Timeout of one request (connect + response + body), in milliseconds.
    pub timeout_ms: u64,
    /// Retries after the first attempt, on 429, 5xx and timeouts.
    pub max_retries: u32,
    /// First backoff delay in milliseconds; doubles each retry.
    pub backoff_base_ms: u64,
    /// Longest backoff delay in milliseconds.
    pub backoff_max_ms: u64,
    /// Longest wait honoured from a `Retry-After` header, in milliseconds.
    pub retry_after_max_ms: u64,
    /// Items per page when listing referenda and comments.
    pub page_size: u32,
    /// Largest response body accepted, in bytes; a larger one is refused and nothing is stored
    /// (a real referendum detail is well under 1 MB).
    pub max_body_bytes: u64,
}

impl Default for SubsquareConfig {
    fn default() -> Self {
        Self {
            user_agent: format!(
                "cybergov/{} (+{})",
                env!("CARGO_PKG_VERSION"),
                env!("CARGO_PKG_REPOSITORY")
            ),
            timeout_ms: 30_000,
            max_retries: 4,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            retry_after_max_ms: 120_000,
            page_size: 50,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Errors of the Subsquare client.
#[derive(Debug, thiserror::Error)]
pub enum SubsquareError {
    /// Subsquare does not know the referendum (HTTP 404).
    #[error("Subsquare has no referendum {index} on {network} (HTTP 404)")]
    NotFound {
        /// Network.
        network: Network,
        /// Referendum index.
        index: u32,
    },
    /// Retries are used up.
    #[error("GET/POST {url} failed after {attempts} attempt(s); last: {last}")]
    Exhausted {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last status or transport error, with its causes.
        last: String,
        /// Whether the last attempt could not connect at all (refused, no such host).
        unreachable: bool,
    },
    /// A status that retrying cannot fix.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not the JSON expected.
    #[error("{url} returned a malformed body: {message}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The answer is about another referendum than the one asked for: the jurors must never
    /// judge one proposal's text for another's vote.
    #[error(
        "{url} answered with referendum {answered}, not {asked}: refusing another proposal's text"
    )]
    WrongReferendum {
        /// The URL.
        url: String,
        /// The referendum asked for.
        asked: u32,
        /// The `referendumIndex` in the answer.
        answered: String,
    },
    /// The body is larger than `subsquare.max_body_bytes`.
    #[error("{url} returned more than {limit} bytes (subsquare.max_body_bytes): refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The client could not be built or the request not sent at all.
    #[error("Subsquare client: {0}")]
    Client(String),
}

/// One referendum of a list page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferendumSummary {
    /// Referendum index.
    pub index: u32,
    /// Track id, when given.
    pub track: Option<u16>,
    /// State name, when given.
    pub state: Option<String>,
    /// Title, when given.
    pub title: Option<String>,
}

/// One page of the referendum list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferendaPage {
    /// The referenda on this page.
    pub items: Vec<ReferendumSummary>,
    /// Total number of referenda.
    pub total: u64,
}

/// A client for one network's Subsquare API.
#[derive(Clone, Debug)]
pub struct SubsquareClient {
    http: reqwest::Client,
    network: Network,
    base: String,
    config: SubsquareConfig,
}

/// What a request method is, for retry purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

impl SubsquareClient {
    /// A client for `network`'s API at `spec.subsquare_api_url`.
    pub fn new(
        network: Network,
        spec: &NetworkSpec,
        config: &SubsquareConfig,
    ) -> Result<Self, SubsquareError> {
        let http = crate::http::client_builder()
            .user_agent(config.user_agent.clone())
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| SubsquareError::Client(e.to_string()))?;
        Ok(Self {
            http,
            network,
            base: spec.subsquare_api_url.trim_end_matches('/').to_owned(),
            config: config.clone(),
        })
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The settings.
    pub fn config(&self) -> &SubsquareConfig {
        &self.config
    }

    /// `{base}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One referendum's detail, byte for byte as served (checked to be a JSON object).
    pub async fn referendum(&self, index: u32) -> Result<Vec<u8>, SubsquareError> {
        let url = self.url(&format!("/gov2/referendums/{index}"));
        let bytes = self
            .send(Method::Get, &url, None)
            .await?
            .ok_or(SubsquareError::NotFound {
                network: self.network,
                index,
            })?;
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(SubsquareError::Malformed {
                url,
                message: format!(
                    "the body is not UTF-8: invalid byte at offset {}",
                    e.valid_up_to()
                ),
            });
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => match o.get("referendumIndex") {
                Some(answered) if answered.as_u64() != Some(u64::from(index)) => {
                    Err(SubsquareError::WrongReferendum {
                        url,
                        asked: index,
                        answered: answered.to_string(),
                    })
                }
                _ => Ok(bytes),
            },
            Ok(other) => Err(SubsquareError::Malformed {
                url,
                message: format!(
                    "expected a JSON object, found {}",
                    crate::proposal::type_name(&other)
                ),
            }),
            Err(e) => Err(SubsquareError::Malformed {
                url,
                message: e.to_string(),
            }),
        }
    }

    /// Page `page` (1-based) of the referendum list.
    pub async fn referenda_page(&self, page: u32) -> Result<ReferendaPage, SubsquareError> {
        let url = self.url(&format!(
            "/gov2/referendums?page={page}&page_size={}&simple=false",
            self.config.page_size
        ));
        let v = self.get_json(&url).await?;
        let malformed = |message: String| SubsquareError::Malformed {
            url: url.clone(),
            message,
        };
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no \"items\" array".into()))?;
        let total = v
            .get("total")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("no integer \"total\"".into()))?;
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let index = item
                    .get("referendumIndex")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| malformed(format!("items[{i}].referendumIndex is missing")))?;
                Ok(ReferendumSummary {
                    index,
                    track: item
                        .get("track")
                        .and_then(Value::as_u64)
                        .and_then(|t| u16::try_from(t).ok()),
                    state: item
                        .pointer("/state/name")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    title: item.get("title").and_then(Value::as_str).map(str::to_owned),
                })
            })
            .collect::<Result<_, SubsquareError>>()?;
        Ok(ReferendaPage { items, total })
    }

    /// Every referendum, page by page, until `total` is reached or a page comes back empty.
    pub async fn referenda(&self) -> Result<Vec<ReferendumSummary>, SubsquareError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let p = self.referenda_page(page).await?;
            let empty = p.items.is_empty();
            all.extend(p.items);
            if empty || all.len() as u64 >= p.total {
                return Ok(all);
            }
        }
        // The server's `total` is not trusted to end the listing: a server that never runs out
        // of pages is refused rather than followed forever.
        Err(SubsquareError::Malformed {
            url: self.url("/gov2/referendums"),
            message: format!("the listing did not end within {MAX_PAGES} pages"),
        })
    }

    /// GET `url` and parse JSON; 404 is [`SubsquareError::Status`].
    pub(crate) async fn get_json(&self, url: &str) -> Result<Value, SubsquareError> {
        let bytes =
            self.send(Method::Get, url, None)
                .await?
                .ok_or_else(|| SubsquareError::Status {
                    url: url.to_owned(),
                    status: 404,
                    body: String::new(),
                })?;
        serde_json::from_slice(&bytes).map_err(|e| SubsquareError::Malformed {
            url: url.to_owned(),
            message: e.to_string(),
        })
    }

    /// POST the JSON text `body` to `url`, once: a POST is not idempotent, so only a 429 (which
    /// means it was not processed) is retried. Returns the response body.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        body: String,
    ) -> Result<Vec<u8>, SubsquareError> {
        self.send(Method::Post, url, Some(body))
            .await?
            .ok_or_else(|| SubsquareError::Status {
                url: url.to_owned(),
                status: 404,
                body: String::new(),
            })
    }

    /// Sends with the retry policy. `Ok(None)` is a 404.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<Option<Vec<u8>>, SubsquareError> {
        let sent = self.send_with_retries(method, url, body).await;
        if let Err(e) = &sent {
            crate::metrics::request_failed("subsquare", e.kind());
        }
        sent
    }

    async fn send_with_retries(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<Option<Vec<u8>>, SubsquareError> {
        let exhausted = |attempts, (last, unreachable): (String, bool)| SubsquareError::Exhausted {
            url: url.to_owned(),
            attempts,
            last,
            unreachable,
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let req = match method {
                Method::Get => self.http.get(url),
                Method::Post => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone().unwrap_or_default()),
            };
            let (last, wait) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(|s| {
                                Duration::from_millis(
                                    s.saturating_mul(1000).min(self.config.retry_after_max_ms),
                                )
                            });
                        (
                            ("HTTP 429".to_owned(), false),
                            retry_after.unwrap_or_else(|| self.backoff(attempt)),
                        )
                    } else if status.is_server_error() {
                        if method == Method::Post {
                            return Err(status_error(url, resp).await);
                        }
                        (
                            (format!("HTTP {}", status.as_u16()), false),
                            self.backoff(attempt),
                        )
                    } else if !status.is_success() {
                        return Err(status_error(url, resp).await);
                    } else {
                        match crate::http::read_capped(resp, self.config.max_body_bytes).await {
                            Ok(Some(b)) => return Ok(Some(b)),
                            Ok(None) => {
                                return Err(SubsquareError::TooLarge {
                                    url: url.to_owned(),
                                    limit: self.config.max_body_bytes,
                                });
                            }
                            Err(e) if method == Method::Get => {
                                (describe(&e), self.backoff(attempt))
                            }
                            Err(e) => return Err(exhausted(attempt, describe(&e))),
                        }
                    }
                }
                Err(e)
                    if method == Method::Get
                        && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) =>
                {
                    (describe(&e), self.backoff(attempt))
                }
                Err(e) => return Err(exhausted(attempt, describe(&e))),
            };
            if attempt > self.config.max_retries {
                return Err(exhausted(attempt, last));
            }
            tracing::warn!(url = %crate::secret::redact_urls(url), attempt, last = %crate::secret::redact_urls(&last.0), wait_ms = wait.as_millis() as u64, "Subsquare request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Backoff before retry number `attempt` (1-based): exponential, capped, jittered in the
    /// upper half so that many workers do not retry in lockstep but none retries too early.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << (attempt - 1).min(20))
            .min(self.config.backoff_max_ms);
        let jittered = if exp < 2 {
            exp
        } else {
            rand::rng().random_range(exp / 2..=exp)
        };
        Duration::from_millis(jittered)
    }
}

/// What went wrong, with its causes (`Connection refused`, `failed to lookup address`), and
/// whether it was reaching the server at all that failed.
fn describe(e: &reqwest::Error) -> (String, bool) {
    let text = crate::retry::with_causes(e);
    if e.is_timeout() {
        (format!("timeout: {text}"), false)
    } else if e.is_connect() {
        (format!("connection failed: {text}"), true)
    } else {
        (text, false)
    }
}

async fn status_error(url: &str, resp: reqwest::Response) -> SubsquareError {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    SubsquareError::Status {
        url: url.to_owned(),
        status,
        body: body.chars().take(300).collect(),
    }
}

impl SubsquareError {
    /// The kind of failure, as the `request_errors` metric labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            SubsquareError::NotFound { .. } => "not_found",
            SubsquareError::Exhausted {
                unreachable: true, ..
            } => "unreachable",
            SubsquareError::Exhausted { .. } => "retries_exhausted",
            SubsquareError::Status { .. } => "status",
            SubsquareError::Malformed { .. } | SubsquareError::WrongReferendum { .. } => {
                "malformed"
            }
            SubsquareError::TooLarge { .. } => "too_large",
            SubsquareError::Client(_) => "client",
        }
    }
}

impl crate::retry::Transient for SubsquareError {
    fn is_transient(&self) -> bool {
        // 404 and the other 4xx answers say the request itself is wrong.
        !matches!(
            self,
            SubsquareError::NotFound { .. }
                | SubsquareError::Status { .. }
                | SubsquareError::WrongReferendum { .. }
                | SubsquareError::TooLarge { .. }
        )
    }

    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SubsquareError::Exhausted {
                unreachable: true,
                ..
            }
        )
    }
}
