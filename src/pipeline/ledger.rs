//! The ledger: the durable record of every run and every stage of it, keyed by
//! `(network, referendum, run, stage)`, in SQLite or PostgreSQL (the same SQL for both; the
//! migrations are in `migrations/`).
//!
//! The queue (apalis) delivers a job at least once and may deliver it twice; the ledger is what
//! makes that harmless. A worker **claims** a stage with one conditional UPDATE that only
//! succeeds when the stage is due and nobody holds a live claim (a lease that expires after
//! `pipeline.dead_worker_timeout_secs`), so two workers never run the same stage of the same run
//! at once, and a completed stage is never run again.

use crate::network::Network;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Table of applied ledger migrations (apart from apalis's own `_sqlx_migrations`).
const MIGRATIONS_TABLE: &str = "_cybergov_migrations";

/// A database connection pool: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed.
    #[error("ledger database: {0}")]
    Db(#[from] sqlx::Error),
    /// The migrations failed.
    #[error("ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds something this version does not understand.
    #[error("ledger row is invalid: {0}")]
    Invalid(String),
}

/// A bind argument of the SQL both databases share.
#[derive(Clone, Copy, Debug)]
enum Arg<'a> {
    I(i64),
    OptI(Option<i64>),
    T(&'a str),
    OptT(Option<&'a str>),
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match *a {
                Arg::I(v) => q.bind(v),
                Arg::OptI(v) => q.bind(v),
                Arg::T(v) => q.bind(v),
                Arg::OptT(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Runs `sql` with `args` on `executor` (a pool or a transaction of either database) and
/// returns the number of rows it changed.
macro_rules! execute {
    ($executor:expr, $sql:expr, $args:expr) => {
        bind_all!(sqlx::query(sqlx::AssertSqlSafe($sql.to_owned())), $args)
            .execute($executor)
            .await?
            .rows_affected()
    };
}

/// Runs `sql` with `args` on `executor` and returns every row, decoded.
macro_rules! fetch_all {
    ($executor:expr, $sql:expr, $args:expr) => {
        bind_all!(
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe($sql.to_owned())),
            $args
        )
        .fetch_all($executor)
        .await?
    };
}

impl Db {
    /// Connects to `url` (`sqlite:…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, LedgerError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            // The embedded default lives in a folder that may not exist yet.
            if let Some(parent) = opts.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            Ok(Self::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    /// `sqlite` or `postgres`, for people.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError> {
        Ok(match self {
            Self::Sqlite(p) => execute!(p, sql, args),
            Self::Postgres(p) => execute!(p, sql, args),
        })
    }

    async fn fetch<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, LedgerError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(match self {
            Self::Sqlite(p) => fetch_all!(p, sql, args),
            Self::Postgres(p) => fetch_all!(p, sql, args),
        })
    }

    /// Starts a transaction: what it writes becomes visible, and durable, at one commit, which
    /// on PostgreSQL is one WAL flush instead of one per statement.
    async fn begin(&self) -> Result<Tx, LedgerError> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

/// An open transaction of a [`Db`]; dropped without [`Tx::commit`], it rolls back.
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError> {
        Ok(match self {
            Self::Sqlite(t) => execute!(&mut **t, sql, args),
            Self::Postgres(t) => execute!(&mut **t, sql, args),
        })
    }

    async fn commit(self) -> Result<(), LedgerError> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// The state of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageState {
    /// Waiting until it is due.
    Scheduled,
    /// Claimed by a worker.
    Running,
    /// Done; its outputs are recorded.
    Completed,
    /// Failed for good; the run stops here.
    Failed,
    /// Failed with a transient error (or its worker was lost); due again later.
    Retrying,
    /// Not run in this run: its outputs were reused from an earlier run.
    Skipped,
}

impl StageState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the stage will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }
}

impl fmt::Display for StageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StageState {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Scheduled,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Retrying,
            Self::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| LedgerError::Invalid(format!("unknown stage state {s:?}")))
    }
}

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Some stage is still to run.
    Active,
    /// Every stage completed (or was reused).
    Completed,
    /// A stage failed for good.
    Failed,
}

