//! The job graph (issue #6): the stages a referendum goes through, run idempotently by apalis
//! workers over a ledger.
//!
//! - [`graph`]: `jobs/pipeline.toml` — stages, successors, retries, timeouts, delays; checked.
//! - [`settings`]: the `[pipeline]` configuration.
//! - [`ledger`]: runs and stages keyed by (network, referendum, run, stage), atomic claims.
//! - [`queue`]: apalis on SQLite (default) or PostgreSQL.
//! - [`handlers`]: stage name → code; the six built-in stages.
//! - [`engine`]: claim, run, record, hand off; the sweeper for dead workers.
//! - [`dispatch`]: ongoing referenda without a run → new runs.
//! - [`service`]: `cybergov serve` — cron dispatch, workers, graceful shutdown.
//! - [`rerun`]: run + 1, reusing the stages before `--from`.
//! - [`report`]: `cybergov status`'s rendering.

pub mod dispatch;
pub mod engine;
pub mod graph;
pub mod handlers;
pub mod ledger;
pub mod queue;
pub mod report;
pub mod rerun;
pub mod service;
pub mod settings;

use crate::config::{Config, Secrets};
use crate::store::SharedStore;
use engine::{Engine, EngineError, Mode};
use graph::{Graph, GraphError};
use handlers::{Registry, Services};
use ledger::{Db, Ledger, LedgerError};
use queue::{Queue, QueueError};
use std::sync::Arc;
use std::time::Duration;

/// Errors of assembling the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The graph file is wrong.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The database could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The queue could not be set up.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The engine refused the graph.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The configured graph: the file `pipeline.graph` (or the bundled one), with the scrape-delay
/// override applied.
pub fn load_graph(config: &Config) -> Result<Graph, GraphError> {
    let mut graph = Graph::load(config.pipeline.graph.as_deref())?;
    if let Some(d) = config.pipeline.scrape_delay_secs {
        graph.override_delay("scrape", d);
    }
    Ok(graph)
}

/// Opens the ledger of `config.database.url`.
pub async fn open_ledger(config: &Config) -> Result<Ledger, PipelineError> {
    let db = Db::connect(&config.database.url).await?;
    Ok(Ledger::open(db).await?)
}

/// Assembles an engine from configuration: graph, built-in handlers, ledger and, with
/// `queued`, the queue.
pub async fn open_engine(
    config: &Config,
    secrets: &Secrets,
    store: SharedStore,
    registry: Registry,
    queued: bool,
) -> Result<Engine, PipelineError> {
    let graph = load_graph(config)?;
    let ledger = open_ledger(config).await?;
    let mode = if queued {
        Mode::Queue(Box::new(
            Queue::open(
                ledger.db(),
                Duration::from_secs(config.pipeline.dead_worker_timeout_secs),
            )
            .await?,
        ))
    } else {
        Mode::Foreground
    };
    let services = Arc::new(Services::new(config.clone(), secrets.clone(), store));
    Ok(Engine::new(services, graph, registry, ledger, mode)?)
}
