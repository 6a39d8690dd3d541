//! The artefact key layout (docs/DESIGN.md §3) — the only place that spells it.
//!
//! ```text
//! proposals/{network}/{ref_id}/
//!   runs/{run}/raw_subsquare.json   runs/{run}/content.md   runs/{run}/augment.json
//!   runs/{run}/jurors/{name}.json   runs/{run}/vote.json    runs/{run}/manifest.json
//!   runs/{run}/receipt.json         runs/{run}/comment.json runs/{run}/inference.log
//!   runs/{run}/submission-{n}.json vote.dry-run.json     comment.preview.md
//!   latest.json
//!
//! arena/{publication}/battles.json  ratings.json  decisions.json  manifest.json
//! arena/latest.json
//! ```
//!
//! Runs are append-only: a rerun is `run + 1`, never a rewrite, so every link ever published
//! (in a comment, in a remark) keeps pointing at the bytes it was published for.

use super::{ObjectKey, ObjectStore, StoreError};
use crate::network::Network;
use serde::{Deserialize, Serialize};

/// One artefact of a run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Artefact {
    /// Subsquare's detail response, byte for byte.
    RawSubsquare,
    /// Cleaned proposal text + neutral analysis: the jurors' input.
    Content,
    /// Neutral Q&A and flags.
    Augment,
    /// One juror's output.
    Juror(String),
    /// The tally.
    Vote,
    /// The manifest; its SHA-256 goes on chain.
    Manifest,
    /// Inclusion receipt of the vote extrinsic.
    Receipt,
    /// The posted Subsquare comment.
    Comment,
    /// The inference runner's log, archived because CI systems expire logs.
    InferenceLog,
    /// Attempt `n` (from 1) of the signed vote extrinsic, recorded before it is sent, so that a
    /// crashed vote stage finds it on chain instead of voting twice.
    Submission(u32),
    /// The record that this run's vote stage ran as a dry run: nothing was sent.
    DryRun,
    /// The comment a dry run would have posted, rendered and kept, never posted.
    CommentPreview,
    /// The GitHub workflow run the infer stage dispatched, recorded before it was sent.
    InferenceDispatch,
    /// This run votes again on purpose, after an earlier run's vote.
    Revote,
}

impl Artefact {
    /// The path of this artefact inside its run folder.
    pub fn file_name(&self) -> String {
        match self {
            Artefact::RawSubsquare => "raw_subsquare.json".into(),
            Artefact::Content => "content.md".into(),
            Artefact::Augment => "augment.json".into(),
            Artefact::Juror(name) => format!("jurors/{name}.json"),
            Artefact::Vote => "vote.json".into(),
            Artefact::Manifest => "manifest.json".into(),
            Artefact::Receipt => "receipt.json".into(),
            Artefact::Comment => "comment.json".into(),
            Artefact::InferenceLog => "inference.log".into(),
            Artefact::Submission(n) => format!("submission-{n}.json"),
            Artefact::DryRun => "vote.dry-run.json".into(),
            Artefact::CommentPreview => "comment.preview.md".into(),
            Artefact::InferenceDispatch => "inference-dispatch.json".into(),
            Artefact::Revote => "revote.json".into(),
        }
    }
}

/// The folder of one referendum on one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReferendumLayout {
    /// The network.
    pub network: Network,
    /// The referendum index.
    pub referendum: u32,
}

impl ReferendumLayout {
    /// The referendum's folder.
    pub fn new(network: Network, referendum: u32) -> Self {
        Self {
            network,
            referendum,
        }
    }

    /// `proposals/{network}/{ref}/`.
    pub fn prefix(&self) -> String {
        format!("proposals/{}/{}/", self.network, self.referendum)
    }

    /// `latest.json`: which run is current.
    pub fn latest(&self) -> ObjectKey {
        key(format!("{}latest.json", self.prefix()))
    }

    /// The layout of run `run` (1-based).
    pub fn run(&self, run: u32) -> RunLayout {
        RunLayout {
            referendum: *self,
            run,
        }
    }

