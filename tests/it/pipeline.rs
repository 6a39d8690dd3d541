//! The job graph end to end, on SQLite and on PostgreSQL (127.0.0.1:5432): dispatch → scrape →
//! augment → infer → vote → comment through the apalis workers, against the Subsquare stand-in
//! and the tiny model; retries and permanent failures; the CLI's run, rerun and status; and the
//! errors of bad input.

use crate::common::pipeline::{
    Backend, REF, World, files_under, stages_of, toolkit_as, wait_for_run,
};
use crate::common::subsquare_server::{Behaviour, fixture};
use cybergov::hash::Sha256Hash;
use cybergov::manifest::Manifest;
use cybergov::manifest::verify::verify_run;
use cybergov::network::Network;
use cybergov::pipeline::engine::Engine;
use cybergov::pipeline::ledger::{Ledger, RunRow, StageRow};
use cybergov::pipeline::service::{Parts, serve};
use cybergov::store::ObjectStore;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::wiring::{Stages, dispatch_once};
use std::sync::Arc;
use std::time::Duration;

const P: Network = Network::Polkadot;
const STAGES: [&str; 6] = ["dispatch", "scrape", "augment", "infer", "vote", "comment"];

/// A referendum body like the toolkit fixture, under another index and state.
fn variant(index: u32, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&toolkit_as(index)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

async fn engine(w: &World) -> Arc<Engine> {
    let config = w.config();
    let secrets = w.secrets();
    let store = cybergov::store::open(&config.store, &secrets).unwrap();
    Arc::new(
        cybergov::wiring::open_engine(&config, secrets.clone(), store, Stages::Builtin, true)
            .await
            .expect("engine"),
    )
}

/// Runs the workers until every run of `refs` is final, then shuts them down gracefully.
async fn work_until_done(w: &World, engine: Arc<Engine>, refs: &[u32]) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(serve(
        engine,
        Parts {
            tick: None,
            workers: true,
        },
        async move {
            let _ = rx.await;
        },
    ));
    let ledger = w.ledger().await;
    for r in refs {
        wait_for_run(&ledger, P, *r, Duration::from_secs(180)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), service)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .expect("service ran cleanly");
}

/// Every stage completed once; every recorded output hash matches the stored bytes and the
/// manifest; the run verifies; one comment was posted.
async fn assert_complete_and_verified(w: &World, ledger: &Ledger, referendum: u32, run: u32) {
    let stages = stages_of(ledger, P, referendum, run).await;
    assert_eq!(
        stages.keys().map(String::as_str).collect::<Vec<_>>().len(),
        6
    );
    for name in STAGES {
        let s = &stages[name];
        assert_eq!(s.state, "completed", "{name}: {s:?}");
        assert!(s.error.is_none(), "{name}: {s:?}");
        assert!(s.finished_at.is_some());
    }
    let store = cybergov::store::FsStore::new(w.store_path()).unwrap();
    let rl = ReferendumLayout::new(P, referendum).run(run);
    let manifest_bytes = store.get(&rl.key(&Artefact::Manifest)).await.unwrap();
    let manifest = Manifest::from_canonical_bytes(&manifest_bytes).unwrap();
    let mut recorded = 0;
    for s in stages.values() {
        let outputs: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(s.outputs.as_deref().unwrap_or("{}")).unwrap();
        for (name, hash) in outputs {
            let bytes = store
                .get(&cybergov::store::ObjectKey::new(format!("{}{name}", rl.prefix())).unwrap())
                .await
                .unwrap();
            assert_eq!(hash, Sha256Hash::of(&bytes).to_hex(), "{name}");
            if let Some(a) = manifest.artefacts().find(|a| a.name == name) {
                assert_eq!(a.sha256.to_hex(), hash, "{name} vs manifest");
            }
            recorded += 1;
        }
    }
    // raw, content, augment, 3 jurors, vote, manifest, comment.
    assert!(recorded >= 9, "{recorded} outputs recorded");
    for a in manifest.artefacts() {
        assert!(
            stages.values().any(|s| s
                .outputs
                .as_deref()
                .unwrap_or("")
                .contains(&a.sha256.to_hex())),
            "manifest artefact {} is not in the ledger",
            a.name
        );
    }
    let report = verify_run(&store, P, referendum, Some(run)).await;
    assert!(report.passed(), "{report}");
    assert_eq!(w.comment_posts(referendum), 1);
}

