//! The store as the public sees it: objects fetched from `{public_base_url}/{key}` over HTTP.
//! Read-only; listing is not available (nothing in verification needs it).

use crate::store::{ObjectKey, ObjectStore, PutOutcome, StoreError};
use async_trait::async_trait;
use std::time::Duration;

/// A read-only store over a public base URL.
#[derive(Clone, Debug)]
pub struct HttpStore {
    base_url: String,
    max_body_bytes: u64,
    client: reqwest::Client,
}

impl HttpStore {
    /// A store reading `{base_url}/{key}`, objects of at most `max_body_bytes`.
    pub fn new(base_url: &str, max_body_bytes: u64) -> Result<Self, StoreError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(StoreError::Config(format!(
                "public base URL {base_url:?} is not an http(s) URL"
            )));
        }
        let client = crate::http::client_builder()
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("cybergov-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StoreError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_body_bytes,
            client,
        })
    }

    fn url(&self, key: &ObjectKey) -> String {
        format!("{}/{}", self.base_url, key)
    }

    fn read_only(key: &ObjectKey) -> StoreError {
        StoreError::Config(format!("the public store is read-only; cannot write {key}"))
    }
}

#[async_trait]
impl ObjectStore for HttpStore {
    async fn put(&self, key: &ObjectKey, _bytes: &[u8]) -> Result<PutOutcome, StoreError> {
        Err(Self::read_only(key))
    }

    async fn put_pointer(&self, key: &ObjectKey, _bytes: &[u8]) -> Result<(), StoreError> {
        Err(Self::read_only(key))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let url = self.url(key);
        let fail =
            |m: String| StoreError::Config(crate::secret::redact_urls(&format!("GET {url}: {m}")));
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        match response.status() {
            s if s.is_success() => {
                let limit = self.max_body_bytes;
                crate::http::read_capped(response, limit)
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| {
                        fail(format!(
                            "more than {limit} bytes (public_max_body_bytes): refused"
                        ))
                    })
            }
            reqwest::StatusCode::NOT_FOUND => Err(StoreError::NotFound(key.clone())),
            s => Err(fail(format!("HTTP {s}"))),
        }
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        match self.get(key).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        Err(StoreError::Config(format!(
            "the public store at {} cannot list {prefix}",
            self.base_url
        )))
    }

    fn location(&self) -> String {
        self.base_url.clone()
    }
}
