//! `cybergov verify` against a store served over local HTTP and chopsticks running the devnet:
//! the shared tamper cases (PASS, NOT VOTED, FAIL naming the check), and `--reexecute` with the
//! tiny model catching a juror output that the manifest lists but the model did not write.

use crate::common::tamper::{out, verdict};

use crate::common::http_store::spawn_http_store;
use crate::common::voted_run::{
    NETWORK, REAL, REFERENDUM, VotedRun, infer_run, make_run, make_voted_run, tiny_config,
};
use cybergov::magi::juror::JurorRecord;
use cybergov::manifest::verify::Check;
use cybergov::store::FsStore;
use cybergov::store::layout::Artefact;
use cybergov::verify::http::HttpStore;
use cybergov::verify::{VerifyOptions, verify};
use std::process::Output;

/// The cybergov binary, with no configuration from this process's environment.
fn cybergov(dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cybergov"));
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYBERGOV_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// The arguments that name the run, where its store is served and where its chain is: the
/// devnet, and Bob as the account whose vote it is.
fn verify_args(run: &VotedRun, base: &str) -> Vec<String> {
    [
        "verify",
        "--network",
        NETWORK.as_str(),
        "--id",
        &REFERENDUM.to_string(),
        "--base-url",
        base,
        "--rpc-url",
        &run.chain().ws_url,
        "--real",
        REAL,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Serves `run` and runs `cybergov verify` on it with `extra` arguments.
async fn plain(run: &VotedRun, extra: &[&str]) -> Output {
    let base = spawn_http_store(&run.root).await;
    let work = tempfile::tempdir().unwrap();
    cybergov(work.path())
        .args(verify_args(run, &base))
        .args(extra)
        .output()
        .await
        .unwrap()
}

crate::tamper_tests!(plain);

/// The checks that failed, without the chain's (these runs were made without one).
fn failed_off_chain(checks: &[Check]) -> Vec<&str> {
    checks
        .iter()
        .filter(|c| !c.passed && !c.name.ends_with("on chain"))
        .map(|c| c.name.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_chain_the_chain_checks_fail_and_say_why() {
    let run = make_run().await;
    let options = VerifyOptions {
        chain_unavailable: Some("no chain here".into()),
        ..VerifyOptions::default()
    };
    let store = FsStore::new(&run.root).unwrap();
    let v = verify(&store, NETWORK, REFERENDUM, None, options).await;
    assert_eq!(v.verdict(), cybergov::verify::Verdict::Fail, "{v}");
    assert!(
        v.to_string().contains("FAIL vote on chain: no chain here"),
        "{v}"
    );
    assert!(failed_off_chain(&v.report.checks).is_empty(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_asks_whose_vote_it_is() {
    let run = make_run().await;
    let base = spawn_http_store(&run.root).await;
    let work = tempfile::tempdir().unwrap();
    let o = cybergov(work.path())
        .args([
            "verify",
            "--network",
            "paseo",
            "--id",
            "0",
            "--base-url",
            &base,
        ])
        .output()
        .await
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("give --real ADDRESS"), "{}", out(&o));
    assert!(verdict(&o).is_empty() || !verdict(&o).starts_with("PASS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reexecution_reproduces_the_jurors_and_catches_a_fabricated_juror_output() {
    // An honest run: re-execution with the tiny model reproduces every file.
    let run = make_run().await;
    let base = spawn_http_store(&run.root).await;
    let public = HttpStore::new(&base, 64 << 20).unwrap();
    let options = VerifyOptions {
        reexecute: Some(run.config.magi.clone()),
        ..VerifyOptions::default()
    };
    let v = verify(&public, NETWORK, REFERENDUM, Some(1), options).await;
    for check in [
        "model balthazar",
        "reexecute jurors/balthazar.json",
        "reexecute jurors/melchior.json",
        "reexecute jurors/caspar.json",
        "reexecute vote.json",
    ] {
        assert!(
            v.report.checks.iter().any(|c| c.name == check && c.passed),
            "no PASS {check}:\n{v}"
        );
    }

    // A dishonest run: caspar's file was written by hand (a changed rationale) and the stage
    // listed it, so the manifest and every hash are consistent — only re-execution can tell.
    let honest = std::fs::read(run.file(&Artefact::Juror("caspar".into()))).unwrap();
    let mut record: JurorRecord = serde_json::from_slice(&honest).unwrap();
    record.rationale = format!("{} Fund it.", record.rationale);
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    infer_run(&store, &tiny_config(1), &[("caspar", &record.to_bytes())]).await;
    let options = VerifyOptions {
        reexecute: Some(tiny_config(1).magi),
        ..VerifyOptions::default()
    };
    let v = verify(&store, NETWORK, REFERENDUM, None, options).await;
    let failed = failed_off_chain(&v.report.checks);
    assert_eq!(failed, ["reexecute jurors/caspar.json"], "{v}");
    assert!(
        v.report
            .checks
            .iter()
            .any(|c| c.name == "artefact jurors/caspar.json" && c.passed)
    );

    // A model file with another hash is refused, not used.
    let mut wrong = tiny_config(2).magi;
    wrong.models_dir = Some(dir.path().join("models"));
    let v = verify(
        &store,
        NETWORK,
        REFERENDUM,
        None,
        VerifyOptions {
            reexecute: Some(wrong),
            ..VerifyOptions::default()
        },
    )
    .await;
    assert!(
        v.report
            .failures()
            .any(|c| c.name == "model balthazar" && c.detail.contains("no named model")),
        "{v}"
    );
}

/// A record computed by another engine (another kernel arithmetic) differs from what this
/// binary computes, but that is not tampering: re-execution names the version to re-run with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reexecution_names_the_engine_a_record_was_made_with() {
    let run = make_run().await;
    let honest = std::fs::read(run.file(&Artefact::Juror("melchior".into()))).unwrap();
    let mut record: JurorRecord = serde_json::from_slice(&honest).unwrap();
    let engine = record
        .model
        .engine
        .as_mut()
        .expect("the engine is recorded");
    assert_eq!(engine.kernel, cybergov::magi::candle::KERNEL_ID);
    engine.version = "0.0.9".into();
    engine.kernel = "q8_0-older/v0".into();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    infer_run(&store, &tiny_config(1), &[("melchior", &record.to_bytes())]).await;
    let options = VerifyOptions {
        reexecute: Some(tiny_config(1).magi),
        ..VerifyOptions::default()
    };
    let v = verify(&store, NETWORK, REFERENDUM, None, options).await;
    let check = v
        .report
        .checks
        .iter()
        .find(|c| c.name == "reexecute jurors/melchior.json")
        .expect("melchior re-executed");
    assert!(!check.passed, "{v}");
    assert!(
        check.detail.contains("re-run with cybergov 0.0.9")
            && check.detail.contains("q8_0-older/v0"),
        "{}",
        check.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reexecutes_with_the_configured_models() {
    let run = make_voted_run().await;
    let model = crate::common::tiny_model_path(1);
    let base = spawn_http_store(&run.root).await;
    let work = tempfile::tempdir().unwrap();
    let mut cmd = cybergov(work.path());
    cmd.args(verify_args(&run, &base)).arg("--reexecute");
    for juror in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
        cmd.env(
            format!("CYBERGOV_MAGI__JURORS__{juror}__MODEL"),
            model.to_str().unwrap(),
        );
    }
    let o = cmd.output().await.unwrap();
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PASS reexecute jurors/melchior.json"),
        "{text}"
    );
    assert!(text.contains("PASS reexecute vote.json"), "{text}");
    assert!(text.contains("PASS vote on chain"), "{text}");
    assert_eq!(verdict(&o), "PASS", "{text}");
}

/// A crash between the manifest and `latest.json` leaves the pointer behind; the infer stage's
/// retry finds the manifest already written and repairs the pointer instead of leaving it.
#[tokio::test]
async fn a_retry_repairs_latest_json_after_a_crash_before_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let store = cybergov::store::FsStore::new(dir.path()).unwrap();
    let config = crate::common::voted_run::tiny_config(1);
    let first = crate::common::voted_run::infer_run(&store, &config, &[]).await;
    let layout = cybergov::store::layout::ReferendumLayout::new(NETWORK, REFERENDUM);
    // The crash: the manifest is there, latest.json is not.
    std::fs::remove_file(dir.path().join(layout.latest().as_str())).unwrap();
    assert!(layout.read_latest(&store).await.unwrap().is_none());
    let again = cybergov::stages::infer::infer(
        &store,
        &config.infer_settings(),
        &cybergov::magi::jury::Jury::from_config(
            &config.magi,
            &Default::default(),
            &cybergov::progress::quiet(),
        )
        .unwrap(),
        NETWORK,
        REFERENDUM,
        Some(1),
    )
    .await
    .unwrap();
    assert!(again.already_done);
    let latest = layout.read_latest(&store).await.unwrap().expect("repaired");
    assert_eq!(
        (latest.run, latest.manifest_sha256),
        (1, first.manifest_sha256)
    );
}

/// A public store that answers with more than the verifier reads (`public_max_body_bytes`) is
/// refused, naming the cap and its key, instead of being held in memory whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_public_store_answer_is_refused() {
    use cybergov::store::ObjectStore;
    let dir = tempfile::tempdir().unwrap();
    let key = "proposals/polkadot/1/runs/1/content.md";
    let path = dir.path().join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let limit = 1 << 20;
    std::fs::write(&path, vec![b'x'; limit + 1]).unwrap();
    std::fs::write(dir.path().join("small.txt"), b"fine").unwrap();
    let base = spawn_http_store(dir.path()).await;
    let store = HttpStore::new(&base, limit as u64).unwrap();
    let e = store
        .get(&cybergov::store::ObjectKey::new(key).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("more than {limit} bytes (public_max_body_bytes)")),
        "{e}"
    );
    let small = store
        .get(&cybergov::store::ObjectKey::new("small.txt").unwrap())
        .await
        .unwrap();
    assert_eq!(small, b"fine");
}
