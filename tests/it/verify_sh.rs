//! `scripts/verify.sh` — POSIX sh, curl, jq and sha256sum only — run as a child process with
//! `dash` against a store served over local HTTP and a Sidecar stand-in: PASS on a good voted
//! run, FAIL naming the check for each kind of tampering. The same cases as `cybergov verify`
//! (tests/verify.rs), with the same check names.
//!
//! Needs `dash`, `curl`, `jq` and `sha256sum` on PATH (scripts/test.sh installs them); fails
//! loudly when one is missing.

use crate::common::tamper::out;

use crate::common::http_store::spawn_http_store;
use crate::common::sidecar_blocks::spawn_sidecar_blocks;
use crate::common::voted_run::{NETWORK, REFERENDUM, VotedRun, make_voted_run};
use std::path::Path;
use std::process::Output;

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required for this test (scripts/test.sh installs it)"
    );
}

async fn verify_sh(run: &VotedRun, block: serde_json::Value, extra: &[&str]) -> Output {
    for tool in ["dash", "curl", "jq", "sha256sum"] {
        require(tool);
    }
    let base = spawn_http_store(&run.root).await;
    let sidecar = spawn_sidecar_blocks().await;
    sidecar.insert(block);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify.sh");
    let id = REFERENDUM.to_string();
    let mut args = vec![
        script.to_str().unwrap(),
        "--network",
        NETWORK.as_str(),
        "--id",
        &id,
        "--base-url",
        &base,
        "--sidecar",
        &sidecar.url,
    ];
    args.extend_from_slice(extra);
    tokio::process::Command::new("dash")
        .args(&args)
        .env_remove("CYBERGOV_PUBLIC_BASE_URL")
        .output()
        .await
        .unwrap()
}

/// [`verify_sh`] with no extra arguments: the verifier of the shared tampering cases.
async fn plain(run: &VotedRun, block: serde_json::Value) -> Output {
    verify_sh(run, block, &[]).await
}

crate::tamper_tests!(plain);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_the_run_verifies_that_run() {
    let run = make_voted_run().await;
    let o = verify_sh(&run, run.block.clone(), &["--run", "1"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("PASS vote on chain"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_and_the_rust_verifier_name_the_same_checks() {
    let run = make_voted_run().await;
    let sh = verify_sh(&run, run.block.clone(), &[]).await;
    let base = spawn_http_store(&run.root).await;
    let sidecar = spawn_sidecar_blocks().await;
    sidecar.insert(run.block.clone());
    let public = cybergov::verify::http::HttpStore::new(&base).unwrap();
    let options = cybergov::verify::VerifyOptions {
        sidecar_url: Some(sidecar.url.clone()),
        reexecute: None,
    };
    let v = cybergov::verify::verify(&public, NETWORK, REFERENDUM, None, &options).await;
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("PASS "))
            .filter_map(|l| l.split_once(": ").map(|(n, _)| n.to_owned()))
            .collect()
    };
    assert_eq!(
        names(&String::from_utf8_lossy(&sh.stdout)),
        names(&v.to_string())
    );
}

#[tokio::test]
async fn bad_usage_exits_2_with_a_clear_message() {
    require("dash");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify.sh");
    for (args, want) in [
        (
            vec!["--id", "1", "--base-url", "http://x"],
            "--network is required",
        ),
        (
            vec!["--network", "moon", "--id", "1"],
            "unknown network moon",
        ),
        (vec!["--network", "kusama", "--id", "x1"], "--id must be"),
        (
            vec!["--network", "kusama", "--id", "1"],
            "--base-url is required",
        ),
    ] {
        let o = tokio::process::Command::new("dash")
            .arg(&script)
            .args(&args)
            .env_remove("CYBERGOV_PUBLIC_BASE_URL")
            .output()
            .await
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(out(&o).contains(want), "{args:?}: {}", out(&o));
    }
}