    /// The runs that exist in `store` (those with at least one object), ascending.
    pub async fn runs(&self, store: &dyn ObjectStore) -> Result<Vec<u32>, StoreError> {
        let runs_prefix = format!("{}runs/", self.prefix());
        let mut runs: Vec<u32> = store
            .list(&runs_prefix)
            .await?
            .iter()
            .filter_map(|k| {
                k.as_str()
                    .strip_prefix(&runs_prefix)?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        runs.sort_unstable();
        runs.dedup();
        Ok(runs)
    }

    /// Reads `latest.json`, if the referendum has one.
    pub async fn read_latest(&self, store: &dyn ObjectStore) -> Result<Option<Latest>, StoreError> {
        let Some(bytes) = store.get_optional(&self.latest()).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            StoreError::Config(format!("{} is not valid latest.json: {e}", self.latest()))
        })
    }
}

/// The folder of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunLayout {
    /// The referendum.
    pub referendum: ReferendumLayout,
    /// Run number, 1-based.
    pub run: u32,
}

impl RunLayout {
    /// `proposals/{network}/{ref}/runs/{run}/`.
    pub fn prefix(&self) -> String {
        format!("{}runs/{}/", self.referendum.prefix(), self.run)
    }

    /// The key of `artefact` in this run.
    pub fn key(&self, artefact: &Artefact) -> ObjectKey {
        key(format!("{}{}", self.prefix(), artefact.file_name()))
    }
}

/// Contents of `latest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// The current run.
    pub run: u32,
    /// SHA-256 of that run's manifest.json.
    pub manifest_sha256: crate::hash::Sha256Hash,
}

/// One publication of the arena's results (issue #16): the battles, the ratings and the upgrade
/// decisions, with a manifest over them. Publications are numbered from 1 and never rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArenaLayout {
    /// The publication's number.
    pub publication: u32,
}

/// The arena's files.
pub const ARENA_FILES: [&str; 3] = ["battles.json", "ratings.json", "decisions.json"];

impl ArenaLayout {
    /// `arena/`: every publication's folder is under it.
    pub const PREFIX: &'static str = "arena/";

    /// `arena/latest.json`: which publication is current.
    pub fn latest() -> ObjectKey {
        key(format!("{}latest.json", Self::PREFIX))
    }

    /// `arena/{publication}/`.
    pub fn prefix(&self) -> String {
        format!("{}{}/", Self::PREFIX, self.publication)
    }

    /// `arena/{publication}/{file}`, `file` one of [`ARENA_FILES`] or `manifest.json`.
    pub fn key(&self, file: &str) -> ObjectKey {
        key(format!("{}{file}", self.prefix()))
    }

    /// The publications in `store` (those with at least one object), ascending.
    pub async fn publications(store: &dyn ObjectStore) -> Result<Vec<u32>, StoreError> {
        let mut found: Vec<u32> = store
            .list(Self::PREFIX)
            .await?
            .iter()
            .filter_map(|k| {
                k.as_str()
                    .strip_prefix(Self::PREFIX)?
                    .split_once('/')?
                    .0
                    .parse()
                    .ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}

/// Contents of `arena/latest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaLatest {
    /// The current publication.
    pub publication: u32,
    /// SHA-256 of its manifest.json.
    pub manifest_sha256: crate::hash::Sha256Hash,
}

fn key(s: String) -> ObjectKey {
    ObjectKey::new(s).expect("layout keys are valid by construction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_design() {
        let r = ReferendumLayout::new(Network::Polkadot, 123).run(2);
        assert_eq!(
            r.key(&Artefact::Juror("caspar".into())).as_str(),
            "proposals/polkadot/123/runs/2/jurors/caspar.json"
        );
        assert_eq!(
            r.key(&Artefact::Manifest).as_str(),
            "proposals/polkadot/123/runs/2/manifest.json"
        );
        assert_eq!(
            r.referendum.latest().as_str(),
            "proposals/polkadot/123/latest.json"
        );
    }
}
