//! The good run every verifier must pass and the tampering it must catch, shared by
//! `cybergov verify` (tests/it/verify.rs) and `scripts/verify.sh` (tests/it/verify_sh.rs) so
//! that the two are held to the same cases and the same check names. Each case takes the
//! verifier under test — verify this run (its store served over HTTP, its devnet as the chain)
//! with these extra arguments, return the process output — and [`tamper_tests!`] declares them
//! all as tests of the calling crate. Every chain answer comes from chopsticks running the
//! devnet: the votes are cast by the real vote stage.

use super::voted_run::{VotedRun, make_unvoted_run, make_voted_run, other_vote, write_comment};
use cybergov::hash::Sha256Hash;
use cybergov::manifest::{Manifest, VoteKind};
use cybergov::store::layout::Artefact;
use std::process::Output;

/// Standard output and error, together.
pub fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The verdict: the last line of standard output.
pub fn verdict(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .trim_end()
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// The verifier exited 1 with the verdict FAIL and printed `FAIL <check>: …`.
pub fn assert_fails_naming(o: &Output, check: &str) {
    let text = out(o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(verdict(o).starts_with("FAIL"), "{text}");
    assert!(
        text.contains(&format!("FAIL {check}: ")),
        "no FAIL {check} in:\n{text}"
    );
}

/// `PASS <check>: ` is in the output.
pub fn assert_passes(o: &Output, check: &str) {
    let text = out(o);
    assert!(
        text.contains(&format!("PASS {check}: ")),
        "no PASS {check} in:\n{text}"
    );
}

/// Every check either verifier makes on a good voted run, in order.
pub const GOOD_RUN_CHECKS: &[&str] = &[
    "manifest hash",
    "manifest format",
    "manifest location",
    "artefact content.md",
    "artefact jurors/balthazar.json",
    "artefact jurors/melchior.json",
    "artefact jurors/caspar.json",
    "artefact vote.json",
    "jury",
    "juror balthazar vote",
    "juror melchior vote",
    "juror caspar vote",
    "tally",
    "forced abstain",
    "decision",
    "comment",
    "vote on chain",
    "remark on chain",
];

/// The untouched run passes every check, the verdict PASS last.
pub async fn a_good_voted_run_passes_every_check(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let o = verify(&run, &[]).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for check in GOOD_RUN_CHECKS {
        assert_passes(&o, check);
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(verdict(&o), "PASS", "{text}");
}

/// A run that was never voted: its artefacts agree, the chain has nothing: NOT VOTED, exit 3,
/// and exit 0 only when unvoted runs are allowed (a dry run).
pub async fn an_unvoted_run_is_not_voted(verify: impl AsyncFn(&VotedRun, &[&str]) -> Output) {
    let run = make_unvoted_run().await;
    let o = verify(&run, &[]).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert_eq!(verdict(&o), "NOT VOTED", "{text}");
    assert!(text.contains("NOT VOTED vote on chain: "), "{text}");
    assert!(text.contains("NOT VOTED remark on chain: "), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    let o = verify(&run, &["--allow-unvoted"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(verdict(&o), "NOT VOTED", "{}", out(&o));
}

/// receipt.json deleted: the vote is found on chain without it.
pub async fn a_voted_run_without_its_receipt_still_passes(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    std::fs::remove_file(run.file(&Artefact::Receipt)).unwrap();
    let o = verify(&run, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_passes(&o, "remark on chain");
    assert_passes(&o, "vote on chain");
    assert_eq!(verdict(&o), "PASS");
}

/// The run and the blocks to search can be given; a range that ends before the vote does not
/// find its remark (receipt.json's block outside the range is not searched either), while the
/// account's vote stands: FAIL, not NOT VOTED.
pub async fn a_block_range_is_searched_and_only_it(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let best = run.chain().best_number().await.to_string();
    let o = verify(
        &run,
        &["--run", "1", "--from-block", "0", "--to-block", &best],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_passes(&o, "remark on chain");
    let o = verify(&run, &["--from-block", "0", "--to-block", "0"]).await;
    assert_fails_naming(&o, "remark on chain");
    assert!(out(&o).contains("blocks 0..=0"), "{}", out(&o));
    assert_passes(&o, "vote on chain");
}

/// One flipped bit in a juror file fails that artefact, and only that one.
pub async fn one_changed_artefact_byte_fails_that_artefact(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let f = run.file(&Artefact::Juror("caspar".into()));
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "artefact jurors/caspar.json");
    assert_passes(&o, "artefact content.md");
}

/// A manifest edited into other canonical JSON fails its hash, and the chain no longer backs it.
pub async fn a_changed_manifest_fails_the_manifest_hash(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let f = run.file(&Artefact::Manifest);
    let text = std::fs::read_to_string(&f).unwrap();
    // Still canonical JSON, one digit of the start time changed.
    let changed = text.replacen("\"started_at\":\"20", "\"started_at\":\"21", 1);
    assert_ne!(changed, text);
    std::fs::write(&f, changed).unwrap();
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "manifest hash");
    assert_fails_naming(&o, "remark on chain");
}

/// A deleted artefact fails naming it.
pub async fn a_missing_artefact_fails_naming_it(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    std::fs::remove_file(run.file(&Artefact::Content)).unwrap();
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "artefact content.md");
    assert!(out(&o).contains("is missing"), "{}", out(&o));
}

/// The chain holds another vote than vote.json's, cast in the same batch as this manifest's
/// remark: the vote fails, the remark passes.
pub async fn a_chain_vote_that_differs_from_vote_json_fails_the_vote(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_unvoted_run().await;
    run.cast(Some(other_vote(&run.vote))).await;
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "vote on chain");
    assert!(out(&o).contains("the manifest decides"), "{}", out(&o));
    assert_passes(&o, "remark on chain");
}

/// A change to one JSON artefact.
pub type Edit = dyn Fn(&mut serde_json::Value);

/// Rewrites the JSON artefacts of the run with `edits` and fixes their hashes and lengths in
/// the manifest, then `manifest` edits the manifest, as a forger who controls the store would.
/// The manifest is written canonical again, latest.json points at it and the receipt is
/// removed, so no hash in the store gives the forgery away: only consistency and the chain can.
pub fn forge(run: &VotedRun, edits: &[(Artefact, &Edit)], manifest: &dyn Fn(&mut Manifest)) {
    let manifest_file = run.file(&Artefact::Manifest);
    let mut m = Manifest::from_canonical_bytes(&std::fs::read(&manifest_file).unwrap()).unwrap();
    for (artefact, edit) in edits {
        let file = run.file(artefact);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        edit(&mut value);
        let mut bytes = serde_json::to_vec_pretty(&value).unwrap();
        bytes.push(b'\n');
        std::fs::write(&file, &bytes).unwrap();
        let name = run.run_layout().key(artefact).as_str().to_owned();
        let listed = m
            .outputs
            .iter_mut()
            .find(|a| a.path == name)
            .expect("the artefact is listed");
        listed.sha256 = Sha256Hash::of(&bytes);
        listed.bytes = bytes.len() as u64;
    }
    manifest(&mut m);
    let bytes = m.to_canonical_bytes().unwrap();
    std::fs::write(&manifest_file, &bytes).unwrap();
    let latest = cybergov::store::layout::Latest {
        run: 1,
        manifest_sha256: Sha256Hash::of(&bytes),
    };
    let latest_file = run.root.join(run.run_layout().referendum.latest().as_str());
    std::fs::write(latest_file, serde_json::to_vec(&latest).unwrap()).unwrap();
    let _ = std::fs::remove_file(run.file(&Artefact::Receipt));
    let _ = std::fs::remove_file(run.file(&Artefact::Comment));
}

fn jurors() -> [Artefact; 3] {
    ["balthazar", "melchior", "caspar"].map(|j| Artefact::Juror(j.into()))
}

/// The vote the jurors did not give: NAY when they all said AYE, else AYE.
fn other_kind(run: &VotedRun) -> (VoteKind, &'static str) {
    if run.vote.jurors.iter().all(|j| j.vote == VoteKind::Aye) {
        (VoteKind::Nay, "nay")
    } else {
        (VoteKind::Aye, "aye")
    }
}

/// Every juror file and vote.json rewritten to one vote, all hashes fixed: the jurors' own
/// scores still give their real votes, so the forgery fails.
pub async fn a_consistent_forgery_of_every_vote_is_caught(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let (target, word) = other_kind(&run);
    let juror = move |v: &mut serde_json::Value| v["vote"] = word.into();
    let vote = move |v: &mut serde_json::Value| {
        for j in v["jurors"].as_array_mut().unwrap() {
            j["vote"] = word.into();
        }
        v["decision"] = word.into();
    };
    let [b, m, c] = jurors();
    forge(
        &run,
        &[
            (b, &juror),
            (m, &juror),
            (c, &juror),
            (Artefact::Vote, &vote),
        ],
        &|m| m.decision.vote = target,
    );
    let o = verify(&run, &[]).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert_passes(&o, "manifest hash");
    assert!(
        text.contains("but its own scores give"),
        "no juror vote check failed:\n{text}"
    );
}

/// As above, with every juror's scores rewritten too, so the run agrees with itself: only the
/// chain can tell, and it does (the remark it carries is the honest manifest's).
pub async fn scores_rewritten_with_the_votes_are_not_a_pass(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let (target, word) = other_kind(&run);
    let option = word.to_uppercase();
    let juror = move |v: &mut serde_json::Value| {
        v["vote"] = word.into();
        for s in v["scores"].as_array_mut().unwrap() {
            let logprob = if s["option"] == option.as_str() {
                0.0
            } else {
                -9.0
            };
            s["logprob"] = logprob.into();
        }
    };
    let vote = move |v: &mut serde_json::Value| {
        for j in v["jurors"].as_array_mut().unwrap() {
            j["vote"] = word.into();
        }
        v["decision"] = word.into();
        // AYE and NAY carry a conviction; the tiny jurors' own decision may have been ABSTAIN.
        v["conviction"] = v["conviction"].as_u64().unwrap_or(0).max(1).into();
    };
    let [b, m, c] = jurors();
    forge(
        &run,
        &[
            (b, &juror),
            (m, &juror),
            (c, &juror),
            (Artefact::Vote, &vote),
        ],
        &|m| {
            m.decision.vote = target;
            m.decision.conviction = m.decision.conviction.max(1);
        },
    );
    let o = verify(&run, &[]).await;
    let text = out(&o);
    assert_ne!(verdict(&o), "PASS", "{text}");
    assert_ne!(o.status.code(), Some(0), "{text}");
    for check in ["juror caspar vote", "tally", "decision"] {
        assert_passes(&o, check);
    }
    assert_fails_naming(&o, "remark on chain");
}

/// A manifest naming no juror, with no juror files and an empty tally, re-sealed: FAIL.
pub async fn an_empty_jury_fails(verify: impl AsyncFn(&VotedRun, &[&str]) -> Output) {
    let run = make_voted_run().await;
    let no_jurors = |v: &mut serde_json::Value| {
        v["jurors"] = serde_json::json!([]);
        v["counts"] = serde_json::json!({"aye": 0, "nay": 0, "abstain": 0});
    };
    forge(&run, &[(Artefact::Vote, &no_jurors)], &|m| {
        m.models.clear();
        m.outputs.retain(|a| !a.name.starts_with("jurors/"));
    });
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "jury");
    assert_fails_naming(&o, "tally");
}

/// vote.json forcing ABSTAIN that no augmentation policy asked for: FAIL.
pub async fn an_unjustified_forced_abstain_fails(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let forced = |v: &mut serde_json::Value| {
        v["forced_abstain"] = "the proposal links to content we cannot read".into();
        v["decision"] = "abstain".into();
        v["conviction"] = 0.into();
    };
    forge(&run, &[(Artefact::Vote, &forced)], &|m| {
        m.decision.vote = VoteKind::Abstain;
        m.decision.conviction = 0;
    });
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "forced abstain");
    assert_passes(&o, "tally");
    assert_passes(&o, "decision");
}

/// A comment stating another decision than the run's: FAIL, though it names every word.
pub async fn a_comment_stating_another_decision_fails(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let other = if run.vote.decision == VoteKind::Nay {
        VoteKind::Aye
    } else {
        VoteKind::Nay
    };
    write_comment(&run, other);
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "comment");
    assert_passes(&o, "vote on chain");
}

/// The manifest's decision changed alone (re-sealed): it contradicts vote.json and the chain.
pub async fn a_manifest_decision_changed_alone_fails(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let (target, _) = other_kind(&run);
    forge(&run, &[], &|m| m.decision.vote = target);
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "decision");
    assert_fails_naming(&o, "remark on chain");
}

