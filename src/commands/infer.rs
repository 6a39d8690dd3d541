//! `cybergov infer`: the three jurors and the tally for one referendum.

use crate::cli::RunTarget;
use crate::config::Config;
use crate::magi::jury::Jury;
use crate::secret::Secrets;
use crate::stages::infer::infer;
use anyhow::Context;
use std::process::ExitCode;

/// Runs the infer stage and prints what it decided.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    target: &RunTarget,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let jury = Jury::from_config(&config.magi, secrets, &super::progress::bars())
        .context("assembling the jury")?;
    let t = &target.target;
    let outcome = infer(
        store.as_ref(),
        &config.infer_settings(),
        &jury,
        t.network,
        t.id,
        target.run,
    )
    .await?;
    print_outcome(&outcome, &store.location());
    Ok(ExitCode::SUCCESS)
}

/// Prints an infer outcome for people.
pub fn print_outcome(outcome: &crate::stages::infer::InferOutcome, location: &str) {
    let m = &outcome.manifest;
    if outcome.already_done {
        println!(
            "{} #{} run {}: already inferred",
            m.network, m.referendum, outcome.run
        );
    }
    for model in &m.models {
        println!("  {:<10} {}", model.juror, model.model_id);
    }
    println!(
        "decision: {:?} (conviction {}, balance {} planck)",
        m.decision.vote, m.decision.conviction, m.decision.balance
    );
    println!("manifest sha256: {}", outcome.manifest_sha256);
    // The public anchor the GitHub runner checks (and anyone can read in the run's log).
    println!(
        "{}",
        crate::github::log::manifest_line(&outcome.manifest_sha256)
    );
    println!("store: {location}");
}
