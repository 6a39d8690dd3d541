//! The service's queue polling, on SQLite and on PostgreSQL (127.0.0.1:5432), with stage bodies
//! that do nothing: a job queued after the worker went idle, and a delayed successor (scrape,
//! 2 s after dispatch here), are fetched within a few poll intervals of being due, not at the
//! worker's next heartbeat (half the dead-worker timeout, minutes away here). apalis's own
//! interval poller woke an idle worker only once; `queue::EveryInterval` replaces it.

use crate::common::pipeline::{Backend, TestDb};
use cybergov::config::Config;
use cybergov::network::Network;
use cybergov::pipeline::engine::Engine;
use cybergov::pipeline::handler::Registry;
use cybergov::pipeline::service::{Parts, spawn};
use cybergov::wiring::Stages;
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

/// The six stages, doing nothing: the orchestration alone.
const STAGES: [&str; 6] = ["dispatch", "scrape", "augment", "infer", "vote", "comment"];

/// A default configuration over a fresh `backend` database and a store in `dir`.
async fn config_in(backend: Backend, dir: &Path) -> (Config, TestDb) {
    let db = TestDb::create(backend, dir).await;
    let mut config = Config::default();
    config.database.url = db.url.clone();
    config.store.path = dir.join("store");
    (config, db)
}

/// An engine over `config` whose stages are `registry`; `queued`: a service's, with a queue.
async fn engine_with(config: &Config, registry: Registry, queued: bool) -> Engine {
    let store: cybergov::store::SharedStore =
        Arc::new(cybergov::store::FsStore::new(&config.store.path).unwrap());
    cybergov::wiring::open_engine(
        config,
        Arc::default(),
        store,
        Stages::Custom(registry),
        queued,
    )
    .await
    .unwrap()
}

async fn idle_worker_picks_up_later_jobs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _db) = config_in(backend, dir.path()).await;
    config.pipeline.graph =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/bench-pipeline.toml"));
    config.pipeline.poll_interval_ms = 50;
    config.pipeline.dead_worker_timeout_secs = DEAD_WORKER_SECS;
    config.pipeline.scrape_delay_secs = Some(SCRAPE_DELAY_SECS);
    let engine = Arc::new(engine_with(&config, Registry::noop(STAGES), true).await);

    let service = spawn(
        engine.clone(),
        Parts {
            tick: None,
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
        .start_run(Network::Kusama, referendum, Some(0))
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

/// One network's Subsquare outage does not stop the others' dispatch: Kusama's API refuses the
/// connection, Polkadot's referendum is still started, and the failure is reported by network.
#[tokio::test]
async fn one_networks_outage_leaves_the_others_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _db) = config_in(Backend::Sqlite, dir.path()).await;
    let subsquare = cybergov::subsquare::standin::spawn().await.unwrap();
    subsquare.add_referendum(
        1801,
        crate::common::subsquare_server::fixture("polkadot-1801-toolkit.json"),
    );
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    config.subsquare.max_retries = 0;
    let polkadot = config.networks.get_mut(&Network::Polkadot).unwrap();
    polkadot.subsquare_api_url = subsquare.url.clone();
    polkadot.allowed_tracks = vec![33];
    let kusama = config.networks.get_mut(&Network::Kusama).unwrap();
    kusama.enabled = true;
    kusama.subsquare_api_url = format!("http://127.0.0.1:{refused}");
    let engine = engine_with(&config, Registry::noop(STAGES), true).await;
    let report = cybergov::wiring::dispatch_once(&config, &engine, None)
        .await
        .expect("dispatch itself succeeds");
    let started: Vec<(Network, u32)> = report
        .started
        .iter()
        .map(|k| (k.network, k.referendum))
        .collect();
    assert_eq!(started, [(Network::Polkadot, 1801)], "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, Network::Kusama);
    assert!(report.failed[0].1.contains("kusama"), "{report:?}");
}

/// A stage body that takes its time, as inference does.
#[derive(Debug)]
struct Slow(Duration);

#[async_trait::async_trait]
impl cybergov::pipeline::handler::StageHandler for Slow {
    async fn run(
        &self,
        _: &cybergov::pipeline::ledger::StageKey,
    ) -> Result<cybergov::pipeline::handler::StageDone, cybergov::pipeline::handler::StageError>
    {
        tokio::time::sleep(self.0).await;
        Ok(Default::default())
    }
}

/// A live worker keeps its claim for as long as its stage runs, well past the dead-worker
/// timeout, because it renews the claim on every heartbeat; another worker finds the stage busy,
/// never takes it over, and the stage runs once.
#[tokio::test]
async fn a_live_workers_heartbeat_keeps_a_long_stage_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _db) = config_in(Backend::Sqlite, dir.path()).await;
    config.pipeline.graph =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/bench-pipeline.toml"));
    config.pipeline.dead_worker_timeout_secs = 2;
    config.pipeline.heartbeat_secs = 1;
    let mut slow = Registry::noop(STAGES);
    slow.register("scrape", Arc::new(Slow(Duration::from_secs(5))));
    let a = Arc::new(engine_with(&config, slow, false).await);
    let b = engine_with(&config, Registry::noop(STAGES), false).await;
    let worker = {
        let a = a.clone();
        tokio::spawn(async move { a.run_new(Network::Polkadot, 7, None).await })
    };
    // Past two dead-worker timeouts, the stage is still A's.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let scrape = cybergov::pipeline::ledger::StageKey {
        network: Network::Polkadot,
        referendum: 7,
        run: 1,
        stage: "scrape".into(),
    };
    let claim = b
        .ledger
        .claim(&scrape, "worker-b", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        matches!(claim, cybergov::pipeline::ledger::Claim::Busy { .. }),
        "{claim:?}"
    );
    worker.await.unwrap().unwrap();
    let row = b.ledger.stage(&scrape).await.unwrap().unwrap();
    assert_eq!(row.state, "completed", "{row:?}");
    assert_eq!(row.attempts, 1, "ran once: {row:?}");
    assert_eq!(
        a.ledger
            .runs(Some(Network::Polkadot), Some(7))
            .await
            .unwrap()[0]
            .state,
        "completed"
    );
}

