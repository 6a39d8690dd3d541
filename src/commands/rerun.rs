//! `cybergov rerun --network N --id ID [--from STAGE]`: run + 1, in the foreground.

use crate::cli::{StageName, Target};
use crate::config::Config;
use crate::pipeline::rerun::start_rerun;
use crate::secret::Secrets;
use crate::wiring::Stages;
use anyhow::Context;
use clap::ValueEnum;
use std::process::ExitCode;
use std::sync::Arc;

/// Starts and runs the rerun, then prints status and verification.
pub async fn run(
    config: &Config,
    secrets: &Arc<Secrets>,
    target: &Target,
    from: Option<StageName>,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let mut engine =
        crate::wiring::open_engine(config, secrets.clone(), store, Stages::Builtin, false)
            .await
            .context("opening the job graph")?;
    engine.ignore_delays = true;
    let from = from.and_then(|f| f.to_possible_value().map(|v| v.get_name().to_owned()));
    let (network, id) = (target.network, target.id);
    let rerun = start_rerun(&engine, network, id, from.as_deref()).await?;
    println!(
        "{network} #{id}: run {} (rerun of run {}), starting at {}{}",
        rerun.start.run,
        rerun.previous,
        rerun.start.stage,
        if rerun.reused.is_empty() {
            String::new()
        } else {
            format!("; reused {}", rerun.reused.join(", "))
        }
    );
    let run = rerun.start.run;
    super::run::process_all(&engine, vec![rerun.start]).await?;
    super::run::finish(config, &engine, network, id, run).await
}
