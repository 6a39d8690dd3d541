//! The GitHub Actions runner against a local server speaking GitHub's REST shapes: dispatch,
//! finding the run by its correlation id, polling, logs, rate limits, 404s, timeouts, and the
//! rule that a log hash differing from the stored manifest's hash stops the vote.

use crate::common::github_server::{GithubServer, spawn_github};
use crate::common::{SAMPLE, write_sample_run};
use cybergov::github::settings::GithubSettings;
use cybergov::github::{DISPATCH_INPUTS, GithubClient, GithubError};
use cybergov::hash::Sha256Hash;
use cybergov::secret::Secret;
use cybergov::stages::infer::runner::settings::RunnerSettings;
use cybergov::stages::infer::runner::{RunnerError, infer_on_github};
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{FsStore, ObjectStore};
use std::time::Instant;

const TOKEN: &str = "ghp_test_token_never_printed";

fn settings(server: &GithubServer) -> GithubSettings {
    GithubSettings {
        api_url: server.url.clone(),
        owner: Some("cybergov".into()),
        repo: Some("cybergov".into()),
        poll_interval_ms: 20,
        find_timeout_secs: 5,
        run_timeout_secs: 5,
        rate_limit_max_wait_secs: 5,
        ..RunnerSettings::default().github
    }
}

fn client(s: &GithubSettings) -> GithubClient {
    GithubClient::new(s, Some(&Secret::new(TOKEN))).unwrap()
}

/// A store holding a published run (what the workflow writes with its credentials).
async fn published() -> (tempfile::TempDir, FsStore, Sha256Hash) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let manifest = write_sample_run(&store, 1, None).await;
    let hash = manifest.sha256().unwrap();
    (dir, store, hash)
}

async fn run(
    store: &FsStore,
    s: &GithubSettings,
) -> Result<cybergov::stages::infer::InferOutcome, RunnerError> {
    infer_on_github(store, &client(s), s, SAMPLE.0, SAMPLE.1, Some(1)).await
}