/// vote.json and the manifest say NAY while every juror file says otherwise: the tally fails.
pub async fn a_decision_that_contradicts_the_jurors_is_caught(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let to_nay = |v: &mut serde_json::Value| v["decision"] = "nay".into();
    let jurors_say_nay = run.vote.jurors.iter().all(|j| j.vote == VoteKind::Nay);
    assert!(
        !jurors_say_nay,
        "the tiny jurors must not all vote NAY here"
    );
    forge(&run, &[(Artefact::Vote, &to_nay)], &|m| {
        m.decision.vote = VoteKind::Nay
    });
    let o = verify(&run, &[]).await;
    assert_fails_naming(&o, "tally");
    assert!(out(&o).contains("vote.json decides NAY"), "{}", out(&o));
    assert_passes(&o, "decision");
}

/// Voted, then one artefact changed in a way that keeps the run consistent (a rationale) and
/// the manifest re-sealed: every store check passes, the remark on chain does not.
pub async fn a_resealed_run_fails_the_remark_on_chain(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_voted_run().await;
    let rationale = |v: &mut serde_json::Value| {
        v["rationale"] = "A better-sounding rationale, written afterwards.".into()
    };
    forge(
        &run,
        &[(Artefact::Juror("caspar".into()), &rationale)],
        &|_| {},
    );
    let o = verify(&run, &[]).await;
    for check in [
        "manifest hash",
        "artefact jurors/caspar.json",
        "tally",
        "vote on chain",
    ] {
        assert_passes(&o, check);
    }
    assert_fails_naming(&o, "remark on chain");
    assert!(out(&o).contains("voted on referendum"), "{}", out(&o));
}

