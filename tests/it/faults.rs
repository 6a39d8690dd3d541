//! The fault-injection run (issue "Never a second vote, never a stalled run"): the `cybergov`
//! binary, in the foreground, against the chopsticks devnet and the Subsquare stand-in, through
//! the faults that matter at the moment they matter. It prints one line per fault and the
//! totals, and fails unless every referendum got at most one vote transaction and one comment,
//! no artefact was lost, and no foreground run took over a minute. docs/BENCHMARKS.md records
//! its output; `cargo test --test it faults:: -- --nocapture` prints it.
//!
//! Each fault runs in a world of its own (a new devnet, ledger and store), so that the proxy's
//! nonce counts exactly the vote transactions of that fault.

use crate::common::chopsticks::DEVNET_GENESIS;
use crate::common::output_text as text;
use crate::common::pipeline::{Backend, REF, World, files_under, wait_for_run};
use crate::common::workers::{serve, signal, terminate, watch};
use cybergov::network::Network;
use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// `//Alice` (SS58 prefix 42), the devnet proxy that signs the votes.
const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

/// What one fault left behind.
struct Outcome {
    fault: &'static str,
    /// Referenda the fault's world votes on: at most one vote and one comment each.
    referenda: u64,
    /// Whether `longest` must stay under a minute (a foreground run, or a take-over); a backlog
    /// worked through by a service is not bounded so.
    bounded: bool,
    /// Whether cybergov did the right thing (completed, or refused as it should).
    correct: bool,
    votes: u64,
    comments: usize,
    lost: usize,
    longest: Duration,
    note: String,
}

fn run_args() -> Vec<String> {
    ["run", "--network", "polkadot", "--id", &REF.to_string()]
        .map(String::from)
        .to_vec()
}

/// A foreground `cybergov run`, timed.
fn run(w: &World, extra: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let o = w
        .cybergov(&run_args().iter().map(String::as_str).collect::<Vec<_>>())
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    (o, started.elapsed())
}