#[tokio::test]
async fn dispatches_finds_polls_archives_the_log_and_accepts_a_matching_hash() {
    let server = spawn_github().await;
    let (_d, store, hash) = published().await;
    server.script(|s| s.log_hash = Some(hash.to_hex()));
    let s = settings(&server);

    let outcome = run(&store, &s).await.unwrap();
    assert_eq!(outcome.manifest_sha256, hash);
    assert_eq!(outcome.run, 1);
    assert!(!outcome.already_done);

    server.seen(|seen| {
        assert_eq!(seen.dispatches.len(), 1);
        let d = &seen.dispatches[0];
        assert_eq!(d["ref"], "main");
        let keys: Vec<&str> = d["inputs"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = DISPATCH_INPUTS.to_vec();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(d["inputs"]["network"], "polkadot");
        assert_eq!(d["inputs"]["referendum"], "4242");
        assert_eq!(d["inputs"]["run"], "1");
        // Found by its correlation id, then polled queued → in_progress → completed.
        assert!(seen.runs[0].polls >= 2, "{:?}", seen.runs);
        assert!(seen.hits.iter().any(|h| h.ends_with("/logs")));
        // Every API call carried the token.
        for (hit, auth) in seen.hits.iter().zip(&seen.auth) {
            assert_eq!(
                auth.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{hit}"
            );
        }
    });

    // The log is archived next to the manifest and prints the hash.
    let rl = ReferendumLayout::new(SAMPLE.0, SAMPLE.1).run(1);
    let log =
        String::from_utf8(store.get(&rl.key(&Artefact::InferenceLog)).await.unwrap()).unwrap();
    assert!(
        log.contains(&format!("cybergov-manifest-sha256: {hash}")),
        "{log}"
    );
    assert!(log.contains("=== infer/5_Infer.txt"), "{log}");

    // Running the stage again re-checks the archived log and dispatches nothing.
    let again = run(&store, &s).await.unwrap();
    assert!(again.already_done);
    assert_eq!(server.seen(|s| s.dispatches.len()), 1);
}

#[tokio::test]
async fn a_log_hash_that_differs_from_the_stored_manifest_stops_the_vote() {
    let server = spawn_github().await;
    let (_d, store, hash) = published().await;
    let other = Sha256Hash::of(b"a different manifest");
    server.script(|s| s.log_hash = Some(other.to_hex()));
    let e = run(&store, &settings(&server)).await.unwrap_err();
    match &e {
        RunnerError::LogHashMismatch { logged, stored, .. } => {
            assert_eq!(*logged, other);
            assert_eq!(*stored, hash);
        }
        other => panic!("expected LogHashMismatch, got {other}"),
    }
    assert!(e.to_string().contains("refusing"), "{e}");
    // The evidence is kept, and a retry still refuses without dispatching again.
    let rl = ReferendumLayout::new(SAMPLE.0, SAMPLE.1).run(1);
    assert!(
        store
            .exists(&rl.key(&Artefact::InferenceLog))
            .await
            .unwrap()
    );
    let again = run(&store, &settings(&server)).await.unwrap_err();
    assert!(
        matches!(again, RunnerError::LogHashMismatch { .. }),
        "{again}"
    );
    assert_eq!(server.seen(|s| s.dispatches.len()), 1);
}

/// A log zip larger than `runner.github.max_response_bytes` as sent, or one inflating past
/// `runner.github.max_log_bytes` (a zip bomb), is refused naming its cap, and no log is kept.
#[tokio::test]
async fn an_oversize_log_zip_or_a_zip_bomb_is_refused_and_nothing_is_kept() {
    let (_d, store, hash) = published().await;
    let log_key = ReferendumLayout::new(SAMPLE.0, SAMPLE.1)
        .run(1)
        .key(&Artefact::InferenceLog);
    // Hex of a xorshift stream: deflate halves it at best, so the zip stays over 300 kB.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: String = (0..80_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:016x}", x)
        })
        .collect();
    // Eight MiB of one letter deflates to a few kB.
    let bomb = "a".repeat(8 << 20);
    let oversize = |s: GithubSettings| GithubSettings {
        max_response_bytes: 256 << 10,
        ..s
    };
    let bomb_cap = |s: GithubSettings| GithubSettings {
        max_log_bytes: 1 << 20,
        ..s
    };
    type Tighten = fn(GithubSettings) -> GithubSettings;
    for (extra, tighten, cap) in [
        (
            noise,
            oversize as Tighten,
            "at most 262144 bytes, runner.github.max_response_bytes",
        ),
        (
            bomb,
            bomb_cap as Tighten,
            "more than 1048576 bytes (runner.github.max_log_bytes",
        ),
    ] {
        let server = spawn_github().await;
        let s = tighten(settings(&server));
        server.script(|sc| {
            sc.log_hash = Some(hash.to_hex());
            sc.extra_log = extra;
        });
        let started = std::time::Instant::now();
        let e = run(&store, &s).await.unwrap_err().to_string();
        assert!(e.contains(cap), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{e}"
        );
        assert!(!store.exists(&log_key).await.unwrap(), "no log is kept");
    }
}

#[tokio::test]
async fn a_log_without_the_hash_line_is_refused() {
    let server = spawn_github().await;
    let (_d, store, _) = published().await;
    let e = run(&store, &settings(&server)).await.unwrap_err();
    assert!(matches!(e, RunnerError::Log { .. }), "{e}");
}

#[tokio::test]
async fn a_failed_run_is_an_error_naming_its_page() {
    let server = spawn_github().await;
    let (_d, store, hash) = published().await;
    server.script(|s| {
        s.log_hash = Some(hash.to_hex());
        s.conclusion = "failure".into();
    });
    let e = run(&store, &settings(&server)).await.unwrap_err();
    match e {
        RunnerError::RunFailed { url, conclusion } => {
            assert_eq!(conclusion, "failure");
            assert!(url.contains("/actions/runs/9000000"), "{url}");
        }
        other => panic!("expected RunFailed, got {other}"),
    }
}

