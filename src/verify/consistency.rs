//! Does the run agree with itself? Hashes prove that the artefacts are the ones the manifest
//! lists; these checks prove that what they say follows from one another, so a run rewritten
//! consistently (every hash fixed) still fails unless its reasoning holds:
//!
//! - each juror's vote is the one its own recorded scores give (`juror <name> vote`);
//! - `vote.json` lists exactly those votes, and its decision is their tally under the recorded
//!   rule, or ABSTAIN when the augmentation policy forced it (`tally`);
//! - the manifest's decision is `vote.json`'s (`decision`);
//! - a posted comment carries this manifest's hash and states the same decision (`comment`).

use super::check;
use crate::hash::Sha256Hash;
use crate::magi::juror::{JurorRecord, choose};
use crate::magi::tally::{JurorVote, TallyRule, VoteRecord, decide};
use crate::manifest::verify::Check;
use crate::manifest::{Manifest, VoteKind};
use crate::store::ObjectStore;
use crate::store::layout::{Artefact, ReferendumLayout};

/// The consistency checks of `manifest`'s run in `store`.
pub async fn check_consistency(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    manifest_sha256: Sha256Hash,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let run = ReferendumLayout::new(manifest.network, manifest.referendum).run(manifest.run);
    let mut votes = Vec::new();
    for a in manifest
        .outputs
        .iter()
        .filter(|a| a.name.starts_with("jurors/"))
    {
        let key = run.key(&Artefact::Juror(
            a.name
                .trim_start_matches("jurors/")
                .trim_end_matches(".json")
                .to_owned(),
        ));
        let record = match read::<JurorRecord>(store, &key).await {
            Ok(r) => r,
            Err(e) => {
                checks.push(check(false, format!("juror {}", a.name), e));
                continue;
            }
        };
        let follows = choose(&record.scores);
        checks.push(check(
            follows == record.vote,
            format!("juror {} vote", record.juror),
            if follows == record.vote {
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
    let vote = match read::<VoteRecord>(store, &run.key(&Artefact::Vote)).await {
        Ok(v) => v,
        Err(e) => {
            checks.push(check(false, "tally", e));
            return checks;
        }
    };
    checks.push(tally_check(&vote, &votes));
    let d = &manifest.decision;
    let same =
        d.vote == vote.decision && d.conviction == vote.conviction && d.balance == vote.balance;
    checks.push(check(
        same,
        "decision",
        if same {
            format!("the manifest's decision is vote.json's ({})", vote.decision.label())
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
    ));
    let comment_key = run.key(&Artefact::Comment);
    if let Some(c) = comment_check(store, &comment_key, manifest_sha256, vote.decision).await {
        checks.push(c);
    }
    checks
}

/// vote.json's jurors are the juror files' votes, and its decision is their tally.
fn tally_check(vote: &VoteRecord, jurors: &[JurorVote]) -> Check {
    let mut listed = vote.jurors.clone();
    let mut found = jurors.to_vec();
    listed.sort_by(|a, b| a.juror.cmp(&b.juror));
    found.sort_by(|a, b| a.juror.cmp(&b.juror));
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

/// A recorded comment must carry this manifest's hash and the decision's word.
async fn comment_check(
    store: &dyn ObjectStore,
    key: &crate::store::ObjectKey,
    manifest_sha256: Sha256Hash,
    decision: VoteKind,
) -> Option<Check> {
    let bytes = store.get_optional(key).await.ok()??;
    let record: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let content = record.pointer("/entity/content").and_then(|c| c.as_str())?;
    let hash = manifest_sha256.to_hex();
    let word = decision.label();
    let ok = content.contains(&hash) && content.contains(word);
    Some(check(
        ok,
        "comment",
        if ok {
            format!("states {word} and manifest {hash}")
        } else {
            format!("does not state {word} with manifest {hash}")
        },
    ))
}

async fn read<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &crate::store::ObjectKey,
) -> Result<T, String> {
    let bytes = store.get(key).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))
}
