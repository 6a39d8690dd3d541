//! `cybergov vote --network N --id ID [--run R] [--dry-run]`: cast a run's vote on chain.

use crate::cli::RunTarget;
use crate::config::Config;
use crate::records::run_id::RunId;
use crate::secret::Secrets;
use crate::stages::vote::{VoteJob, VoteMode, VoteOutcome, vote_stage};
use crate::store::layout::ReferendumLayout;
use anyhow::{Context, bail};
use std::process::ExitCode;

/// Casts (or, with `dry_run`, shows) the vote of the chosen run and prints what happened.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    target: &RunTarget,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let network = target.target.network;
    let id = target.target.id;
    let store = super::open_store(config, secrets)?;
    let run = match target.run {
        Some(r) => r,
        None => match ReferendumLayout::new(network, id)
            .read_latest(store.as_ref())
            .await?
        {
            Some(latest) => latest.run,
            None => bail!(
                "{network} referendum {id} has no latest.json in {}: run the pipeline first, or pass --run",
                store.location()
            ),
        },
    };
    let mode = if dry_run {
        VoteMode::DryRun
    } else {
        VoteMode::Submit
    };
    let job = VoteJob {
        spec: config.network(network),
        proxy_seed: secrets.proxy_seed_for(network),
        id: RunId::new(network, id, run),
        mode,
        hooks: Default::default(),
    };
    let outcome = vote_stage(store.as_ref(), &job)
        .await
        .with_context(|| format!("voting on {network} referendum {id} run {run}"))?;
    match outcome {
        VoteOutcome::DryRun(plan) => println!("{plan}"),
        VoteOutcome::Submitted(r) | VoteOutcome::AlreadyDone(r) => {
            println!(
                "voted on {network} referendum {id} run {run}: extrinsic {} in block #{} ({}), remark {}",
                r.extrinsic_hash, r.block_number, r.block_hash, r.remark
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