#[tokio::test]
async fn rate_limit_waits_for_the_reset_then_goes_on() {
    let server = spawn_github().await;
    let (_d, store, hash) = published().await;
    server.script(|s| {
        s.log_hash = Some(hash.to_hex());
        s.rate_limited_lists = 1;
        s.rate_limit_reset_in = 1;
    });
    let t = Instant::now();
    run(&store, &settings(&server)).await.unwrap();
    assert!(t.elapsed().as_millis() >= 1000, "{:?}", t.elapsed());
    assert_eq!(server.seen(|s| s.rate_limited_lists), 0);
}

#[tokio::test]
async fn a_secondary_rate_limit_waits_retry_after() {
    let server = spawn_github().await;
    server.script(|s| s.secondary_limited_lists = 1);
    let s = settings(&server);
    let t = Instant::now();
    assert_eq!(client(&s).lookup_run("x").await.unwrap(), None);
    assert!(t.elapsed().as_millis() >= 1000, "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_rate_limit_reset_beyond_the_longest_wait_is_an_error() {
    let server = spawn_github().await;
    server.script(|s| {
        s.rate_limited_lists = 1;
        s.rate_limit_reset_in = 3600;
    });
    let s = settings(&server);
    let e = client(&s).lookup_run("x").await.unwrap_err();
    match e {
        GithubError::RateLimited { reset_in_secs, .. } => assert!(reset_in_secs > 3000),
        other => panic!("expected RateLimited, got {other}"),
    }
}

#[tokio::test]
async fn an_unknown_workflow_is_a_404_naming_the_settings() {
    let server = spawn_github().await;
    let (_d, store, _) = published().await;
    let s = GithubSettings {
        workflow: "missing.yml".into(),
        ..settings(&server)
    };
    let e = run(&store, &s).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, RunnerError::Github(GithubError::NotFound { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("missing.yml") && msg.contains("runner.github"),
        "{msg}"
    );
    // An unknown run id is a 404 too.
    let e = client(&settings(&server)).get_run(1).await.unwrap_err();
    assert!(matches!(e, GithubError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_run_that_never_completes_times_out() {
    let server = spawn_github().await;
    let (_d, store, _) = published().await;
    server.script(|s| s.never_complete = true);
    let s = GithubSettings {
        run_timeout_secs: 1,
        ..settings(&server)
    };
    let e = run(&store, &s).await.unwrap_err();
    assert!(
        matches!(e, RunnerError::Github(GithubError::Timeout { .. })),
        "{e}"
    );
}

/// A stage attempt that timed out waiting is retried: the retry finds the workflow run the
/// first attempt dispatched (its correlation id is recorded in inference-dispatch.json) and
/// waits for it. GitHub sees one dispatch: one public inference run per manifest.
#[tokio::test]
async fn a_retry_waits_for_the_run_already_dispatched_instead_of_dispatching_again() {
    let server = spawn_github().await;
    let (_d, store, hash) = published().await;
    server.script(|s| {
        s.never_complete = true;
        s.log_hash = Some(hash.to_hex());
    });
    let s = GithubSettings {
        run_timeout_secs: 1,
        ..settings(&server)
    };
    let e = run(&store, &s).await.unwrap_err();
    assert!(
        matches!(e, RunnerError::Github(GithubError::Timeout { .. })),
        "{e}"
    );
    let key = ReferendumLayout::new(SAMPLE.0, SAMPLE.1)
        .run(1)
        .key(&Artefact::InferenceDispatch);
    let record: serde_json::Value =
        serde_json::from_slice(&store.get(&key).await.unwrap()).unwrap();
    let id = record["correlation_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cg-"), "{record}");

    // The run finishes after all; the retry waits for it and succeeds.
    server.script(|s| s.never_complete = false);
    let outcome = run(&store, &s).await.unwrap();
    assert_eq!(outcome.manifest_sha256, hash);
    let (dispatches, runs) = server.seen(|s| (s.dispatches.len(), s.runs.len()));
    assert_eq!((dispatches, runs), (1, 1), "one dispatch, one workflow run");
    assert!(server.seen(|s| s.runs[0].display_title.contains(&id)));
}

#[tokio::test]
async fn a_run_that_never_appears_is_not_found_in_time() {
    let server = spawn_github().await;
    server.script(|s| s.list_delay = u32::MAX);
    let s = GithubSettings {
        find_timeout_secs: 1,
        ..settings(&server)
    };
    let e = client(&s).find_run("cg-nothing").await.unwrap_err();
    assert!(matches!(e, GithubError::RunNotFound { .. }), "{e}");
}

#[tokio::test]
async fn the_github_runner_needs_a_token_and_a_repository() {
    // (octocrab's client needs a runtime to start, hence an async test.)
    let s = RunnerSettings::default().github;
    let e = GithubClient::new(&s, None).unwrap_err();
    assert!(e.to_string().contains("CYBERGOV_GITHUB_TOKEN"), "{e}");
    let e = GithubClient::new(&s, Some(&Secret::new(TOKEN))).unwrap_err();
    assert!(e.to_string().contains("runner.github.owner"), "{e}");
    // The client's Debug output never shows the token.
    let ok = GithubSettings {
        owner: Some("o".into()),
        repo: Some("r".into()),
        ..s
    };
    let c = GithubClient::new(&ok, Some(&Secret::new(TOKEN))).unwrap();
    assert!(!format!("{c:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runner_infers_in_process_and_the_github_runner_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let rl = ReferendumLayout::new(SAMPLE.0, SAMPLE.1).run(1);
    store
        .put(&rl.key(&Artefact::Content), b"# A proposal\n\nFund it.\n")
        .await
        .unwrap();
    let mut config = crate::common::voted_run::tiny_config(1);
    let secrets = cybergov::secret::Secrets::default();
    let outcome =
        cybergov::wiring::infer_with_runner(&store, &config, &secrets, SAMPLE.0, SAMPLE.1, None)
            .await
            .unwrap();
    assert_eq!((outcome.run, outcome.already_done), (1, false));
    assert!(store.exists(&rl.key(&Artefact::Manifest)).await.unwrap());
    assert!(
        !store
            .exists(&rl.key(&Artefact::InferenceLog))
            .await
            .unwrap()
    );

    config.runner.kind = cybergov::stages::infer::runner::settings::RunnerKind::Github;
    let e =
        cybergov::wiring::infer_with_runner(&store, &config, &secrets, SAMPLE.0, SAMPLE.1, None)
            .await
            .unwrap_err();
    assert!(e.to_string().contains("CYBERGOV_GITHUB_TOKEN"), "{e}");
}

/// What the workflow runs: `cybergov infer` prints the anchor line the runner parses, with the
/// hash of the manifest it stored.
#[test]
fn cybergov_infer_prints_the_manifest_hash_line() {
    let dir = tempfile::tempdir().unwrap();
    let rl = ReferendumLayout::new(SAMPLE.0, SAMPLE.1).run(1);
    let content = dir
        .path()
        .join("store")
        .join(rl.key(&Artefact::Content).as_str());
    std::fs::create_dir_all(content.parent().unwrap()).unwrap();
    std::fs::write(&content, "# A proposal\n\nFund it.\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cybergov"));
    cmd.current_dir(dir.path()).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CYBERGOV_")) {
        cmd.env_remove(k);
    }
    let model = crate::common::tiny_model_path(1);
    for juror in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
        cmd.env(
            format!("CYBERGOV_MAGI__JURORS__{juror}__MODEL"),
            model.to_str().unwrap(),
        );
    }
    let o = cmd
        .env("CYBERGOV_STORE__PATH", "store")
        .env("CYBERGOV_MAGI__MAX_NEW_TOKENS", "4")
        .args([
            "infer",
            "--network",
            "polkadot",
            "--id",
            "4242",
            "--run",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let logged = cybergov::github::log::parse_manifest_hash(&stdout).unwrap();
    let manifest = std::fs::read(
        dir.path()
            .join("store")
            .join(rl.key(&Artefact::Manifest).as_str()),
    )
    .unwrap();
    assert_eq!(logged, Sha256Hash::of(&manifest));
}
