//! `cybergov serve`: the hourly dispatch and the stage workers, until SIGINT or SIGTERM.

use crate::config::Config;
use crate::pipeline::service::{Parts, serve};
use crate::secret::Secrets;
use crate::wiring::{DispatchTick, Stages, dispatch_settings};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the service.
pub async fn run(config: &Config, secrets: &Arc<Secrets>) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let location = store.location();
    let engine = crate::wiring::open_engine(config, secrets.clone(), store, Stages::Builtin, true)
        .await
        .context("starting the job graph")?;
    if config.pipeline.vote_mode == crate::pipeline::settings::VoteMode::Submit {
        for warning in crate::wiring::keys::check_proxy_keys(config, secrets).await? {
            eprintln!("warning: {warning}");
        }
    }
    let engine = Arc::new(engine);
    eprintln!(
        "cybergov serve: worker {} on {} (store {location}), dispatch at \"{}\", {} stage(s) at a time",
        engine.owner,
        engine.ledger.db().kind(),
        config.pipeline.dispatch_cron,
        config.pipeline.concurrency
    );
    serve(
        engine,
        Parts {
            tick: Some(Arc::new(DispatchTick(dispatch_settings(config)))),
            workers: true,
        },
        shutdown_signal(),
    )
    .await?;
    eprintln!("cybergov serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
