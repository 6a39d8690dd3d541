//! The service's queue polling, on SQLite and on PostgreSQL (127.0.0.1:5432), with stage bodies
//! that do nothing: a job queued after the worker went idle, and a delayed successor (scrape,
//! 2 s after dispatch here), are fetched within a few poll intervals of being due, not at the
//! worker's next heartbeat (half the dead-worker timeout, minutes away here). apalis's own
//! interval poller woke an idle worker only once; `queue::EveryInterval` replaces it.

mod common;

use common::pipeline::{Backend, TestDb};
use cybergov::config::{Config, Secrets};
use cybergov::network::Network;
use cybergov::pipeline::engine::Engine;
use cybergov::pipeline::handlers::Registry;
use cybergov::pipeline::service::{Parts, spawn};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The dead-worker timeout of these tests: apalis's heartbeat comes every half of it (300 s), far
/// beyond the time a delivery may take here.
const DEAD_WORKER_SECS: u64 = 600;
/// How long a due job may take to be picked up: many poll intervals, far below a heartbeat.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);
/// Scrape's delay after dispatch.
const SCRAPE_DELAY_SECS: u64 = 2;
/// Runs started one after the other, each on an idle worker.
const ROUNDS: u32 = 3;

async fn idle_worker_picks_up_later_jobs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend, dir.path()).await;
    let mut config = Config::default();
    config.database.url = db.url.clone();
    config.store.path = dir.path().join("store");
    config.pipeline.graph =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/bench-pipeline.toml"));
    config.pipeline.poll_interval_ms = 50;
    config.pipeline.dead_worker_timeout_secs = DEAD_WORKER_SECS;
    config.pipeline.scrape_delay_secs = Some(SCRAPE_DELAY_SECS);
    let store: cybergov::store::SharedStore =
        Arc::new(cybergov::store::FsStore::new(&config.store.path).unwrap());
    let registry = Registry::noop(["dispatch", "scrape", "augment", "infer", "vote", "comment"]);
    let engine = Arc::new(
        cybergov::pipeline::open_engine(&config, &Secrets::default(), store, registry, true)
            .await
            .unwrap(),
    );

    let service = spawn(
        engine.clone(),
        Parts {
            dispatch: false,
            workers: true,
        },
    );
    // Several rounds: whether an idle worker is woken again or not, without a poller that
    // re-arms itself, depends on what else woke it last; one round may pass by luck.
    let mut failure = None;
    for referendum in 1..=ROUNDS {
        // Let the worker find the queue empty and go idle, past several poll intervals.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if let Err(e) = one_round(&engine, referendum).await {
            failure = Some(e);
            break;
        }
    }
    service.stop().await.unwrap();
    if let Some(e) = failure {
        panic!("{e}");
    }
}

/// Starts a run of Kusama #`referendum` on the idle service and waits for it; the error says
/// what went wrong.
async fn one_round(engine: &Engine, referendum: u32) -> Result<(), String> {
    let t = Instant::now();
    let key = engine
        .start_run(Network::Kusama, referendum, true)
        .await
        .unwrap()
        .expect("a run is created");
    loop {
        let runs = engine
            .ledger
            .runs(Some(key.network), Some(key.referendum))
            .await
            .unwrap();
        if runs.iter().any(|r| r.state == "completed") {
            break;
        }
        if t.elapsed() > DELIVERY_DEADLINE + Duration::from_secs(SCRAPE_DELAY_SECS) {
            return Err(format!(
                "the run of #{referendum}, queued after the worker went idle, did not complete \
                 within {DELIVERY_DEADLINE:?} after its jobs were due (an idle worker that is not \
                 woken fetches again only on its heartbeat, every {} s)",
                DEAD_WORKER_SECS / 2
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The delay held: scrape did not start before it was due.
    let dispatched = engine.ledger.stage(&key).await.unwrap().unwrap();
    let scrape = key.with_stage("scrape");
    let scraped = engine.ledger.stage(&scrape).await.unwrap().unwrap();
    let due = dispatched.finished_at.unwrap() + 1000 * SCRAPE_DELAY_SECS as i64;
    if scraped.started_at.unwrap() < due {
        return Err(format!(
            "scrape of #{referendum} started at {:?}, before it was due at {due}",
            scraped.started_at
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_picks_up_later_jobs_on_sqlite() {
    idle_worker_picks_up_later_jobs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_picks_up_later_jobs_on_postgres() {
    idle_worker_picks_up_later_jobs(Backend::Postgres).await;
}
