//! The composition root of the job graph: from [`Config`] and [`Secrets`] to an engine with the
//! six built-in stages and the hourly dispatch. The only place where the pipeline framework, the
//! stages and the configuration meet.

pub mod handlers;
pub mod keys;

use crate::config::Config;
use crate::network::Network;
use crate::pipeline::engine::{Engine, EngineError, Mode};
use crate::pipeline::graph::{Graph, GraphError};
use crate::pipeline::handler::Registry;
use crate::pipeline::ledger::{Db, Ledger, LedgerError};
use crate::pipeline::queue::{Queue, QueueError};
use crate::pipeline::service::Tick;
use crate::secret::{Secret, Secrets};
use crate::stages::dispatch::{DispatchError, DispatchReport, DispatchSettings, dispatch};
use crate::store::SharedStore;
use async_trait::async_trait;
pub use handlers::Services;
use std::sync::Arc;
use std::time::Duration;

/// Errors of assembling the job graph.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
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
    /// Two settings contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// Which handlers an engine runs.
#[derive(Debug)]
pub enum Stages {
    /// The six built-in stages.
    Builtin,
    /// These (the orchestration benchmark and the service's tests use no-op stages).
    Custom(Registry),
    /// The six built-in stages over services the caller shares: `serve`'s OpenAI-compatible
    /// endpoint answers with their jury, so the models are loaded once.
    Shared(Arc<Services>),
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

/// Opens the ledger: `CYBERGOV_DATABASE_URL` when set (a secret), else `database.url`.
pub async fn open_ledger(config: &Config, secrets: &Secrets) -> Result<Ledger, OpenError> {
    let url = secrets
        .database_url
        .as_ref()
        .map_or(config.database.url.as_str(), Secret::expose);
    // Released when this returns: only opening and migrating are one process at a time.
    let _lock = crate::pipeline::ledger::open_lock(url).await?;
    let db = Db::open(url, config.database.init).await?;
    Ok(Ledger::open(db).await?)
}

/// Assembles an engine from configuration: graph, handlers, ledger and, with `queued`, the
/// queue.
pub async fn open_engine(
    config: &Config,
    secrets: Arc<Secrets>,
    store: SharedStore,
    stages: Stages,
    queued: bool,
) -> Result<Engine, OpenError> {
    let graph = load_graph(config)?;
    check_runner_fits_the_infer_stage(config, &graph)?;
    let ledger = open_ledger(config, &secrets).await?;
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
    let registry = match stages {
        Stages::Builtin => handlers::builtin(&Arc::new(Services::new(
            config.clone(),
            secrets,
            store.clone(),
        ))),
        Stages::Custom(r) => r,
        Stages::Shared(services) => handlers::builtin(&services),
    };
    Ok(Engine::new(
        store,
        config.pipeline.clone(),
        graph,
        registry,
        ledger,
        mode,
    )?)
}

/// With the GitHub runner, the infer stage must outlast the runner's whole wait (finding the
/// dispatched run, then waiting for it): otherwise the stage times out, is retried, and the
/// retry dispatches a second public workflow run for the same attempt.
fn check_runner_fits_the_infer_stage(config: &Config, graph: &Graph) -> Result<(), OpenError> {
    use crate::stages::infer::runner::settings::RunnerKind;
    let github = &config.runner.github;
    let wait = github
        .find_timeout_secs
        .saturating_add(github.run_timeout_secs);
    match graph.stage("infer") {
        Some(infer) if config.runner.kind == RunnerKind::Github && infer.timeout_secs <= wait => {
            Err(OpenError::Inconsistent(format!(
                "the infer stage's timeout_secs ({} s) must exceed runner.github.find_timeout_secs + run_timeout_secs ({wait} s), or a retry would dispatch a second workflow run",
                infer.timeout_secs
            )))
        }
        _ => Ok(()),
    }
}

/// Dispatch's settings from the configuration.
pub fn dispatch_settings(config: &Config) -> DispatchSettings {
    DispatchSettings {
        networks: config.networks.clone(),
        subsquare: config.subsquare.clone(),
    }
}

/// Dispatches `networks` (default: every enabled one) once.
pub async fn dispatch_once(
    config: &Config,
    engine: &Engine,
    networks: Option<&[Network]>,
) -> Result<DispatchReport, DispatchError> {
    dispatch(engine, &dispatch_settings(config), networks).await
}

/// The hourly dispatch of `cybergov serve`.
#[derive(Debug)]
pub struct DispatchTick(pub DispatchSettings);

#[async_trait]
impl Tick for DispatchTick {
    async fn tick(
        &self,
        engine: Arc<Engine>,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let report = dispatch(&engine, &self.0, None).await?;
        Ok(format!(
            "{} started, {} already with a run, {} network(s) failed",
            report.started.len(),
            report.already.len(),
            report.failed.len()
        ))
    }
}

/// Runs the infer stage for `network` #`referendum` (run `run`, default the newest) with the
/// configured runner.
pub async fn infer_with_runner(
    store: &dyn crate::store::ObjectStore,
    config: &Config,
    secrets: &Secrets,
    network: Network,
    referendum: u32,
    run: Option<u32>,
) -> Result<crate::stages::infer::InferOutcome, crate::stages::infer::runner::RunnerError> {
    match config.runner.kind {
        crate::stages::infer::runner::settings::RunnerKind::Local => {
            let jury = crate::magi::jury::Jury::from_config(
                &config.magi,
                secrets,
                &crate::progress::quiet(),
            )?;
            Ok(crate::stages::infer::infer(
                store,
                &config.infer_settings(),
                &jury,
                network,
                referendum,
                run,
            )
            .await?)
        }
        crate::stages::infer::runner::settings::RunnerKind::Github => {
            let client = crate::github::client::GithubClient::new(
                &config.runner.github,
                secrets.github_token.as_ref(),
            )?;
            crate::stages::infer::runner::infer_on_github(
                store,
                &client,
                &config.runner.github,
                network,
                referendum,
                run,
            )
            .await
        }
    }
}
