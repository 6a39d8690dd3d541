//! The queue: apalis on SQLite (embedded default) or PostgreSQL, chosen by `database.url`.
//!
//! A queued job is a [`StageKey`]: "this stage of this run may be due". apalis delivers it at
//! least once, at or after its run-at time; the [`ledger`](super::ledger) decides whether it
//! still needs running.

use super::ledger::{Db, StageKey, now_ms};
use apalis::prelude::{PollSnapshot, PollStrategy, TaskBuilder, TaskSink};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The apalis queue name of stage jobs.
pub const QUEUE: &str = "cybergov-stage";

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Setting the queue's tables up failed.
    #[error("queue setup ({backend}): {message}")]
    Setup {
        /// sqlite or postgres.
        backend: &'static str,
        /// Why.
        message: String,
    },
    /// A push failed.
    #[error("queueing {key}: {message}")]
    Push {
        /// The job.
        key: String,
        /// Why.
        message: String,
    },
}

/// The queue backend.
#[derive(Clone)]
pub enum Queue {
    /// apalis-sqlite.
    Sqlite(SqliteStorage<StageKey>),
    /// apalis-postgres.
    Postgres(PostgresStorage<StageKey>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Queue::Sqlite",
            Self::Postgres(_) => "Queue::Postgres",
        })
    }
}

/// How often an apalis worker reports it is alive, from the dead-worker timeout: apalis
/// re-enqueues a job whose worker missed two beats, which must not happen before the ledger's
/// claim expires.
pub fn heartbeat(dead_worker_timeout: Duration) -> Duration {
    (dead_worker_timeout / 2).max(Duration::from_secs(1))
}

impl Queue {
    /// Opens the queue in `db`, creating its tables.
    pub async fn open(db: &Db, dead_worker_timeout: Duration) -> Result<Self, QueueError> {
        let beat = heartbeat(dead_worker_timeout);
        match db {
            Db::Sqlite(pool) => {
                SqliteStorage::setup(pool)
                    .await
                    .map_err(|e| QueueError::Setup {
                        backend: "sqlite",
                        message: e.to_string(),
                    })?;
                let config = apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(beat)
                    .missed_heartbeats(2);
                Ok(Self::Sqlite(SqliteStorage::new(pool).with_config(config)))
            }
            Db::Postgres(pool) => {
                PostgresStorage::setup(pool)
                    .await
                    .map_err(|e| QueueError::Setup {
                        backend: "postgres",
                        message: e.to_string(),
                    })?;
                let config = apalis_postgres::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(beat)
                    .missed_heartbeats(2);
                Ok(Self::Postgres(
                    PostgresStorage::new(pool).with_config(config),
                ))
            }
        }
    }

    /// Queues `key` to run at `at_ms` (Unix ms; the past means now).
    pub async fn push(&self, key: &StageKey, at_ms: i64) -> Result<(), QueueError> {
        // apalis schedules in whole seconds: a time still to come rounds up (never early), one
        // already here rounds down (due at once, not up to a second later).
        let ms = u64::try_from(at_ms.max(0)).unwrap_or(0);
        let secs = if at_ms <= now_ms() {
            ms / 1000
        } else {
            ms.div_ceil(1000)
        };
        let task = TaskBuilder::new(key.clone()).run_at_timestamp(secs).build();
        let err = |message: String| QueueError::Push {
            key: key.to_string(),
            message,
        };
        match self {
            Self::Sqlite(s) => s
                .clone()
                .push_task(task)
                .await
                .map_err(|e| err(e.to_string())),
            Self::Postgres(s) => s
                .clone()
                .push_task(task)
                .await
                .map_err(|e| err(e.to_string())),
        }
    }
}

/// Wakes an idle worker every `interval` so that it fetches again: how a job pushed by another
/// process, or one whose run-at time has come, is found.
///
/// Why not apalis's own `poll_with_interval`: its timer re-arms without being polled, so it
/// wakes the worker once and then never again; an idle worker then fetched only on its next
/// heartbeat (half the dead-worker timeout: 35 minutes by default). This one polls the re-armed
/// timer at once, which registers the wake-up.
#[derive(Debug)]
pub struct EveryInterval {
    interval: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl EveryInterval {
    /// Wakes every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            sleep: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl PollStrategy for EveryInterval {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        // Re-arm and poll until the timer is pending: a pending poll is what registers `cx`.
        while self.sleep.as_mut().poll(cx).is_ready() {
            fired = true;
            let next = tokio::time::Instant::now() + self.interval;
            self.sleep.as_mut().reset(next);
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}
