//! `cybergov dispatch [--network N]`: find ongoing referenda without a run and queue them, once.

use crate::config::Config;
use crate::network::Network;
use crate::secret::Secrets;
use crate::wiring::Stages;
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

/// Dispatches once and prints what was queued; a running `cybergov serve` picks the runs up.
pub async fn run(
    config: &Config,
    secrets: &Arc<Secrets>,
    network: Option<Network>,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let engine = crate::wiring::open_engine(config, secrets.clone(), store, Stages::Builtin, true)
        .await
        .context("opening the job graph")?;
    let networks = network.map(|n| vec![n]);
    let report = crate::wiring::dispatch_once(config, &engine, networks.as_deref()).await?;
    for key in &report.started {
        println!("queued {} #{} run {}", key.network, key.referendum, key.run);
    }
    for (n, e) in &report.failed {
        eprintln!("not dispatched on {n}: {e}");
    }
    for (n, r) in &report.already {
        println!("skipped {n} #{r}: it already has a run");
    }
    println!(
        "{} queued, {} already with a run, {} out of scope",
        report.started.len(),
        report.already.len(),
        report.out_of_scope
    );
    Ok(ExitCode::SUCCESS)
}
