//! The one database layer both backends share: a pool or a transaction of SQLite or
//! PostgreSQL, running the same SQL text with the same bind arguments.

use super::LedgerError;
use sqlx::Connection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use std::str::FromStr;
use std::time::Duration;

/// Table of applied ledger migrations (apart from apalis's own `_sqlx_migrations`).
pub(super) const MIGRATIONS_TABLE: &str = "_cybergov_migrations";

/// A database connection pool: SQLite (embedded default) or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A bind argument of the SQL both databases share.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
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

/// Refuses an existing file that is not an SQLite database: SQLite would take an empty
/// (truncated) file for a new database, and the ledger would start again with no runs. (A file
/// another cybergov is creating this moment is never seen half-made: see [`open_lock`].)
fn refuse_non_ledger(path: &std::path::Path) -> Result<(), LedgerError> {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(()); // absent: a new ledger is created
    };
    let mut header = [0u8; 16];
    let what = match file.read(&mut header) {
        Ok(0) => "empty",
        Ok(16) if &header == b"SQLite format 3\0" => return Ok(()),
        _ => "not an SQLite database",
    };
    Err(LedgerError::NotALedger {
        path: path.to_owned(),
        what,
    })
}

/// Refuses an SQLite database that existed before this start and holds no cybergov ledger: an
/// empty one, or another program's. Opening it would silently start a new ledger where the
/// operator expected their runs (a wrong path, a restored backup of something else).
async fn refuse_foreign(
    pool: &sqlx::SqlitePool,
    path: &std::path::Path,
) -> Result<(), LedgerError> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let names: Vec<String> = tables.into_iter().map(|(n,)| n).collect();
    if names.iter().any(|n| n == MIGRATIONS_TABLE) {
        return Ok(());
    }
    let what = if names.is_empty() {
        "an empty SQLite database".to_owned()
    } else {
        format!(
            "another program's SQLite database (tables: {})",
            names.join(", ")
        )
    };
    Err(LedgerError::Foreign {
        path: path.to_owned(),
        what,
    })
}

/// Holds an exclusive lock beside an SQLite ledger while it is opened and migrated, so that
/// processes started at the same moment open it one after the other: two first-time
/// migrations, or a WAL switch racing a migration, fail with "database is locked" otherwise.
/// `None` for PostgreSQL, which serialises this itself.
pub async fn open_lock(url: &str) -> Result<Option<std::fs::File>, LedgerError> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let path = SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf();
    let lock = path.with_extension("open-lock");
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = lock.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        file.lock()?;
        Ok(Some(file))
    })
    .await
    .map_err(|e| LedgerError::Invalid(format!("waiting for the ledger's open lock: {e}")))?
    .map_err(|e: std::io::Error| LedgerError::Db(sqlx::Error::Io(e)))
}

impl Db {
    /// Connects to `url` (`sqlite:…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, LedgerError> {
        Self::open(url, false).await
    }

    /// Connects to `url`; with `init`, an existing SQLite database that holds no ledger yet is
    /// adopted instead of refused (`cybergov --init`).
    pub async fn open(url: &str, init: bool) -> Result<Self, LedgerError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            refuse_non_ledger(opts.get_filename())?;
            let existed = opts.get_filename().exists();
            // The embedded default lives in a folder that may not exist yet.
            if let Some(parent) = opts.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts.clone())
                .await?;
            if existed && !init {
                refuse_foreign(&pool, opts.get_filename()).await?;
            }
            Ok(Self::Sqlite(pool))
        } else {
            // One plain connection first: a refused, unknown or misnamed server fails here at
            // once with its own error, where the pool would retry for its whole acquire
            // timeout (30 s) and then report only that it timed out.
            sqlx::postgres::PgConnection::connect(url)
                .await?
                .close()
                .await?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    /// Closes every connection (SQLite checkpoints its write-ahead log into the file).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    /// `sqlite` or `postgres`, for people.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub(super) async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, LedgerError> {
        Ok(match self {
            Self::Sqlite(p) => execute!(p, sql, args),
            Self::Postgres(p) => execute!(p, sql, args),
        })
    }

    pub(super) async fn fetch<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, LedgerError>
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
    pub(super) async fn begin(&self) -> Result<Tx, LedgerError> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

/// An open transaction of a [`Db`]; dropped without [`Tx::commit`], it rolls back.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub(super) async fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, LedgerError> {
        Ok(match self {
            Self::Sqlite(t) => execute!(&mut **t, sql, args),
            Self::Postgres(t) => execute!(&mut **t, sql, args),
        })
    }

    pub(super) async fn fetch<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, LedgerError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(match self {
            Self::Sqlite(t) => fetch_all!(&mut **t, sql, args),
            Self::Postgres(t) => fetch_all!(&mut **t, sql, args),
        })
    }

    pub(super) async fn commit(self) -> Result<(), LedgerError> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Where a statement runs: on the pool (a commit of its own) or in an open transaction.
pub(super) trait Statements {
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
