//! Reruns: run + 1 of a referendum, append-only, optionally reusing the earlier run's outputs
//! of the stages before `--from`.
//!
//! Reused artefacts are copied byte for byte into the new run's folder (the store never moves
//! or rewrites a run), and their stages are recorded as skipped. Artefacts that name their run
//! (the manifest, the tally, the receipt, the comment record) are never copied: the infer stage
//! always runs in a new run — it reuses copied juror files, re-tallies and writes the run's own
//! manifest, whose `previous` links to the earlier run's manifest (the hash chain over
//! re-votes) — and so do the stages after it.

use super::engine::{Engine, EngineError};
use super::graph::ENTRY;
use super::ledger::{LedgerError, StageKey};
use crate::network::Network;
use crate::records::revote::RevoteRecord;
use crate::records::run_id::RunId;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectKey, StoreError};

/// The stage a rerun must run even when `--from` is later: it writes the run's manifest.
pub const MANIFEST_STAGE: &str = "infer";

/// Errors of a rerun.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    /// Nothing to rerun.
    #[error("{network} #{referendum} has no earlier run to rerun; use `cybergov run` first")]
    NoEarlierRun {
        /// Network.
        network: Network,
        /// Referendum.
        referendum: u32,
    },
    /// `--from` names a stage the graph does not have.
    #[error("unknown stage {0:?} for --from; the stages are {1}")]
    UnknownStage(String, String),
    /// An artefact to reuse is not what the earlier run recorded of it.
    #[error(
        "run {previous}'s {name} has sha256 {found}, but run {previous} recorded {expected}: refusing to reuse an artefact that changed since; rerun from an earlier stage"
    )]
    Tampered {
        /// The earlier run.
        previous: u32,
        /// The artefact, e.g. `content.md`.
        name: String,
        /// The hash the earlier run recorded (manifest or ledger).
        expected: String,
        /// The hash of what is stored now.
        found: String,
    },
    /// An artefact to reuse has no recorded hash to check it against.
    #[error(
        "run {previous}'s {name} is recorded neither in its manifest nor in the ledger: refusing to reuse what cannot be checked; rerun from an earlier stage"
    )]
    Unrecorded {
        /// The earlier run.
        previous: u32,
        /// The artefact.
        name: String,
    },
    /// The store failed.
    #[error("copying reused artefacts: {0}")]
    Store(#[from] StoreError),
    /// The ledger or queue failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A rerun, created and ready to process.
#[derive(Debug, Clone)]
pub struct Rerun {
    /// The earlier run.
    pub previous: u32,
    /// The first stage that runs in the new run.
    pub start: StageKey,
    /// Artefacts copied from the earlier run.
    pub reused: Vec<String>,
}

/// Creates run + 1 of `network` #`referendum` starting at `from` (default: the entry), copies
/// what it reuses, records skipped stages, and schedules the first stage that runs.
pub async fn start_rerun(
    engine: &Engine,
    network: Network,
    referendum: u32,
    from: Option<&str>,
) -> Result<Rerun, RerunError> {
    let order = engine.graph.order().to_vec();
    let from = from.unwrap_or(ENTRY);
    let Some(from_at) = order.iter().position(|s| s == from) else {
        return Err(RerunError::UnknownStage(from.to_owned(), order.join(", ")));
    };
    let layout = ReferendumLayout::new(network, referendum);
    let store = engine.store.as_ref();
    let ledger_last = engine
        .ledger
        .runs(Some(network), Some(referendum))
        .await
        .map_err(EngineError::from)?
        .last()
        .map(|r| u32::try_from(r.run).unwrap_or(0));
    let store_last = layout.runs(store).await?.last().copied();
    let Some(previous) = ledger_last.max(store_last) else {
        return Err(RerunError::NoEarlierRun {
            network,
            referendum,
        });
    };
    // The first stage that runs: `from`, or the manifest stage if `from` comes after it.
    let start_at = match order.iter().position(|s| s == MANIFEST_STAGE) {
        Some(m) if from_at > m => m,
        _ => from_at,
    };
    // What the new run reuses, checked before the run exists: a refusal leaves nothing behind.
    let reuse = if from_at > 0 {
        checked_reuse(engine, layout.run(previous), &order[..from_at]).await?
    } else {
        Vec::new()
    };
    let entry = engine
        .create_run(network, referendum, Some(previous), Some(from), None, None)
        .await?
        .ok_or_else(|| EngineError::from(LedgerError::Invalid("no run created".into())))?;
    let new_run = layout.run(entry.run);
    // A rerun is a deliberate re-vote: the vote stage lets it vote after run `previous`.
    let record = RevoteRecord::new(
        RunId::new(network, referendum, entry.run),
        previous,
        format!("an operator's rerun of run {previous} (cybergov rerun --from {from})"),
    );
    store
        .put(&new_run.key(&Artefact::Revote), &record.to_bytes())
        .await?;
    let mut reused = Vec::new();
    for (name, bytes) in reuse {
        let target = ObjectKey::new(format!("{}{name}", new_run.prefix()))?;
        store.put(&target, &bytes).await?;
        reused.push(name);
    }
    let note = format!("reused from run {previous}");
    for stage in &order[..start_at] {
        engine
            .ledger
            .skip(&entry.with_stage(stage), &note)
            .await
            .map_err(EngineError::from)?;
    }
    let start = entry.with_stage(&order[start_at]);
    engine.schedule_now(&start).await?;
    Ok(Rerun {
        previous,
        start,
        reused,
    })
}

/// The artefacts of run `old` that the stages before the rerun's start produced, with their
/// bytes, each checked against the hash run `old` recorded of it (its manifest, and the
/// ledger's record of the stage that wrote it): a changed artefact is never carried into a new
/// run, where the new manifest would seal it as if the jurors had read it.
async fn checked_reuse(
    engine: &Engine,
    old: crate::store::layout::RunLayout,
    stages: &[String],
) -> Result<Vec<(String, Vec<u8>)>, RerunError> {
    let store = engine.store.as_ref();
    let previous = old.run;
    let mut recorded: Vec<(String, String)> = Vec::new();
    if let Some(bytes) = store.get_optional(&old.key(&Artefact::Manifest)).await? {
        // An unreadable manifest records nothing: the ledger's hashes are checked instead.
        if let Ok(m) = crate::manifest::Manifest::from_canonical_bytes(&bytes) {
            for a in m.inputs.iter().chain(&m.outputs) {
                recorded.push((a.name.clone(), a.sha256.to_hex()));
            }
        }
    }
    let rows = engine
        .ledger
        .stages(
            Some(old.referendum.network),
            Some(old.referendum.referendum),
            Some(previous),
        )
        .await
        .map_err(EngineError::from)?;
    for row in rows {
        recorded.extend(row.recorded_outputs());
    }
    let run_specific = [
        Artefact::Manifest,
        Artefact::Vote,
        Artefact::Receipt,
        Artefact::Comment,
        Artefact::DryRun,
        Artefact::CommentPreview,
        Artefact::InferenceDispatch,
        Artefact::InferenceLog,
        Artefact::Revote,
    ]
    .map(|a| a.file_name());
    let prefix = old.prefix();
    let mut reuse = Vec::new();
    for key in store.list(&prefix).await? {
        let name = &key.as_str()[prefix.len()..];
        if run_specific.iter().any(|r| r == name) || !reused_by(name, stages) {
            continue;
        }
        let bytes = store.get(&key).await?;
        let found = crate::hash::Sha256Hash::of(&bytes).to_hex();
        let mut expected = recorded.iter().filter(|(n, _)| n == name).peekable();
        if expected.peek().is_none() {
            return Err(RerunError::Unrecorded {
                previous,
                name: name.to_owned(),
            });
        }
        if let Some((_, want)) = expected.find(|(_, want)| *want != found) {
            return Err(RerunError::Tampered {
                previous,
                name: name.to_owned(),
                expected: want.clone(),
                found,
            });
        }
        reuse.push((name.to_owned(), bytes));
    }
    Ok(reuse)
}

/// Whether the artefact `name` belongs to one of `stages` (the built-in stages' outputs).
fn reused_by(name: &str, stages: &[String]) -> bool {
    let owner = match name {
        "raw_subsquare.json" => "scrape",
        "content.md" | "augment.json" => "augment",
        n if n.starts_with("jurors/") || n == "inference.log" => "infer",
        _ => return false,
    };
    stages.iter().any(|s| s == owner)
}
