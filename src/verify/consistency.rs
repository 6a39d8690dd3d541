//! Does the run agree with itself? Hashes prove that the artefacts are the ones the manifest
//! lists; these checks prove that what they say follows from one another, so a run rewritten
//! consistently (every hash fixed) still fails unless its reasoning holds. None can be skipped:
//! a record that does not parse fails its check.
//!
//! - `jury`: one juror file per `models` entry of the manifest, and at least one juror;
//! - `juror <name> vote`: each juror's vote is the one its own recorded scores give;
//! - `tally`: `vote.json` lists exactly those votes, and its decision is their tally under the
//!   recorded rule, or ABSTAIN when the augmentation policy forced it;
//! - `forced abstain`: `vote.json` forces ABSTAIN exactly when the hashed `augment.json` says
//!   so, for the reason it gives (no augment.json listed: nothing may be forced);
//! - `arena decision <name>`: a juror's model seated by the arena is the candidate that a
//!   decision in the referenced `decisions.json` replaces a model with;
//! - `decision`: the manifest's decision is `vote.json`'s;
//! - `comment`: a recorded comment carries this manifest's hash and states this decision in
//!   its headline (every comment names all three words in its tally line).

use super::check;
use crate::hash::Sha256Hash;
use crate::magi::tally::{TallyRule, decide};
use crate::manifest::verify::Check;
use crate::manifest::{Manifest, VoteKind};
use crate::records::arena::DecisionsRecord;
use crate::records::augment::AugmentRecord;
use crate::records::comment::{CommentRecord, headline};
use crate::records::juror::{JurorRecord, choose};
use crate::records::vote::{JurorVote, VoteRecord};
use crate::store::layout::{Artefact, ReferendumLayout, RunLayout};
use crate::store::{ObjectKey, ObjectStore};
use crate::subsquare::sima::CommentEntity;
use std::collections::BTreeSet;

/// The consistency checks of `manifest`'s run in `store`.
pub async fn check_consistency(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    manifest_sha256: Sha256Hash,
) -> Vec<Check> {
    let run = ReferendumLayout::new(manifest.network, manifest.referendum).run(manifest.run);
    let mut checks = vec![jury_check(manifest)];
    let mut votes = Vec::new();
    for m in &manifest.models {
        let key = run.key(&Artefact::Juror(m.juror.clone()));
        let name = format!("juror {} vote", m.juror);
        let record = match read::<JurorRecord>(store, &key).await {
            Ok(r) => r,
            Err(e) => {
                checks.push(check(false, name, e));
                continue;
            }
        };
        let follows = choose(&record.scores);
        let named = record.juror == m.juror;
        checks.push(check(
            follows == record.vote && named,
            name,
            if !named {
                format!("{key} is juror {}'s record", record.juror)
            } else if follows == record.vote {
                format!("{} follows from its scores", record.vote.label())
            } else {
                format!(
                    "records {} but its own scores give {}",
                    record.vote.label(),
                    follows.label()
                )
            },
        ));
        votes.push(JurorVote {
            juror: record.juror,
            vote: record.vote,
        });
    }
    // A model the arena seated: the decisions it names must replace a juror's model with it.
    for m in &manifest.models {
        let Some(a) = &m.arena_decision else { continue };
        let name = format!("arena decision {}", m.juror);
        let record = match ObjectKey::new(a.path.as_str()) {
            Ok(key) => read::<DecisionsRecord>(store, &key).await,
            Err(e) => Err(e.to_string()),
        };
        checks.push(match record {
            Ok(r) if r.replacing(&m.model_id).is_some() => {
                check(true, name, format!("{} seats {}", a.path, m.model_id))
            }
            Ok(_) => check(
                false,
                name,
                format!(
                    "{} holds no decision replacing a juror's model with {}",
                    a.path, m.model_id
                ),
            ),
            Err(e) => check(false, name, e),
        });
    }
    let vote = match read::<VoteRecord>(store, &run.key(&Artefact::Vote)).await {
        Ok(v) => v,
        Err(e) => {
            for name in ["tally", "forced abstain", "decision", "comment"] {
                checks.push(check(false, name, format!("vote.json: {e}")));
            }
            return checks;
        }
    };
    checks.push(tally_check(&vote, &votes));
    checks.push(forced_abstain_check(store, manifest, &run, &vote).await);
    checks.push(decision_check(manifest, &vote));
    checks.push(comment_check(store, manifest, &run, manifest_sha256, vote.decision).await);
    checks
}

