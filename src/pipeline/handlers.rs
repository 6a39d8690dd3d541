//! The handler registry: stage name → the code that runs it.
//!
//! A handler runs one stage of one run and names the artefacts it produced; the worker records
//! their hashes in the ledger. Handlers must be idempotent — a no-op when their outputs already
//! exist — because a stage can run again after a crash. Adding a stage is a table in
//! `jobs/pipeline.toml` plus a [`Registry::register`] call; the graph is checked against the
//! registry at start-up.

use super::ledger::StageKey;
use super::settings::VoteModeSetting;
use crate::config::{Config, Secrets};
use crate::magi::jury::Jury;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectKey, ObjectStore, SharedStore, StoreError};
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
}

impl StageError {
    fn store(e: StoreError) -> Self {
        match e {
            // An immutable artefact with other bytes: retrying cannot fix it.
            StoreError::Conflict { .. } | StoreError::InvalidKey(_) => {
                Self::Permanent(e.to_string())
            }
            other => Self::Transient(other.to_string()),
        }
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

/// Everything a handler may use.
#[derive(Debug)]
pub struct Services {
    /// The configuration.
    pub config: Config,
    /// The secrets.
    pub secrets: Secrets,
    /// The artefact store.
    pub store: SharedStore,
    jury: tokio::sync::OnceCell<Arc<Jury>>,
}

impl Services {
    /// Services over `store`.
    pub fn new(config: Config, secrets: Secrets, store: SharedStore) -> Self {
        Self {
            config,
            secrets,
            store,
            jury: tokio::sync::OnceCell::new(),
        }
    }

    /// The jury, loaded on first use and shared by every later stage of this process.
    pub async fn jury(&self) -> Result<Arc<Jury>, StageError> {
        self.jury
            .get_or_try_init(|| async {
                let magi = self.config.magi.clone();
                let secrets = self.secrets.clone();
                tokio::task::spawn_blocking(move || Jury::from_config(&magi, &secrets, false))
                    .await
                    .map_err(|e| StageError::Transient(format!("loading the jury: {e}")))?
                    .map(Arc::new)
                    .map_err(|e| StageError::Transient(format!("loading the jury: {e}")))
            })
            .await
            .cloned()
    }
}

/// The code of one stage.
#[async_trait]
pub trait StageHandler: Send + Sync + std::fmt::Debug {
    /// Runs the stage for `key`.
    async fn run(&self, services: &Services, key: &StageKey) -> Result<StageDone, StageError>;
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

    /// The six built-in stages.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        r.register("dispatch", Arc::new(Dispatched));
        r.register("scrape", Arc::new(Scrape));
        r.register("augment", Arc::new(Augment));
        r.register("infer", Arc::new(Infer));
        r.register("vote", Arc::new(Vote));
        r.register("comment", Arc::new(Comment));
        r
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

/// A stage body that does nothing and succeeds at once.
#[derive(Debug)]
pub struct Noop;

#[async_trait]
impl StageHandler for Noop {
    async fn run(&self, _: &Services, _: &StageKey) -> Result<StageDone, StageError> {
        Ok(StageDone::default())
    }
}

fn run_layout(key: &StageKey) -> crate::store::layout::RunLayout {
    ReferendumLayout::new(key.network, key.referendum).run(key.run)
}

fn done(outputs: Vec<ObjectKey>, already: bool) -> StageDone {
    StageDone {
        outputs,
        note: already.then(|| "already done: outputs existed".to_owned()),
    }
}

/// `dispatch`: the referendum was found and scheduled; nothing more to do per referendum.
#[derive(Debug)]
struct Dispatched;

#[async_trait]
impl StageHandler for Dispatched {
    async fn run(&self, _: &Services, _: &StageKey) -> Result<StageDone, StageError> {
        Ok(StageDone::default())
    }
}

/// `scrape`: Subsquare → raw_subsquare.json.
#[derive(Debug)]
struct Scrape;

#[async_trait]
impl StageHandler for Scrape {
    async fn run(&self, s: &Services, key: &StageKey) -> Result<StageDone, StageError> {
        use crate::subsquare::{ScrapeError, SubsquareClient, SubsquareError};
        let spec = s.config.network(key.network);
        let client = SubsquareClient::new(key.network, spec, &s.config.subsquare)
            .map_err(|e| StageError::Permanent(e.to_string()))?;
        let rl = run_layout(key);
        match crate::subsquare::scrape(&client, s.store.as_ref(), &rl).await {
            Ok((_, outcome)) => Ok(done(
                vec![rl.key(&Artefact::RawSubsquare)],
                outcome == crate::store::PutOutcome::AlreadyPresent,
            )),
            Err(ScrapeError::Store(e)) => Err(StageError::store(e)),
            Err(ScrapeError::Subsquare(e)) => Err(match e {
                SubsquareError::NotFound { .. } | SubsquareError::Status { .. } => {
                    StageError::Permanent(e.to_string())
                }
                other => StageError::Transient(other.to_string()),
            }),
        }
    }
}

/// `augment`: raw_subsquare.json → content.md + augment.json.
#[derive(Debug)]
struct Augment;

#[async_trait]
impl StageHandler for Augment {
    async fn run(&self, s: &Services, key: &StageKey) -> Result<StageDone, StageError> {
        use crate::augment::AugmentError;
        use crate::stages::augment::{AugmentOutcome, augment_stage};
        let jury = s.jury().await?;
        let analyst = jury.members[0].1.clone();
        let outcome = augment_stage(
            s.store.as_ref(),
            &s.config,
            analyst.as_ref(),
            key.network,
            key.referendum,
            key.run,
        )
        .await
        .map_err(|e| match e {
            AugmentError::Proposal(p) => StageError::Permanent(format!("malformed proposal: {p}")),
            AugmentError::Store(e) => StageError::store(e),
            AugmentError::Model(m) => StageError::Transient(m.to_string()),
        })?;
        let rl = run_layout(key);
        Ok(done(
            vec![rl.key(&Artefact::Content), rl.key(&Artefact::Augment)],
            outcome == AugmentOutcome::AlreadyDone,
        ))
    }
}

/// `infer`: content.md → jurors, tally, manifest.
#[derive(Debug)]
struct Infer;

#[async_trait]
impl StageHandler for Infer {
    async fn run(&self, s: &Services, key: &StageKey) -> Result<StageDone, StageError> {
        use crate::runner::RunnerError;
        use crate::runner::settings::RunnerKind;
        use crate::stages::infer::{InferError, infer};
        let local_error = |e: InferError| match e {
            InferError::Store(e) => StageError::store(e),
            InferError::Juror { .. } => StageError::Transient(e.to_string()),
            other => StageError::Permanent(other.to_string()),
        };
        let outcome = match s.config.runner.kind {
            // In-process, with the worker's cached jury (models stay loaded between runs).
            RunnerKind::Local => {
                let jury = s.jury().await?;
                infer(
                    s.store.as_ref(),
                    &s.config,
                    &jury,
                    key.network,
                    key.referendum,
                    Some(key.run),
                )
                .await
                .map_err(local_error)?
            }
            // On GitHub Actions: the runner refuses unless the log's hash is the stored
            // manifest's, and that refusal must stop the run before the vote.
            RunnerKind::Github => crate::runner::infer(
                s.store.as_ref(),
                &s.config,
                &s.secrets,
                key.network,
                key.referendum,
                Some(key.run),
            )
            .await
            .map_err(|e| match e {
                RunnerError::Infer(e) => local_error(e),
                RunnerError::Github(_) => StageError::Transient(e.to_string()),
                other => StageError::Permanent(other.to_string()),
            })?,
        };
        let rl = run_layout(key);
        let mut outputs: Vec<ObjectKey> = outcome
            .manifest
            .outputs
            .iter()
            .filter_map(|a| ObjectKey::new(a.path.as_str()).ok())
            .collect();
        outputs.push(rl.key(&Artefact::Manifest));
        let mut d = done(outputs, outcome.already_done);
        if !outcome.already_done {
            d.note = Some(format!(
                "decision {:?}, manifest {}",
                outcome.manifest.decision.vote, outcome.manifest_sha256
            ));
        }
        Ok(d)
    }
}

/// `vote`: the proxied vote with the manifest hash as remark (or a dry run).
#[derive(Debug)]
struct Vote;

#[async_trait]
impl StageHandler for Vote {
    async fn run(&self, s: &Services, key: &StageKey) -> Result<StageDone, StageError> {
        use crate::stages::vote::{VoteMode, VoteOutcome, vote_stage};
        let mode = match s.config.pipeline.vote_mode {
            VoteModeSetting::DryRun => VoteMode::DryRun,
            VoteModeSetting::Submit => VoteMode::Submit,
        };
        let outcome = vote_stage(
            &s.config,
            &s.secrets,
            s.store.as_ref(),
            key.network,
            key.referendum,
            key.run,
            mode,
        )
        .await
        .map_err(|e| {
            if e.is_transient() {
                StageError::Transient(e.to_string())
            } else {
                StageError::Permanent(e.to_string())
            }
        })?;
        let receipt = run_layout(key).key(&Artefact::Receipt);
        let (outputs, note) = match outcome {
            VoteOutcome::Submitted(_) => (vec![receipt], "submitted"),
            VoteOutcome::AlreadyDone(_) => (vec![receipt], "already cast: receipt recorded"),
            VoteOutcome::DryRun(_) => (vec![], "dry run: nothing submitted"),
        };
        // The receipt is listed only when the stage wrote one.
        let mut present = Vec::new();
        for k in outputs {
            if s.store.exists(&k).await.map_err(StageError::store)? {
                present.push(k);
            }
        }
        Ok(StageDone {
            outputs: present,
            note: Some(note.to_owned()),
        })
    }
}

/// `comment`: the SIMA-signed rationale, posted once.
#[derive(Debug)]
struct Comment;

#[async_trait]
impl StageHandler for Comment {
    async fn run(&self, s: &Services, key: &StageKey) -> Result<StageDone, StageError> {
        use crate::comment::{CommentError, CommentJob, CommentOutcome, comment_run};
        use crate::subsquare::{SubsquareClient, sima};
        let spec = s.config.network(key.network);
        let seed = s.secrets.proxy_seed.as_ref().ok_or_else(|| {
            StageError::Permanent(
                "commenting needs the proxy's key: set CYBERGOV_PROXY_SEED (or CYBERGOV_PROXY_SEED_FILE)"
                    .into(),
            )
        })?;
        let proxy = sima::keypair(seed).map_err(|e| StageError::Permanent(e.to_string()))?;
        let real = spec
            .real_account
            .as_deref()
            .map(|r| spec.parse_address(r))
            .transpose()
            .map_err(|e| {
                StageError::Permanent(format!("networks.{}.real_account: {e}", key.network))
            })?;
        let client = SubsquareClient::new(key.network, spec, &s.config.subsquare)
            .map_err(|e| StageError::Permanent(e.to_string()))?;
        let rl = run_layout(key);
        let job = CommentJob {
            run: rl,
            spec,
            proxy: &proxy,
            real,
            public_base_url: s.config.public_base_url.as_deref(),
            timestamp_ms: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
        };
        let outcome = comment_run(s.store.as_ref(), &client, &job)
            .await
            .map_err(|e| match e {
                CommentError::Store(e) => StageError::store(e),
                CommentError::Subsquare(e) => StageError::Transient(e.to_string()),
                other => StageError::Permanent(other.to_string()),
            })?;
        let note = match outcome {
            CommentOutcome::AlreadyRecorded(_) => "already recorded",
            CommentOutcome::FoundExisting(_) => "found our comment on Subsquare; not posted again",
            CommentOutcome::Posted(_) => "posted",
        };
        Ok(StageDone {
            outputs: vec![rl.key(&Artefact::Comment)],
            note: Some(note.to_owned()),
        })
    }
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
        let bytes = store.get(k).await.map_err(StageError::store)?;
        let name = k.as_str().strip_prefix(&prefix).unwrap_or(k.as_str());
        map.insert(
            name.to_owned(),
            crate::hash::Sha256Hash::of(&bytes).to_hex().into(),
        );
    }
    Ok(serde_json::Value::Object(map).to_string())
}