impl RunState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// Which stage of which run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StageKey {
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run (1-based).
    pub run: u32,
    /// The stage name.
    pub stage: String,
}

impl StageKey {
    /// The same run's stage `stage`.
    pub fn with_stage(&self, stage: &str) -> Self {
        Self {
            stage: stage.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{} run {} {}",
            self.network, self.referendum, self.run, self.stage
        )
    }
}

/// One stage row, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StageRow {
    /// Network name.
    pub network: String,
    /// Referendum.
    pub referendum: i64,
    /// Run.
    pub run: i64,
    /// Stage name.
    pub stage: String,
    /// State name ([`StageState`]).
    pub state: String,
    /// Tries started so far.
    pub attempts: i64,
    /// The last error, if any.
    pub error: Option<String>,
    /// JSON object: output name → SHA-256 hex.
    pub outputs: Option<String>,
    /// What the stage did (e.g. "already done", "reused from run 1").
    pub note: Option<String>,
    /// When it is (or was) due.
    pub due_at: i64,
    /// When the row was written.
    pub created_at: i64,
    /// When the last try started.
    pub started_at: Option<i64>,
    /// When it reached a final state.
    pub finished_at: Option<i64>,
    /// The worker holding the claim.
    pub lease_owner: Option<String>,
    /// When that claim expires.
    pub lease_expires_at: Option<i64>,
}

impl StageRow {
    /// The parsed state.
    pub fn state(&self) -> Result<StageState, LedgerError> {
        self.state.parse()
    }

    /// The key.
    pub fn key(&self) -> Result<StageKey, LedgerError> {
        Ok(StageKey {
            network: self
                .network
                .parse()
                .map_err(|e: crate::network::UnknownNetwork| LedgerError::Invalid(e.to_string()))?,
            referendum: u32::try_from(self.referendum)
                .map_err(|_| LedgerError::Invalid(format!("referendum {}", self.referendum)))?,
            run: u32::try_from(self.run)
                .map_err(|_| LedgerError::Invalid(format!("run {}", self.run)))?,
            stage: self.stage.clone(),
        })
    }
}

/// One run row, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    /// Network name.
    pub network: String,
    /// Referendum.
    pub referendum: i64,
    /// Run.
    pub run: i64,
    /// State name ([`RunState`]).
    pub state: String,
    /// The run this one re-does, if it is a rerun.
    pub previous_run: Option<i64>,
    /// The stage a rerun started from.
    pub from_stage: Option<String>,
    /// When the run was created.
    pub created_at: i64,
    /// When it completed or failed.
    pub finished_at: Option<i64>,
}

/// What a claim attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: this is try number `attempt`.
    Claimed {
        /// 1-based try number.
        attempt: u32,
    },
    /// Already in a final state: nothing to do.
    Final(StageState),
    /// Another worker holds a live claim until this time (ms).
    Busy {
        /// Claim expiry, Unix ms.
        until: i64,
    },
    /// Not due before this time (ms).
    NotDue {
        /// Unix ms.
        at: i64,
    },
    /// The ledger has no such stage.
    Missing,
}

/// Now, as Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

const KEY_WHERE: &str = "network = $1 AND referendum = $2 AND run = $3 AND stage = $4";

fn key_args(key: &StageKey) -> [Arg<'_>; 4] {
    [
        Arg::T(key.network.as_str()),
        Arg::I(i64::from(key.referendum)),
        Arg::I(i64::from(key.run)),
        Arg::T(&key.stage),
    ]
}

/// The ledger.
#[derive(Clone, Debug)]
pub struct Ledger {
    db: Db,
}