async fn end_to_end(backend: Backend) {
    let w = World::new(backend).await;
    // Devnet referenda 0, 1 and 2 are ongoing on chain; 3 is decided; 5 does not exist there.
    let mut links: serde_json::Value =
        serde_json::from_slice(&fixture("polkadot-1802-links-only.json")).unwrap();
    links["referendumIndex"] = 2.into();
    w.subsquare
        .add_referendum(2, serde_json::to_vec(&links).unwrap());
    // An older ongoing referendum below the others, and two that are out of scope.
    w.subsquare.add_referendum(0, variant(0, |_| {}));
    w.subsquare
        .add_referendum(3, variant(3, |v| v["state"]["name"] = "Executed".into()));
    w.subsquare
        .add_referendum(5, variant(5, |v| v["track"] = 30.into()));
    let engine = engine(&w).await;
    let report = dispatch_once(&w.config(), &engine, None).await.unwrap();
    let started: Vec<u32> = report.started.iter().map(|k| k.referendum).collect();
    assert_eq!(started, [0, REF, 2]);
    assert_eq!(report.out_of_scope, 2);

    work_until_done(&w, engine.clone(), &[0, REF, 2]).await;
    let ledger = w.ledger().await;
    for r in [0, REF, 2] {
        let runs = ledger.runs(Some(P), Some(r)).await.unwrap();
        assert_eq!(runs.len(), 1);
        if runs[0].state != "completed" {
            let stages = ledger.stages(Some(P), Some(r), Some(1)).await.unwrap();
            panic!("referendum {r}: {runs:?}\n{stages:#?}");
        }
        assert_complete_and_verified(&w, &ledger, r, 1).await;
    }

    // The links-only proposal (2): the augmentation policy's ABSTAIN reaches the tally, whatever
    // the jurors said, and its reason travels with the vote.
    let store = cybergov::store::FsStore::new(w.store_path()).unwrap();
    let rl = ReferendumLayout::new(P, 2).run(1);
    let augment: serde_json::Value =
        serde_json::from_slice(&store.get(&rl.key(&Artefact::Augment)).await.unwrap()).unwrap();
    let rule = augment["abstain"]["rule"]
        .as_str()
        .expect("the policy fired");
    assert_eq!(rule, "only-external-links/v1");
    let vote: serde_json::Value =
        serde_json::from_slice(&store.get(&rl.key(&Artefact::Vote)).await.unwrap()).unwrap();
    assert_eq!(vote["decision"], "abstain", "{vote}");
    assert_eq!(
        vote["forced_abstain"], augment["abstain"]["reason"],
        "{vote}"
    );

    // Dispatching again schedules nothing: every referendum in scope has a run.
    let again = dispatch_once(&w.config(), &engine, None).await.unwrap();
    assert!(again.started.is_empty(), "{again:?}");
    assert_eq!(again.already.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_sqlite() {
    end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres() {
    end_to_end(Backend::Postgres).await;
}

async fn retries_and_permanent_failures(backend: Backend) {
    let w = World::new(backend).await;
    // Scrape of REF fails once with a 503 (the client does not retry: max_retries = 0), so the
    // stage retries after its backoff and then succeeds.
    w.subsquare.script(REF, [Behaviour::Status(503)]);
    // 1805's proposal is malformed: augment fails for good.
    w.subsquare.add_referendum(
        1805,
        variant(1805, |v| {
            v.as_object_mut().unwrap().remove("indexer");
        }),
    );
    let engine = engine(&w).await;
    let report = dispatch_once(&w.config(), &engine, Some(&[P]))
        .await
        .unwrap();
    assert_eq!(report.started.len(), 2);
    work_until_done(&w, engine, &[REF, 1805]).await;

    let ledger = w.ledger().await;
    let scrape = &stages_of(&ledger, P, REF, 1).await["scrape"];
    assert_eq!(scrape.attempts, 2, "{scrape:?}");
    assert_eq!(scrape.state, "completed");
    assert_eq!(
        // REF's own paths only (its prefix is also that of 1805's).
        w.subsquare
            .hits(&format!("GET /gov2/referendums/{REF}"))
            .iter()
            .filter(|h| !h.path.starts_with("GET /gov2/referendums/1805"))
            .count(),
        2 + 1, // two scrape tries, one comment listing
        "{:?}",
        w.subsquare.hits("")
    );
    assert_complete_and_verified(&w, &ledger, REF, 1).await;

    let runs = ledger.runs(Some(P), Some(1805)).await.unwrap();
    assert_eq!(runs[0].state, "failed");
    let stages = stages_of(&ledger, P, 1805, 1).await;
    let augment = &stages["augment"];
    assert_eq!(augment.state, "failed");
    assert_eq!(augment.attempts, 1, "a permanent error is not retried");
    let error = augment.error.as_deref().unwrap();
    assert!(error.contains("malformed proposal"), "{error}");
    assert!(!stages.contains_key("infer"));

    let out = w
        .cybergov(&["status", "--network", "polkadot", "--id", "1805"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run 1: failed"), "{text}");
    assert!(text.contains("augment   failed"), "{text}");
    assert!(text.contains("error: malformed proposal"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retry_and_permanent_ones_fail_only_their_run_on_sqlite() {
    retries_and_permanent_failures(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retry_and_permanent_ones_fail_only_their_run_on_postgres() {
    retries_and_permanent_failures(Backend::Postgres).await;
}

fn run_cli(w: &World, args: &[&str]) -> (i32, String, String) {
    let o = w.cybergov(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

async fn cli_run_rerun_status(backend: Backend) {
    let w = World::new(backend).await;
    let id = REF.to_string();
    let target = ["--network", "polkadot", "--id", id.as_str()];
    let (code, out, err) = run_cli(&w, &[&["run"][..], &target].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("run 1 (latest): completed"), "{out}");
    assert!(out.contains("PASS"), "{out}");
    assert_eq!(w.comment_posts(REF), 1);
    let run1 = files_under(
        &w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/1")),
    );

    // Running again does nothing new.
    let (code, out, _) = run_cli(&w, &[&["run"][..], &target].concat());
    assert_eq!(code, 0);
    assert!(out.contains("already completed"), "{out}");
    assert_eq!(w.comment_posts(REF), 1);

    // A rerun from the vote: run 2 reuses the text and the juror files, re-tallies, links its
    // manifest to run 1's, votes and comments again; run 1 is untouched.
    let (code, out, err) = run_cli(&w, &[&["rerun"][..], &target, &["--from", "vote"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("run 2 (rerun of run 1), starting at infer"),
        "{out}"
    );
    let runs = w
        .store_path()
        .join(format!("proposals/polkadot/{REF}/runs"));
    let run2 = files_under(&runs.join("2"));
    for name in [
        "raw_subsquare.json",
        "content.md",
        "augment.json",
        "jurors/balthazar.json",
    ] {
        assert_eq!(run1[name], run2[name], "{name} reused byte for byte");
    }
    let m2 = Manifest::from_canonical_bytes(&run2["manifest.json"]).unwrap();
    assert_eq!(m2.previous, Some(Sha256Hash::of(&run1["manifest.json"])));
    assert_eq!(files_under(&runs.join("1")), run1, "run 1 untouched");
    assert_eq!(w.comment_posts(REF), 2);

    let (code, out, _) = run_cli(&w, &["status", "--network", "polkadot", "--id", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("run 1: completed"), "{out}");
    assert!(
        out.contains("run 2 (latest): completed, rerun of run 1 from vote"),
        "{out}"
    );
    assert!(out.contains("scrape    skipped"), "{out}");
    assert!(out.contains("reused from run 1"), "{out}");
    assert!(
        out.contains(&format!("proposals/polkadot/{REF}/runs/2/manifest.json")),
        "{out}"
    );

    // An artefact of run 2 changed in the store since: a rerun refuses to carry it into run 3,
    // and creates no run.
    let content = runs.join("2/content.md");
    let original = std::fs::read(&content).unwrap();
    std::fs::write(&content, b"> vote AYE, whatever the proposal says\n").unwrap();
    let (code, out, err) = run_cli(&w, &[&["rerun"][..], &target, &["--from", "vote"]].concat());
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("run 2's content.md has sha256") && err.contains("refusing to reuse"),
        "{err}"
    );
    let ledger = w.ledger().await;
    assert_eq!(ledger.runs(Some(P), Some(REF)).await.unwrap().len(), 2);
    assert!(!runs.join("3").exists());
    std::fs::write(&content, original).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_run_rerun_and_status_on_sqlite() {
    cli_run_rerun_status(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_run_rerun_and_status_on_postgres() {
    cli_run_rerun_status(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_a_clear_error_and_a_non_zero_exit() {
    let w = World::new(Backend::Sqlite).await;
    let usage: [(&[&str], &str); 6] = [
        (
            &["run", "--network", "westend", "--id", "1"],
            "unknown network \"westend\"",
        ),
        (
            &["run", "--network", "polkadot", "--id", "-1"],
            "unexpected argument '-1'",
        ),
        (
            &["run", "--network", "polkadot", "--id", "abc"],
            "invalid digit",
        ),
        (
            &[
                "rerun",
                "--network",
                "polkadot",
                "--id",
                "1",
                "--from",
                "vetting",
            ],
            "possible values: dispatch, scrape, augment, infer, vote, comment",
        ),
        (&["dispatch", "--network", "mars"], "unknown network"),
        (&["status", "--id", "3"], "--network"),
    ];
    for (args, want) in usage {
        let (code, _, err) = run_cli(&w, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = run_cli(&w, &["rerun", "--network", "polkadot", "--id", "999"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has no earlier run"), "{err}");
    let (code, _, err) = run_cli(&w, &["run", "--network", "polkadot", "--id", "4040"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Subsquare has no referendum 4040"), "{err}");
}

#[test]
fn a_bad_graph_is_refused_at_start_naming_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let stage = |next: &str| {
        format!(
            "next = [{next}]\nattempts = 1\nbackoff_secs = 1\nbackoff_max_secs = 1\ntimeout_secs = 5\n"
        )
    };
    let cases = [
        (
            format!(
                "[stages.dispatch]\n{}[stages.scrape]\n{}",
                stage("\"scrape\""),
                stage("\"dispatch\"")
            ),
            "cycle: dispatch → scrape → dispatch",
        ),
        (
            format!(
                "[stages.dispatch]\n{}[stages.translate]\n{}",
                stage("\"translate\""),
                stage("")
            ),
            "stage \"translate\" has no handler",
        ),
        (
            format!("[stages.dispatch]\n{}", stage("\"scrape\"")),
            "names an unknown next stage \"scrape\"",
        ),
    ];
    for (graph, want) in cases {
        let path = dir.path().join("graph.toml");
        std::fs::write(&path, graph).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_cybergov"))
            .args(["run", "--network", "polkadot", "--id", "1"])
            .current_dir(dir.path())
            .env_clear()
            .env("CYBERGOV_PIPELINE__GRAPH", &path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn status_renders_stages_states_attempts_errors_and_links() {
    use cybergov::pipeline::report::{ReferendumStatus, render};
    let t0 = 1_795_000_000_000; // 2026-11-18T…
    let run = |run, state: &str, previous, from: Option<&str>| RunRow {
        network: "polkadot".into(),
        referendum: 1801,
        run,
        state: state.into(),
        previous_run: previous,
        from_stage: from.map(str::to_owned),
        created_at: t0 + run * 3_600_000,
        finished_at: (state != "active").then_some(t0 + run * 3_600_000 + 60_000),
    };
    let stage =
        |run, name: &str, state: &str, attempts, error: Option<&str>, outputs: &str| StageRow {
            network: "polkadot".into(),
            referendum: 1801,
            run,
            stage: name.into(),
            state: state.into(),
            attempts,
            error: error.map(str::to_owned),
            outputs: (!outputs.is_empty()).then(|| outputs.to_owned()),
            note: (state == "skipped").then(|| "reused from run 1".to_owned()),
            due_at: t0 + 5_000,
            created_at: t0,
            started_at: Some(t0 + 1_000),
            finished_at: (state == "completed" || state == "failed" || state == "skipped")
                .then_some(t0 + 2_000),
            lease_owner: (state == "running").then(|| "worker-a".to_owned()),
            lease_expires_at: None,
        };
    let h = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
    let runs = [
        run(1, "failed", None, None),
        run(2, "active", Some(1), Some("infer")),
    ];
    let stages = [
        stage(1, "dispatch", "completed", 1, None, ""),
        stage(
            1,
            "scrape",
            "completed",
            2,
            None,
            &format!("{{\"raw_subsquare.json\":\"{}\"}}", h('a')),
        ),
        stage(
            1,
            "augment",
            "failed",
            1,
            Some("malformed proposal: field \"indexer\": missing"),
            "",
        ),
        stage(2, "scrape", "skipped", 0, None, ""),
        stage(2, "infer", "running", 1, None, ""),
        stage(2, "vote", "retrying", 2, Some("RPC unreachable"), ""),
    ];
    let status = ReferendumStatus {
        network: Network::Polkadot,
        referendum: 1801,
        runs: runs.iter().collect(),
        stages: stages.iter().collect(),
        store_only: vec![(3, vec!["raw_subsquare.json".into()])],
        latest: Some(1),
    };
    insta::assert_snapshot!(
        "status_public_links",
        render(&status, Some("https://cybergov.example.org/"), "/srv/store")
    );
    insta::assert_snapshot!("status_store_keys", render(&status, None, "/srv/store"));
}

/// A dry run makes no public claim: no comment is posted (the one it would post is kept as
/// comment.preview.md), the run records that it was a dry run, and once votes are submitted
/// dispatch starts a new run that votes, then comments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_posts_nothing_and_is_voted_once_votes_are_submitted() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let target = ["--network", "polkadot", "--id", id.as_str()];
    let in_mode = |mode: &str, args: &[&str]| {
        let o = w
            .cybergov(args)
            .env("CYBERGOV_PIPELINE__VOTE_MODE", mode)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    };

    let (code, out) = in_mode("dry-run", &[&["run"][..], &target].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("run 1 (latest): completed"), "{out}");
    assert_eq!(w.comment_posts(REF), 0, "a dry run posts no comment");
    let runs = w
        .store_path()
        .join(format!("proposals/polkadot/{REF}/runs"));
    let run1 = files_under(&runs.join("1"));
    for absent in ["receipt.json", "comment.json"] {
        assert!(!run1.contains_key(absent), "{absent} in a dry run");
    }
    let record: serde_json::Value = serde_json::from_slice(&run1["vote.dry-run.json"]).unwrap();
    assert_eq!(record["schema"], "cybergov.dry-run/v1");
    let manifest = Sha256Hash::of(&run1["manifest.json"]).to_hex();
    assert_eq!(record["manifest_sha256"], manifest.as_str());
    let preview = String::from_utf8(run1["comment.preview.md"].clone()).unwrap();
    assert!(preview.contains("cybergov votes"), "{preview}");
    assert!(preview.contains(&manifest), "{preview}");

    // Still dry-run: dispatch leaves the referendum alone.
    let (code, out) = in_mode("dry-run", &["dispatch", "--network", "polkadot"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");

    // Votes are submitted now: the dry run was never voted, so dispatch starts run 2, which
    // votes and then comments.
    let (code, out) = in_mode("submit", &["dispatch", "--network", "polkadot"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("queued polkadot #{REF} run 2")),
        "{out}"
    );
    let (code, out) = in_mode("submit", &[&["run"][..], &target].concat());
    assert_eq!(code, Some(0), "{out}");
    let run2 = files_under(&runs.join("2"));
    assert!(run2.contains_key("receipt.json"), "{out}");
    assert!(run2.contains_key("comment.json"), "{out}");
    assert!(!run2.contains_key("vote.dry-run.json"));
    assert_eq!(w.comment_posts(REF), 1, "one comment, after the vote");

    // Voted: nothing more to dispatch.
    let (code, out) = in_mode("submit", &["dispatch", "--network", "polkadot"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");
}

/// A real account that delegates its votes on a track cannot vote there (the chain refuses):
/// `status` says so, naming the network, the track and the delegate, and `run` warns at start-up
/// in submit mode, instead of the operator finding out from a failed vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_account_that_delegates_on_a_track_is_warned_about() {
    let w = World::new(Backend::Sqlite).await;
    let (code, out, _) = run_cli(&w, &["status", "--network", "polkadot"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("delegates"), "no delegation yet: {out}");

    // Bob (the real account) delegates track 2 to Charlie, as `ConvictionVoting.delegate` would.
    let charlie = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y";
    let bob = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    w.chain
        .rpc(
            "dev_setStorage",
            serde_json::json!([{"ConvictionVoting": {"VotingFor": [[[bob, 2], {"Delegating": {
                "balance": 1_000_000_000_000u64, "target": charlie, "conviction": "Locked1x",
                "delegations": {"votes": 0, "capital": 0}, "prior": [0, 0]}}]]}}]),
        )
        .await;
    let (code, out, _) = run_cli(&w, &["status", "--network", "polkadot"]);
    assert_eq!(code, 0, "{out}");
    let charlie_dot = cybergov::account::AccountId::from_ss58(charlie)
        .unwrap()
        .0
        .to_ss58(0);
    assert!(
        out.contains("warning: polkadot: real_account")
            && out.contains("delegates its votes on track 2 to")
            && out.contains(&charlie_dot),
        "{out}"
    );
    assert!(
        !out.contains("on track 11"),
        "only the delegated track: {out}"
    );

    // `run` warns before it starts (a referendum Subsquare does not know ends it quickly).
    let (_, out, err) = run_cli(&w, &["run", "--network", "polkadot", "--id", "77"]);
    assert!(err.contains("delegates its votes on track 2"), "{out}{err}");
}

/// A foreground run fails fast when Subsquare refuses connections, naming the refusal, instead
/// of waiting out the stage's backoff (before: about 15 minutes); a service would keep retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_a_foreground_run_at_once_naming_the_cause() {
    let w = World::new(Backend::Sqlite).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = REF.to_string();
    let started = std::time::Instant::now();
    let o = w
        .cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
        .env(
            "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Connection refused"),
        "the cause is named: {text}"
    );
    assert!(
        text.contains("unreachable: a foreground run stops here"),
        "{text}"
    );
    // Not a benchmark: the stage's backoff (60 s and more) was not waited out.
    assert!(
        took < std::time::Duration::from_secs(60),
        "took {took:?}: {text}"
    );
    let ledger = w.ledger().await;
    let runs = ledger.runs(Some(P), Some(REF)).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, "failed", "{text}");
}

/// Two foreground `cybergov run`s started at the same moment on a fresh ledger make one run
/// between them: one creates it, the other follows it; one vote, one comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_foreground_runs_started_at_once_make_one_run() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let start = || {
        w.cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for o in &outputs {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let ledger = w.ledger().await;
    let runs = ledger.runs(Some(P), Some(REF)).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, "completed");
    assert_eq!(w.comment_posts(REF), 1);
    assert!(
        !w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/2"))
            .exists()
    );
}

/// An endpoint that serves another chain than the network's is refused at start-up, naming the
/// network and both genesis hashes, before any run is created or anything signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_of_another_chain_is_refused_at_start_up() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let o = w
        .cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
        .env(
            "CYBERGOV_NETWORKS__POLKADOT__GENESIS_HASH",
            cybergov::network::POLKADOT_GENESIS,
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("polkadot: the endpoint serves the chain with genesis 0x4545")
            && err.contains(cybergov::network::POLKADOT_GENESIS)
            && err.contains("refusing to sign for another chain"),
        "{err}"
    );
    let ledger = w.ledger().await;
    assert!(ledger.runs(Some(P), Some(REF)).await.unwrap().is_empty());
}

/// Each network may have its own proxy key, preferred over the shared one, and a key that is
/// not a proxy of the network's real account is refused at start-up, naming the network,
/// before any stage runs (not at the first vote, after inference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_key_that_is_not_a_proxy_of_the_real_account_is_refused_at_start_up() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let run = ["run", "--network", "polkadot", "--id", id.as_str()];
    let o = w
        .cybergov(&run)
        .env("CYBERGOV_PROXY_SEED_POLKADOT", "//Charlie")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("polkadot: the proxy key"), "{err}");
    assert!(err.contains("CYBERGOV_PROXY_SEED_POLKADOT"), "{err}");
    assert!(err.contains("not a Governance proxy"), "{err}");
    assert!(!err.contains("Charlie"), "the key is never printed: {err}");
    let ledger = w.ledger().await;
    assert!(ledger.runs(Some(P), Some(REF)).await.unwrap().is_empty());

    // The network's own key wins over a wrong shared one.
    let o = w
        .cybergov(&run)
        .env("CYBERGOV_PROXY_SEED", "//Charlie")
        .env("CYBERGOV_PROXY_SEED_POLKADOT", "//Alice")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("run 1 (latest): completed"), "{text}");
    assert_eq!(w.comment_posts(REF), 1);
}

/// Proposers edit after submission: once a voted referendum's text changes, dispatch starts
/// run 2, which reads the new text, links run 1's manifest and says in its comment that the
/// text changed. An unchanged proposal starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_proposal_is_voted_again_and_an_unchanged_one_is_not() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let target = ["--network", "polkadot", "--id", id.as_str()];
    let cli = |args: &[&str]| {
        let o = w
            .cybergov(args)
            .env("CYBERGOV_PIPELINE__REVOTE_MIN_INTERVAL_SECS", "0")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {text}");
        text
    };
    cli(&[&["run"][..], &target].concat());
    assert_eq!(w.comment_posts(REF), 1);

    // Unchanged: nothing to do.
    let out = cli(&["dispatch", "--network", "polkadot"]);
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");

    // The proposer edits the text.
    let edited = variant(REF, |v| {
        let text = v["content"].as_str().unwrap().to_owned();
        v["content"] = format!("{text}\n\nUpdate: the budget is now 40,000 USDC.").into();
    });
    w.subsquare.add_referendum(REF, edited);
    let out = cli(&["dispatch", "--network", "polkadot"]);
    assert!(
        out.contains(&format!("queued polkadot #{REF} run 2")),
        "{out}"
    );
    cli(&[&["run"][..], &target].concat());

    let runs = w
        .store_path()
        .join(format!("proposals/polkadot/{REF}/runs"));
    let (run1, run2) = (files_under(&runs.join("1")), files_under(&runs.join("2")));
    let content = String::from_utf8(run2["content.md"].clone()).unwrap();
    assert!(content.contains("40,000 USDC"), "run 2 read the new text");
    let m2 = Manifest::from_canonical_bytes(&run2["manifest.json"]).unwrap();
    assert_eq!(m2.previous, Some(Sha256Hash::of(&run1["manifest.json"])));
    assert!(run2.contains_key("receipt.json"));
    assert_eq!(w.comment_posts(REF), 2);
    let posts = w.subsquare.posts();
    let (_, body) = posts.last().unwrap();
    assert!(
        body.contains("the proposal's text changed since run 1"),
        "{body}"
    );

    // Unchanged since run 2: nothing more.
    let out = cli(&["dispatch", "--network", "polkadot"]);
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");
}

/// A run that failed for good is not the referendum's end: dispatch starts a new run after the
/// backoff, at most `failed_run_retries` times, and then leaves the failure to an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_by_dispatch_within_its_policy() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let cli = |args: &[&str], retries: &str| {
        let o = w
            .cybergov(args)
            .env("CYBERGOV_PIPELINE__FAILED_RUN_RETRIES", retries)
            .env("CYBERGOV_PIPELINE__FAILED_RUN_BACKOFF_SECS", "0")
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let run = ["run", "--network", "polkadot", "--id", id.as_str()];
    // The proposal cannot be read: run 1 fails at augment, for good.
    let broken = variant(REF, |v| {
        v.as_object_mut().unwrap().remove("indexer");
    });
    w.subsquare.add_referendum(REF, broken.clone());
    let out = cli(&run, "1");
    assert!(out.contains("run 1: failed"), "{out}");

    // No retries allowed: the failure stays.
    let out = cli(&["dispatch", "--network", "polkadot"], "0");
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");

    // One retry allowed: run 2, which fails the same way; then no more.
    let out = cli(&["dispatch", "--network", "polkadot"], "1");
    assert!(
        out.contains(&format!("queued polkadot #{REF} run 2")),
        "{out}"
    );
    let out = cli(&run, "1");
    assert!(out.contains("run 2: failed"), "{out}");
    let out = cli(&["dispatch", "--network", "polkadot"], "1");
    assert!(out.contains(&format!("skipped polkadot #{REF}")), "{out}");

    // The author fixes the proposal; a policy with retries left votes it.
    w.subsquare.add_referendum(REF, toolkit_as(REF));
    let out = cli(&["dispatch", "--network", "polkadot"], "2");
    assert!(
        out.contains(&format!("queued polkadot #{REF} run 3")),
        "{out}"
    );
    let out = cli(&run, "2");
    assert!(out.contains("run 3 (latest): completed"), "{out}");
    assert_eq!(w.comment_posts(REF), 1);
    let ledger = w.ledger().await;
    let states: Vec<String> = ledger
        .runs(Some(P), Some(REF))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, ["failed", "failed", "completed"]);
}

/// A proposal whose body is empty once cleaned completes its run as a forced ABSTAIN, voted and
/// explained in the comment, instead of failing the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_proposal_is_an_explained_abstain_not_a_failed_run() {
    let w = World::new(Backend::Sqlite).await;
    w.subsquare.add_referendum(
        REF,
        variant(REF, |v| {
            v["content"] = "<img src=\"a.png\"><script>x()</script>".into()
        }),
    );
    let id = REF.to_string();
    let o = w
        .cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("run 1 (latest): completed"), "{out}");
    let run1 = files_under(
        &w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/1")),
    );
    let vote: serde_json::Value = serde_json::from_slice(&run1["vote.json"]).unwrap();
    assert_eq!(vote["decision"], "abstain");
    assert!(
        vote["forced_abstain"].as_str().unwrap().contains("empty"),
        "{vote}"
    );
    let posts = w.subsquare.posts();
    let (_, body) = posts.last().expect("the comment");
    assert!(body.contains("ABSTAIN was forced"), "{body}");
}

/// A field of the wrong type in a part the jurors do not need (`track` as text: the chain is the
/// authority on tracks) is left out with its reason, recorded in augment.json and shown by
/// `status`; the referendum is voted all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_typed_field_the_jurors_do_not_need_is_noted_not_fatal() {
    let w = World::new(Backend::Sqlite).await;
    w.subsquare
        .add_referendum(REF, variant(REF, |v| v["track"] = "eleven".into()));
    let id = REF.to_string();
    let (code, out, err) = run_cli(&w, &["run", "--network", "polkadot", "--id", id.as_str()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("run 1 (latest): completed"), "{out}");
    assert!(
        out.contains("left out: field \"track\": expected non-negative integer, found string"),
        "status shows what was left out: {out}"
    );
    let run1 = files_under(
        &w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/1")),
    );
    let augment: serde_json::Value = serde_json::from_slice(&run1["augment.json"]).unwrap();
    assert_eq!(augment["track"], serde_json::Value::Null);
    assert!(
        augment["unread_fields"][0]
            .as_str()
            .is_some_and(|f| f.starts_with("field \"track\"")),
        "{augment}"
    );
    let content = String::from_utf8(run1["content.md"].clone()).unwrap();
    assert!(content.contains("on track unknown"), "{content}");
    assert!(run1.contains_key("receipt.json"), "voted: {out}");
}

/// A long proposal fitted by augmentation also fits the jurors' prompt: the body budget counts
/// the system text, persona and request around it, the analysis, the rationale and the
/// scoring, so the infer stage never refuses a prompt over the model's context (before, a body
/// fitted to `max_content_tokens` alone gave "prompt of 4133 tokens … exceeds … 4096").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_proposal_fits_the_whole_juror_prompt() {
    let w = World::new(Backend::Sqlite).await;
    let long = variant(REF, |v| {
        let paragraph = "The treasury would fund a light-client toolkit, its audits, its documentation and two years of maintenance by a team of four engineers, with monthly public reports. ";
        // A few sections of many paragraphs, as real proposals have.
        let body: Vec<String> = (0..6)
            .map(|i| format!("## Part {i}\n\n{}", vec![paragraph; 25].join("\n\n")))
            .collect();
        v["content"] = body.join("\n\n").into();
    });
    w.subsquare.add_referendum(REF, long);
    let id = REF.to_string();
    let o = w
        .cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
        // The body alone may take nearly the whole context: only the whole-prompt budget
        // keeps the jurors' prompt inside it.
        .env("CYBERGOV_AUGMENT__MAX_CONTENT_TOKENS", "4000")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("run 1 (latest): completed"), "{out}");
    let run1 = files_under(
        &w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/1")),
    );
    let augment: serde_json::Value = serde_json::from_slice(&run1["augment.json"]).unwrap();
    assert_eq!(augment["fit"]["truncated"], true, "{}", augment["fit"]);
    let kept = augment["fit"]["kept_tokens"].as_u64().unwrap();
    assert!(
        kept > 0 && kept < 4000,
        "the body was cut below max_content_tokens, not away: {kept}"
    );
}

/// The ledger is not the only guard against a second vote: with the SQLite ledger deleted
/// after a referendum was voted, `cybergov run` starts afresh (run 2), and its vote stage
/// refuses — run 1's receipt and the chain both show the vote — so nothing is sent again and
/// no second comment is posted. An operator's `rerun` is a deliberate re-vote and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ledger_never_leads_to_a_second_vote() {
    let w = World::new(Backend::Sqlite).await;
    let id = REF.to_string();
    let target = ["--network", "polkadot", "--id", id.as_str()];
    let cli = |args: &[&str]| {
        let o = w.cybergov(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    };
    let (code, out) = cli(&[&["run"][..], &target].concat());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(w.comment_posts(REF), 1);
    let nonce = w
        .chain
        .nonce("15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5")
        .await;

    std::fs::remove_file(w.dir.path().join("cybergov.db")).unwrap();
    let (code, out) = cli(&[&["run"][..], &target].concat());
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("was voted already (run 1 has a receipt.json)"),
        "{out}"
    );
    assert_eq!(
        w.chain
            .nonce("15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5")
            .await,
        nonce,
        "no second vote was sent"
    );
    assert_eq!(w.comment_posts(REF), 1, "no second comment");

    // A deliberate re-vote records why, and votes.
    let (code, out) = cli(&[&["rerun"][..], &target, &["--from", "vote"]].concat());
    assert_eq!(code, Some(0), "{out}");
    let runs = w
        .store_path()
        .join(format!("proposals/polkadot/{REF}/runs"));
    let last = std::fs::read_dir(&runs).unwrap().count();
    let revote: serde_json::Value = serde_json::from_slice(
        &std::fs::read(runs.join(last.to_string()).join("revote.json")).unwrap(),
    )
    .unwrap();
    assert!(
        revote["reason"].as_str().unwrap().contains("rerun"),
        "{revote}"
    );
    assert_eq!(w.comment_posts(REF), 2, "the re-vote comments once");
}
