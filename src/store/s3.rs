//! The S3 backend (AWS S3, MinIO, Garage, Cloudflare R2, … anything that speaks the S3 API).
//!
//! A single `PutObject` is atomic on S3: readers see the old state or the whole new object.
//! Immutability uses a conditional write (`If-None-Match: *`), which S3 and most compatible
//! servers honour; for a server that ignores it, the read-before-write still catches every
//! conflict except two writers racing within one round trip, which the pipeline's ledger already
//! prevents by running one writer per stage.

use super::{ObjectKey, ObjectStore, PutOutcome, StoreError, same_or_conflict};
use crate::secret::Secret;
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// How to reach a bucket. Credentials are secrets and come from the environment; they are
/// borrowed here and copied only into the SDK's credentials provider.
#[derive(Clone, Debug)]
pub struct S3Connection<'a> {
    /// Custom endpoint (MinIO, R2, a local test server); `None` = AWS.
    pub endpoint: Option<String>,
    /// Region name (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/` needed).
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted servers.
    pub path_style: bool,
    /// Longest wait for a connection.
    pub connect_timeout: std::time::Duration,
    /// Longest one request may take, retries included.
    pub operation_timeout: std::time::Duration,
    /// Largest object read, in bytes (`store.s3.max_object_bytes`).
    pub max_object_bytes: u64,
    /// Access key id.
    pub access_key_id: &'a Secret,
    /// Secret access key.
    pub secret_access_key: &'a Secret,
}

/// An [`ObjectStore`] in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    max_object_bytes: u64,
}

impl S3Store {
    /// Connects (lazily: the first request opens the connection).
    pub fn new(settings: &S3Connection<'_>) -> Self {
        // The SDK's default HTTPS client would build aws-lc-rs; ours uses ring, the one crypto
        // back-end the rest of the binary already has (Cargo.toml).
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.path_style)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(settings.connect_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            )
            .credentials_provider(Credentials::new(
                settings.access_key_id.expose(),
                settings.secret_access_key.expose(),
                None,
                None,
                "cybergov-config",
            ));
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let prefix = settings.prefix.trim_matches('/');
        Self {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket: settings.bucket.clone(),
            max_object_bytes: settings.max_object_bytes,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The underlying client, for setup such as creating a bucket in tests.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn put_raw(
        &self,
        key: &ObjectKey,
        bytes: &[u8],
        create_only: bool,
    ) -> Result<(), PutError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .content_type(content_type(key.as_str()))
            .body(ByteStream::from(bytes.to_vec()));
        if create_only {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("PreconditionFailed") || status_of(&e) == Some(412) => {
                Err(PutError::Exists)
            }
            Err(e) => Err(PutError::Other(s3_error("PutObject", key.as_str(), &e))),
        }
    }
}

enum PutError {
    Exists,
    Other(StoreError),
}

fn status_of<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HasStatus::status_code)
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn s3_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
    key: &str,
    e: &SdkError<E, R>,
) -> StoreError {
    StoreError::S3 {
        operation,
        key: key.to_owned(),
        message: DisplayErrorContext(e).to_string(),
    }
}

/// A content type so that artefacts display sensibly when served straight from the bucket.
fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
        match self.get(key).await {
            Ok(existing) => return same_or_conflict(key, &existing, bytes),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        match self.put_raw(key, bytes, true).await {
            Ok(()) => Ok(PutOutcome::Created),
            Err(PutError::Exists) => {
                let existing = self.get(key).await?;
                same_or_conflict(key, &existing, bytes)
            }
            Err(PutError::Other(e)) => Err(e),
        }
    }

    async fn put_pointer(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), StoreError> {
        match self.put_raw(key, bytes, false).await {
            Ok(()) => Ok(()),
            Err(PutError::Exists) => unreachable!("unconditional put cannot fail a precondition"),
            Err(PutError::Other(e)) => Err(e),
        }
    }

    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError> {
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .send()
            .await;
        match resp {
            Ok(out) => {
                // Artefacts are small; a bucket answering with more is not ours to hold. The
                // announced length is checked first, then what actually arrives, chunk by
                // chunk (a chunked answer announces nothing).
                let limit = self.max_object_bytes;
                let fail = |message: String| StoreError::S3 {
                    operation: "GetObject",
                    key: key.to_string(),
                    message,
                };
                let too_large = || {
                    fail(format!(
                        "the object is larger than {limit} bytes (store.s3.max_object_bytes): refused"
                    ))
                };
                if out
                    .content_length()
                    .is_some_and(|n| n < 0 || n as u64 > limit)
                {
                    return Err(too_large());
                }
                let mut body = out.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = body.try_next().await.map_err(|e| fail(e.to_string()))? {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(bytes)
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(StoreError::NotFound(key.clone()))
            }
            Err(e) => Err(s3_error("GetObject", key.as_str(), &e)),
        }
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        let resp = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .send()
            .await;
        match resp {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(s3_error("HeadObject", key.as_str(), &e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", prefix, &e))?;
            for obj in page.contents() {
                let Some(rel) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                // Objects that do not follow our key rules were not written by us.
                if let Ok(key) = ObjectKey::new(rel) {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}
