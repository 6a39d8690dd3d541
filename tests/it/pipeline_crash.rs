//! Crash tests: a real `cybergov serve` child is killed with SIGKILL in the middle of each
//! stage (`CYBERGOV_FAULT_PAUSE`: after the stage's work, before the ledger records it), a new
//! worker is started, and the run completes with exactly one vote and one comment, and no
//! artefact lost or rewritten. And two workers on PostgreSQL sharing one backlog never run the
//! same stage twice.

use crate::common::pipeline::{Backend, REF, World, files_under, stages_of, wait_for_run};
use crate::common::workers::{serve, terminate};
use cybergov::manifest::verify::verify_run;
use cybergov::network::Network;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const P: Network = Network::Polkadot;
/// `//Alice` (SS58 prefix 42), the devnet proxy that signs the votes.
const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

/// Inode and modification time of every stored file: a rewrite changes them.
fn identities(root: &std::path::Path) -> Vec<(String, u64, i64)> {
    files_under(root)
        .keys()
        .map(|rel| {
            let m = std::fs::metadata(root.join(rel)).unwrap();
            (
                rel.clone(),
                m.ino(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
            )
        })
        .collect()
}

async fn crash_in(stage: &str) {
    let w = World::new(Backend::Sqlite).await;
    let o = w
        .cybergov(&["dispatch", "--network", "polkadot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (mut first, paused) = serve(&w, &[("CYBERGOV_FAULT_PAUSE", stage)]);
    let line = paused
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the worker never reached {stage}"));
    assert!(line.contains(&format!("run 1 {stage}")), "{line}");
    let before_files = files_under(&w.store_path());
    let before_ids = identities(&w.store_path());
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let ledger = w.ledger().await;
    let row = &stages_of(&ledger, P, REF, 1).await[stage];
    assert_eq!(row.state, "running", "killed while running: {row:?}");

    let (mut second, _) = serve(&w, &[]);
    let runs = wait_for_run(&ledger, P, REF, Duration::from_secs(180)).await;
    terminate(&mut second);

    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, "completed", "{runs:?}");
    let stages = stages_of(&ledger, P, REF, 1).await;
    for (name, s) in &stages {
        assert_eq!(s.state, "completed", "{name}: {s:?}");
        let expected = if name == stage { 2 } else { 1 };
        assert_eq!(s.attempts, expected, "{name}: {s:?}");
    }
    // Exactly one vote transaction: Alice (the proxy) signs nothing but votes, so her nonce on
    // the devnet counts them. And exactly one comment.
    assert_eq!(stages["vote"].state, "completed");
    assert_eq!(w.chain.nonce(ALICE).await, 1, "one vote transaction");
    assert!(
        w.store_path()
            .join(format!("proposals/polkadot/{REF}/runs/1/receipt.json"))
            .exists()
    );
    assert_eq!(w.comment_posts(REF), 1, "one comment");
    // Nothing written before the kill was lost or rewritten.
    let after_files = files_under(&w.store_path());
    for (name, bytes) in &before_files {
        assert_eq!(after_files.get(name), Some(bytes), "{name} lost or changed");
    }
    let after_ids = identities(&w.store_path());
    for id in &before_ids {
        if id.0.ends_with("latest.json") {
            continue; // the one pointer, replaced by design when a manifest is published
        }
        assert!(after_ids.contains(id), "{} was rewritten", id.0);
    }
    let store = cybergov::store::FsStore::new(w.store_path()).unwrap();
    let report = verify_run(&store, P, REF, Some(1)).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_dispatch() {
    crash_in("dispatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_scrape() {
    crash_in("scrape").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_augment() {
    crash_in("augment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_infer() {
    crash_in("infer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_vote() {
    crash_in("vote").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_comment() {
    crash_in("comment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_postgres_share_a_backlog_without_running_a_stage_twice() {
    let w = World::new(Backend::Postgres).await;
    // Every other ongoing referendum of the devnet (tests/devnet/README.md), besides REF.
    let refs: Vec<u32> = vec![0, 2, 4];
    for r in &refs {
        w.subsquare
            .add_referendum(*r, crate::common::pipeline::toolkit_as(*r));
    }
    let o = w
        .cybergov(&["dispatch", "--network", "polkadot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Generous timeouts: two workers share two cores here, and a stage that times out is
    // retried (attempts 2), which would blur what this test counts.
    let graph = w.dir.path().join("slow-graph.toml");
    std::fs::write(
        &graph,
        crate::common::pipeline::TEST_GRAPH.replace("timeout_secs = 20", "timeout_secs = 200"),
    )
    .unwrap();
    let graph = graph.display().to_string();
    let slow = [
        ("CYBERGOV_PIPELINE__GRAPH", graph.as_str()),
        ("CYBERGOV_PIPELINE__DEAD_WORKER_TIMEOUT_SECS", "240"),
    ];
    let (mut a, _) = serve(&w, &slow);
    let (mut b, _) = serve(&w, &slow);
    let ledger = w.ledger().await;
    for r in refs.iter().copied().chain([REF]) {
        let runs = wait_for_run(&ledger, P, r, Duration::from_secs(400)).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].state, "completed", "{runs:?}");
        let stages = stages_of(&ledger, P, r, 1).await;
        assert_eq!(stages.len(), 6);
        for (name, s) in stages {
            // One claim per stage: no two workers ran it, concurrently or one after the other.
            // The vote may take a second try of the same worker: two workers sign for the
            // proxy at once, the devnet includes one of the two transactions with that nonce,
            // and the other's stage finds its nonce spent and signs anew (still one vote per
            // referendum, checked below).
            let tries = if name == "vote" { 2 } else { 1 };
            assert!(s.attempts <= tries, "{r} {name}: {s:?}");
            assert_eq!(s.state, "completed");
        }
        assert_eq!(w.comment_posts(r), 1, "one comment on {r}");
    }
    // One vote transaction per referendum, though two workers shared the backlog.
    assert_eq!(
        w.chain.nonce(ALICE).await,
        refs.len() as u64 + 1,
        "one vote per referendum"
    );
    terminate(&mut a);
    terminate(&mut b);
}
