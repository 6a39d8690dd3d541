//! `cybergov verify`: check a run's manifest and artefacts (from the configured store or a
//! public base URL), their consistency, the vote on chain (found from the network, the
//! referendum and the account, never from the run), and optionally re-run the jurors.
//!
//! Exit codes: 0 PASS (or NOT VOTED with `--allow-unvoted`), 1 FAIL, 2 bad usage, 3 NOT VOTED.

use crate::account::AccountId;
use crate::cli::{ChainArgs, RunTarget};
use crate::config::Config;
use crate::network::TransportKind;
use crate::secret::Secrets;
use crate::store::SharedStore;
use crate::verify::chain::ChainLookup;
use crate::verify::http::HttpStore;
use crate::verify::{Verdict, VerifyOptions, verify};
use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code of NOT VOTED without `--allow-unvoted`.
pub const EXIT_NOT_VOTED: u8 = 3;

/// Where `cybergov verify` reads from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Public base URL of the store (`None`: the configured store).
    pub base_url: Option<String>,
    /// The chain endpoint, the account and the block range.
    pub chain: ChainArgs,
}

/// Verifies the run named by `target` and prints one line per check, then the verdict.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    target: &RunTarget,
    sources: &Sources,
    reexecute: bool,
) -> anyhow::Result<ExitCode> {
    let store: SharedStore = match &sources.base_url {
        Some(url) => {
            Arc::new(HttpStore::new(url, config.public_max_body_bytes).context("--base-url")?)
        }
        None => super::open_store(config, secrets)?,
    };
    let t = &target.target;
    let args = &sources.chain;
    let mut spec = config.network(t.network).clone();
    let real = args
        .real
        .clone()
        .or_else(|| spec.real_account.clone())
        .with_context(|| {
            format!(
                "whose vote? give --real ADDRESS or set networks.{}.real_account",
                t.network
            )
        })?;
    let real = AccountId::parse_for(&real, spec.ss58_prefix).context("--real")?;
    if let Some(url) = &args.rpc_url {
        spec.rpc_url = url.clone();
        spec.vote.transport = TransportKind::Rpc;
    } else if let Some(url) = &args.sidecar {
        spec.sidecar_url = Some(url.clone());
        spec.vote.transport = TransportKind::Sidecar;
    }
    let transport = crate::chain::connect(&spec).await;
    let mut options = VerifyOptions {
        reexecute: reexecute.then(|| config.magi.clone()),
        ..VerifyOptions::default()
    };
    match &transport {
        Ok(transport) => {
            options.chain = Some(ChainLookup {
                transport: transport.as_ref(),
                real,
                ss58_prefix: spec.ss58_prefix,
                tracks: spec.allowed_tracks.clone(),
                from_block: args.from_block,
                to_block: args.to_block,
                max_blocks: args.max_blocks.max(1),
                hint_block: None,
            })
        }
        Err(e) => {
            options.chain_unavailable = Some(crate::secret::redact_urls(&format!(
                "the chain cannot be reached: {e}"
            )));
        }
    }
    let outcome = verify(store.as_ref(), t.network, t.id, target.run, options).await;
    // The report quotes endpoints and URLs (a store that failed, a chain that cannot be
    // reached); their credentials are not the public's.
    println!("{}", crate::secret::redact_urls(&outcome.to_string()));
    Ok(match outcome.verdict() {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::NotVoted if args.allow_unvoted => ExitCode::SUCCESS,
        Verdict::NotVoted => ExitCode::from(EXIT_NOT_VOTED),
        Verdict::Fail => ExitCode::FAILURE,
    })
}
