//! `cybergov comment --network N --id ID [--run R]`: post a run's rationale comment.

use crate::cli::RunTarget;
use crate::config::Config;
use crate::secret::Secrets;
use crate::stages::comment::{CommentJob, CommentOutcome, comment_run};
use crate::store::layout::ReferendumLayout;
use crate::subsquare::{SubsquareClient, sima};
use anyhow::{Context, bail};
use std::process::ExitCode;

/// Posts (or finds) the comment of the chosen run and prints what happened.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    target: &RunTarget,
) -> anyhow::Result<ExitCode> {
    let network = target.target.network;
    let spec = config.network(network);
    let store = super::open_store(config, secrets)?;
    let referendum = ReferendumLayout::new(network, target.target.id);
    let run = match target.run {
        Some(r) => r,
        None => match referendum.read_latest(store.as_ref()).await? {
            Some(latest) => latest.run,
            None => bail!(
                "{network} referendum {} has no latest.json in {}: run the pipeline first, or pass --run",
                target.target.id,
                store.location()
            ),
        },
    };
    let proxy = sima::proxy_keypair(secrets.proxy_seed_for(network))?;
    let real = spec.real_account_id(network).map_err(anyhow::Error::msg)?;
    let client = SubsquareClient::new(network, spec, &config.subsquare)?;
    let timestamp_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
    let job = CommentJob {
        run: referendum.run(run),
        spec,
        proxy: &proxy,
        real,
        public_base_url: config.public_base_url.as_deref(),
        timestamp_ms,
    };
    let outcome = comment_run(store.as_ref(), &client, &job)
        .await
        .with_context(|| {
            format!(
                "commenting on {network} referendum {} run {run}",
                target.target.id
            )
        })?;
    let what = match &outcome {
        CommentOutcome::AlreadyRecorded(_) => "already recorded in comment.json; nothing sent",
        CommentOutcome::FoundExisting(_) => {
            "found our comment on Subsquare; recorded, nothing sent"
        }
        CommentOutcome::Posted(_) => "posted",
        CommentOutcome::Previewed(key) => {
            println!(
                "not voted (no receipt.json): nothing posted; the comment it would post is in {key}"
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Some(r) = outcome.record() {
        println!(
            "{what}: manifest {} comment {}",
            r.manifest_sha256.to_hex(),
            r.comment_id.as_deref().unwrap_or("(no id)")
        );
    }
    Ok(ExitCode::SUCCESS)
}
