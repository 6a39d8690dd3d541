//! `cybergov serve`: the hourly dispatch, the stage workers and the HTTP server (health, JSON
//! API), until SIGINT or SIGTERM; `--web-only`: the HTTP server alone, a read-only mirror.

use crate::config::Config;
use crate::pipeline::service::{Parts, serve};
use crate::secret::Secrets;
use crate::web::{WebState, bind};
use crate::wiring::{DispatchTick, Stages, dispatch_settings};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the service.
pub async fn run(
    config: &Config,
    secrets: &Arc<Secrets>,
    web_only: bool,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let location = store.location();
    // One signal, heard by the job graph and the HTTP server alike.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // One set of services (and so one loaded jury) for the job graph and the OpenAI endpoint.
    let services = Arc::new(crate::wiring::Services::new(
        config.clone(),
        secrets.clone(),
        store.clone(),
    ));
    let openai = if config.server.openai.enabled && (web_only || config.server.enabled) {
        anyhow::ensure!(
            secrets.openai_server_key.is_some(),
            "server.openai.enabled needs the key its clients send: set {} (or {}_FILE)",
            crate::env::OPENAI_SERVER_KEY_VAR,
            crate::env::OPENAI_SERVER_KEY_VAR
        );
        Some(crate::web::openai::OpenAiServer::new(
            services.clone(),
            config.server.openai.max_queue,
        ))
    } else {
        None
    };
    let engine = if web_only {
        None
    } else {
        let engine = crate::wiring::open_engine(
            config,
            secrets.clone(),
            store.clone(),
            Stages::Shared(services),
            true,
        )
        .await
        .context("starting the job graph")?;
        if config.pipeline.vote_mode == crate::pipeline::settings::VoteMode::Submit {
            for warning in crate::wiring::keys::check_proxy_keys(config, secrets).await? {
                eprintln!("warning: {warning}");
            }
        }
        Some(Arc::new(engine))
    };
    let web = if web_only || config.server.enabled {
        // The job graph's ledger when there is one: one pool, one migration check.
        let ledger = match &engine {
            Some(engine) => engine.ledger.clone(),
            None => crate::wiring::open_ledger(config, secrets)
                .await
                .context("opening the ledger")?,
        };
        let state = WebState {
            ledger,
            store,
            public_base_url: config.public_base_url.clone(),
            settings: config.server.clone(),
            networks: config.networks.clone(),
            dispatch: engine.as_ref().and_then(|_| dispatch_watch(config)),
            operator: engine
                .clone()
                .and_then(|e| crate::web::actions::Operator::new(e, secrets.clone())),
            openai,
            arena: crate::web::arena::ArenaPages {
                rule: config.arena.clone(),
                review: !web_only,
            },
        };
        let (listener, addr) = bind(&config.server).await?;
        eprintln!(
            "cybergov serve: HTTP on http://{addr} (the dashboard, /healthz, /readyz, /api/v1/referenda)"
        );
        Some(tokio::spawn(crate::web::serve(
            listener,
            state,
            stopped(stop_rx.clone()),
        )))
    } else {
        None
    };
    if let Some(engine) = engine {
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
            stopped(stop_rx.clone()),
        )
        .await?;
    }
    if let Some(web) = web {
        web.await.context("the HTTP server")??;
    }
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

/// What `/readyz` watches of the hourly dispatch: the schedule's interval (the gap between its
/// next two ticks; none for a schedule that fires once or never) and the enabled networks.
fn dispatch_watch(config: &Config) -> Option<crate::web::DispatchWatch> {
    let schedule: cron::Schedule = config.pipeline.dispatch_cron.parse().ok()?;
    let mut next = schedule.upcoming(chrono::Utc);
    let (a, b) = (next.next()?, next.next()?);
    Some(crate::web::DispatchWatch {
        since: chrono::Utc::now().timestamp(),
        interval: (b - a).num_seconds().max(1),
        networks: config
            .networks
            .iter()
            .filter(|(_, spec)| spec.enabled)
            .map(|(n, _)| *n)
            .collect(),
    })
}
