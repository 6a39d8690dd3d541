//! `cybergov demo`: the pipeline, offline, on a bundled sample referendum.
//!
//! Embedded defaults only (a local folder store under `--dir`, the default SmolLM2 jurors), so
//! a newcomer can run it right after cloning. Every stage that has landed runs for real; the
//! ones that have not are listed as pending with the issue that brings them, never simulated.
//! It ends by verifying the manifest it produced.

use crate::config::{Config, Secrets, StoreBackend};
use crate::magi::jury::Jury;
use crate::manifest::verify::verify_run;
use crate::network::Network;
use crate::stages::augment::{AugmentOutcome, augment_stage};
use crate::stages::infer::infer;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{FsStore, ObjectStore, PutOutcome};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// The sample referendum, in Subsquare's detail-response shape (our own text, not a real one).
pub const SAMPLE_REFERENDUM: &[u8] = include_bytes!("demo/sample-referendum.json");
/// The sample's network and index.
pub const SAMPLE: (Network, u32) = (Network::Polkadot, 4242);

/// Runs the demo in `dir`. `config` supplies only the juror and augmentation settings (so a
/// configured model cache, device or token budget applies); the store is always the demo's own.
pub async fn run(dir: &Path, base: &Config) -> anyhow::Result<ExitCode> {
    let mut config = Config {
        magi: base.magi.clone(),
        augment: base.augment.clone(),
        ..Config::default()
    };
    config.store.backend = StoreBackend::Fs;
    config.store.path = dir.join("store");
    let store = FsStore::new(&config.store.path).context("opening the demo store")?;
    let (network, id) = SAMPLE;
    let run = ReferendumLayout::new(network, id).run(1);

    println!("cybergov demo: {network} referendum #{id} (bundled sample), offline");
    println!("store: {}", store.location());

    // scrape: offline, the bundled sample stands in for Subsquare's response.
    let key = run.key(&Artefact::RawSubsquare);
    let note = match store.put(&key, SAMPLE_REFERENDUM).await? {
        PutOutcome::Created => "written",
        PutOutcome::AlreadyPresent => "already present",
    };
    println!("  scrape   done     {key} ({note}; bundled sample instead of Subsquare)");

    println!("  jurors   loading  the default models (fetched and checked on first use)");
    let jury = Jury::from_config(&config.magi, &Secrets::default(), true)
        .context("assembling the jury")?;
    let analyst = jury.members[0].1.clone();

    let outcome = augment_stage(&store, &config, analyst.as_ref(), network, id, 1)
        .await
        .context("augment stage")?;
    let note = match outcome {
        AugmentOutcome::AlreadyDone => "already done".to_owned(),
        AugmentOutcome::Written { forced_abstain } => {
            format!(
                "written{}",
                if forced_abstain {
                    "; policy forces ABSTAIN"
                } else {
                    ""
                }
            )
        }
    };
    println!(
        "  augment  done     {} ({note})",
        run.key(&Artefact::Content)
    );

    let inferred = infer(&store, &config, &jury, network, id, Some(1))
        .await
        .context("infer stage")?;
    for m in &inferred.manifest.models {
        let rec = store
            .get(&run.key(&Artefact::Juror(m.juror.clone())))
            .await?;
        let rec: crate::magi::juror::JurorRecord = serde_json::from_slice(&rec)?;
        println!("  infer    {:<9} votes {:?}", m.juror, rec.vote);
    }
    let d = &inferred.manifest.decision;
    println!(
        "  tally    decision {:?}, conviction {}, balance {}",
        d.vote,
        d.conviction,
        config
            .network(network)
            .format_amount(d.balance.parse().unwrap_or(0))
    );
    println!("  manifest sha256 {}", inferred.manifest_sha256);
    println!("  vote     pending  lands with issue #5 (the remark would carry the hash above)");
    println!(
        "  comment  pending  needs the vote's extrinsic (issue #5); `cybergov comment` posts it"
    );

    let report = verify_run(&store, network, id, Some(1)).await;
    println!("verification of the stored run:");
    for line in report.to_string().lines() {
        println!("  {line}");
    }
    println!("everything is under {}", store.location());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