/// The verifiers name where the jurors ran: the GitHub Actions run behind a manifest (and a
/// re-run attempt, the sign of a re-rolled vote), or that a local run left no public record.
pub async fn the_workflow_run_behind_a_manifest_is_named(
    verify: impl AsyncFn(&VotedRun, &[&str]) -> Output,
) {
    let run = make_unvoted_run().await;
    let o = verify(&run, &[]).await;
    assert!(
        out(&o).contains("NOTE inference ran on the local runner"),
        "{}",
        out(&o)
    );
    forge(&run, &[], &|m| {
        m.provenance.runner = "github-actions".into();
        m.provenance.repository = "https://github.com/cybergov/cybergov".into();
        m.provenance.runner_run_id = Some("987654".into());
        m.provenance.runner_attempt = Some(2);
    });
    let o = verify(&run, &[]).await;
    let text = out(&o);
    assert!(
        text.contains("NOTE inference ran in GitHub Actions run https://github.com/cybergov/cybergov/actions/runs/987654, attempt 2 — the workflow was re-run"),
        "{text}"
    );
}

/// Declares every case of this module as a test of the calling crate, verifying with `$verify`
/// (an `async fn(&VotedRun, &[&str]) -> Output`).
#[macro_export]
macro_rules! tamper_tests {
    ($verify:path) => {
        $crate::tamper_tests!(@each $verify;
            a_good_voted_run_passes_every_check,
            an_unvoted_run_is_not_voted,
            a_voted_run_without_its_receipt_still_passes,
            a_block_range_is_searched_and_only_it,
            one_changed_artefact_byte_fails_that_artefact,
            a_changed_manifest_fails_the_manifest_hash,
            a_missing_artefact_fails_naming_it,
            a_chain_vote_that_differs_from_vote_json_fails_the_vote,
            a_consistent_forgery_of_every_vote_is_caught,
            scores_rewritten_with_the_votes_are_not_a_pass,
            an_empty_jury_fails,
            an_unjustified_forced_abstain_fails,
            a_comment_stating_another_decision_fails,
            a_manifest_decision_changed_alone_fails,
            a_decision_that_contradicts_the_jurors_is_caught,
            a_resealed_run_fails_the_remark_on_chain,
            the_workflow_run_behind_a_manifest_is_named
        );
    };
    (@each $verify:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::common::tamper::$case($verify).await
            }
        )*
    };
}
