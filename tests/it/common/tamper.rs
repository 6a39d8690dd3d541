//! The good run every verifier must pass and the tampering it must catch, shared by `cybergov verify` (tests/verify.rs) and
//! `scripts/verify.sh` (tests/verify_sh.rs) so that the two are held to the same cases and the
//! same check names. Each case takes the verifier under test — serve this run with this block as
//! the chain, verify it, return the process output — and [`tamper_tests!`] declares them all as
//! tests of the calling crate.

use super::voted_run::{
    NETWORK, REFERENDUM, VotedRun, make_voted_run, other_vote, set_remark, set_vote,
};
use cybergov::hash::Sha256Hash;
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

/// The verifier exited 1 and printed `FAIL <check>: …`.
pub fn assert_fails_naming(o: &Output, check: &str) {
    let text = out(o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("FAIL {check}: ")),
        "no FAIL {check} in:\n{text}"
    );
}

/// The untouched run passes every check, the verdict PASS last.
pub async fn a_good_voted_run_passes_every_check(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let o = verify(&run, run.block.clone()).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for check in [
        "manifest hash",
        "manifest format",
        "manifest location",
        "juror balthazar vote",
        "juror melchior vote",
        "juror caspar vote",
        "tally",
        "decision",
        "artefact content.md",
        "artefact jurors/balthazar.json",
        "artefact jurors/melchior.json",
        "artefact jurors/caspar.json",
        "artefact vote.json",
        "receipt",
        "extrinsic",
        "remark",
        "vote on chain",
    ] {
        assert!(
            text.contains(&format!("PASS {check}: ")),
            "no PASS {check} in:\n{text}"
        );
    }
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end().lines().last(),
        Some("PASS"),
        "{text}"
    );
}

/// One flipped bit in a juror file fails that artefact, and only that one.
pub async fn one_changed_artefact_byte_fails_that_artefact(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let f = run.file(&Artefact::Juror("caspar".into()));
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    let o = verify(&run, run.block.clone()).await;
    assert_fails_naming(&o, "artefact jurors/caspar.json");
    assert!(out(&o).contains("PASS artefact content.md"), "{}", out(&o));
}

/// A manifest edited into other canonical JSON fails its hash, and the chain's remark.
pub async fn a_changed_manifest_fails_the_manifest_hash(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let f = run.file(&Artefact::Manifest);
    let text = std::fs::read_to_string(&f).unwrap();
    // Still canonical JSON, one digit of the start time changed.
    let changed = text.replacen("\"started_at\":\"20", "\"started_at\":\"21", 1);
    assert_ne!(changed, text);
    std::fs::write(&f, changed).unwrap();
    let o = verify(&run, run.block.clone()).await;
    assert_fails_naming(&o, "manifest hash");
    // The chain still commits to the original: the remark and receipt disagree too.
    assert_fails_naming(&o, "remark");
}

/// A deleted artefact fails naming it.
pub async fn a_missing_artefact_fails_naming_it(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    std::fs::remove_file(run.file(&Artefact::Content)).unwrap();
    let o = verify(&run, run.block.clone()).await;
    assert_fails_naming(&o, "artefact content.md");
    assert!(out(&o).contains("is missing"), "{}", out(&o));
}

/// A remark on chain committing to another manifest fails the remark, not the vote.
pub async fn a_remark_with_another_hash_fails_the_remark(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let mut block = run.block.clone();
    let other = Sha256Hash::of(b"another manifest");
    set_remark(
        &mut block,
        &cybergov::chain::remark_text(NETWORK, REFERENDUM, 1, &other),
    );
    let o = verify(&run, block).await;
    assert_fails_naming(&o, "remark");
    assert!(out(&o).contains(&other.to_hex()), "{}", out(&o));
    assert!(out(&o).contains("PASS vote on chain"), "{}", out(&o));
}

/// A vote on chain other than `vote.json`'s fails the vote, not the remark.
pub async fn a_chain_vote_that_differs_from_vote_json_fails_the_vote(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let mut block = run.block.clone();
    set_vote(&mut block, other_vote(&run.vote));
    let o = verify(&run, block).await;
    assert_fails_naming(&o, "vote on chain");
    assert!(out(&o).contains("vote.json asks for"), "{}", out(&o));
    assert!(out(&o).contains("PASS remark"), "{}", out(&o));
}

/// A change to one JSON artefact.
pub type Edit = dyn Fn(&mut serde_json::Value);

