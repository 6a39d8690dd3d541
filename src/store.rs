//! The artefact store: one trait, two backends.
//!
//! Every artefact cybergov produces is an object under a key of the layout in [`layout`]. Objects
//! are **immutable**: writing the same bytes again is a no-op (so a retried stage is harmless),
//! writing different bytes is an error (so nothing is ever silently replaced — a rerun gets a new
//! run number instead). Writes are **atomic**: a reader sees the whole object or nothing.
//!
//! The one exception is a *pointer* ([`ObjectStore::put_pointer`]): `latest.json`, which says
//! which run is current. It is derivable from the runs themselves, so replacing it loses nothing.

pub mod fs;
pub mod layout;
pub mod s3;
pub mod settings;

use crate::retry::Transient;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

pub use fs::FsStore;
pub use s3::{S3Connection, S3Store};
use settings::{StoreBackend, StoreConfig};

/// A validated object key: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, none starting
/// with a dot (so `..` cannot escape a folder and the fs backend's `.tmp-*` files never collide).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, StoreError> {
        let key = key.into();
        let valid_segment = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if key.len() > 512 || !key.split('/').all(valid_segment) {
            return Err(StoreError::InvalidKey(key));
        }
        Ok(Self(key))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({})", self.0)
    }
}

/// What a [`ObjectStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist and now does.
    Created,
    /// The object already existed with exactly these bytes; nothing was written.
    AlreadyPresent,
}

/// Errors of the artefact store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not follow the key rules.
    #[error(
        "invalid object key {0:?}: use /-separated segments of [A-Za-z0-9._-], none empty or starting with '.'"
    )]
    InvalidKey(String),
    /// No object under that key.
    #[error("no object at {0}")]
    NotFound(ObjectKey),
    /// An object exists under that key with other bytes: artefacts are immutable.
    #[error(
        "refusing to overwrite {key}: it exists with different content (sha256 {existing}); artefacts are immutable, start a new run instead"
    )]
    Conflict {
        /// The key.
        key: ObjectKey,
        /// SHA-256 of what is stored.
        existing: crate::hash::Sha256Hash,
    },
    /// Local file system failure.
    #[error("file store cannot access {path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// S3 failure (network, auth, bucket).
    #[error("S3 {operation} {key}: {message}")]
    S3 {
        /// The S3 operation.
        operation: &'static str,
        /// The key (or prefix) involved.
        key: String,
        /// The service's explanation.
        message: String,
    },
    /// The store is misconfigured.
    #[error("store configuration: {0}")]
    Config(String),
}

/// An append-only object store of artefacts.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Writes `bytes` under `key` atomically, once. Same bytes again: [`PutOutcome::AlreadyPresent`];
    /// different bytes: [`StoreError::Conflict`].
    async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> Result<PutOutcome, StoreError>;

    /// Replaces the pointer object at `key` atomically. Only for derivable pointers such as
    /// `latest.json`; everything else goes through [`ObjectStore::put`].
    async fn put_pointer(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), StoreError>;

    /// Reads the object at `key`; [`StoreError::NotFound`] when there is none.
    async fn get(&self, key: &ObjectKey) -> Result<Vec<u8>, StoreError>;

    /// Reads the object at `key`, `None` when there is none: the one place that turns
    /// "not found" into an answer rather than an error.
    async fn get_optional(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(key).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether an object exists at `key`.
    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError>;

    /// Every key that starts with `prefix` (plain string prefix), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError>;

    /// Where this store lives, for people: a folder or `s3://bucket/prefix`.
    fn location(&self) -> String;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn ObjectStore>;

/// Where the public fetches `key` when the store is served at `base` (`public_base_url`).
pub fn public_url(base: &str, key: &str) -> String {
    format!("{}/{key}", base.trim_end_matches('/'))
}

/// Opens the store the configuration names. S3 credentials come from `secrets`.
pub fn open(
    config: &StoreConfig,
    secrets: &crate::secret::Secrets,
) -> Result<SharedStore, StoreError> {
    match config.backend {
        StoreBackend::Fs => Ok(Arc::new(FsStore::new(&config.path)?)),
        StoreBackend::S3 => {
            let missing = |var: &str| {
                StoreError::Config(format!(
                    "store.backend = \"s3\" needs {var} (or {var}_FILE) in the environment"
                ))
            };
            let settings = S3Connection {
                endpoint: config.s3.endpoint.clone(),
                region: config.s3.region.clone(),
                bucket: config
                    .s3
                    .bucket
                    .clone()
                    .ok_or_else(|| StoreError::Config("store.s3.bucket is not set".into()))?,
                prefix: config.s3.prefix.clone(),
                path_style: config.s3.path_style,
                connect_timeout: std::time::Duration::from_millis(config.s3.connect_timeout_ms),
                operation_timeout: std::time::Duration::from_millis(config.s3.operation_timeout_ms),
                max_object_bytes: config.s3.max_object_bytes,
                access_key_id: secrets
                    .s3_access_key_id
                    .as_ref()
                    .ok_or_else(|| missing(crate::env::S3_ACCESS_KEY_ID_VAR))?,
                secret_access_key: secrets
                    .s3_secret_access_key
                    .as_ref()
                    .ok_or_else(|| missing(crate::env::S3_SECRET_ACCESS_KEY_VAR))?,
            };
            Ok(Arc::new(S3Store::new(&settings)))
        }
    }
}

/// Compares what is stored with what a caller wants to store, for the immutability rule.
pub(crate) fn same_or_conflict(
    key: &ObjectKey,
    existing: &[u8],
    wanted: &[u8],
) -> Result<PutOutcome, StoreError> {
    if existing == wanted {
        Ok(PutOutcome::AlreadyPresent)
    } else {
        Err(StoreError::Conflict {
            key: key.clone(),
            existing: crate::hash::Sha256Hash::of(existing),
        })
    }
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        // An immutable artefact with other bytes, a key we refuse, a misconfiguration, or a
        // store we may not write (permissions, a read-only file system): retrying cannot fix it.
        match self {
            StoreError::Conflict { .. } | StoreError::InvalidKey(_) | StoreError::Config(_) => {
                false
            }
            StoreError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            StoreError::NotFound(_) | StoreError::S3 { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for ok in ["a", "proposals/polkadot/1/runs/1/manifest.json", "x_y-z.1"] {
            ObjectKey::new(ok).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/./b", "a/.tmp", "a b", "ü",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
