//! Verifying a run against a store: does every byte still match what was voted with?
//!
//! The checks mirror `scripts/verify.sh` so that the Rust verifier and the shell one agree; each
//! check has a stable name, and a failure names what failed (which artefact, which hash).

use super::Manifest;
use crate::hash::Sha256Hash;
use crate::network::Network;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectKey, ObjectStore, StoreError};
use std::fmt;

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable name, e.g. `artefact content.md`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// Everything [`verify_run`] found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The run examined (if it could be determined).
    pub run: Option<u32>,
    /// SHA-256 of the stored manifest bytes (if they could be read).
    pub manifest_sha256: Option<Sha256Hash>,
    /// The parsed manifest (if it parsed).
    pub manifest: Option<Manifest>,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            passed: true,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            passed: false,
            detail: detail.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let tag = if c.passed { "PASS" } else { "FAIL" };
            writeln!(f, "{tag} {}: {}", c.name, c.detail)?;
        }
        write!(f, "{}", if self.passed() { "PASS" } else { "FAIL" })
    }
}

/// Verifies run `run` (or the one `latest.json` names) of a referendum against `store`:
/// manifest hash, canonical form, location, every listed artefact's length and hash, and the
/// hash chain to the previous run's manifest.
pub async fn verify_run(
    store: &dyn ObjectStore,
    network: Network,
    referendum: u32,
    run: Option<u32>,
) -> Report {
    let layout = ReferendumLayout::new(network, referendum);
    let mut report = Report {
        run,
        manifest_sha256: None,
        manifest: None,
        checks: Vec::new(),
    };

    let latest = match layout.read_latest(store).await {
        Ok(l) => l,
        Err(e) => {
            report.fail("latest.json", e.to_string());
            None
        }
    };
    let expected = match (run, &latest) {
        (None, None) => {
            report.fail(
                "latest.json",
                format!("{} is missing: no run to verify", layout.latest()),
            );
            return report;
        }
        (None, Some(l)) => Some(l.manifest_sha256),
        (Some(r), Some(l)) if l.run == r => Some(l.manifest_sha256),
        (Some(_), _) => None,
    };
    let run = run
        .or(latest.as_ref().map(|l| l.run))
        .expect("one of them is set");
    report.run = Some(run);
    let run_layout = layout.run(run);

    let key = run_layout.key(&Artefact::Manifest);
    let bytes = match store.get(&key).await {
        Ok(b) => b,
        Err(e) => {
            report.fail("manifest.json", missing_or_error(e));
            return report;
        }
    };
    let actual = Sha256Hash::of(&bytes);
    report.manifest_sha256 = Some(actual);
    match expected {
        Some(want) if want == actual => {
            report.pass("manifest hash", format!("{actual} matches latest.json"))
        }
        Some(want) => report.fail(
            "manifest hash",
            format!("manifest.json hashes to {actual}, latest.json records {want}"),
        ),
        None => report.pass(
            "manifest hash",
            format!("{actual} (run {run} is not the latest; compare with the chain)"),
        ),
    }

    let manifest = match Manifest::from_canonical_bytes(&bytes) {
        Ok(m) => {
            report.pass("manifest format", "valid, canonical v1");
            m
        }
        Err(e) => {
            report.fail("manifest format", e.to_string());
            return report;
        }
    };

    if (manifest.network, manifest.referendum, manifest.run) == (network, referendum, run) {
        report.pass(
            "manifest location",
            format!("{network} #{referendum} run {run}"),
        );
    } else {
        report.fail(
            "manifest location",
            format!(
                "stored as {network} #{referendum} run {run} but describes {} #{} run {}",
                manifest.network, manifest.referendum, manifest.run
            ),
        );
    }

    // Paths were checked to lie inside this run's folder when the manifest was parsed.
    for a in manifest.artefacts() {
        let name = format!("artefact {}", a.name);
        let key = match ObjectKey::new(a.path.as_str()) {
            Ok(k) => k,
            Err(e) => {
                report.fail(name, e.to_string());
                continue;
            }
        };
        match store.get(&key).await {
            Err(e) => report.fail(name, missing_or_error(e)),
            Ok(b) => {
                let got = Sha256Hash::of(&b);
                if got == a.sha256 && b.len() as u64 == a.bytes {
                    report.pass(name, format!("{} bytes, sha256 {got}", b.len()));
                } else {
                    report.fail(
                        name,
                        format!(
                            "{} has {} bytes with sha256 {got}; the manifest lists {} bytes with sha256 {}",
                            a.path,
                            b.len(),
                            a.bytes,
                            a.sha256
                        ),
                    );
                }
            }
        }
    }

    match super::previous_manifest(store, layout, run).await {
        Err(e) => report.fail("previous manifest", e.to_string()),
        Ok(prev) if prev.map(|(_, h)| h) == manifest.previous => {
            if let Some((r, h)) = prev {
                report.pass("previous manifest", format!("run {r} hashes to {h}"));
            }
        }
        Ok(prev) => report.fail(
            "previous manifest",
            format!(
                "the nearest earlier manifest is {}, this manifest records {}",
                prev.map_or("none".into(), |(r, h)| format!("run {r} with sha256 {h}")),
                manifest.previous.map_or("none".into(), |h| h.to_hex())
            ),
        ),
    }

    report.manifest = Some(manifest);
    report
}

fn missing_or_error(e: StoreError) -> String {
    match e {
        StoreError::NotFound(k) => format!("{k} is missing"),
        other => other.to_string(),
    }
}
