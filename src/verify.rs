//! Public verification of a run: what `scripts/verify.sh` checks, in Rust, plus re-execution.
//!
//! 1. The artefacts: [`crate::manifest::verify::verify_run`] over any store — the configured
//!    one, or the public base URL through [`http::HttpStore`] (read-only).
//! 2. Their consistency ([`consistency`]): each juror's vote follows from its scores, the tally
//!    from the jurors, the decision from the tally, the comment states the decision.
//! 3. The chain ([`chain`]), found without the store: the voting account's standing vote on the
//!    referendum, and an extrinsic in a bounded block range that carries this manifest's remark
//!    and cast that vote. `receipt.json` is at most a hint of where to look first.
//! 4. Optionally, re-execution ([`reexecute`]): fetch the models the manifest names (pinned
//!    hashes), re-run the jurors on the stored inputs with the recorded decoding parameters,
//!    and compare the juror files and vote.json byte for byte.
//!
//! The verdict is PASS, NOT VOTED (consistent, but nothing on chain) or FAIL. Check names are
//! stable and shared with `scripts/verify.sh`: `latest.json`, `manifest hash`,
//! `manifest format`, `manifest location`, `artefact <name>`, `previous manifest`, `jury`,
//! `juror <name> vote`, `tally`, `forced abstain`, `decision`, `comment` ([`consistency`]),
//! `vote on chain`, `remark on chain` ([`chain`]), `model <juror>`, `reexecute <name>`.

pub mod chain;
pub mod consistency;
pub mod http;
pub mod reexecute;

use crate::magi::settings::MagiConfig;
use crate::manifest::verify::{Check, Report, verify_run};
use crate::network::Network;
use crate::records::receipt::Receipt;
use crate::store::ObjectStore;
use crate::store::layout::ReferendumLayout;
use chain::ChainLookup;
use std::fmt;

/// What to verify beyond the artefacts.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// How to find the vote on chain (`None`: the chain cannot be reached, which fails the
    /// run: a verifier that cannot look is not a verifier).
    pub chain: Option<ChainLookup<'a>>,
    /// Why the chain cannot be reached, when `chain` is `None`.
    pub chain_unavailable: Option<String>,
    /// Re-execute the jurors with these settings (models cache, device, prompts, tokenizers).
    pub reexecute: Option<MagiConfig>,
}

/// The three outcomes, named in the output and in the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Artefacts, consistency and chain all agree.
    Pass,
    /// The artefacts agree, and the chain holds no vote of the account on the referendum and
    /// no remark of this manifest: the run was not voted (a dry run, or not yet).
    NotVoted,
    /// Something contradicts.
    Fail,
}

impl Verdict {
    /// `PASS`, `NOT VOTED` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::NotVoted => "NOT VOTED",
            Verdict::Fail => "FAIL",
        }
    }
}

/// The outcome: the checks, plus notes on what was not checked and why.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Every check that passed or failed.
    pub report: Report,
    /// The chain checks, when the chain holds no trace of the run.
    pub not_voted: Vec<Check>,
    /// Remarks for the reader.
    pub notes: Vec<String>,
}

impl Verification {
    /// The verdict: FAIL on any failed check, else NOT VOTED when the chain has no trace.
    pub fn verdict(&self) -> Verdict {
        if !self.report.passed() {
            Verdict::Fail
        } else if !self.not_voted.is_empty() {
            Verdict::NotVoted
        } else {
            Verdict::Pass
        }
    }

    /// True when the verdict is PASS.
    pub fn passed(&self) -> bool {
        self.verdict() == Verdict::Pass
    }

    /// The names of every check made, in order (the shell verifier lists the same).
    pub fn check_names(&self) -> Vec<String> {
        self.report
            .checks
            .iter()
            .chain(&self.not_voted)
            .map(|c| c.name.clone())
            .collect()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "NOTE {n}")?;
        }
        for c in &self.report.checks {
            let tag = if c.passed { "PASS" } else { "FAIL" };
            writeln!(f, "{tag} {}: {}", c.name, c.detail)?;
        }
        for c in &self.not_voted {
            writeln!(f, "NOT VOTED {}: {}", c.name, c.detail)?;
        }
        write!(f, "{}", self.verdict().label())
    }
}

/// Where the jurors ran, so that a reader can check there was one public run per manifest: a
/// second workflow run, or a re-run attempt, for the same referendum and run is how re-rolled
/// votes show.
fn runner_note(manifest: &crate::manifest::Manifest) -> String {
    let p = &manifest.provenance;
    match (p.runner.as_str(), &p.runner_run_id) {
        ("github-actions", Some(id)) => {
            let attempt = p.runner_attempt.unwrap_or(1);
            let rerun = if attempt > 1 {
                " — the workflow was re-run"
            } else {
                ""
            };
            format!(
                "inference ran in GitHub Actions run {}/actions/runs/{id}, attempt {attempt}{rerun}; it should be the only run named for {} #{} run {}",
                p.repository.trim_end_matches('/'),
                manifest.network,
                manifest.referendum,
                manifest.run
            )
        }
        (runner, _) => format!(
            "inference ran on the {runner} runner, which leaves no public record: only --reexecute can check the jurors"
        ),
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
/// `store`: artefacts, their consistency, then the chain, then (if asked) re-execution.
pub async fn verify(
    store: &dyn ObjectStore,
    network: Network,
    referendum: u32,
    run: Option<u32>,
    options: VerifyOptions<'_>,
) -> Verification {
    let report = verify_run(store, network, referendum, run).await;
    let mut outcome = Verification {
        report,
        not_voted: Vec::new(),
        notes: Vec::new(),
    };
    let report = &mut outcome.report;
    let (Some(run), Some(hash), Some(manifest)) =
        (report.run, report.manifest_sha256, report.manifest.clone())
    else {
        return outcome;
    };
    report
        .checks
        .extend(consistency::check_consistency(store, &manifest, hash).await);
    outcome.notes.push(runner_note(&manifest));

    match options.chain {
        Some(mut lookup) => {
            // receipt.json is the operator's word; it may only say where to look first.
            let run_layout = ReferendumLayout::new(network, referendum).run(run);
            if let Ok(Some(receipt)) = Receipt::read(store, &run_layout).await {
                lookup.hint_block = Some(receipt.block_number);
            }
            let found = chain::check_chain(&lookup, &manifest, hash).await;
            outcome.report.checks.extend(found.checks);
            outcome.not_voted = found.not_voted;
        }
        None => {
            let why = options
                .chain_unavailable
                .unwrap_or_else(|| "no chain endpoint given".into());
            for name in ["vote on chain", "remark on chain"] {
                outcome.report.checks.push(check(false, name, why.clone()));
            }
        }
    }

    if let Some(magi) = &options.reexecute {
        let checks = reexecute::reexecute(store, &manifest, magi).await;
        outcome.report.checks.extend(checks);
    }
    outcome
}