impl Ledger {
    /// Opens the ledger on `db` and brings its tables up to date.
    pub async fn open(db: Db) -> Result<Self, LedgerError> {
        let mut migrator = sqlx::migrate!("./migrations");
        // apalis keeps its own migrations in `_sqlx_migrations` in the same database.
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        match &db {
            Db::Sqlite(p) => migrator.run(p).await?,
            Db::Postgres(p) => migrator.run(p).await?,
        }
        Ok(Self { db })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates the next run of a referendum and returns its number, or `None` when
    /// [`NewRun::only_if_idle`] finds a run. With [`NewRun::entry`], that stage's row is written
    /// in the same transaction, scheduled: a run is never left without a stage to run.
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<Option<u32>, LedgerError> {
        let NewRun {
            network,
            referendum,
            min_run,
            previous_run,
            from_stage,
            only_if_idle,
            entry,
        } = *new;
        // Two dispatchers racing for the same run number: one insert wins, the other retries
        // and then sees the winner's run.
        for _ in 0..5 {
            let runs = self.runs(Some(network), Some(referendum)).await?;
            if only_if_idle && !runs.is_empty() {
                return Ok(None);
            }
            let next = runs
                .iter()
                .map(|r| r.run + 1)
                .max()
                .unwrap_or(1)
                .max(i64::from(min_run));
            let run = u32::try_from(next)
                .map_err(|_| LedgerError::Invalid(format!("run number {next}")))?;
            let mut tx = self.db.begin().await?;
            let inserted = tx
                .execute(
                    "INSERT INTO cybergov_runs (network, referendum, run, state, previous_run, from_stage, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[
                        Arg::T(network.as_str()),
                        Arg::I(i64::from(referendum)),
                        Arg::I(next),
                        Arg::T(RunState::Active.as_str()),
                        Arg::OptI(previous_run.map(i64::from)),
                        Arg::OptT(from_stage),
                        Arg::I(now_ms()),
                    ],
                )
                .await?;
            if inserted == 1 {
                if let Some((stage, due_at)) = entry {
                    let key = StageKey {
                        network,
                        referendum,
                        run,
                        stage: stage.to_owned(),
                    };
                    insert_stage(&mut tx, &key, due_at, None, Duration::ZERO).await?;
                }
                tx.commit().await?;
                return Ok(Some(run));
            }
        }
        Err(LedgerError::Invalid(format!(
            "could not allocate a run number for {network} #{referendum}"
        )))
    }

    /// Records `key` as scheduled, due at `due_at` (ms). A stage that already has a row keeps
    /// it (scheduling twice is harmless). Returns whether a row was written.
    pub async fn schedule(&self, key: &StageKey, due_at: i64) -> Result<bool, LedgerError> {
        insert_stage(&mut &self.db, key, due_at, None, Duration::ZERO).await
    }