/// Rewrites the JSON artefact `name` of the run with `edit` and fixes its hash and length in the
/// manifest, as a forger who controls the store would; `decision` rewrites the manifest's
/// decision too. The manifest is written canonical again and latest.json points at it, and the
/// receipt is removed, so no hash in the store gives the forgery away.
pub fn forge(
    run: &VotedRun,
    edits: &[(Artefact, &Edit)],
    decision: Option<cybergov::manifest::VoteKind>,
) {
    use cybergov::manifest::Manifest;
    let manifest_file = run.file(&Artefact::Manifest);
    let mut manifest =
        Manifest::from_canonical_bytes(&std::fs::read(&manifest_file).unwrap()).unwrap();
    for (artefact, edit) in edits {
        let file = run.file(artefact);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        edit(&mut value);
        let mut bytes = serde_json::to_vec_pretty(&value).unwrap();
        bytes.push(b'\n');
        std::fs::write(&file, &bytes).unwrap();
        let name = run.run_layout().key(artefact).as_str().to_owned();
        let listed = manifest
            .outputs
            .iter_mut()
            .find(|a| a.path == name)
            .expect("the artefact is listed");
        listed.sha256 = Sha256Hash::of(&bytes);
        listed.bytes = bytes.len() as u64;
    }
    if let Some(vote) = decision {
        manifest.decision.vote = vote;
    }
    let bytes = manifest.to_canonical_bytes().unwrap();
    std::fs::write(&manifest_file, &bytes).unwrap();
    let latest = cybergov::store::layout::Latest {
        run: 1,
        manifest_sha256: Sha256Hash::of(&bytes),
    };
    let latest_file = run.root.join(run.run_layout().referendum.latest().as_str());
    std::fs::write(latest_file, serde_json::to_vec(&latest).unwrap()).unwrap();
    let _ = std::fs::remove_file(run.file(&Artefact::Receipt));
}

/// Every juror file and vote.json rewritten to one vote (AYE, or NAY when the jurors all said
/// AYE), all hashes fixed: the jurors' own scores still give their real votes, so the forgery
/// fails.
pub async fn a_consistent_forgery_of_every_vote_is_caught(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    use cybergov::manifest::VoteKind;
    let run = make_voted_run().await;
    let (target, word) = if run.vote.jurors.iter().all(|j| j.vote == VoteKind::Aye) {
        (VoteKind::Nay, "nay")
    } else {
        (VoteKind::Aye, "aye")
    };
    let juror = move |v: &mut serde_json::Value| v["vote"] = word.into();
    let vote = move |v: &mut serde_json::Value| {
        for j in v["jurors"].as_array_mut().unwrap() {
            j["vote"] = word.into();
        }
        v["decision"] = word.into();
    };
    forge(
        &run,
        &[
            (Artefact::Juror("balthazar".into()), &juror),
            (Artefact::Juror("melchior".into()), &juror),
            (Artefact::Juror("caspar".into()), &juror),
            (Artefact::Vote, &vote),
        ],
        Some(target),
    );
    let o = verify(&run, run.block.clone()).await;
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PASS manifest hash"),
        "the hashes were fixed: {text}"
    );
    assert!(
        text.contains("but its own scores give"),
        "no juror vote check failed:\n{text}"
    );
}

/// vote.json and the manifest say NAY while every juror file says otherwise: the tally fails.
pub async fn a_decision_that_contradicts_the_jurors_is_caught(
    verify: impl AsyncFn(&VotedRun, serde_json::Value) -> Output,
) {
    let run = make_voted_run().await;
    let to_nay = |v: &mut serde_json::Value| v["decision"] = "nay".into();
    let jurors_say_nay = run
        .vote
        .jurors
        .iter()
        .all(|j| j.vote == cybergov::manifest::VoteKind::Nay);
    assert!(
        !jurors_say_nay,
        "the tiny jurors must not all vote NAY here"
    );
    forge(
        &run,
        &[(Artefact::Vote, &to_nay)],
        Some(cybergov::manifest::VoteKind::Nay),
    );
    let o = verify(&run, run.block.clone()).await;
    assert_fails_naming(&o, "tally");
    assert!(out(&o).contains("vote.json decides NAY"), "{}", out(&o));
    assert!(out(&o).contains("PASS decision"), "{}", out(&o));
}

/// Declares every case of this module as a test of the calling crate, verifying with `$verify`
/// (an `async fn(&VotedRun, serde_json::Value) -> Output`).
#[macro_export]
macro_rules! tamper_tests {
    ($verify:path) => {
        $crate::tamper_tests!(@each $verify;
            a_good_voted_run_passes_every_check,
            one_changed_artefact_byte_fails_that_artefact,
            a_changed_manifest_fails_the_manifest_hash,
            a_missing_artefact_fails_naming_it,
            a_remark_with_another_hash_fails_the_remark,
            a_chain_vote_that_differs_from_vote_json_fails_the_vote,
            a_consistent_forgery_of_every_vote_is_caught,
            a_decision_that_contradicts_the_jurors_is_caught
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
