//! The six built-in stage handlers: each takes the settings and services of its own stage from
//! the composition root ([`Services`]) and calls the stage's library code.

use crate::config::Config;
use crate::magi::jury::Jury;
use crate::pipeline::handler::{Noop, Registry, StageDone, StageError, StageHandler, run_layout};
use crate::pipeline::ledger::StageKey;
use crate::secret::Secrets;
use crate::store::layout::Artefact;
use crate::store::{ObjectKey, SharedStore};
use async_trait::async_trait;
use std::sync::Arc;

/// Everything a handler may use.
#[derive(Debug)]
pub struct Services {
    /// The configuration.
    pub config: Config,
    /// The secrets, shared rather than copied: every handler reads the one set.
    pub secrets: Arc<Secrets>,
    /// The artefact store.
    pub store: SharedStore,
    jury: tokio::sync::OnceCell<Arc<Jury>>,
}

impl Services {
    /// Services over `store`.
    pub fn new(config: Config, secrets: Arc<Secrets>, store: SharedStore) -> Self {
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
                tokio::task::spawn_blocking(move || {
                    Jury::from_config(&magi, &secrets, &crate::progress::quiet())
                })
                .await
                .map_err(|e| StageError::Transient(format!("loading the jury: {e}")))?
                .map(Arc::new)
                .map_err(|e| StageError::Transient(format!("loading the jury: {e}")))
            })
            .await
            .cloned()
    }
}

/// The six built-in stages over `services`.
pub fn builtin(services: &Arc<Services>) -> Registry {
    let mut r = Registry::new();
    r.register("dispatch", Arc::new(Noop));
    r.register("scrape", Arc::new(Scrape(services.clone())));
    r.register("augment", Arc::new(Augment(services.clone())));
    r.register("infer", Arc::new(Infer(services.clone())));
    r.register("vote", Arc::new(Vote(services.clone())));
    r.register("comment", Arc::new(Comment(services.clone())));
    r
}

/// `scrape`: Subsquare → raw_subsquare.json.
#[derive(Debug)]
struct Scrape(Arc<Services>);

#[async_trait]
impl StageHandler for Scrape {
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError> {
        let s = &self.0;
        use crate::subsquare::SubsquareClient;
        let spec = s.config.network(key.network);
        let client = SubsquareClient::new(key.network, spec, &s.config.subsquare)
            .map_err(|e| StageError::Permanent(e.to_string()))?;
        let layout = run_layout(key);
        match crate::stages::scrape::scrape(&client, s.store.as_ref(), &layout).await {
            Ok((_, outcome)) => Ok(StageDone::of(
                vec![layout.key(&Artefact::RawSubsquare)],
                outcome == crate::store::PutOutcome::AlreadyPresent,
            )),
            Err(e) => Err(StageError::from_error(e)),
        }
    }
}

/// `augment`: raw_subsquare.json → content.md + augment.json.
#[derive(Debug)]
struct Augment(Arc<Services>);

#[async_trait]
impl StageHandler for Augment {
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError> {
        let s = &self.0;
        use crate::stages::augment::{AugmentOutcome, augment_stage};
        let jury = s.jury().await?;
        let analyst = jury.members[0].1.clone();
        let mut settings = s.config.augment_settings(key.network);
        settings.content_budget_tokens = jury
            .content_budget()
            .await
            .map_err(|e| StageError::from_error(crate::stages::augment::AugmentError::Model(e)))?;
        let outcome = augment_stage(s.store.as_ref(), &settings, analyst.as_ref(), key.run_id())
            .await
            .map_err(StageError::from_error)?;
        let layout = run_layout(key);
        let mut done = StageDone::of(
            vec![
                layout.key(&Artefact::Content),
                layout.key(&Artefact::Augment),
            ],
            outcome == AugmentOutcome::AlreadyDone,
        );
        // `status` shows what was left out of the proposal, not only augment.json.
        if let AugmentOutcome::Written { unread_fields, .. } = outcome
            && !unread_fields.is_empty()
        {
            done.note = Some(format!("left out: {}", unread_fields.join("; ")));
        }
        Ok(done)
    }
}

/// `infer`: content.md → jurors, tally, manifest.
#[derive(Debug)]
struct Infer(Arc<Services>);

