//! `cybergov status`'s rendering: each run's stages, states, attempts, errors and artefact
//! links. A pure function of the rows, so its output is snapshot-tested.

use super::ledger::{RunRow, StageRow};
use crate::network::Network;
use crate::store::layout::ReferendumLayout;
use std::fmt::Write;

/// One referendum's record, to render.
#[derive(Debug, Clone)]
pub struct ReferendumStatus<'a> {
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// Its runs in the ledger.
    pub runs: Vec<&'a RunRow>,
    /// Their stages.
    pub stages: Vec<&'a StageRow>,
    /// Runs found in the store only (made outside the job graph), with their files.
    pub store_only: Vec<(u32, Vec<String>)>,
    /// The run `latest.json` points at.
    pub latest: Option<u32>,
}

pub(crate) fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Renders `r`. Artefacts link to `public_base_url` when it is set, else they are store keys
/// under `location`.
pub fn render(r: &ReferendumStatus<'_>, public_base_url: Option<&str>, location: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} #{}", r.network, r.referendum);
    let layout = ReferendumLayout::new(r.network, r.referendum);
    let latest_mark = |run: u32| {
        if r.latest == Some(run) {
            " (latest)"
        } else {
            ""
        }
    };
    for run in &r.runs {
        let n = u32::try_from(run.run).unwrap_or(0);
        let mut head = format!("  run {n}{}: {}", latest_mark(n), run.state);
        if let Some(prev) = run.previous_run {
            let _ = write!(head, ", rerun of run {prev}");
        }
        if let Some(from) = &run.from_stage {
            let _ = write!(head, " from {from}");
        }
        let _ = write!(head, ", created {}", utc(run.created_at));
        if let Some(f) = run.finished_at {
            let _ = write!(head, ", finished {}", utc(f));
        }
        let _ = writeln!(out, "{head}");
        let prefix = layout.run(n).prefix();
        for s in r.stages.iter().filter(|s| s.run == run.run) {
            let mut line = format!("    {:<9} {:<10} attempts {}", s.stage, s.state, s.attempts);
            match s.state.as_str() {
                "scheduled" | "retrying" => {
                    let _ = write!(line, ", due {}", utc(s.due_at));
                }
                "running" => {
                    if let Some(owner) = &s.lease_owner {
                        let _ = write!(line, ", on {owner}");
                    }
                }
                _ => {
                    if let Some(f) = s.finished_at {
                        let _ = write!(line, ", at {}", utc(f));
                    }
                }
            }
            if let Some(note) = &s.note {
                let _ = write!(line, " — {note}");
            }
            let _ = writeln!(out, "{line}");
            if let Some(e) = &s.error {
                let _ = writeln!(out, "      error: {e}");
            }
            for (name, hash) in s.recorded_outputs() {
                let key = format!("{prefix}{name}");
                let link = match public_base_url {
                    Some(base) => crate::store::public_url(base, &key),
                    None => key,
                };
                let _ = writeln!(
                    out,
                    "      {link}  sha256 {}",
                    hash.get(..16).unwrap_or(&hash)
                );
            }
        }
    }
    for (n, files) in &r.store_only {
        let _ = writeln!(
            out,
            "  run {n}{} (not in the ledger): {}",
            latest_mark(*n),
            files.join(", ")
        );
    }
    if r.runs.is_empty() && r.store_only.is_empty() {
        let _ = writeln!(out, "  no runs");
    }
    if public_base_url.is_none() && !r.runs.is_empty() {
        let _ = writeln!(out, "  (artefact keys are in the store at {location})");
    }
    out
}
