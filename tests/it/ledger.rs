//! The ledger's hand-off, on SQLite and on PostgreSQL (127.0.0.1:5432): a stage's completion and
//! its successors' rows are written in one transaction, a successor that runs next in the same
//! worker is written already claimed, and a lost claim writes nothing. These are what make the
//! job graph's hand-off one commit (docs/ARCHITECTURE.md, "The job graph") without giving up
//! crash safety.

use crate::common::pipeline::{Backend, TestDb};
use cybergov::network::Network;
use cybergov::pipeline::ledger::{
    Claim, Completion, Db, Entry, Handoff, Ledger, NewRun, StageKey, StageRow, now_ms,
};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(600);

/// A ledger on a fresh database, with run 1 of Polkadot #7 created and its entry stage
/// (`dispatch`) scheduled due now.
async fn ledger_with_run(backend: Backend) -> (Ledger, StageKey, TestDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend, dir.path()).await;
    let ledger = Ledger::open(Db::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    let run = ledger
        .create_run(&NewRun {
            network: Network::Polkadot,
            referendum: 7,
            min_run: 1,
            previous_run: None,
            from_stage: None,
            expect_last: Some(0),
            entry: Some(Entry {
                stage: "dispatch",
                due_at: now_ms(),
                claimed_by: None,
            }),
        })
        .await
        .unwrap()
        .expect("a run is created");
    let entry = StageKey {
        network: Network::Polkadot,
        referendum: 7,
        run,
        stage: "dispatch".into(),
    };
    (ledger, entry, db, dir)
}

async fn row(ledger: &Ledger, key: &StageKey) -> Option<StageRow> {
    ledger.stage(key).await.unwrap()
}

async fn run_state(ledger: &Ledger, key: &StageKey) -> String {
    let runs = ledger
        .runs(Some(key.network), Some(key.referendum))
        .await
        .unwrap();
    runs.iter()
        .find(|r| r.run == i64::from(key.run))
        .expect("run row")
        .state
        .clone()
}

fn handoff(key: &StageKey, stage: &str, claim: bool) -> Handoff {
    Handoff {
        key: key.with_stage(stage),
        due_at: now_ms(),
        claim,
    }
}

async fn completion_writes_successors_claimed_or_scheduled(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    let scheduled = row(&ledger, &entry)
        .await
        .expect("entry row written with the run");
    assert_eq!(scheduled.state, "scheduled");
    assert_eq!(
        ledger.claim(&entry, "w1", LEASE).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );

    let next = [
        handoff(&entry, "scrape", true),
        handoff(&entry, "augment", false),
    ];
    let claimed = ledger
        .complete(&entry, "w1", "{}", Some("done"), &next, LEASE)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        Some(Completion {
            claimed: vec![true, false],
            run_completed: false
        })
    );

    let done = row(&ledger, &entry).await.unwrap();
    assert_eq!(done.state, "completed");
    assert_eq!(done.lease_owner, None);
    let direct = row(&ledger, &next[0].key).await.unwrap();
    assert_eq!(direct.state, "running");
    assert_eq!(direct.attempts, 1);
    assert_eq!(direct.lease_owner.as_deref(), Some("w1"));
    assert!(direct.lease_expires_at.unwrap() > now_ms());
    let queued = row(&ledger, &next[1].key).await.unwrap();
    assert_eq!(queued.state, "scheduled");
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.lease_owner, None);

    // The pre-claimed successor is this worker's: another worker cannot claim it.
    assert!(matches!(
        ledger.claim(&next[0].key, "w2", LEASE).await.unwrap(),
        Claim::Busy { .. }
    ));
    // And its holder completes it without a claim of its own.
    assert_eq!(
        ledger
            .complete(&next[0].key, "w1", "{}", None, &[], LEASE)
            .await
            .unwrap(),
        Some(Completion {
            claimed: vec![],
            run_completed: false
        }),
        "augment is still to run"
    );
}

async fn a_lost_claim_writes_nothing(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    let next = [handoff(&entry, "scrape", true)];
    let claimed = ledger
        .complete(&entry, "someone-else", "{}", None, &next, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed, None, "completion by a worker without the claim");
    assert_eq!(
        row(&ledger, &next[0].key).await,
        None,
        "no successor row without the completion"
    );
    let still = row(&ledger, &entry).await.unwrap();
    assert_eq!(still.state, "running");
    assert_eq!(still.lease_owner.as_deref(), Some("w1"));
}

