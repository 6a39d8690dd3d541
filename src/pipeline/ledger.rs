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

    async fn fetch<T>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, LedgerError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(match self {
            Self::Sqlite(t) => fetch_all!(&mut **t, sql, args),
            Self::Postgres(t) => fetch_all!(&mut **t, sql, args),
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
    /// with it, in one commit: a run is never left without a stage to run.
    ///
    /// The run number is chosen by the INSERT itself (one more than the last), so creating a run
    /// costs one statement on PostgreSQL (the entry row rides along in a data-modifying CTE) and
    /// one transaction on SQLite, which has no such CTEs.
    pub async fn create_run(&self, new: &NewRun<'_>) -> Result<Option<u32>, LedgerError> {
        #[derive(sqlx::FromRow)]
        struct RunNo {
            run: i64,
        }
        let run_args = [
            Arg::T(new.network.as_str()),
            Arg::I(i64::from(new.referendum)),
            Arg::I(i64::from(new.min_run)),
            Arg::T(RunState::Active.as_str()),
            Arg::OptI(new.previous_run.map(i64::from)),
            Arg::OptT(new.from_stage),
            Arg::I(now_ms()),
            Arg::I(i64::from(new.only_if_idle)),
        ];
        // Two creators racing for the same run number: one insert wins, the other's conflicts
        // and inserts nothing; it tries again and then numbers after the winner's run.
        for _ in 0..16 {
            let created: Vec<RunNo> = match (&self.db, new.entry) {
                (Db::Postgres(_), Some(entry)) => {
                    let sql = format!(
                        "WITH new_run AS ({INSERT_RUN}), entry AS (\
                         INSERT INTO cybergov_stages (network, referendum, run, stage, {NEW_STAGE_COLUMNS}) \
                         SELECT $1, $2, run, {} FROM new_run ON CONFLICT DO NOTHING) \
                         SELECT run FROM new_run",
                        placeholders(run_args.len() + 1, 1 + NEW_STAGE_ARGS)
                    );
                    let mut args = run_args.to_vec();
                    args.push(Arg::T(entry.stage));
                    args.extend(new_stage_args(entry.due_at, entry.claimed_by));
                    self.db.fetch(&sql, &args).await?
                }
                (_, entry) => {
                    let mut tx = self.db.begin().await?;
                    let created: Vec<RunNo> = tx.fetch(INSERT_RUN, &run_args).await?;
                    if let (Some(c), Some(entry)) = (created.first(), entry) {
                        let key = StageKey {
                            network: new.network,
                            referendum: new.referendum,
                            run: run_number(c.run)?,
                            stage: entry.stage.to_owned(),
                        };
                        insert_stage(&mut tx, &key, entry.due_at, entry.claimed_by).await?;
                    }
                    tx.commit().await?;
                    created
                }
            };
            match created.first() {
                Some(c) => return Ok(Some(run_number(c.run)?)),
                // Whether it had a run or another creator just made one: it is not idle.
                None if new.only_if_idle => return Ok(None),
                None => continue,
            }
        }
        Err(LedgerError::Invalid(format!(
            "could not allocate a run number for {} #{}",
            new.network, new.referendum
        )))
    }

    /// Records `key` as scheduled, due at `due_at` (ms). A stage that already has a row keeps
    /// it (scheduling twice is harmless). Returns whether a row was written.
    pub async fn schedule(&self, key: &StageKey, due_at: i64) -> Result<bool, LedgerError> {
        insert_stage(&mut &self.db, key, due_at, None).await
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
    /// the rows of its successors `next`, in one commit: a crash leaves either both or neither,
    /// so a successor is never lost. When `key` has no successors and was the run's last
    /// unfinished stage, the run is completed too.
    ///
    /// On PostgreSQL this is one statement (data-modifying CTEs), so one round trip and one WAL
    /// flush; on SQLite, one transaction.
    ///
    /// Returns `None` when the claim was lost meanwhile (then nothing is written: the worker that
    /// took the stage over writes it).
    pub async fn complete(
        &self,
        key: &StageKey,
        owner: &str,
        outputs: &str,
        note: Option<&str>,
        next: &[Handoff],
        lease: Duration,
    ) -> Result<Option<Completion>, LedgerError> {
        let now = now_ms();
        let (release_sql, release_args) = release_statement(
            key,
            owner,
            "state = $5, outputs = $6, note = $7, finished_at = $8, error = NULL",
            &[
                Arg::T(StageState::Completed.as_str()),
                Arg::T(outputs),
                Arg::OptT(note),
                Arg::I(now),
            ],
        );
        let completion = match &self.db {
            Db::Postgres(pool) => {
                complete_in_one_statement(pool, (&release_sql, release_args), next, owner, lease)
                    .await?
            }
            Db::Sqlite(_) => {
                let mut tx = self.db.begin().await?;
                if tx.execute(&release_sql, &release_args).await? != 1 {
                    return Ok(None);
                }
                let mut claimed = Vec::with_capacity(next.len());
                for h in next {
                    let by = h.claim.then_some((owner, lease));
                    claimed.push(insert_stage(&mut tx, &h.key, h.due_at, by).await? && h.claim);
                }
                // Inside the transaction, which sees its own completion.
                let run_completed = next.is_empty()
                    && tx
                        .execute(&finish_if_done_sql(4, false), &finish_if_done_args(key))
                        .await?
                        == 1;
                tx.commit().await?;
                Some(Completion {
                    claimed,
                    run_completed,
                })
            }
        };
        let Some(mut completion) = completion else {
            return Ok(None);
        };
        if next.is_empty() && !completion.run_completed {
            // Of two branches ending at once, each statement may have seen the other still
            // running; asked again after the commit, the later of the two sees both finished.
            completion.run_completed = self.complete_run_if_done(key).await?;
        }
        Ok(Some(completion))
    }

    /// Records a transient failure of `key`: due again at `due_at`.
    pub async fn retry_later(
        &self,
        key: &StageKey,
        owner: &str,
        error: &str,
        due_at: i64,
    ) -> Result<bool, LedgerError> {
        release(
            &mut &self.db,
            key,
            owner,
            "state = $5, error = $6, due_at = $7",
            &[
                Arg::T(StageState::Retrying.as_str()),
                Arg::T(error),
                Arg::I(due_at),
            ],
        )
        .await
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
                &end_run_sql(4, ""),
                &run_args(key, &end_run_values(RunState::Failed)),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// Marks `key`'s run completed if every stage of it is completed or skipped (one
    /// statement). [`Ledger::complete`] does this itself; it is public for what finishes a run
    /// by other means.
    pub async fn complete_run_if_done(&self, key: &StageKey) -> Result<bool, LedgerError> {
        let n = self
            .db
            .execute(&finish_if_done_sql(4, false), &finish_if_done_args(key))
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
    /// The entry stage's row, written with the run.
    pub entry: Option<Entry<'a>>,
}

/// The first stage of a new run ([`NewRun::entry`]).
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The stage.
    pub stage: &'a str,
    /// When it is due (Unix ms).
    pub due_at: i64,
    /// Write it already claimed by this worker for this lease (attempt 1): the caller runs it
    /// at once (`cybergov run`), which saves the claim's own commit.
    pub claimed_by: Option<(&'a str, Duration)>,
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

/// What [`Ledger::complete`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// For each successor asked for, whether its row was written already claimed by the
    /// completing worker (false when not asked for or when the row already existed).
    pub claimed: Vec<bool>,
    /// Whether the run completed with this stage.
    pub run_completed: bool,
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

/// `$first, $first+1, …`: `n` placeholders.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A run number from the database.
fn run_number(run: i64) -> Result<u32, LedgerError> {
    u32::try_from(run).map_err(|_| LedgerError::Invalid(format!("run number {run}")))
}

/// Inserts the next run of `$1` (network) #`$2` (referendum): one after its last run, or `$3`
/// if that is higher; state `$4`, previous run `$5`, from stage `$6`, created at `$7`. With
/// `$8` = 1, only if it has no run at all. Inserts nothing on a conflict (a concurrent creator
/// took the number). Returns the run.
const INSERT_RUN: &str = "INSERT INTO cybergov_runs \
     (network, referendum, run, state, previous_run, from_stage, created_at) \
     SELECT $1, $2, CASE WHEN COALESCE(last, 0) + 1 < $3 THEN $3 ELSE COALESCE(last, 0) + 1 END, \
     $4, $5, $6, $7 \
     FROM (SELECT MAX(run) AS last, COUNT(*) AS n FROM cybergov_runs \
     WHERE network = $1 AND referendum = $2) AS prev \
     WHERE $8 = 0 OR n = 0 \
     ON CONFLICT DO NOTHING RETURNING run";

/// The columns of a new stage row after its key ([`new_stage_args`] gives their values).
const NEW_STAGE_COLUMNS: &str =
    "state, attempts, due_at, created_at, started_at, lease_owner, lease_expires_at";

/// How many [`NEW_STAGE_COLUMNS`] there are.
const NEW_STAGE_ARGS: usize = 7;

/// The values of [`NEW_STAGE_COLUMNS`] for a stage due at `due_at`: scheduled, or already
/// running as attempt 1 with a claim by `claimed_by`'s owner for its lease.
fn new_stage_args(due_at: i64, claimed_by: Option<(&str, Duration)>) -> [Arg<'_>; NEW_STAGE_ARGS] {
    let now = now_ms();
    match claimed_by {
        None => [
            Arg::T(StageState::Scheduled.as_str()),
            Arg::I(0),
            Arg::I(due_at),
            Arg::I(now),
            Arg::OptI(None),
            Arg::OptT(None),
            Arg::OptI(None),
        ],
        Some((owner, lease)) => {
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
            [
                Arg::T(StageState::Running.as_str()),
                Arg::I(1),
                Arg::I(due_at),
                Arg::I(now),
                Arg::OptI(Some(now)),
                Arg::OptT(Some(owner)),
                Arg::OptI(Some(now.saturating_add(lease_ms))),
            ]
        }
    }
}

/// Writes `key`'s row due at `due_at` ([`new_stage_args`]). A row that exists is kept.
/// Returns whether the row was written.
async fn insert_stage(
    on: &mut impl Statements,
    key: &StageKey,
    due_at: i64,
    claimed_by: Option<(&str, Duration)>,
) -> Result<bool, LedgerError> {
    let sql = format!(
        "INSERT INTO cybergov_stages (network, referendum, run, stage, {NEW_STAGE_COLUMNS}) \
         VALUES ({}) ON CONFLICT DO NOTHING",
        placeholders(1, 4 + NEW_STAGE_ARGS)
    );
    let mut args = key_args(key).to_vec();
    args.extend(new_stage_args(due_at, claimed_by));
    Ok(on.execute(&sql, &args).await? == 1)
}

/// The statement that ends `owner`'s claim on running stage `key`, setting `set` (SQL
/// assignments whose placeholders start at `$5`, bound to `values`), and its arguments. It
/// changes nothing when `owner` no longer holds the claim (it expired and another worker took
/// the stage over), so the caller records nothing.
fn release_statement<'a>(
    key: &'a StageKey,
    owner: &'a str,
    set: &str,
    values: &[Arg<'a>],
) -> (String, Vec<Arg<'a>>) {
    let state_at = 5 + values.len();
    let sql = format!(
        "UPDATE cybergov_stages SET {set}, lease_owner = NULL, lease_expires_at = NULL \
         WHERE {KEY_WHERE} AND state = ${state_at} AND lease_owner = ${}",
        state_at + 1
    );
    let mut args = key_args(key).to_vec();
    args.extend(values.iter().copied());
    args.push(Arg::T(StageState::Running.as_str()));
    args.push(Arg::T(owner));
    (sql, args)
}

/// Runs [`release_statement`]; whether the claim was still `owner`'s.
async fn release(
    on: &mut impl Statements,
    key: &StageKey,
    owner: &str,
    set: &str,
    values: &[Arg<'_>],
) -> Result<bool, LedgerError> {
    let (sql, args) = release_statement(key, owner, set, values);
    Ok(on.execute(&sql, &args).await? == 1)
}

/// [`Ledger::complete`] on PostgreSQL: the release, the successors' rows and the run's
/// completion as data-modifying CTEs of one statement. All of them see the snapshot from before
/// the statement, hence the run check leaves out the stage being completed.
async fn complete_in_one_statement(
    pool: &PgPool,
    (release_sql, release_args): (&str, Vec<Arg<'_>>),
    next: &[Handoff],
    owner: &str,
    lease: Duration,
) -> Result<Option<Completion>, LedgerError> {
    #[derive(sqlx::FromRow)]
    struct Done {
        released: i64,
        written: Vec<String>,
        finished: i64,
    }
    let mut args = release_args;
    let mut sql = format!("WITH done AS ({release_sql} RETURNING 1)");
    if next.is_empty() {
        let first = args.len() + 1;
        sql.push_str(&format!(
            ", finished AS ({} AND EXISTS (SELECT 1 FROM done) RETURNING 1) \
             SELECT (SELECT COUNT(*) FROM done) AS released, ARRAY[]::TEXT[] AS written, \
             (SELECT COUNT(*) FROM finished) AS finished",
            finish_if_done_sql(first, true)
        ));
        args.extend(finish_if_done_values());
    } else {
        let mut rows = Vec::with_capacity(next.len());
        for h in next {
            rows.push(format!(
                "({})",
                placeholders(args.len() + 1, 1 + NEW_STAGE_ARGS)
            ));
            args.push(Arg::T(&h.key.stage));
            args.extend(new_stage_args(h.due_at, h.claim.then_some((owner, lease))));
        }
        sql.push_str(&format!(
            ", written AS (INSERT INTO cybergov_stages \
             (network, referendum, run, stage, {NEW_STAGE_COLUMNS}) \
             SELECT $1, $2, $3, v.* FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM done) \
             ON CONFLICT DO NOTHING RETURNING stage) \
             SELECT (SELECT COUNT(*) FROM done) AS released, \
             ARRAY(SELECT stage FROM written) AS written, 0::BIGINT AS finished",
            rows.join(", ")
        ));
    }
    let done: Done = bind_all!(sqlx::query_as::<_, Done>(sqlx::AssertSqlSafe(sql)), &args)
        .fetch_one(pool)
        .await?;
    if done.released != 1 {
        return Ok(None);
    }
    Ok(Some(Completion {
        claimed: next
            .iter()
            .map(|h| h.claim && done.written.contains(&h.key.stage))
            .collect(),
        run_completed: done.finished == 1,
    }))
}

/// Ends the run of `$1` (network) #`$2` (referendum) run `$3` in state `$first` at time
/// `$first+1`, if it is still active (`$first+2`) and `condition` holds ([`end_run_values`]).
fn end_run_sql(first: usize, condition: &str) -> String {
    format!(
        "UPDATE cybergov_runs SET state = ${first}, finished_at = ${} \
         WHERE network = $1 AND referendum = $2 AND run = $3 AND state = ${}{condition}",
        first + 1,
        first + 2
    )
}

/// The values of [`end_run_sql`]'s own placeholders, ending it in `state`.
fn end_run_values(state: RunState) -> [Arg<'static>; 3] {
    [
        Arg::T(state.as_str()),
        Arg::I(now_ms()),
        Arg::T(RunState::Active.as_str()),
    ]
}

/// Completes the run of `$1`–`$3` ([`end_run_sql`]) if every stage of it (but `$4`, the one
/// being completed, when `but_this_stage`) is completed or skipped. Its own placeholders start
/// at `$first` ([`finish_if_done_values`]).
fn finish_if_done_sql(first: usize, but_this_stage: bool) -> String {
    end_run_sql(
        first,
        &format!(
            " AND NOT EXISTS (SELECT 1 FROM cybergov_stages s \
             WHERE s.network = $1 AND s.referendum = $2 AND s.run = $3{} \
             AND s.state NOT IN (${}, ${}))",
            if but_this_stage {
                " AND s.stage <> $4"
            } else {
                ""
            },
            first + 3,
            first + 4
        ),
    )
}

/// The values of [`finish_if_done_sql`]'s own placeholders.
fn finish_if_done_values() -> Vec<Arg<'static>> {
    let mut values = end_run_values(RunState::Completed).to_vec();
    values.push(Arg::T(StageState::Completed.as_str()));
    values.push(Arg::T(StageState::Skipped.as_str()));
    values
}

/// `key`'s run (`$1`–`$3`), then `values`: the arguments of a statement on the run.
fn run_args<'a>(key: &'a StageKey, values: &[Arg<'a>]) -> Vec<Arg<'a>> {
    let mut args = key_args(key)[..3].to_vec();
    args.extend_from_slice(values);
    args
}

/// The arguments of `finish_if_done_sql(4, false)` for `key`'s run.
fn finish_if_done_args(key: &StageKey) -> Vec<Arg<'_>> {
    run_args(key, &finish_if_done_values())
}
