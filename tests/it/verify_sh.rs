//! `scripts/verify.sh` — POSIX sh, curl, jq, sha256sum and b2sum only — run as a child process
//! with `dash` against a store served over local HTTP and chopsticks running the devnet, reached
//! over plain JSON-RPC: the same tamper cases as `cybergov verify` (tests/it/verify.rs), with
//! the same check names and verdicts.
//!
//! Needs `dash`, `curl`, `jq`, `sha256sum`, `b2sum` and `od` on PATH (scripts/test.sh installs
//! them); fails loudly when one is missing.

use crate::common::tamper::{GOOD_RUN_CHECKS, out, verdict};

use crate::common::http_store::spawn_http_store;
use crate::common::voted_run::{NETWORK, REAL, REAL_HEX, REFERENDUM, VotedRun, make_voted_run};
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

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify.sh")
}

/// Serves `run` and runs verify.sh on it, with the devnet as the chain and `extra` arguments.
async fn plain(run: &VotedRun, extra: &[&str]) -> Output {
    for tool in ["dash", "curl", "jq", "sha256sum", "b2sum", "od"] {
        require(tool);
    }
    let base = spawn_http_store(&run.root).await;
    let id = REFERENDUM.to_string();
    let script = script();
    let mut args = vec![
        script.to_str().unwrap(),
        "--network",
        NETWORK.as_str(),
        "--id",
        &id,
        "--base-url",
        &base,
        "--rpc-url",
        &run.chain().http_url,
        "--real",
        REAL_HEX,
    ];
    args.extend_from_slice(extra);
    tokio::process::Command::new("dash")
        .args(&args)
        .env_remove("CYBERGOV_PUBLIC_BASE_URL")
        .output()
        .await
        .unwrap()
}

crate::tamper_tests!(plain);

/// Both verifiers, run on the same good voted run, name the same checks in the same order,
/// and those are every check the tamper cases expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_and_the_rust_verifier_name_the_same_checks() {
    let run = make_voted_run().await;
    let sh = plain(&run, &[]).await;
    let base = spawn_http_store(&run.root).await;
    let work = tempfile::tempdir().unwrap();
    let rust = tokio::process::Command::new(env!("CARGO_BIN_EXE_cybergov"))
        .current_dir(work.path())
        .args([
            "verify",
            "--network",
            NETWORK.as_str(),
            "--id",
            &REFERENDUM.to_string(),
        ])
        .args([
            "--base-url",
            &base,
            "--rpc-url",
            &run.chain().ws_url,
            "--real",
            REAL,
        ])
        .output()
        .await
        .unwrap();
    let names = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                l.strip_prefix("PASS ")
                    .or_else(|| l.strip_prefix("FAIL "))
                    .or_else(|| l.strip_prefix("NOT VOTED "))
            })
            .filter_map(|l| l.split_once(": ").map(|(n, _)| n.to_owned()))
            .collect()
    };
    assert_eq!(verdict(&sh), "PASS", "{}", out(&sh));
    assert_eq!(verdict(&rust), "PASS", "{}", out(&rust));
    assert_eq!(names(&sh), names(&rust));
    assert_eq!(names(&rust), GOOD_RUN_CHECKS, "{}", out(&rust));
    assert!(
        names(&rust).len() >= 8 + 5,
        "at least eight checks beyond the artefacts"
    );
}

#[tokio::test]
async fn bad_usage_exits_2_with_a_clear_message() {
    require("dash");
    let script = script();
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
