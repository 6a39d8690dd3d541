//! The store's configuration section (`[store]`): which backend, and where.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Artefact store settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `fs` (a local folder, the default) or `s3`.
    pub backend: StoreBackend,
    /// Folder of the `fs` backend.
    pub path: PathBuf,
    /// Settings of the `s3` backend.
    pub s3: S3Config,
}

/// Which store backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A local folder.
    Fs,
    /// An S3 bucket.
    S3,
}

/// S3 settings (credentials are secrets: `CYBERGOV_S3_ACCESS_KEY_ID`, `CYBERGOV_S3_SECRET_ACCESS_KEY`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers; unset for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Bucket (required with `backend = "s3"`).
    pub bucket: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Longest wait for a connection, milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest one request may take, retries included, milliseconds: a server that accepts
    /// the connection and never answers fails the request instead of holding the stage.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// Largest object read from the bucket, in bytes: artefacts are a proposal (capped by
    /// `subsquare.max_body_bytes`), texts and small JSON records.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: u64,
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

fn default_operation_timeout_ms() -> u64 {
    120_000
}

fn default_max_object_bytes() -> u64 {
    256 << 20
}
