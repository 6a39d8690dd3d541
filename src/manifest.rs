//! Manifest v1: the list of everything a vote rests on, whose SHA-256 goes on chain.
//!
//! The stored `manifest.json` is exactly the canonical bytes of [`Manifest`] (see [`canonical`]),
//! so `sha256sum manifest.json` equals the hash in the on-chain remark, and a verifier in any
//! language can check it with standard tools. Its JSON Schema is
//! `manifests/manifest.v1.schema.json`; the tests keep the two in step.

pub mod canonical;
pub mod publish;
pub mod verify;

use crate::hash::Sha256Hash;
use crate::network::Network;
use serde::{Deserialize, Serialize};

/// The `schema` value of every v1 manifest.
pub const SCHEMA_V1: &str = "cybergov.manifest/v1";

/// A run's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// The network voted on.
    pub network: Network,
    /// The referendum index.
    pub referendum: u32,
    /// The run number (1-based; a rerun is run + 1).
    pub run: u32,
    /// Who produced this run, from what code, when.
    pub provenance: Provenance,
    /// The juror models and how they were run.
    pub models: Vec<ModelRecord>,
    /// Artefacts the jury read.
    pub inputs: Vec<ArtefactRef>,
    /// Artefacts the jury wrote.
    pub outputs: Vec<ArtefactRef>,
    /// The decision to be cast.
    pub decision: Decision,
    /// SHA-256 of the manifest of the most recent earlier run that has one (`null` for the
    /// first): re-votes form a hash chain. A failed run without a manifest is skipped.
    pub previous: Option<Sha256Hash>,
}

/// Where and from what a run was produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Source repository of the code that ran (URL).
    pub repository: String,
    /// Git commit of that code.
    pub commit: String,
    /// cybergov's version.
    pub cybergov_version: String,
    /// `local` or `github-actions`.
    pub runner: String,
    /// The runner's run id (GitHub Actions run id), if any.
    pub runner_run_id: Option<String>,
    /// The runner's attempt number, if any.
    pub runner_attempt: Option<u32>,
    /// Start, UTC, RFC 3339 with seconds.
    pub started_at: String,
    /// End, UTC, RFC 3339 with seconds.
    pub finished_at: String,
}

/// One juror's model and how it was run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRecord {
    /// Juror name (balthazar, melchior, caspar).
    pub juror: String,
    /// Backend: `candle` (local, re-executable) or `openai` (remote, provider-deterministic).
    pub backend: String,
    /// Model id, e.g. `SmolLM2-135M-Instruct`.
    pub model_id: String,
    /// SHA-256 of the model file as loaded (after requantization, if any).
    pub file_sha256: Option<Sha256Hash>,
    /// Quantization of the loaded weights, e.g. `Q8_0`.
    pub quantization: Option<String>,
    /// SHA-256 of the exact prompt text given to the model.
    pub prompt_sha256: Sha256Hash,
    /// Decoding parameters.
    pub decoding: Decoding,
    /// Whether re-running reproduces the output byte for byte.
    pub deterministic: bool,
    /// The arena's published decisions (`arena/{n}/decisions.json`) by which this model took
    /// the juror's seat, when it did (absent otherwise, so older manifests keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arena_decision: Option<ArtefactRef>,
}

/// Decoding parameters. Only greedy decoding is re-executable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    /// `greedy`.
    pub strategy: String,
    /// Maximum rationale length in tokens.
    pub max_new_tokens: u32,
    /// CPU threads used (results can depend on it through reduction order).
    pub threads: u32,
    /// Repetition penalty as exact decimal text (`"1"` = off); text because manifests hold no
    /// floats. Deterministic: it only rescales logits of recently seen tokens.
    pub repeat_penalty: String,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: u32,
}

/// A hashed artefact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtefactRef {
    /// Short name, e.g. `content.md` or `jurors/caspar.json`.
    pub name: String,
    /// Object key in the store (also the path under the public base URL).
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: Sha256Hash,
    /// Its length in bytes.
    pub bytes: u64,
}

impl ArtefactRef {
    /// Describes `bytes` stored at `path`.
    pub fn describe(name: impl Into<String>, path: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            sha256: Sha256Hash::of(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

/// The vote to cast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// aye, nay or abstain.
    pub vote: VoteKind,
    /// Conviction 0..=6 (0 = 0.1x, no lock). Always 0 for abstain.
    pub conviction: u8,
    /// Balance in planck, as decimal text (it may exceed JSON's safe integers).
    pub balance: String,
}

/// A vote direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteKind {
    /// In favour.
    Aye,
    /// Against.
    Nay,
    /// Neither; carries no delegated power.
    Abstain,
}

impl VoteKind {
    /// The option as the jurors are asked for it and as comments show it: `AYE`, `NAY`,
    /// `ABSTAIN`.
    pub fn label(self) -> &'static str {
        match self {
            VoteKind::Aye => "AYE",
            VoteKind::Nay => "NAY",
            VoteKind::Abstain => "ABSTAIN",
        }
    }
}

