//! `cybergov demo`: the whole pipeline, offline, on a bundled sample referendum.
//!
//! It uses only embedded defaults (a local folder store under `--dir`), so a newcomer can run it
//! right after cloning. Each stage that has landed runs for real; the others are listed as
//! pending with the issue that brings them, never simulated.

use crate::network::Network;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{FsStore, ObjectStore, PutOutcome};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// The sample referendum, in Subsquare's detail-response shape (our own text, not a real one).
pub const SAMPLE_REFERENDUM: &[u8] = include_bytes!("demo/sample-referendum.json");
/// The sample's network and index.
pub const SAMPLE: (Network, u32) = (Network::Polkadot, 4242);

/// Runs the demo in `dir`.
pub async fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let store = FsStore::new(dir.join("store")).context("opening the demo store")?;
    let (network, id) = SAMPLE;
    let run = ReferendumLayout::new(network, id).run(1);

    println!("cybergov demo: {network} referendum #{id} (bundled sample), offline");
    println!("store: {}", store.location());

    let key = run.key(&Artefact::RawSubsquare);
    let outcome = store.put(&key, SAMPLE_REFERENDUM).await?;
    let note = match outcome {
        PutOutcome::Created => "written",
        PutOutcome::AlreadyPresent => "already present, unchanged",
    };
    println!("  scrape   done     {key} ({note})");
    for (stage, issue) in [("augment", 3), ("infer", 4), ("vote", 5), ("comment", 3)] {
        println!("  {stage:<8} pending  lands with issue #{issue}");
    }
    println!(
        "The remaining stages and the final manifest verification join this demo as they land."
    );
    Ok(ExitCode::SUCCESS)
}
