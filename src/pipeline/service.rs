//! The service (`cybergov serve`): the hourly dispatch (apalis-cron), the stage workers
//! (apalis on SQLite or PostgreSQL) and the sweeper, until a shutdown signal.
//!
//! Shutdown is graceful: the engine stops handing work on directly, the apalis workers stop
//! fetching and let the stages in flight finish; anything not finished stays in the ledger and
//! the queue and runs again in the next worker.

use super::engine::{Engine, Mode};
use super::ledger::StageKey;
use super::queue::{EveryInterval, Queue};
use apalis::prelude::{BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::CronScheduler;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The engine has no queue (it was built for the foreground).
    #[error("the service needs a queue-mode engine")]
    NoQueue,
    /// The dispatch schedule is not a cron expression.
    #[error("pipeline.dispatch_cron: {0}")]
    Cron(String),
    /// An apalis worker failed.
    #[error("worker {name}: {message}")]
    Worker {
        /// The worker.
        name: String,
        /// Why.
        message: String,
    },
}

async fn handle_stage(key: StageKey, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    engine
        .process(key)
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}

/// What the service does on each tick of its schedule (`pipeline.dispatch_cron`): for
/// cybergov, the hourly dispatch (`crate::wiring::DispatchTick`). The framework knows only that
/// it is work to do on a schedule.
#[async_trait::async_trait]
pub trait Tick: Send + Sync + std::fmt::Debug {
    /// Does the work once; the answer is logged.
    async fn tick(&self, engine: Arc<Engine>) -> Result<String, BoxDynError>;
}

/// What the cron worker holds: the engine and the work to do on each tick.
#[derive(Clone)]
struct Scheduled {
    engine: Arc<Engine>,
    tick: Arc<dyn Tick>,
}

async fn handle_tick(_tick: apalis_cron::Tick, job: Data<Scheduled>) -> Result<(), BoxDynError> {
    let Scheduled { engine, tick } = (*job).clone();
    let summary = tick.tick(engine).await?;
    tracing::info!(%summary, "scheduled tick");
    Ok(())
}

/// Which parts of the service run.
#[derive(Clone, Debug)]
pub struct Parts {
    /// The scheduled work (the hourly dispatch), if any.
    pub tick: Option<Arc<dyn Tick>>,
    /// The stage workers and the sweeper.
    pub workers: bool,
}

/// Runs the service until `shutdown` completes.
pub async fn serve(
    engine: Arc<Engine>,
    parts: Parts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let Mode::Queue(queue) = engine.mode.clone() else {
        return Err(ServiceError::NoQueue);
    };
    let pipeline = engine.settings.clone();
    let (tx, rx) = watch::channel(false);
    let stopped = {
        let rx = rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
                Ok::<(), std::io::Error>(())
            }
        }
    };
    let mut tasks = tokio::task::JoinSet::new();

    if parts.workers {
        // The sweeper: expired claims and lost queue jobs go back to the queue.
        let eng = engine.clone();
        let mut rx_sweep = rx.clone();
        let every = (eng.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        tasks.spawn(async move {
            loop {
                if let Err(e) = eng.sweep().await {
                    tracing::error!(error = %e, "sweep failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = rx_sweep.wait_for(|s| *s) => return Ok(()),
                }
            }
        });
        let name = format!("stages-{}", engine.owner);
        let concurrency = pipeline.concurrency as usize;
        let poll = Duration::from_millis(pipeline.poll_interval_ms);
        let eng = engine.clone();
        let stop = stopped();
        tasks.spawn(async move {
            let result = match *queue {
                Queue::Sqlite(s) => {
                    WorkerBuilder::new(name.as_str())
                        .backend(s.poll_with_strategy(EveryInterval::new(poll)))
                        .data(eng)
                        .concurrency(concurrency)
                        .build(handle_stage)
                        .run_until(stop)
                        .await
                }
                Queue::Postgres(s) => {
                    WorkerBuilder::new(name.as_str())
                        .backend(s.poll_with_strategy(EveryInterval::new(poll)))
                        .data(eng)
                        .concurrency(concurrency)
                        .build(handle_stage)
                        .run_until(stop)
                        .await
                }
            };
            result.map_err(|e| ServiceError::Worker {
                name,
                message: e.to_string(),
            })
        });
    }

    if let Some(tick) = parts.tick {
        let schedule: cron::Schedule = pipeline
            .dispatch_cron
            .parse()
            .map_err(|e: cron::error::Error| ServiceError::Cron(e.to_string()))?;
        let name = format!("dispatch-{}", engine.owner);
        let job = Scheduled {
            engine: engine.clone(),
            tick,
        };
        let stop = stopped();
        tasks.spawn(async move {
            WorkerBuilder::new(name.as_str())
                .backend(CronScheduler::new(schedule))
                .data(job)
                .build(handle_tick)
                .run_until(stop)
                .await
                .map_err(|e| ServiceError::Worker {
                    name,
                    message: e.to_string(),
                })
        });
    }

    let eng = engine.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing the stages in flight");
        eng.stop();
        let _ = tx.send(true);
    });

    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| {
            Err(ServiceError::Worker {
                name: "task".into(),
                message: e.to_string(),
            })
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "service part stopped");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A service running in the background of this process ([`spawn`]).
#[derive(Debug)]
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

impl Running {
    /// Shuts the service down gracefully (as SIGTERM does `cybergov serve`) and waits for it.
    pub async fn stop(self) -> Result<(), ServiceError> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|e| {
            Err(ServiceError::Worker {
                name: "service".into(),
                message: e.to_string(),
            })
        })
    }
}

/// Starts [`serve`] on a task of its own, for a program that embeds the service (a benchmark,
/// a test) and stops it when it is done.
pub fn spawn(engine: Arc<Engine>, parts: Parts) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(engine, parts, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}