/// One juror file per model entry, at least one, each listed once among the outputs.
fn jury_check(manifest: &Manifest) -> Check {
    let models: BTreeSet<String> = manifest
        .models
        .iter()
        .map(|m| format!("jurors/{}.json", m.juror))
        .collect();
    let files: BTreeSet<String> = manifest
        .outputs
        .iter()
        .filter(|a| a.name.starts_with("jurors/"))
        .map(|a| a.name.clone())
        .collect();
    if models.is_empty() {
        return check(
            false,
            "jury",
            "the manifest names no juror: an empty jury decides nothing",
        );
    }
    if models.len() != manifest.models.len() {
        return check(false, "jury", "the manifest names a juror twice");
    }
    if models != files {
        return check(
            false,
            "jury",
            format!(
                "the models are {} but the juror files are {}",
                join(&models),
                join(&files)
            ),
        );
    }
    check(
        true,
        "jury",
        format!("{} jurors, one file each", models.len()),
    )
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// vote.json's jurors are the juror files' votes, and its decision is their tally.
fn tally_check(vote: &VoteRecord, jurors: &[JurorVote]) -> Check {
    let mut listed = vote.jurors.clone();
    let mut found = jurors.to_vec();
    listed.sort_by(|a, b| a.juror.cmp(&b.juror));
    found.sort_by(|a, b| a.juror.cmp(&b.juror));
    if listed.is_empty() {
        return check(false, "tally", "vote.json tallies no juror");
    }
    if listed != found {
        return check(
            false,
            "tally",
            "vote.json's juror votes are not the juror files' votes",
        );
    }
    let Some(rule) = TallyRule::from_id(&vote.rule) else {
        return check(
            false,
            "tally",
            format!("unknown tally rule {:?}", vote.rule),
        );
    };
    let kinds: Vec<VoteKind> = found.iter().map(|j| j.vote).collect();
    let (tallied, _) = decide(rule, &kinds);
    let expected = if vote.forced_abstain.is_some() {
        VoteKind::Abstain
    } else {
        tallied
    };
    check(
        expected == vote.decision,
        "tally",
        if expected == vote.decision {
            format!("{} under {}", expected.label(), vote.rule)
        } else {
            format!(
                "vote.json decides {} but its jurors' votes give {} under {}",
                vote.decision.label(),
                expected.label(),
                vote.rule
            )
        },
    )
}

/// vote.json forces ABSTAIN exactly when augment.json's policy did, for the same reason.
async fn forced_abstain_check(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    run: &RunLayout,
    vote: &VoteRecord,
) -> Check {
    let name = "forced abstain";
    let augment = Artefact::Augment;
    let listed = manifest
        .inputs
        .iter()
        .any(|a| a.name == augment.file_name());
    let policy = if listed {
        match read::<AugmentRecord>(store, &run.key(&augment)).await {
            Ok(r) => r.abstain.map(|a| a.reason),
            Err(e) => return check(false, name, e),
        }
    } else {
        None
    };
    match (&policy, &vote.forced_abstain) {
        (None, None) => check(true, name, "no policy forced ABSTAIN, and none was forced"),
        (Some(p), Some(v)) if p == v => check(true, name, format!("augment.json forced it: {p}")),
        (Some(p), Some(v)) => check(
            false,
            name,
            format!("vote.json gives {v:?}, augment.json {p:?}"),
        ),
        (Some(p), None) => check(
            false,
            name,
            format!("augment.json forces ABSTAIN ({p}) but vote.json does not"),
        ),
        (None, Some(v)) => check(
            false,
            name,
            if listed {
                format!("vote.json forces ABSTAIN ({v}) but augment.json's policy did not")
            } else {
                format!("vote.json forces ABSTAIN ({v}) but the manifest lists no augment.json")
            },
        ),
    }
}

/// The manifest's decision is vote.json's.
fn decision_check(manifest: &Manifest, vote: &VoteRecord) -> Check {
    let d = &manifest.decision;
    let same =
        d.vote == vote.decision && d.conviction == vote.conviction && d.balance == vote.balance;
    check(
        same,
        "decision",
        if same {
            format!(
                "the manifest's decision is vote.json's ({})",
                vote.decision.label()
            )
        } else {
            format!(
                "the manifest says {} (conviction {}, balance {}), vote.json {} (conviction {}, balance {})",
                d.vote.label(),
                d.conviction,
                d.balance,
                vote.decision.label(),
                vote.conviction,
                vote.balance
            )
        },
    )
}

/// A recorded comment carries this manifest's hash and states this decision in its headline.
async fn comment_check(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    run: &RunLayout,
    manifest_sha256: Sha256Hash,
    decision: VoteKind,
) -> Check {
    let name = "comment";
    let key = run.key(&Artefact::Comment);
    let bytes = match store.get_optional(&key).await {
        Ok(Some(b)) => b,
        Ok(None) => return check(true, name, "no comment recorded yet"),
        Err(e) => return check(false, name, e.to_string()),
    };
    let record = match CommentRecord::from_bytes(&bytes) {
        Ok(r) => r,
        Err(e) => return check(false, name, format!("{key}: {e}")),
    };
    let hash = manifest_sha256.to_hex();
    if record.manifest_sha256 != manifest_sha256 {
        return check(
            false,
            name,
            format!(
                "comment.json is for manifest {}, not {hash}",
                record.manifest_sha256
            ),
        );
    }
    let Some(entity) = &record.entity else {
        return if record.posted {
            check(false, name, "comment.json says posted but holds no entity")
        } else {
            check(
                true,
                name,
                format!(
                    "an existing comment carries manifest {hash} ({})",
                    record
                        .skipped_reason
                        .as_deref()
                        .unwrap_or("no reason given")
                ),
            )
        };
    };
    let entity: CommentEntity = match serde_json::from_str(entity) {
        Ok(e) => e,
        Err(e) => return check(false, name, format!("{key}: its entity: {e}")),
    };
    let heading = headline(manifest.network, manifest.referendum, decision);
    let states = entity.content.contains(&heading);
    let carries = entity.content.contains(&hash);
    match (states, carries) {
        (true, true) => check(
            true,
            name,
            format!("states {heading:?} with manifest {hash}"),
        ),
        (false, _) => check(false, name, format!("does not state {heading:?}")),
        (true, false) => check(false, name, format!("does not carry manifest {hash}")),
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
) -> Result<T, String> {
    let bytes = store.get(key).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))
}
