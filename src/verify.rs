//! Public verification of a run: what `scripts/verify.sh` checks, in Rust, plus re-execution.
//!
//! 1. The artefacts: [`crate::manifest::verify::verify_run`] over any store — the configured
//!    one, or the public base URL through [`http::HttpStore`] (read-only).
//! 2. The chain ([`chain`]): the extrinsic named in `receipt.json`, read through Substrate API
//!    Sidecar's `GET /blocks/{n}`, must be a successful `Utility.batch_all` whose remark carries
//!    this manifest's hash and whose vote equals `vote.json`.
//! 3. Optionally, re-execution ([`reexecute`]): fetch the models the manifest names (pinned
//!    hashes), re-run the jurors on the stored inputs with the recorded decoding parameters,
//!    and compare the juror files and vote.json byte for byte.
//!
//! Check names are stable and shared with `scripts/verify.sh`: `latest.json`, `manifest hash`,
//! `manifest format`, `manifest location`, `artefact <name>`, `previous manifest`,
//! `juror <name> vote`, `tally`, `decision`, `comment` ([`consistency`]), `receipt`,
//! `extrinsic`, `remark`, `vote on chain`, `model <juror>`, `reexecute <name>`.

pub mod chain;
pub mod consistency;
pub mod http;
pub mod reexecute;

use crate::magi::settings::MagiConfig;
use crate::manifest::verify::{Check, Report, verify_run};
use crate::network::Network;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectStore, StoreError};
use std::fmt;

/// What to verify beyond the artefacts.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Sidecar base URL for the chain check (`None`: the chain cannot be checked, which fails
    /// a voted run).
    pub sidecar_url: Option<String>,
    /// Re-execute the jurors with these settings (models cache, device, prompts, tokenizers).
    pub reexecute: Option<MagiConfig>,
}

/// The outcome: the checks, plus notes on what was not checked and why.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Every check.
    pub report: Report,
    /// What was not checked, e.g. the chain of a run not voted yet.
    pub notes: Vec<String>,
}

impl Verification {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "NOTE {n}")?;
        }
        write!(f, "{}", self.report)
    }
}

pub(crate) fn check(passed: bool, name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        passed,
        detail: detail.into(),
    }
}

/// Verifies run `run` (default: the one latest.json names) of `network` #`referendum` in
/// `store`: artefacts, then the chain, then (if asked) re-execution.
pub async fn verify(
    store: &dyn ObjectStore,
    network: Network,
    referendum: u32,
    run: Option<u32>,
    options: &VerifyOptions,
) -> Verification {
    let mut report = verify_run(store, network, referendum, run).await;
    let mut notes = Vec::new();
    let (Some(run), Some(hash), Some(manifest)) =
        (report.run, report.manifest_sha256, report.manifest.clone())
    else {
        return Verification { report, notes };
    };
    let run_layout = ReferendumLayout::new(network, referendum).run(run);
    report
        .checks
        .extend(consistency::check_consistency(store, &manifest, hash).await);

    match store.get(&run_layout.key(&Artefact::Receipt)).await {
        Err(StoreError::NotFound(k)) => notes.push(format!(
            "{k} is missing: run {run} has not been voted, so the chain was not checked"
        )),
        Err(e) => report.checks.push(check(false, "receipt", e.to_string())),
        Ok(receipt_bytes) => {
            let vote_bytes = store.get(&run_layout.key(&Artefact::Vote)).await;
            let expected = chain::Expected {
                network,
                referendum,
                run,
                manifest_sha256: hash,
            };
            let checks = chain::check_chain(
                options.sidecar_url.as_deref(),
                &expected,
                &receipt_bytes,
                vote_bytes.as_deref().map_err(|e| e.to_string()),
            )
            .await;
            report.checks.extend(checks);
        }
    }

    if let Some(magi) = &options.reexecute {
        let checks = reexecute::reexecute(store, &manifest, magi).await;
        report.checks.extend(checks);
    }
    Verification { report, notes }
}
