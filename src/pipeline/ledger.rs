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
use db::{MIGRATIONS_TABLE, Statements};
use sql::*;
use sqlx::postgres::PgPool;
use std::time::Duration;

use db::Arg;
pub use db::{Db, open_lock};
use rows::run_number;
pub use rows::{Claim, RunRow, RunState, StageKey, StageRow, StageState, now_ms};

pub mod battles;
pub mod browse;
pub mod operator;
#[macro_use]
mod db;
mod rows;
mod sql;

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
    /// The SQLite file exists but is not a ledger: empty (truncated) or another kind of file.
    /// Opening it would silently start a new, empty ledger over the old one's runs.
    #[error(
        "{path} is {what}, not a cybergov ledger: refusing to start a new ledger over it (move it away to start afresh)"
    )]
    NotALedger {
        /// The file.
        path: std::path::PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// The SQLite database exists and is not a ledger (empty, or another program's).
    #[error(
        "{path} is {what}, not a cybergov ledger: refusing to use it as one; give --init to make it one, or point database.url at the ledger"
    )]
    Foreign {
        /// The file.
        path: std::path::PathBuf,
        /// What it is instead.
        what: String,
    },
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
        // Two processes never migrate an SQLite ledger at once (`open_lock`); PostgreSQL's
        // migrator takes an advisory lock of its own.
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
    /// [`NewRun::expect_last`] is not the last run. With [`NewRun::entry`], that stage's row is written
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
            Arg::I(new.expect_last.map_or(-1, i64::from)),
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
                // The referendum's last run is not the one expected: another creator was first.
                None if new.expect_last.is_some() => return Ok(None),
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
    /// Extends `owner`'s claim on running stage `key` to `lease` from now: the heartbeat of a
    /// live worker. `false` when the claim is no longer `owner`'s (it expired and another
    /// worker took the stage over).
    pub async fn renew(
        &self,
        key: &StageKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, LedgerError> {
        let k = key_args(key);
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let changed = self
            .db
            .execute(
                &format!(
                    "UPDATE cybergov_stages SET lease_expires_at = $5 \
                     WHERE {KEY_WHERE} AND state = $6 AND lease_owner = $7"
                ),
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::I(now_ms().saturating_add(lease_ms)),
                    Arg::T(StageState::Running.as_str()),
                    Arg::T(owner),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    /// The claim `owner` may take on `key` (see the module documentation).
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
    /// Create the run only while the referendum's last run is this one (`Some(0)`: while it has
    /// none, what dispatch wants; a failed run is left to an operator's rerun). Two creators
    /// that saw the same last run make one run between them, not two. `None`: always (a
    /// rerun).
    pub expect_last: Option<u32>,
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
