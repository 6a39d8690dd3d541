//! `cybergov demo`: the whole job graph, offline, on a bundled sample referendum.
//!
//! Embedded defaults only — a folder store and an SQLite ledger under `--dir`, the default
//! SmolLM2 jurors — so a newcomer can run it right after cloning. The stages run through the same
//! graph and code as `cybergov run`; only the outside world is local:
//!
//! - Subsquare is [`crate::subsquare::standin`], serving the bundled sample and taking the
//!   comment;
//! - the chain is chopsticks running our governance devnet (`tests/devnet/spec.json`): the
//!   checkout's test tools, else a pinned copy the demo installs into its cache with npm on
//!   first use. The vote is really cast, by the dev key `//Alice` as Governance proxy for
//!   `//Bob`. Without node and npm the vote stage is left out of the graph and the demo says
//!   what to install: nothing is simulated.
//!
//! It ends by verifying the run it produced, the vote and its remark on the devnet included,
//! and printing where everything is.

mod devnet;

use crate::cli::Target;
use crate::config::Config;
use crate::network::Network;
use crate::pipeline::settings::VoteMode;
use crate::secret::Secret;
use crate::secret::Secrets;
use crate::store::settings::StoreBackend;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// The sample referendum, in Subsquare's detail-response shape (our own text, not a real one).
/// Its index and track (33, medium_spender) are those of the devnet's referendum #0, so the
/// demo's vote lands on a referendum that exists and is ongoing there.
pub const SAMPLE_REFERENDUM: &[u8] = include_bytes!("demo/sample-referendum.json");
/// The sample's network and index.
pub const SAMPLE: (Network, u32) = (Network::Paseo, 0);

/// `//Bob`, written with Paseo's SS58 prefix (0) like the sample's addresses: the devnet account
/// the demo votes for.
const DEVNET_REAL: &str = "14E5nqKAp3oAJcmzgZhUD2RcptBeUBScxKHgJKU4HPNcKVf3";

/// Runs the demo in `dir`. `base` supplies only the juror and augmentation settings (so a
/// configured model cache, device or token budget applies); everything else is the demo's own.
pub async fn run(dir: &Path, base: &Config) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let (network, id) = SAMPLE;

    let subsquare = crate::subsquare::standin::spawn()
        .await
        .context("starting the local Subsquare stand-in")?;
    subsquare.add_referendum(id, SAMPLE_REFERENDUM);

    let mut config = Config {
        magi: base.magi.clone(),
        augment: base.augment.clone(),
        ..Config::default()
    };
    config.store.backend = StoreBackend::Fs;
    config.store.path = dir.join("store");
    config.database.url = format!("sqlite://{}?mode=rwc", dir.join("cybergov.db").display());
    for n in Network::ALL {
        config.networks.get_mut(&n).expect("every network").enabled = n == network;
    }
    let spec = config.networks.get_mut(&network).expect("every network");
    spec.subsquare_api_url = subsquare.url.clone();

    println!("cybergov demo: {network} referendum #{id} (bundled sample), offline");
    println!("  subsquare  local stand-in at {}", subsquare.url);
    let cache = crate::magi::models::default_models_dir()
        .parent()
        .map_or_else(|| dir.clone(), Path::to_path_buf);
    let chain = match devnet::chopsticks(&cache, &dir.join("npm-install.log")).await? {
        devnet::Chopsticks::At(bin) => Some(devnet::Devnet::start(&bin, &dir).await?),
        devnet::Chopsticks::Unavailable(why) => {
            println!("  chain      none: {why}");
            None
        }
    };
    match &chain {
        Some(chain) => {
            println!(
                "  chain      chopsticks on the governance devnet at {} (standing in for {network} Asset Hub)",
                chain.ws_url
            );
            spec.rpc_url = chain.ws_url.clone();
            spec.genesis_hash = devnet::DEVNET_GENESIS.into();
            spec.real_account = Some(DEVNET_REAL.into());
            spec.vote.legacy_backend = true;
            spec.vote.proxy_type = Some("Governance".into());
            config.pipeline.vote_mode = VoteMode::Submit;
        }
        None => {
            let graph = dir.join("graph-without-vote.toml");
            std::fs::write(&graph, devnet::graph_without_vote()?)?;
            config.pipeline.graph = Some(graph);
        }
    }
    println!("  store      {}", config.store.path.display());
    println!("  ledger     {}", config.database.url);

    // The dev key is public knowledge; it signs the devnet vote and the stand-in's comment.
    let secrets = std::sync::Arc::new(Secrets {
        proxy_seed: Some(Secret::new("//Alice")),
        ..Secrets::default()
    });
    let target = Target { network, id };
    let mut code = super::run::run(&config, &secrets, &target).await?;
    if chain.is_some() && code == ExitCode::SUCCESS {
        code = show_the_vote(&config, &secrets, &target).await?;
    }
    println!("everything is under {}", dir.display());
    drop(chain);
    Ok(code)
}

/// Prints the vote as the chain took it (extrinsic, block), then verifies the run the way a
/// stranger would: the vote and the manifest's remark found on the devnet from the account
/// alone, not from the store's receipt.
async fn show_the_vote(
    config: &Config,
    secrets: &Secrets,
    target: &Target,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let layout = crate::store::layout::ReferendumLayout::new(target.network, target.id);
    let latest = layout
        .runs(store.as_ref())
        .await?
        .last()
        .copied()
        .context("the demo's run is in the store")?;
    let receipt = crate::records::receipt::Receipt::read(store.as_ref(), &layout.run(latest))
        .await?
        .context("the vote stage completed, so the run has a receipt.json")?;
    println!(
        "vote: {} on {} #{} — extrinsic {} in block #{} ({}){}",
        receipt.account_vote.describe(),
        target.network,
        target.id,
        receipt.extrinsic_hash,
        receipt.block_number,
        receipt.block_hash,
        if receipt.finalized { ", finalized" } else { "" }
    );
    println!("  remark {}", receipt.remark);
    // Each demo starts a new devnet: a run voted by an earlier demo is not on this one.
    let transport = crate::chain::connect(config.network(target.network)).await?;
    let here = transport.block_hash(receipt.block_number).await?;
    if here.map(|h| format!("0x{}", hex::encode(h.0))) != Some(receipt.block_hash.clone()) {
        println!(
            "  (cast on the devnet of an earlier demo, which is gone: each demo starts a new one; `cybergov rerun` would vote again)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("verification against the devnet (`cybergov verify`):");
    let sources = super::verify::Sources {
        base_url: None,
        chain: crate::cli::ChainArgs {
            rpc_url: None,
            sidecar: None,
            real: None,
            from_block: None,
            to_block: None,
            max_blocks: 50_000,
            allow_unvoted: false,
        },
    };
    let run = crate::cli::RunTarget {
        target: target.clone(),
        run: Some(latest),
    };
    super::verify::run(config, secrets, &run, &sources, false).await
}