/// A foreground run paused (`CYBERGOV_FAULT_PAUSE`) after `stage`'s work and before the ledger
/// records it, then killed with SIGKILL there.
fn kill_in(w: &World, stage: &str) {
    let mut child: Child = w
        .cybergov(&run_args().iter().map(String::as_str).collect::<Vec<_>>())
        .env("CYBERGOV_FAULT_PAUSE", stage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("FAULT-PAUSE"));
    assert!(reached, "the run never reached {stage}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every file the store held before, byte for byte, is still there.
fn lost_since(before: &std::collections::BTreeMap<String, Vec<u8>>, w: &World) -> usize {
    let after = files_under(&w.store_path());
    before
        .iter()
        .filter(|(name, bytes)| !name.ends_with("latest.json") && after.get(*name) != Some(bytes))
        .count()
}

async fn outcome(
    w: &World,
    fault: &'static str,
    correct: bool,
    lost: usize,
    longest: Duration,
    note: String,
) -> Outcome {
    Outcome {
        fault,
        referenda: 1,
        bounded: true,
        correct,
        votes: w.chain.nonce(ALICE).await,
        comments: w.subsquare.posts().len(),
        lost,
        longest,
        note,
    }
}

/// SIGKILL right after `stage`'s work, then `cybergov run` again: the run resumes once the dead
/// worker's lease lapses and completes, with nothing done twice.
async fn killed_then_run_again(stage: &'static str, fault: &'static str) -> Outcome {
    let w = World::new(Backend::Sqlite).await;
    kill_in(&w, stage);
    let before = files_under(&w.store_path());
    let (o, took) = run(&w, &[]);
    let all = text(&o);
    let correct = o.status.success() && all.contains("run 1 (latest): completed");
    let lost = lost_since(&before, &w);
    outcome(
        &w,
        fault,
        correct,
        lost,
        took,
        first_line_with(&all, "run 1"),
    )
    .await
}

fn first_line_with(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_report() {
    let mut outcomes = Vec::new();

    outcomes.push(killed_then_run_again("dispatch", "SIGKILL in dispatch, then run again").await);
    outcomes.push(killed_then_run_again("scrape", "SIGKILL in scrape, then run again").await);
    outcomes.push(killed_then_run_again("augment", "SIGKILL in augment, then run again").await);
    outcomes.push(killed_then_run_again("infer", "SIGKILL in infer, then run again").await);
    outcomes.push(killed_then_run_again("vote", "SIGKILL in vote, then run again").await);
    outcomes.push(killed_then_run_again("comment", "SIGKILL in comment, then run again").await);

    // Two foreground runs started at once: one run between them.
    {
        let w = World::new(Backend::Sqlite).await;
        let started = Instant::now();
        let spawn = || {
            w.cybergov(&run_args().iter().map(String::as_str).collect::<Vec<_>>())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let took = started.elapsed();
        let runs = w.ledger().await.runs(None, Some(REF)).await.unwrap();
        let correct = a.status.success() && b.status.success() && runs.len() == 1;
        let failed: Vec<String> = [&a, &b]
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| first_line_with(&text(o), "error"))
            .collect();
        let note = format!("{} run(s) in the ledger {}", runs.len(), failed.join(" | "));
        outcomes.push(outcome(&w, "two foreground runs at once", correct, 0, took, note).await);
    }

    // The ledger deleted between the vote and its comment: the next run starts afresh (run 2)
    // and must refuse to vote a second time.
    {
        let w = World::new(Backend::Sqlite).await;
        kill_in(&w, "vote");
        let before = files_under(&w.store_path());
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(w.dir.path().join(format!("cybergov.db{suffix}")));
        }
        let (o, took) = run(&w, &[]);
        let all = text(&o);
        let correct = !o.status.success() && all.contains("was voted already");
        let lost = lost_since(&before, &w);
        let note = first_line_with(&all, "voted already");
        outcomes.push(
            outcome(
                &w,
                "ledger deleted between vote and comment",
                correct,
                lost,
                took,
                note,
            )
            .await,
        );
    }

    // Subsquare refusing connections: the foreground fails fast, naming the refusal.
    {
        let w = World::new(Backend::Sqlite).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (o, took) = run(
            &w,
            &[(
                "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL",
                url.as_str(),
            )],
        );
        let all = text(&o);
        let correct = !o.status.success() && all.contains("Connection refused");
        let note = format!("failed after {:.1} s", took.as_secs_f64());
        outcomes.push(outcome(&w, "Subsquare refusing connections", correct, 0, took, note).await);
    }

    // An RPC endpoint of another chain than the network's: refused before anything is signed.
    {
        let w = World::new(Backend::Sqlite).await;
        let (o, took) = run(
            &w,
            &[(
                "CYBERGOV_NETWORKS__POLKADOT__GENESIS_HASH",
                cybergov::network::POLKADOT_GENESIS,
            )],
        );
        let all = text(&o);
        let correct = !o.status.success()
            && all.contains(DEVNET_GENESIS)
            && all.contains("refusing to sign for another chain");
        let note = "refused at start-up".to_owned();
        outcomes.push(
            outcome(
                &w,
                "RPC endpoint of the wrong chain",
                correct,
                0,
                took,
                note,
            )
            .await,
        );
    }

    outcomes.push(paused_past_its_lease().await);
    outcomes.push(read_only_store().await);
    outcomes.push(serve_worker_killed_in_vote().await);
    outcomes.push(two_serve_workers_on_one_backlog().await);

    println!("fault                                      correct  votes  comments  lost  took");
    for o in &outcomes {
        println!(
            "{:<42} {:<8} {:<6} {:<9} {:<5} {:>5.1} s  {}",
            o.fault,
            if o.correct { "yes" } else { "NO" },
            o.votes,
            o.comments,
            o.lost,
            o.longest.as_secs_f64(),
            o.note
        );
    }
    let longest = outcomes
        .iter()
        .filter(|o| o.bounded)
        .map(|o| o.longest)
        .max()
        .unwrap();
    println!(
        "totals: {} faults, {} handled correctly, {} vote transaction(s) (at most 1 per referendum: {}), {} comment(s) (at most 1 per referendum: {}), {} artefact(s) lost, longest foreground run or take-over {:.1} s",
        outcomes.len(),
        outcomes.iter().filter(|o| o.correct).count(),
        outcomes.iter().map(|o| o.votes).sum::<u64>(),
        outcomes.iter().all(|o| o.votes <= o.referenda),
        outcomes.iter().map(|o| o.comments).sum::<usize>(),
        outcomes.iter().all(|o| o.comments as u64 <= o.referenda),
        outcomes.iter().map(|o| o.lost).sum::<usize>(),
        longest.as_secs_f64()
    );
    for o in &outcomes {
        assert!(o.correct, "{}: {}", o.fault, o.note);
        assert!(
            o.votes <= o.referenda,
            "{}: {} vote transactions",
            o.fault,
            o.votes
        );
        assert!(
            o.comments as u64 <= o.referenda,
            "{}: {} comments",
            o.fault,
            o.comments
        );
        assert_eq!(o.lost, 0, "{}: artefacts lost", o.fault);
    }
    // Not a benchmark: a bound on waiting, where minutes were spent before.
    assert!(longest < Duration::from_secs(60), "longest run {longest:?}");
}

/// A slower graph than the tests' (stage timeouts of 200 s): a stage that outlives a pause must
/// not end in its own timeout, so that what stops it is the claim.
fn slow_graph(w: &World) -> String {
    let graph = w.dir.path().join("slow-graph.toml");
    std::fs::write(
        &graph,
        crate::common::pipeline::TEST_GRAPH.replace("timeout_secs = 20", "timeout_secs = 200"),
    )
    .unwrap();
    graph.display().to_string()
}

/// A foreground run stopped (SIGSTOP) in the vote stage right before its claim check, past its
/// lease; a second run takes the stage over and completes; the first, resumed, signs nothing.
async fn paused_past_its_lease() -> Outcome {
    let w = World::new(Backend::Sqlite).await;
    let graph = slow_graph(&w);
    let mut cmd = w.cybergov(&run_args().iter().map(String::as_str).collect::<Vec<_>>());
    cmd.env("CYBERGOV_FAULT_PAUSE", "claim")
        .env("CYBERGOV_PIPELINE__GRAPH", &graph);
    let mut first = watch(cmd);
    let line = first
        .paused
        .recv_timeout(Duration::from_secs(120))
        .expect("the first run never reached its claim check");
    signal(&first.child, "STOP");
    let (o, took) = run(&w, &[("CYBERGOV_PIPELINE__GRAPH", &graph)]);
    signal(&first.child, "CONT");
    let started = Instant::now();
    let resumed = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(60) {
            first.child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let first_said = first.lines.lock().unwrap().join("\n");
    let all = text(&o);
    let runs = w.ledger().await.runs(None, Some(REF)).await.unwrap();
    let correct = line.contains("claim")
        && runs.len() == 1
        && runs[0].state == "completed"
        && o.status.success()
        && all.contains("run 1 (latest): completed")
        && resumed.is_some()
        && first_said.contains("no longer holds its claim")
        && first_said.contains("stage abandoned; another worker holds it");
    let note = "resumed, it found its claim gone and signed nothing".to_owned();
    outcome(
        &w,
        "worker paused past its lease in vote",
        correct,
        0,
        took,
        note,
    )
    .await
}

/// A store that refuses writes (an immutable folder: root ignores permission bits): the
/// foreground fails at once, naming the refusal.
async fn read_only_store() -> Outcome {
    let w = World::new(Backend::Sqlite).await;
    let store = w.store_path();
    std::fs::create_dir_all(&store).unwrap();
    let chattr = |flag: &str| {
        let ok = std::process::Command::new("chattr")
            .args([flag, &store.display().to_string()])
            .status()
            .expect("chattr (e2fsprogs) makes the store read-only for this fault")
            .success();
        assert!(ok, "chattr {flag} on {}", store.display());
    };
    chattr("+i");
    let (o, took) = run(&w, &[]);
    chattr("-i");
    let all = text(&o);
    let correct = !o.status.success() && all.contains("Operation not permitted");
    let note = format!(
        "failed after {:.1} s, naming the refusal (Operation not permitted)",
        took.as_secs_f64()
    );
    outcome(&w, "read-only store", correct, 0, took, note).await
}

/// A `serve` worker killed (SIGKILL) in the vote stage while a second one runs beside it: the
/// second takes the stage over once the lease lapses, and the run finishes within a minute.
async fn serve_worker_killed_in_vote() -> Outcome {
    let w = World::new(Backend::Postgres).await;
    let o = w
        .cybergov(&["dispatch", "--network", "polkadot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (mut first, paused) = serve(&w, &[("CYBERGOV_FAULT_PAUSE", "vote")]);
    paused
        .recv_timeout(Duration::from_secs(120))
        .expect("the worker never reached the vote stage");
    let before = files_under(&w.store_path());
    let (mut second, _) = serve(&w, &[]);
    let started = Instant::now();
    first.kill().unwrap();
    first.wait().unwrap();
    let ledger = w.ledger().await;
    let runs = wait_for_run(&ledger, Network::Polkadot, REF, Duration::from_secs(120)).await;
    let took = started.elapsed();
    terminate(&mut second);
    let correct = runs.len() == 1 && runs[0].state == "completed";
    let lost = lost_since(&before, &w);
    let note = format!(
        "taken over and completed {:.1} s after the kill",
        took.as_secs_f64()
    );
    outcome(
        &w,
        "serve worker SIGKILLed in vote, other takes over",
        correct,
        lost,
        took,
        note,
    )
    .await
}

/// Two `serve` workers on one backlog of four referenda: every run completes, one vote and one
/// comment each.
async fn two_serve_workers_on_one_backlog() -> Outcome {
    let w = World::new(Backend::Postgres).await;
    // Every other ongoing referendum of the devnet (tests/devnet/README.md), besides REF.
    let refs = [0, 2, 4];
    for r in refs {
        w.subsquare
            .add_referendum(r, crate::common::pipeline::toolkit_as(r));
    }
    let o = w
        .cybergov(&["dispatch", "--network", "polkadot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let graph = slow_graph(&w);
    let slow = [("CYBERGOV_PIPELINE__GRAPH", graph.as_str())];
    let started = Instant::now();
    let (mut a, _) = serve(&w, &slow);
    let (mut b, _) = serve(&w, &slow);
    let ledger = w.ledger().await;
    let mut completed = 0;
    for r in refs.into_iter().chain([REF]) {
        let runs = wait_for_run(&ledger, Network::Polkadot, r, Duration::from_secs(400)).await;
        completed += usize::from(runs.len() == 1 && runs[0].state == "completed");
    }
    let took = started.elapsed();
    terminate(&mut a);
    terminate(&mut b);
    let mut o = outcome(
        &w,
        "two serve workers on a backlog of 4",
        completed == 4,
        0,
        took,
        format!("{completed} of 4 runs completed"),
    )
    .await;
    o.referenda = 4;
    o.bounded = false;
    o
}
