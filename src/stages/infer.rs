//! The infer stage: content.md → three jurors → tally → manifest.
//!
//! Idempotent at every step, because a worker can die anywhere: a juror whose record is already
//! stored is not run again (its record is reused), vote.json is re-derived (same bytes → no-op),
//! and a run whose manifest exists is done.

pub mod runner;

use super::provenance::ProvenanceConfig;
use crate::hash::Sha256Hash;
use crate::magi::juror::deliberate_together;
use crate::magi::jury::Jury;
use crate::magi::model::{LanguageModel, ModelError};
use crate::magi::tally::{JurorVote, TallyConfig, VoteRecord, tally};
use crate::manifest::publish::{PublishError, point_latest, publish};
use crate::manifest::{ArtefactRef, Manifest, ModelRecord, SCHEMA_V1, previous_manifest};
use crate::network::Network;
use crate::records::augment::AugmentRecord;
use crate::records::juror::JurorRecord;
use crate::records::run_id::RunId;
use crate::retry::Transient;
use crate::store::layout::{Artefact, ReferendumLayout, RunLayout};
use crate::store::{ObjectStore, StoreError};

/// What the stage produced.
#[derive(Clone, Debug)]
pub struct InferOutcome {
    /// The run.
    pub run: u32,
    /// The manifest's SHA-256 (the on-chain hash).
    pub manifest_sha256: Sha256Hash,
    /// The manifest.
    pub manifest: Manifest,
    /// True when the run already had a manifest and nothing was done.
    pub already_done: bool,
}

