//! The handler registry: stage name → the code that runs it.
//!
//! A handler runs one stage of one run and names the artefacts it produced; the worker records
//! their hashes in the ledger. Handlers must be idempotent — a no-op when their outputs already
//! exist — because a stage can run again after a crash. Adding a stage is a table in
//! `jobs/pipeline.toml` plus a [`Registry::register`] call; the graph is checked against the
//! registry at start-up.
//!
//! The framework knows no stage: a handler carries whatever it needs (the built-in six get
//! theirs from the composition root, `crate::wiring`).

use super::ledger::StageKey;
use crate::retry::Transient;
use crate::store::layout::ReferendumLayout;
use crate::store::{ObjectKey, ObjectStore, StoreError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a stage failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// Worth retrying (network, timeouts, a busy service).
    #[error("{0}")]
    Transient(String),
    /// Retrying changes nothing (a malformed proposal, a missing input): the run fails.
    #[error("{0}")]
    Permanent(String),
    /// The other side cannot be reached (connection refused, no such host): transient for a
    /// service, which waits for the outage to end; a foreground run fails at once, naming it.
    #[error("{0}")]
    Unreachable(String),
}

impl StageError {
    /// A stage error from any error that knows whether it is transient: the meaning of a retry
    /// travels with the error, so no handler classifies errors of its own.
    /// The text is what the ledger stores and `status` shows, so URL credentials in it are
    /// redacted ([`crate::secret::redact_urls`]).
    /// The whole cause chain is kept ([`crate::retry::with_causes`]).
    pub fn from_error<E: Transient + std::error::Error>(e: E) -> Self {
        let text = crate::secret::redact_urls(&crate::retry::with_causes(&e));
        match (e.is_transient(), e.is_unreachable()) {
            (true, true) => Self::Unreachable(text),
            (true, false) => Self::Transient(text),
            (false, _) => Self::Permanent(text),
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        Self::from_error(e)
    }
}

/// What a stage run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageDone {
    /// The artefacts the stage wrote (or found already written).
    pub outputs: Vec<ObjectKey>,
    /// What happened, for `cybergov status` (e.g. "already done").
    pub note: Option<String>,
}

impl StageDone {
    /// `outputs`, noted as "already done" when the stage found them all written.
    pub fn of(outputs: Vec<ObjectKey>, already: bool) -> Self {
        Self {
            outputs,
            note: already.then(|| "already done: outputs existed".to_owned()),
        }
    }
}

/// The code of one stage.
#[async_trait]
pub trait StageHandler: Send + Sync + std::fmt::Debug {
    /// Runs the stage for `key`.
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError>;
}

/// Stage name → handler.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn StageHandler>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stage of `stages` doing nothing ([`Noop`]): the orchestration alone, for the
    /// benchmark and the service's tests.
    pub fn noop<'a>(stages: impl IntoIterator<Item = &'a str>) -> Self {
        let mut r = Self::new();
        for stage in stages {
            r.register(stage, Arc::new(Noop));
        }
        r
    }

    /// Adds (or replaces) the handler of `stage`.
    pub fn register(&mut self, stage: &str, handler: Arc<dyn StageHandler>) {
        self.handlers.insert(stage.to_owned(), handler);
    }

    /// The handler of `stage`.
    pub fn get(&self, stage: &str) -> Option<&Arc<dyn StageHandler>> {
        self.handlers.get(stage)
    }

    /// Every stage name with a handler.
    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.handlers.keys().map(String::as_str)
    }
}

/// A stage body that does nothing and succeeds at once (also the `dispatch` entry stage: the
/// referendum was found and scheduled, nothing more to do per referendum).
#[derive(Debug)]
pub struct Noop;

#[async_trait]
impl StageHandler for Noop {
    async fn run(&self, _: &StageKey) -> Result<StageDone, StageError> {
        Ok(StageDone::default())
    }
}

/// The store layout of `key`'s run.
pub fn run_layout(key: &StageKey) -> crate::store::layout::RunLayout {
    ReferendumLayout::new(key.network, key.referendum).run(key.run)
}

/// Reads every output and returns `{name: sha256}` as JSON text, names relative to the run.
pub async fn hash_outputs(
    store: &dyn ObjectStore,
    key: &StageKey,
    outputs: &[ObjectKey],
) -> Result<String, StageError> {
    let prefix = run_layout(key).prefix();
    let mut map = serde_json::Map::new();
    for k in outputs {
        let bytes = store.get(k).await.map_err(StageError::from)?;
        let name = k.as_str().strip_prefix(&prefix).unwrap_or(k.as_str());
        map.insert(
            name.to_owned(),
            crate::hash::Sha256Hash::of(&bytes).to_hex().into(),
        );
    }
    Ok(serde_json::Value::Object(map).to_string())
}