/// With the GitHub runner, an infer stage that would time out before the runner stops waiting
/// for its workflow run is refused at start-up: its retry would dispatch a second public run.
#[tokio::test]
async fn an_infer_timeout_shorter_than_the_runners_wait_is_refused_at_start() {
    use cybergov::stages::infer::runner::settings::RunnerKind;
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _db) = config_in(Backend::Sqlite, dir.path()).await;
    config.runner.kind = RunnerKind::Github;
    config.runner.github.owner = Some("cybergov".into());
    config.runner.github.repo = Some("cybergov".into());
    let store: cybergov::store::SharedStore =
        Arc::new(cybergov::store::FsStore::new(&config.store.path).unwrap());
    let open = |config: Config| {
        let store = store.clone();
        async move {
            cybergov::wiring::open_engine(
                &config,
                Arc::default(),
                store,
                Stages::Custom(Registry::noop(STAGES)),
                false,
            )
            .await
        }
    };
    // The defaults fit: 300 s to find the run + 3000 s for it, below the stage's 3600 s.
    open(config.clone()).await.unwrap();
    config.runner.github.run_timeout_secs = 3 * 3600;
    let e = open(config).await.unwrap_err().to_string();
    assert!(e.contains("infer stage's timeout_secs (3600 s)"), "{e}");
    assert!(e.contains("second workflow run"), "{e}");
}

/// Makes the ledger refuse new stage rows while the stage runs, as a full disk or a broken
/// database would: the stage's completion (which writes its successor) fails.
#[derive(Debug)]
struct BreakTheLedger(String);

#[async_trait::async_trait]
impl cybergov::pipeline::handler::StageHandler for BreakTheLedger {
    async fn run(
        &self,
        _: &cybergov::pipeline::ledger::StageKey,
    ) -> Result<cybergov::pipeline::handler::StageDone, cybergov::pipeline::handler::StageError>
    {
        let pool = sqlx::SqlitePool::connect(&self.0).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER no_new_stages BEFORE INSERT ON cybergov_stages \
             BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        Ok(Default::default())
    }
}

/// A ledger error after a stage ran hands the claim back (the stage retrying, no lease) instead
/// of leaving it `running` under this worker until its lease lapses.
#[tokio::test]
async fn a_ledger_error_after_a_stage_hands_its_claim_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, db) = config_in(Backend::Sqlite, dir.path()).await;
    config.pipeline.graph =
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/bench-pipeline.toml"));
    let mut registry = Registry::noop(STAGES);
    registry.register("dispatch", Arc::new(BreakTheLedger(db.url.clone())));
    let engine = engine_with(&config, registry, false).await;
    let e = engine
        .run_new(Network::Polkadot, 7, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("the disk is full"), "{e}");
    let rows = engine
        .ledger
        .stages(Some(Network::Polkadot), Some(7), Some(1))
        .await
        .unwrap();
    let dispatch = rows.iter().find(|r| r.stage == "dispatch").unwrap();
    assert_eq!(dispatch.state, "retrying", "{dispatch:?}");
    assert_eq!(dispatch.lease_owner, None, "{dispatch:?}");
    assert!(
        dispatch
            .error
            .as_deref()
            .is_some_and(|t| t.contains("the ledger failed after the stage ran")),
        "{dispatch:?}"
    );
}