/// Why the stage failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The referendum has no run to infer on.
    #[error("{network} #{referendum} has no runs in the store; scrape and augment it first")]
    NoRun {
        /// Network.
        network: Network,
        /// Referendum.
        referendum: u32,
    },
    /// The run lacks its juror input.
    #[error("{0} has no content.md; run the augment stage first")]
    NoContent(RunId),
    /// An input artefact is malformed.
    #[error("{key} is malformed: {message}")]
    Malformed {
        /// The artefact.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A juror failed.
    #[error("juror {juror}: {source}")]
    Juror {
        /// The juror.
        juror: String,
        /// Why.
        #[source]
        source: ModelError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest could not be published.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A juror's model is not the one its arena decision seated.
    #[error("magi.jurors.{juror}.arena_decision {key}: {problem}")]
    ArenaDecision {
        /// The juror.
        juror: String,
        /// The decisions' store key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The arena decisions that seated `model_id` as `juror`, read from `key` and described for
/// the manifest; refused unless the record holds a decision replacing the incumbent with it.
async fn arena_decision(
    store: &dyn ObjectStore,
    juror: &str,
    key: &str,
    model_id: &str,
) -> Result<ArtefactRef, InferError> {
    let refuse = |problem: String| InferError::ArenaDecision {
        juror: juror.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let object = crate::store::ObjectKey::new(key).map_err(|e| refuse(e.to_string()))?;
    let Some(bytes) = store.get_optional(&object).await? else {
        return Err(refuse("not in the store".into()));
    };
    let record: crate::records::arena::DecisionsRecord =
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("not a decisions.json: {e}")))?;
    if record.replacing(model_id).is_none() {
        return Err(refuse(format!(
            "no decision in it replaces a juror's model with {model_id}"
        )));
    }
    Ok(ArtefactRef::describe(
        format!("arena decision of {juror}"),
        key,
        &bytes,
    ))
}

async fn get_optional(
    store: &dyn ObjectStore,
    run: &RunLayout,
    a: &Artefact,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.get_optional(&run.key(a)).await
}

/// Picks the run to infer on: `run` if given, else the newest run in the store.
pub async fn pick_run(
    store: &dyn ObjectStore,
    network: Network,
    referendum: u32,
    run: Option<u32>,
) -> Result<u32, InferError> {
    match run {
        Some(r) => Ok(r),
        None => ReferendumLayout::new(network, referendum)
            .runs(store)
            .await?
            .last()
            .copied()
            .ok_or(InferError::NoRun {
                network,
                referendum,
            }),
    }
}

/// What the infer stage needs besides the jury: the tally's rule and what the manifest records
/// about the code that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct InferSettings {
    /// `[magi.tally]`.
    pub tally: TallyConfig,
    /// `[provenance]`.
    pub provenance: ProvenanceConfig,
    /// Juror → the store key of the arena decisions that seated its model
    /// (`magi.jurors.<name>.arena_decision`).
    pub arena_decisions: std::collections::BTreeMap<String, String>,
}

/// Runs the stage for `network` #`referendum`, run `run` (default: the newest).
pub async fn infer(
    store: &dyn ObjectStore,
    settings: &InferSettings,
    jury: &Jury,
    network: Network,
    referendum: u32,
    run: Option<u32>,
) -> Result<InferOutcome, InferError> {
    let started_at = super::provenance::utc_now();
    let run = pick_run(store, network, referendum, run).await?;
    let layout = ReferendumLayout::new(network, referendum);
    let run_layout = layout.run(run);

    if let Some(bytes) = get_optional(store, &run_layout, &Artefact::Manifest).await? {
        let manifest =
            Manifest::from_canonical_bytes(&bytes).map_err(|e| InferError::Malformed {
                key: run_layout.key(&Artefact::Manifest).to_string(),
                message: e.to_string(),
            })?;
        // A crash between the manifest and latest.json leaves the pointer behind: repair it.
        let manifest_sha256 = Sha256Hash::of(&bytes);
        point_latest(store, &layout, run, manifest_sha256).await?;
        return Ok(InferOutcome {
            run,
            manifest_sha256,
            manifest,
            already_done: true,
        });
    }

    let content_bytes = get_optional(store, &run_layout, &Artefact::Content)
        .await?
        .ok_or(InferError::NoContent(RunId::new(network, referendum, run)))?;
    let content = String::from_utf8(content_bytes.clone()).map_err(|_| InferError::Malformed {
        key: run_layout.key(&Artefact::Content).to_string(),
        message: "not UTF-8".into(),
    })?;
    let mut inputs = Vec::new();
    let mut forced_abstain = None;
    for a in [Artefact::RawSubsquare, Artefact::Content, Artefact::Augment] {
        let Some(bytes) = get_optional(store, &run_layout, &a).await? else {
            continue;
        };
        if a == Artefact::Augment {
            forced_abstain =
                forced_abstain_reason(&bytes).map_err(|message| InferError::Malformed {
                    key: run_layout.key(&a).to_string(),
                    message,
                })?;
        }
        inputs.push(ArtefactRef::describe(
            a.file_name(),
            run_layout.key(&a).as_str(),
            &bytes,
        ));
    }

    // A model seated by the arena is checked against its decision before anyone deliberates.
    let mut seated = std::collections::HashMap::new();
    for (name, model) in &jury.members {
        if let Some(key) = settings.arena_decisions.get(name) {
            let decision = arena_decision(store, name, key, &model.info().model_id).await?;
            seated.insert(name.clone(), decision);
        }
    }

    // Jurors whose record is stored keep it (a retry after a crash); the others deliberate,
    // those sharing a model together (one batch per decode step, each record byte for byte
    // what it would be alone).
    let mut stored = std::collections::HashMap::new();
    for (name, _) in &jury.members {
        let key = run_layout.key(&Artefact::Juror(name.clone()));
        match store.get(&key).await {
            Ok(bytes) => {
                stored.insert(name.clone(), bytes);
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut pending: Vec<&(String, std::sync::Arc<dyn LanguageModel>)> = jury
        .members
        .iter()
        .filter(|(name, _)| !stored.contains_key(name))
        .collect();
    while let Some(&(_, model)) = pending.first() {
        let (together, rest): (Vec<_>, Vec<_>) = if jury.batch {
            pending
                .iter()
                .partition(|(_, m)| std::sync::Arc::ptr_eq(m, model))
        } else {
            (pending[..1].to_vec(), pending[1..].to_vec())
        };
        pending = rest;
        let names: Vec<&str> = together.iter().map(|(n, _)| n.as_str()).collect();
        tracing::info!(jurors = ?names, model = %model.info().model_id, "jurors deliberating");
        let started = std::time::Instant::now();
        let records = deliberate_together(
            &names,
            model.as_ref(),
            &jury.prompts,
            &content,
            &jury.decoding,
        )
        .await
        .map_err(|source| InferError::Juror {
            juror: names.join(", "),
            source,
        })?;
        // Jurors deliberating together share the wall time: each one's rate is its own tokens
        // over the batch's time.
        let took = started.elapsed();
        for (name, record) in names.iter().zip(records) {
            crate::metrics::juror_deliberated(
                name,
                record.prompt_tokens,
                record.completion_tokens,
                took,
            );
            let bytes = record.to_bytes();
            store
                .put(
                    &run_layout.key(&Artefact::Juror((*name).to_owned())),
                    &bytes,
                )
                .await?;
            stored.insert((*name).to_owned(), bytes);
        }
    }

    let mut outputs = Vec::new();
    let mut models = Vec::new();
    let mut votes = Vec::new();
    for (name, _) in &jury.members {
        let artefact = Artefact::Juror(name.clone());
        let key = run_layout.key(&artefact);
        // The manifest lists the bytes as stored, never a re-serialization of them.
        let bytes = stored
            .remove(name)
            .expect("every juror's record is stored above");
        let record =
            serde_json::from_slice::<JurorRecord>(&bytes).map_err(|e| InferError::Malformed {
                key: key.to_string(),
                message: e.to_string(),
            })?;
        tracing::info!(juror = %name, vote = ?record.vote, "juror voted");
        outputs.push(ArtefactRef::describe(
            artefact.file_name(),
            key.as_str(),
            &bytes,
        ));
        models.push(ModelRecord {
            juror: name.clone(),
            backend: record.model.backend.clone(),
            model_id: record.model.model_id.clone(),
            file_sha256: record.model.file_sha256,
            quantization: record.model.quantization.clone(),
            prompt_sha256: record.prompt_sha256,
            decoding: record.decoding.clone(),
            deterministic: record.model.deterministic,
            arena_decision: seated.remove(name),
        });
        votes.push(JurorVote {
            juror: name.clone(),
            vote: record.vote,
        });
    }

    let vote: VoteRecord = tally(
        &settings.tally,
        network,
        referendum,
        run,
        votes,
        forced_abstain,
    );
    let vote_bytes = vote.to_bytes();
    store
        .put(&run_layout.key(&Artefact::Vote), &vote_bytes)
        .await?;
    outputs.push(ArtefactRef::describe(
        Artefact::Vote.file_name(),
        run_layout.key(&Artefact::Vote).as_str(),
        &vote_bytes,
    ));

    let manifest = Manifest {
        schema: SCHEMA_V1.into(),
        network,
        referendum,
        run,
        provenance: super::provenance::provenance(&settings.provenance, started_at),
        models,
        inputs,
        outputs,
        decision: crate::manifest::Decision {
            vote: vote.decision,
            conviction: vote.conviction,
            balance: vote.balance.clone(),
        },
        previous: previous_manifest(store, layout, run).await?.map(|(_, h)| h),
    };
    let manifest_sha256 = publish(store, &manifest).await?;
    Ok(InferOutcome {
        run,
        manifest_sha256,
        manifest,
        already_done: false,
    })
}

/// The augmentation policy's forced-abstain reason, read through augment.json's own record type
/// (the one the augment stage writes), so the two stages cannot disagree on its shape.
fn forced_abstain_reason(augment_json: &[u8]) -> Result<Option<String>, String> {
    let record: AugmentRecord = serde_json::from_slice(augment_json).map_err(|e| e.to_string())?;
    Ok(record.abstain.map(|decision| decision.reason))
}

impl Transient for InferError {
    fn is_transient(&self) -> bool {
        match self {
            InferError::Store(e) => e.is_transient(),
            InferError::Juror { .. } => true,
            _ => false,
        }
    }
}
