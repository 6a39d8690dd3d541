//! `cybergov run --network N --id ID`: one referendum through every stage, in the foreground.

use crate::cli::Target;
use crate::config::Config;
use crate::manifest::verify::verify_run;
use crate::pipeline::engine::Engine;
use crate::pipeline::ledger::{RunState, StageKey, StageState};
use crate::secret::Secrets;
use crate::wiring::Stages;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs (or resumes) the referendum's run and prints its status and verification.
pub async fn run(
    config: &Config,
    secrets: &Arc<Secrets>,
    target: &Target,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let mut engine =
        crate::wiring::open_engine(config, secrets.clone(), store, Stages::Builtin, false)
            .await
            .context("opening the job graph")?;
    if config.pipeline.vote_mode == crate::pipeline::settings::VoteMode::Submit {
        for warning in crate::wiring::keys::check_proxy_keys(config, secrets).await? {
            eprintln!("warning: {warning}");
        }
    }
    engine.ignore_delays = true;
    let (network, id) = (target.network, target.id);
    // Two `run`s started at once both see the same last run; only one creates the next, the
    // other finds that run here on its second look and follows it.
    let (run, last) = loop {
        let runs = engine.ledger.runs(Some(network), Some(id)).await?;
        let Some(last) = runs.last() else {
            match run_new(config, &engine, target, 0).await? {
                Some(code) => return Ok(code),
                None => continue,
            }
        };
        let run = u32::try_from(last.run)?;
        if last.state == RunState::Completed.as_str() || last.state == RunState::Active.as_str() {
            break (run, last.clone());
        }
        match run_new(config, &engine, target, run).await? {
            Some(code) => return Ok(code),
            None => continue,
        }
    };
    if last.state == RunState::Completed.as_str() {
        println!("{network} #{id}: run {run} already completed; `cybergov rerun` starts a new one");
        return finish(config, &engine, network, id, run).await;
    }
    println!("{network} #{id}: resuming run {run}");
    // Until no stage is left to do: another process may be running the run (a second `run`
    // started at the same moment), adding stages as it goes; each of its stages is waited for
    // (or taken over once its lease lapses) like one of ours.
    loop {
        let mut pending = Vec::new();
        for row in engine
            .ledger
            .stages(Some(network), Some(id), Some(run))
            .await?
        {
            if !row.state()?.is_final() {
                pending.push(row.key()?);
            }
        }
        if pending.is_empty() {
            break;
        }
        process_all(&engine, pending).await?;
    }
    finish(config, &engine, network, id, run).await
}

/// Starts the referendum's next run after run `last_seen` (0: none) and takes it through every
/// stage here. `None` when another process created a run first: the caller looks again.
async fn run_new(
    config: &Config,
    engine: &Engine,
    target: &Target,
    last_seen: u32,
) -> anyhow::Result<Option<ExitCode>> {
    let (network, id) = (target.network, target.id);
    let Some(key) = engine.run_new(network, id, Some(last_seen)).await? else {
        println!(
            "{network} #{id}: another `cybergov run` started a run at the same moment; following it"
        );
        return Ok(None);
    };
    println!("{network} #{id}: run {}", key.run);
    finish(config, engine, network, id, key.run).await.map(Some)
}

/// Processes `keys` in the foreground.
pub async fn process_all(engine: &Engine, keys: Vec<StageKey>) -> anyhow::Result<()> {
    for key in keys {
        engine.process(key).await?;
    }
    Ok(())
}

/// Prints the run's status, verifies it when it completed; the exit code says whether it did.
pub async fn finish(
    config: &Config,
    engine: &Engine,
    network: crate::network::Network,
    id: u32,
    run: u32,
) -> anyhow::Result<ExitCode> {
    super::status::print_status(
        config,
        &engine.ledger,
        engine.store.as_ref(),
        Some(network),
        Some(id),
    )
    .await?;
    let stages = engine
        .ledger
        .stages(Some(network), Some(id), Some(run))
        .await?;
    let failed = stages
        .iter()
        .any(|s| s.state().is_ok_and(|st| st == StageState::Failed));
    if failed {
        eprintln!("error: run {run} of {network} #{id} failed (see the error above)");
        return Ok(ExitCode::FAILURE);
    }
    let report = verify_run(engine.store.as_ref(), network, id, Some(run)).await;
    println!("verification of run {run}:");
    for line in report.to_string().lines() {
        println!("  {line}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