/// The manifest of the most recent run before `run` that has one: `(run, sha256)`.
pub async fn previous_manifest(
    store: &dyn crate::store::ObjectStore,
    layout: crate::store::layout::ReferendumLayout,
    run: u32,
) -> Result<Option<(u32, Sha256Hash)>, crate::store::StoreError> {
    use crate::store::layout::Artefact;
    for earlier in (1..run).rev() {
        let key = layout.run(earlier).key(&Artefact::Manifest);
        if let Some(bytes) = store.get_optional(&key).await? {
            return Ok(Some((earlier, Sha256Hash::of(&bytes))));
        }
    }
    Ok(None)
}

/// Why bytes are not a valid manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest's shape.
    #[error("manifest is not valid v1 JSON: {0}")]
    Parse(#[from] serde_json::Error),
    /// Valid JSON, but a rule of v1 is broken.
    #[error("manifest is invalid: {0}")]
    Invalid(String),
    /// Parsed, but the bytes are not the canonical serialization.
    #[error(
        "manifest bytes are not canonical JSON (re-serialized, they differ); it was edited or written by other code"
    )]
    NotCanonical,
    /// Could not serialize.
    #[error(transparent)]
    Canonical(#[from] canonical::CanonicalError),
}

impl Manifest {
    /// The run this manifest seals.
    pub fn id(&self) -> crate::records::run_id::RunId {
        crate::records::run_id::RunId::new(self.network, self.referendum, self.run)
    }

    /// The canonical bytes: what is stored, and what is hashed.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        Ok(canonical::to_vec(self)?)
    }

    /// SHA-256 of the canonical bytes: the on-chain hash.
    pub fn sha256(&self) -> Result<Sha256Hash, ManifestError> {
        Ok(Sha256Hash::of(&self.to_canonical_bytes()?))
    }

    /// Parses stored bytes, insisting they are canonical and valid.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        if canonical::to_vec(&m)? != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(m)
    }

    /// Checks the rules the type system does not.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |s: String| Err(ManifestError::Invalid(s));
        if self.schema != SCHEMA_V1 {
            return invalid(format!(
                "schema is {:?}, expected {SCHEMA_V1:?}",
                self.schema
            ));
        }
        if self.run == 0 {
            return invalid("run numbers start at 1".into());
        }
        if self.run == 1 && self.previous.is_some() {
            return invalid("`previous` must be null for run 1".into());
        }
        let run_prefix = crate::store::layout::ReferendumLayout::new(self.network, self.referendum)
            .run(self.run)
            .prefix();
        let mut names = std::collections::HashSet::new();
        for a in self.inputs.iter().chain(&self.outputs) {
            if !a.path.starts_with(&run_prefix) {
                return invalid(format!(
                    "artefact {:?} at {} lies outside this run's folder {run_prefix}",
                    a.name, a.path
                ));
            }
            if !names.insert(a.name.as_str()) {
                return invalid(format!("artefact name {:?} is listed twice", a.name));
            }
            if crate::store::ObjectKey::new(a.path.as_str()).is_err() {
                return invalid(format!(
                    "artefact {:?} has an invalid path {:?}",
                    a.name, a.path
                ));
            }
        }
        for m in &self.models {
            let Some(a) = &m.arena_decision else { continue };
            let is_decisions = a
                .path
                .strip_prefix(crate::store::layout::ArenaLayout::PREFIX)
                .and_then(|rest| rest.strip_suffix("/decisions.json"))
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
            if !is_decisions {
                return invalid(format!(
                    "juror {}'s arena_decision {} is not an arena publication's decisions.json",
                    m.juror, a.path
                ));
            }
        }
        if self.decision.conviction > 6 {
            return invalid(format!(
                "conviction {} is above 6",
                self.decision.conviction
            ));
        }
        if self.decision.vote == VoteKind::Abstain && self.decision.conviction != 0 {
            return invalid("an abstain vote has no conviction".into());
        }
        if self.decision.balance.is_empty()
            || !self.decision.balance.bytes().all(|b| b.is_ascii_digit())
            || self.decision.balance.parse::<u128>().is_err()
        {
            return invalid(format!(
                "decision.balance {:?} is not a planck amount (decimal digits)",
                self.decision.balance
            ));
        }
        Ok(())
    }

    /// All listed artefacts, inputs first, then the arena decisions the jurors' models rest on.
    pub fn artefacts(&self) -> impl Iterator<Item = &ArtefactRef> {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .chain(self.models.iter().filter_map(|m| m.arena_decision.as_ref()))
    }
}
