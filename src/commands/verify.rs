//! `cybergov verify`: check a run's manifest and artefacts (from the configured store or a
//! public base URL), the vote on chain (through Sidecar), and optionally re-run the jurors.

use crate::cli::RunTarget;
use crate::config::Config;
use crate::secret::Secrets;
use crate::store::SharedStore;
use crate::verify::http::HttpStore;
use crate::verify::{VerifyOptions, verify};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

/// Where `cybergov verify` reads from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Public base URL of the store (`None`: the configured store).
    pub base_url: Option<String>,
    /// Sidecar base URL (`None`: the network's configured `sidecar_url`).
    pub sidecar: Option<String>,
}

/// Verifies the run named by `target` and prints one line per check.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    target: &RunTarget,
    sources: &Sources,
    reexecute: bool,
) -> anyhow::Result<ExitCode> {
    let store: SharedStore = match &sources.base_url {
        Some(url) => Arc::new(HttpStore::new(url).context("--base-url")?),
        None => super::open_store(config, secrets)?,
    };
    let t = &target.target;
    let options = VerifyOptions {
        sidecar_url: sources
            .sidecar
            .clone()
            .or_else(|| config.network(t.network).sidecar_url.clone()),
        reexecute: reexecute.then(|| config.magi.clone()),
    };
    let outcome = verify(store.as_ref(), t.network, t.id, target.run, &options).await;
    println!("{outcome}");
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