async fn an_existing_successor_row_is_kept(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    let scrape = entry.with_stage("scrape");
    let later = now_ms() + 3_600_000;
    assert!(ledger.schedule(&scrape, later).await.unwrap());
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    let claimed = ledger
        .complete(
            &entry,
            "w1",
            "{}",
            None,
            &[handoff(&entry, "scrape", true)],
            LEASE,
        )
        .await
        .unwrap();
    assert_eq!(
        claimed.map(|c| c.claimed),
        Some(vec![false]),
        "the row was there: not claimed"
    );
    let kept = row(&ledger, &scrape).await.unwrap();
    assert_eq!(kept.state, "scheduled");
    assert_eq!(kept.due_at, later);
}

async fn a_dead_workers_handoff_is_swept_and_run_again(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    // w1 hands scrape to itself with a claim that expires at once, then "dies".
    let next = [handoff(&entry, "scrape", true)];
    ledger
        .complete(&entry, "w1", "{}", None, &next, Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = now_ms();
    let stale = ledger.stale(now, now - 60_000).await.unwrap();
    let orphan = stale
        .iter()
        .find(|r| r.stage == "scrape")
        .expect("the expired hand-off is stale");
    assert!(ledger.reclaim_expired(orphan).await.unwrap());
    assert_eq!(
        ledger.claim(&next[0].key, "w2", LEASE).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
}

async fn a_run_completes_only_when_every_stage_has(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    let next = [handoff(&entry, "scrape", false)];
    ledger
        .complete(&entry, "w1", "{}", None, &next, LEASE)
        .await
        .unwrap();
    assert!(!ledger.complete_run_if_done(&entry).await.unwrap());
    assert_eq!(run_state(&ledger, &entry).await, "active");

    ledger.claim(&next[0].key, "w1", LEASE).await.unwrap();
    let last = ledger
        .complete(&next[0].key, "w1", "{}", None, &[], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(last.run_completed, "the last stage completes the run");
    assert_eq!(run_state(&ledger, &entry).await, "completed");
    assert!(
        !ledger.complete_run_if_done(&next[0].key).await.unwrap(),
        "a finished run is not finished again"
    );
}

async fn a_branch_ending_first_leaves_the_run_to_the_other(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    let next = [
        handoff(&entry, "left", true),
        handoff(&entry, "right", true),
    ];
    ledger
        .complete(&entry, "w1", "{}", None, &next, LEASE)
        .await
        .unwrap();
    let left = ledger
        .complete(&next[0].key, "w1", "{}", None, &[], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(!left.run_completed, "the right branch is still running");
    assert_eq!(run_state(&ledger, &entry).await, "active");
    let right = ledger
        .complete(&next[1].key, "w1", "{}", None, &[], LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(right.run_completed);
    assert_eq!(run_state(&ledger, &entry).await, "completed");
}

async fn runs_are_numbered_after_the_last_one(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    let new = |min_run, only_if_idle: bool| NewRun {
        network: entry.network,
        referendum: entry.referendum,
        min_run,
        previous_run: None,
        from_stage: None,
        expect_last: only_if_idle.then_some(0),
        entry: None,
    };
    assert_eq!(
        ledger.create_run(&new(1, true)).await.unwrap(),
        None,
        "dispatch does not start a second run"
    );
    assert_eq!(ledger.create_run(&new(1, false)).await.unwrap(), Some(2));
    assert_eq!(
        ledger.create_run(&new(5, false)).await.unwrap(),
        Some(5),
        "run numbers the store already holds are skipped"
    );
    assert_eq!(ledger.create_run(&new(1, false)).await.unwrap(), Some(6));

    // Creators racing for the same referendum each get a run of their own.
    let racing = (0..4).map(|_| {
        let ledger = ledger.clone();
        let new = new(1, false);
        tokio::spawn(async move { ledger.create_run(&new).await })
    });
    let mut got: Vec<u32> = futures::future::join_all(racing)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().expect("a run"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![7, 8, 9, 10]);
}

async fn an_entry_can_be_written_claimed(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    let run = ledger
        .create_run(&NewRun {
            network: entry.network,
            referendum: entry.referendum,
            min_run: 1,
            previous_run: None,
            from_stage: None,
            expect_last: None,
            entry: Some(Entry {
                stage: "dispatch",
                due_at: now_ms(),
                claimed_by: Some(("w1", LEASE)),
            }),
        })
        .await
        .unwrap()
        .unwrap();
    let key = StageKey { run, ..entry };
    let claimed = row(&ledger, &key).await.unwrap();
    assert_eq!(claimed.state, "running");
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert!(matches!(
        ledger.claim(&key, "w2", LEASE).await.unwrap(),
        Claim::Busy { .. }
    ));
    assert!(
        ledger
            .complete(&key, "w1", "{}", None, &[], LEASE)
            .await
            .unwrap()
            .unwrap()
            .run_completed
    );
}

async fn a_failure_fails_the_run(backend: Backend) {
    let (ledger, entry, _db, _dir) = ledger_with_run(backend).await;
    ledger.claim(&entry, "w1", LEASE).await.unwrap();
    assert!(!ledger.fail(&entry, "w2", "not mine").await.unwrap());
    assert_eq!(run_state(&ledger, &entry).await, "active");
    assert!(ledger.fail(&entry, "w1", "malformed").await.unwrap());
    let failed = row(&ledger, &entry).await.unwrap();
    assert_eq!(failed.state, "failed");
    assert_eq!(failed.error.as_deref(), Some("malformed"));
    assert_eq!(run_state(&ledger, &entry).await, "failed");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both!(
    completion_writes_successors_claimed_or_scheduled,
    a_lost_claim_writes_nothing,
    an_existing_successor_row_is_kept,
    a_dead_workers_handoff_is_swept_and_run_again,
    a_run_completes_only_when_every_stage_has,
    a_branch_ending_first_leaves_the_run_to_the_other,
    runs_are_numbered_after_the_last_one,
    an_entry_can_be_written_claimed,
    a_failure_fails_the_run,
);

#[tokio::test]
async fn a_truncated_or_foreign_sqlite_file_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A ledger with a run, then truncated to zero bytes (a full disk, a bad copy).
    let path = dir.path().join("ledger.sqlite");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let ledger = Ledger::open(Db::connect(&url).await.unwrap())
        .await
        .unwrap();
    // Closed, so that nothing writes the file back behind the truncation.
    ledger.db().close().await;
    drop(ledger);
    std::fs::write(&path, b"").unwrap();
    let e = Db::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("is empty, not a cybergov ledger"), "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "nothing written over it"
    );

    std::fs::write(&path, b"these are my notes, not a database\n").unwrap();
    let e = Db::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("not an SQLite database"), "{e}");

    // A file that is not there yet is a new ledger, as before.
    let fresh = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("new.sqlite").display()
    );
    Ledger::open(Db::connect(&fresh).await.unwrap())
        .await
        .unwrap();
}

/// An SQLite database that existed before and holds no ledger (another program's, or an empty
/// one) is refused, naming `--init`; with it, the database is adopted and is a ledger from then
/// on. The CLI's `--init` reaches it.
#[tokio::test]
async fn an_empty_or_foreign_sqlite_database_is_refused_without_init() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.sqlite");
    let url = format!("sqlite://{}?mode=rwc", foreign.display());
    let other = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE notes (t TEXT)")
        .execute(&other)
        .await
        .unwrap();
    other.close().await;
    let e = Db::connect(&url).await.unwrap_err().to_string();
    assert!(
        e.contains("another program's SQLite database (tables: notes)") && e.contains("--init"),
        "{e}"
    );

    let empty = dir.path().join("empty.sqlite");
    let empty_url = format!("sqlite://{}?mode=rwc", empty.display());
    let pool = sqlx::SqlitePool::connect(&empty_url).await.unwrap();
    // Writes the header: a database with no tables, not an empty file.
    sqlx::query("PRAGMA user_version = 7")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = Db::connect(&empty_url).await.unwrap_err().to_string();
    assert!(e.contains("is an empty SQLite database"), "{e}");

    // `cybergov --init` adopts it; afterwards it is a ledger and opens without --init.
    let bin = env!("CARGO_BIN_EXE_cybergov");
    let status = |init: bool| {
        let mut c = std::process::Command::new(bin);
        if init {
            c.arg("--init");
        }
        c.arg("status")
            .current_dir(dir.path())
            .env("CYBERGOV_DATABASE__URL", &empty_url)
            .env("CYBERGOV_STORE__PATH", dir.path().join("store"))
            .output()
            .unwrap()
    };
    let o = status(false);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--init"));
    let o = status(true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ledger::open(Db::connect(&empty_url).await.unwrap())
        .await
        .unwrap();
    assert!(
        Db::connect(&url).await.is_err(),
        "the other one is still refused"
    );
}

#[tokio::test]
async fn a_refused_postgres_server_fails_at_once_naming_why() {
    // Port 1 on loopback: nothing listens, the connection is refused. The pool alone would
    // retry for its acquire timeout and report only "pool timed out".
    let Err(e) = Db::connect("postgres://cybergov@127.0.0.1:1/test").await else {
        panic!("a ledger on a port where nothing listens");
    };
    let e = e.to_string();
    assert!(e.to_lowercase().contains("refused"), "{e}");
    assert!(!e.contains("timed out"), "{e}");
}
