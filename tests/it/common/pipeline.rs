//! Helpers for the job-graph tests: a fresh database per test (an SQLite file, or a new
//! PostgreSQL database on 127.0.0.1:5432 dropped at the end), a Subsquare stand-in with
//! referenda, chopsticks running our governance devnet (`tests/devnet/`) for the vote, the tiny
//! model for every juror, and the configuration that ties them together —
//! as a [`Config`] for in-process engines and as environment variables for `cybergov` children.

use super::chopsticks::Chopsticks;
use super::subsquare_server::{SubsquareServer, spawn_subsquare};
use cybergov::config::Config;
use cybergov::network::Network;
use cybergov::pipeline::ledger::{Ledger, RunRow, StageRow};
use cybergov::secret::Secrets;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The PostgreSQL server of the tests (trust auth); `TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in the test's folder.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A database for one test; a PostgreSQL one is dropped when this is.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates the database (PostgreSQL: `CREATE DATABASE cybergov_<random>`; fails loudly when
    /// the server is not there).
    pub async fn create(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("cybergov.db").display()),
                pg_name: None,
            },
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let name = format!("cybergov_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL must run at {admin} for this test (see DESIGN.md §9): {e}"
                        )
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').expect("url has a database").0;
                Self {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime: use a thread with its own.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// The test graph: the bundled stages with short timeouts and backoffs, no scrape delay.
pub const TEST_GRAPH: &str = r#"
[stages.dispatch]
next = ["scrape"]
attempts = 2
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20

[stages.scrape]
next = ["augment"]
attempts = 3
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20

[stages.augment]
next = ["infer"]
attempts = 3
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20

[stages.infer]
next = ["vote"]
attempts = 3
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20

[stages.vote]
next = ["comment"]
attempts = 3
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20

[stages.comment]
next = []
attempts = 3
backoff_secs = 1
backoff_max_secs = 2
timeout_secs = 20
"#;

/// The dead-worker timeout of the tests: above the test graph's timeouts, short enough that a
/// crash test waits for it.
pub const TEST_DEAD_WORKER_SECS: u64 = 25;

/// The referendum the tests vote on: the toolkit fixture served as devnet referendum #1 (ongoing
/// on chain; tests/devnet/README.md lists the devnet's referenda).
pub const REF: u32 = 1;

/// Bob (`//Bob`, written with Polkadot's SS58 prefix 0 like every address of the fixtures): the
/// devnet account Alice votes for through a Governance proxy.
pub const DEVNET_REAL: &str = "14E5nqKAp3oAJcmzgZhUD2RcptBeUBScxKHgJKU4HPNcKVf3";

/// One test's world.
pub struct World {
    /// Its folder (store, graph, model, SQLite file).
    pub dir: tempfile::TempDir,
    /// The Subsquare stand-in.
    pub subsquare: SubsquareServer,
    /// Its database.
    pub db: TestDb,
    /// The tiny juror model.
    pub model: PathBuf,
    /// The chain the vote stage votes on.
    pub chain: Chopsticks,
}