    /// Records `key` as skipped (its outputs reused), with `note`.
    pub async fn skip(&self, key: &StageKey, note: &str) -> Result<(), LedgerError> {
        let k = key_args(key);
        let now = now_ms();
        self.db
            .execute(
                "INSERT INTO cybergov_stages (network, referendum, run, stage, state, note, due_at, created_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) ON CONFLICT DO NOTHING",
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::T(StageState::Skipped.as_str()),
                    Arg::T(note),
                    Arg::I(now),
                ],
            )
            .await?;
        Ok(())
    }

    /// Tries to claim `key` for `owner` for `lease` (see the module documentation).
    pub async fn claim(
        &self,
        key: &StageKey,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, LedgerError> {
        let now = now_ms();
        let k = key_args(key);
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        #[derive(sqlx::FromRow)]
        struct Attempts {
            attempts: i64,
        }
        let claimed: Vec<Attempts> = self
            .db
            .fetch(
                &format!(
                    "UPDATE cybergov_stages SET state = $5, attempts = attempts + 1, lease_owner = $6, \
                     lease_expires_at = $7, started_at = $8 \
                     WHERE {KEY_WHERE} AND ((state IN ($9, $10) AND due_at <= $8) \
                     OR (state = $5 AND lease_expires_at < $8)) RETURNING attempts"
                ),
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::T(StageState::Running.as_str()),
                    Arg::T(owner),
                    Arg::I(now.saturating_add(lease_ms)),
                    Arg::I(now),
                    Arg::T(StageState::Scheduled.as_str()),
                    Arg::T(StageState::Retrying.as_str()),
                ],
            )
            .await?;
        if let Some(a) = claimed.first() {
            return Ok(Claim::Claimed {
                attempt: u32::try_from(a.attempts).unwrap_or(u32::MAX),
            });
        }
        let Some(row) = self.stage(key).await? else {
            return Ok(Claim::Missing);
        };
        let state = row.state()?;
        Ok(match state {
            s if s.is_final() => Claim::Final(s),
            StageState::Running => Claim::Busy {
                until: row.lease_expires_at.unwrap_or(now),
            },
            _ => Claim::NotDue { at: row.due_at },
        })
    }

    /// Marks `key`, claimed by `owner`, completed with `outputs` (JSON) and `note`, and writes
    /// the rows of its successors `next`, in one transaction: a crash leaves either both or
    /// neither, so a successor is never lost and the completion costs one commit.
    ///
    /// Returns `None` when the claim was lost meanwhile (then nothing is written: the worker that
    /// took the stage over writes them). Otherwise, for each of `next`, whether its row was
    /// written already claimed by `owner` for `lease` (attempt 1, see [`Handoff::claim`]); false
    /// when it was not asked for or the row already existed.
    pub async fn complete(
        &self,
        key: &StageKey,
        owner: &str,
        outputs: &str,
        note: Option<&str>,
        next: &[Handoff],
        lease: Duration,
    ) -> Result<Option<Vec<bool>>, LedgerError> {
        let mut tx = self.db.begin().await?;
        let released = release(
            &mut tx,
            key,
            owner,
            "state = $5, outputs = $6, note = $7, finished_at = $8, error = NULL",
            &[
                Arg::T(StageState::Completed.as_str()),
                Arg::T(outputs),
                Arg::OptT(note),
                Arg::I(now_ms()),
            ],
        )
        .await?;
        if !released {
            return Ok(None);
        }
        let mut claimed = Vec::with_capacity(next.len());
        for h in next {
            let owner = h.claim.then_some(owner);
            let written = insert_stage(&mut tx, &h.key, h.due_at, owner, lease).await?;
            claimed.push(written && h.claim);
        }
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// Records a transient failure of `key`: due again at `due_at`.
    pub async fn retry_later(
        &self,
        key: &StageKey,
        owner: &str,
        error: &str,
        due_at: i64,
    ) -> Result<bool, LedgerError> {
        let mut tx = self.db.begin().await?;
        let released = release(
            &mut tx,
            key,
            owner,
            "state = $5, error = $6, due_at = $7",
            &[
                Arg::T(StageState::Retrying.as_str()),
                Arg::T(error),
                Arg::I(due_at),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(released)
    }

    /// Records a permanent failure of `key` and fails its run, in one transaction.
    pub async fn fail(
        &self,
        key: &StageKey,
        owner: &str,
        error: &str,
    ) -> Result<bool, LedgerError> {
        let mut tx = self.db.begin().await?;
        let released = release(
            &mut tx,
            key,
            owner,
            "state = $5, error = $6, finished_at = $7",
            &[
                Arg::T(StageState::Failed.as_str()),
                Arg::T(error),
                Arg::I(now_ms()),
            ],
        )
        .await?;
        if released {
            tx.execute(
                &format!("{FINISH_RUN} AND state = $6"),
                &finish_run_args(key, RunState::Failed),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// Marks `key`'s run completed if every stage of it is completed or skipped; one statement,
    /// run after the last stage's completion has committed (so that of two branches finishing
    /// at once, the later sees both).
    pub async fn complete_run_if_done(&self, key: &StageKey) -> Result<bool, LedgerError> {
        let n = self
            .db
            .execute(
                &format!(
                    "{FINISH_RUN} AND state = $6 AND NOT EXISTS (SELECT 1 FROM cybergov_stages s \
                     WHERE s.network = $1 AND s.referendum = $2 AND s.run = $3 \
                     AND s.state NOT IN ($7, $8))"
                ),
                &[
                    finish_run_args(key, RunState::Completed).as_slice(),
                    &[
                        Arg::T(StageState::Completed.as_str()),
                        Arg::T(StageState::Skipped.as_str()),
                    ],
                ]
                .concat(),
            )
            .await?;
        Ok(n == 1)
    }

    /// Hands a stage whose claim expired (its worker is taken to be dead) back to the queue:
    /// it becomes retrying and due now. Returns whether this caller won that hand-back.
    pub async fn reclaim_expired(&self, row: &StageRow) -> Result<bool, LedgerError> {
        let key = row.key()?;
        let k = key_args(&key);
        let now = now_ms();
        let error = format!(
            "worker {} stopped before finishing (claim expired); running it again",
            row.lease_owner.as_deref().unwrap_or("?")
        );
        let n = self
            .db
            .execute(
                &format!(
                    "UPDATE cybergov_stages SET state = $5, due_at = $6, error = $7, \
                     lease_owner = NULL, lease_expires_at = NULL \
                     WHERE {KEY_WHERE} AND state = $8 AND lease_expires_at < $6"
                ),
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::T(StageState::Retrying.as_str()),
                    Arg::I(now),
                    Arg::T(&error),
                    Arg::T(StageState::Running.as_str()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Moves an overdue waiting stage's due time to now, so that only one sweeper re-queues it.
    pub async fn touch_overdue(&self, row: &StageRow) -> Result<bool, LedgerError> {
        let key = row.key()?;
        let k = key_args(&key);
        let n = self
            .db
            .execute(
                &format!(
                    "UPDATE cybergov_stages SET due_at = $5 WHERE {KEY_WHERE} AND state = $6 AND due_at = $7"
                ),
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::I(now_ms()),
                    Arg::T(&row.state),
                    Arg::I(row.due_at),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Stages that need a sweeper: claims expired before `now`, and waiting stages due before
    /// `overdue_before` (their queue job was probably lost).
    pub async fn stale(&self, now: i64, overdue_before: i64) -> Result<Vec<StageRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_stages WHERE (state = $1 AND lease_expires_at < $2) \
                 OR (state IN ($3, $4) AND due_at < $5) ORDER BY due_at",
                &[
                    Arg::T(StageState::Running.as_str()),
                    Arg::I(now),
                    Arg::T(StageState::Scheduled.as_str()),
                    Arg::T(StageState::Retrying.as_str()),
                    Arg::I(overdue_before),
                ],
            )
            .await
    }

    /// One stage row.
    pub async fn stage(&self, key: &StageKey) -> Result<Option<StageRow>, LedgerError> {
        Ok(self
            .db
            .fetch(
                &format!("SELECT * FROM cybergov_stages WHERE {KEY_WHERE}"),
                &key_args(key),
            )
            .await?
            .into_iter()
            .next())
    }

    /// Stage rows, optionally of one network / referendum / run, ordered by referendum, run
    /// and creation.
    pub async fn stages(
        &self,
        network: Option<Network>,
        referendum: Option<u32>,
        run: Option<u32>,
    ) -> Result<Vec<StageRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_stages WHERE ($1 IS NULL OR network = $1) \
                 AND ($2 IS NULL OR referendum = $2) AND ($3 IS NULL OR run = $3) \
                 ORDER BY network, referendum, run, created_at, stage",
                &[
                    Arg::OptT(network.map(Network::as_str)),
                    Arg::OptI(referendum.map(i64::from)),
                    Arg::OptI(run.map(i64::from)),
                ],
            )
            .await
    }

    /// Run rows, optionally of one network / referendum, ordered.
    pub async fn runs(
        &self,
        network: Option<Network>,
        referendum: Option<u32>,
    ) -> Result<Vec<RunRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_runs WHERE ($1 IS NULL OR network = $1) \
                 AND ($2 IS NULL OR referendum = $2) ORDER BY network, referendum, run",
                &[
                    Arg::OptT(network.map(Network::as_str)),
                    Arg::OptI(referendum.map(i64::from)),
                ],
            )
            .await
    }
}

/// A run to create ([`Ledger::create_run`]).
#[derive(Clone, Copy, Debug)]
pub struct NewRun<'a> {
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The lowest run number to use: the caller skips run numbers the store already holds.
    pub min_run: u32,
    /// The run this one re-does (a rerun).
    pub previous_run: Option<u32>,
    /// The stage a rerun starts from.
    pub from_stage: Option<&'a str>,
    /// Create nothing when the referendum has any run, what dispatch wants (a failed run is
    /// left to an operator's rerun); a rerun passes `false`.
    pub only_if_idle: bool,
    /// This stage's row, due at this time (Unix ms), written with the run.
    pub entry: Option<(&'a str, i64)>,
}

/// A successor's row, written with its predecessor's completion ([`Ledger::complete`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// The successor.
    pub key: StageKey,
    /// When it is due (ms).
    pub due_at: i64,
    /// Write it already claimed by the completing worker, which runs it next in the same task:
    /// that saves the claim's own commit. Should the worker die first, the claim expires and a
    /// sweeper hands the stage on like any other.
    pub claim: bool,
}

/// Where a statement runs: on the pool (a commit of its own) or in an open transaction.
trait Statements {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError>;
}

impl Statements for &Db {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError> {
        Db::execute(self, sql, args).await
    }
}

impl Statements for Tx {
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError> {
        Tx::execute(self, sql, args).await
    }
}

/// Writes `key`'s row due at `due_at`: scheduled, or with `owner` already running it as attempt
/// 1 with a claim for `lease`. A row that exists is kept. Returns whether the row was written.
async fn insert_stage(
    on: &mut impl Statements,
    key: &StageKey,
    due_at: i64,
    owner: Option<&str>,
    lease: Duration,
) -> Result<bool, LedgerError> {
    let k = key_args(key);
    let now = now_ms();
    let (state, attempts, started_at, expires_at) = match owner {
        None => (StageState::Scheduled, 0, None, None),
        Some(_) => {
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
            (
                StageState::Running,
                1,
                Some(now),
                Some(now.saturating_add(lease_ms)),
            )
        }
    };
    let n = on
        .execute(
            "INSERT INTO cybergov_stages (network, referendum, run, stage, state, attempts, due_at, \
             created_at, started_at, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            &[
                k[0],
                k[1],
                k[2],
                k[3],
                Arg::T(state.as_str()),
                Arg::I(attempts),
                Arg::I(due_at),
                Arg::I(now),
                Arg::OptI(started_at),
                Arg::OptT(owner),
                Arg::OptI(expires_at),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Ends `owner`'s claim on running stage `key`, setting `set` (SQL assignments whose
/// placeholders start at `$5`, bound to `values`). False when `owner` no longer holds the claim
/// (it expired and another worker took the stage over), so the caller records nothing.
async fn release(
    tx: &mut Tx,
    key: &StageKey,
    owner: &str,
    set: &str,
    values: &[Arg<'_>],
) -> Result<bool, LedgerError> {
    let state_at = 5 + values.len();
    let sql = format!(
        "UPDATE cybergov_stages SET {set}, lease_owner = NULL, lease_expires_at = NULL \
         WHERE {KEY_WHERE} AND state = ${state_at} AND lease_owner = ${}",
        state_at + 1
    );
    let mut args: Vec<Arg<'_>> = key_args(key).into_iter().collect();
    args.extend(values.iter().copied());
    args.push(Arg::T(StageState::Running.as_str()));
    args.push(Arg::T(owner));
    Ok(tx.execute(&sql, &args).await? == 1)
}

/// Sets a run's state and end time (placeholders `$1`–`$5`, [`finish_run_args`]); the caller
/// adds its conditions.
const FINISH_RUN: &str = "UPDATE cybergov_runs SET state = $4, finished_at = $5 \
     WHERE network = $1 AND referendum = $2 AND run = $3";

/// The arguments of [`FINISH_RUN`] for `key`'s run, then `$6` = the active state: only an
/// active run is finished.
fn finish_run_args(key: &StageKey, state: RunState) -> [Arg<'_>; 6] {
    [
        Arg::T(key.network.as_str()),
        Arg::I(i64::from(key.referendum)),
        Arg::I(i64::from(key.run)),
        Arg::T(state.as_str()),
        Arg::I(now_ms()),
        Arg::T(RunState::Active.as_str()),
    ]
}