#[async_trait]
impl StageHandler for Infer {
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError> {
        let s = &self.0;
        use crate::stages::infer::infer;
        use crate::stages::infer::runner::settings::RunnerKind;
        let outcome = match s.config.runner.kind {
            // In-process, with the worker's cached jury (models stay loaded between runs).
            RunnerKind::Local => {
                let jury = s.jury().await?;
                infer(
                    s.store.as_ref(),
                    &s.config.infer_settings(),
                    &jury,
                    key.network,
                    key.referendum,
                    Some(key.run),
                )
                .await
                .map_err(StageError::from_error)?
            }
            // On GitHub Actions: the runner refuses unless the log's hash is the stored
            // manifest's, and that refusal must stop the run before the vote.
            RunnerKind::Github => crate::wiring::infer_with_runner(
                s.store.as_ref(),
                &s.config,
                &s.secrets,
                key.network,
                key.referendum,
                Some(key.run),
            )
            .await
            .map_err(StageError::from_error)?,
        };
        let layout = run_layout(key);
        let mut outputs: Vec<ObjectKey> = outcome
            .manifest
            .outputs
            .iter()
            .filter_map(|a| ObjectKey::new(a.path.as_str()).ok())
            .collect();
        outputs.push(layout.key(&Artefact::Manifest));
        let mut d = StageDone::of(outputs, outcome.already_done);
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
struct Vote(Arc<Services>);

#[async_trait]
impl StageHandler for Vote {
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError> {
        let s = &self.0;
        use crate::stages::vote::{VoteJob, VoteOutcome, vote_stage};
        let job = VoteJob {
            spec: s.config.network(key.network),
            proxy_seed: s.secrets.proxy_seed_for(key.network),
            id: key.run_id(),
            mode: s.config.pipeline.vote_mode,
            hooks: Default::default(),
        };
        let outcome = vote_stage(s.store.as_ref(), &job)
            .await
            .map_err(StageError::from_error)?;
        let receipt = run_layout(key).key(&Artefact::Receipt);
        let (outputs, note) = match outcome {
            VoteOutcome::Submitted(_) => (vec![receipt], "submitted"),
            VoteOutcome::AlreadyDone(_) => (vec![receipt], "already cast: receipt recorded"),
            VoteOutcome::DryRun(_) => (vec![], "dry run: nothing submitted"),
        };
        // The receipt is listed only when the stage wrote one.
        let mut present = Vec::new();
        for k in outputs {
            if s.store.exists(&k).await.map_err(StageError::from)? {
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
struct Comment(Arc<Services>);

#[async_trait]
impl StageHandler for Comment {
    async fn run(&self, key: &StageKey) -> Result<StageDone, StageError> {
        let s = &self.0;
        use crate::stages::comment::{CommentJob, CommentOutcome, comment_run};
        use crate::subsquare::{SubsquareClient, sima};
        let spec = s.config.network(key.network);
        let proxy = sima::proxy_keypair(s.secrets.proxy_seed_for(key.network))
            .map_err(|e| StageError::Permanent(e.to_string()))?;
        let real = spec
            .real_account_id(key.network)
            .map_err(StageError::Permanent)?;
        let client = SubsquareClient::new(key.network, spec, &s.config.subsquare)
            .map_err(|e| StageError::Permanent(e.to_string()))?;
        let layout = run_layout(key);
        let comment_key = layout.key(&Artefact::Comment);
        let job = CommentJob {
            run: layout,
            spec,
            proxy: &proxy,
            real,
            public_base_url: s.config.public_base_url.as_deref(),
            timestamp_ms: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
        };
        let outcome = comment_run(s.store.as_ref(), &client, &job)
            .await
            .map_err(StageError::from_error)?;
        let (note, output) = match &outcome {
            CommentOutcome::AlreadyRecorded(_) => ("already recorded", comment_key),
            CommentOutcome::FoundExisting(_) => (
                "found our comment on Subsquare; not posted again",
                comment_key,
            ),
            CommentOutcome::Posted(_) => ("posted", comment_key),
            CommentOutcome::Previewed(_) => (
                "not voted: previewed, not posted",
                layout.key(&Artefact::CommentPreview),
            ),
        };
        Ok(StageDone {
            outputs: vec![output],
            note: Some(note.to_owned()),
        })
    }
}