impl World {
    /// A world on `backend` whose Subsquare serves referendum [`REF`].
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let subsquare = spawn_subsquare().await;
        subsquare.add_referendum(REF, toolkit_as(REF));
        let chain = Chopsticks::start().await;
        let db = TestDb::create(backend, dir.path()).await;
        let model = dir.path().join("tiny.gguf");
        super::tiny_gguf::write_tiny_llama(&model, 7);
        std::fs::write(dir.path().join("graph.toml"), TEST_GRAPH).unwrap();
        Self {
            dir,
            subsquare,
            db,
            model,
            chain,
        }
    }

    /// The store folder.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The configuration, as `CYBERGOV_*` variables (what a child `cybergov` gets).
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        let mut set = |k: &str, val: String| {
            v.insert(format!("CYBERGOV_{k}"), val);
        };
        set("STORE__PATH", self.store_path().display().to_string());
        set("DATABASE__URL", self.db.url.clone());
        set(
            "NETWORKS__POLKADOT__SUBSQUARE_API_URL",
            self.subsquare.url.clone(),
        );
        set("NETWORKS__POLKADOT__RPC_URL", self.chain.ws_url.clone());
        set(
            "NETWORKS__POLKADOT__GENESIS_HASH",
            super::chopsticks::DEVNET_GENESIS.into(),
        );
        set("NETWORKS__POLKADOT__REAL_ACCOUNT", DEVNET_REAL.into());
        set(
            "NETWORKS__POLKADOT__ALLOWED_TRACKS",
            "[33, 11, 2, 0]".into(),
        );
        set("NETWORKS__POLKADOT__VOTE__LEGACY_BACKEND", "true".into());
        set("NETWORKS__POLKADOT__VOTE__PROXY_TYPE", "Governance".into());
        set("NETWORKS__POLKADOT__VOTE__INCLUSION_TIMEOUT_S", "60".into());
        set("PIPELINE__VOTE_MODE", "submit".into());
        set("NETWORKS__KUSAMA__ENABLED", "false".into());
        set("NETWORKS__PASEO__ENABLED", "false".into());
        for j in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
            set(
                &format!("MAGI__JURORS__{j}__MODEL"),
                self.model.display().to_string(),
            );
        }
        set("MAGI__MAX_NEW_TOKENS", "4".into());
        set("MAGI__THREADS", "1".into());
        set("AUGMENT__ANSWER_MAX_TOKENS", "4".into());
        set("SUBSQUARE__MAX_RETRIES", "0".into());
        set("SUBSQUARE__TIMEOUT_MS", "10000".into());
        set(
            "PIPELINE__GRAPH",
            self.dir.path().join("graph.toml").display().to_string(),
        );
        set(
            "PIPELINE__DEAD_WORKER_TIMEOUT_SECS",
            TEST_DEAD_WORKER_SECS.to_string(),
        );
        set("PIPELINE__SCRAPE_DELAY_SECS", "0".into());
        set("PIPELINE__POLL_INTERVAL_MS", "200".into());
        // Never during a test: the year field keeps the hourly dispatch out of the way.
        set("PIPELINE__DISPATCH_CRON", "0 0 0 1 1 * 2099".into());
        set("LOG__FILTER", "cybergov=info,warn".into());
        // Several `serve` workers run side by side in the crash tests: each its own port.
        set("SERVER__BIND", "127.0.0.1:0".into());
        v.insert("CYBERGOV_PROXY_SEED".into(), "//Alice".into());
        v.insert("RAYON_NUM_THREADS".into(), "1".into());
        v
    }

    /// The same configuration, loaded the way the binary loads it.
    pub fn config(&self) -> Config {
        Config::load_from(None, &self.vars()).expect("test configuration is valid")
    }

    /// The secrets of the tests (the `//Alice` dev key signs comments).
    pub fn secrets(&self) -> Arc<Secrets> {
        let vars = self.vars();
        Arc::new(Secrets::from_lookup(|k| vars.get(k).cloned()).unwrap())
    }

    /// The ledger.
    pub async fn ledger(&self) -> Ledger {
        cybergov::wiring::open_ledger(&self.config(), &self.secrets())
            .await
            .expect("ledger opens")
    }

    /// Comment POSTs the stand-in accepted for `index`.
    pub fn comment_posts(&self, index: u32) -> usize {
        self.subsquare
            .posts()
            .iter()
            .filter(|(i, _)| *i == index)
            .count()
    }

    /// `cybergov run` of polkadot #`id`, which must succeed.
    pub fn run_ok(&self, id: u32) {
        let id = id.to_string();
        let o = self
            .cybergov(&["run", "--network", "polkadot", "--id", id.as_str()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// A `cybergov` command in the world's folder with its configuration.
    pub fn cybergov(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cybergov"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(self.vars());
        c
    }
}

/// Waits until `network` #`referendum` has a run in a final state; returns the runs.
pub async fn wait_for_run(
    ledger: &Ledger,
    network: Network,
    referendum: u32,
    timeout: Duration,
) -> Vec<RunRow> {
    let start = Instant::now();
    loop {
        let runs = ledger.runs(Some(network), Some(referendum)).await.unwrap();
        if runs.last().is_some_and(|r| r.state != "active") {
            return runs;
        }
        if start.elapsed() > timeout {
            let stages = ledger
                .stages(Some(network), Some(referendum), None)
                .await
                .unwrap();
            panic!("run did not finish in {timeout:?}: {runs:#?}\n{stages:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stage rows of a run, by stage name.
pub async fn stages_of(
    ledger: &Ledger,
    network: Network,
    referendum: u32,
    run: u32,
) -> BTreeMap<String, StageRow> {
    ledger
        .stages(Some(network), Some(referendum), Some(run))
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.stage.clone(), s))
        .collect()
}

/// Every file under `root` with its bytes, by relative path.
pub fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The toolkit fixture (`polkadot-1801-toolkit.json`) served as referendum `index`.
pub fn toolkit_as(index: u32) -> Vec<u8> {
    super::subsquare_server::fixture_as("polkadot-1801-toolkit.json", index)
}
