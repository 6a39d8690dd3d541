//! A benchmark's peer: a Python script of ours (`scripts/bench-*.py`) that runs the other
//! system's side of the measurement in its own process and prints one JSON line. Shared by the
//! benchmarks (`#[path]`-included: a file here is not a bench target of its own).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// How a benchmark was asked to treat its peer: its command-line options (`#[command(flatten)]`).
#[derive(Clone, Debug, clap::Args)]
pub struct PeerArgs {
    /// Require the peer (fail if it cannot run).
    #[arg(long, conflicts_with = "no_peer")]
    pub peer: bool,
    /// Skip the peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Python interpreter that has the peer installed.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// What the peer needs: a Python module, and how to get it.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a> {
    /// Its name, for people ("llama.cpp").
    pub name: &'a str,
    /// The script, under `scripts/`.
    pub script: &'a str,
    /// The module whose import shows the peer is installed.
    pub module: &'a str,
    /// The command that installs it.
    pub install: &'a str,
}

impl Peer<'_> {
    /// Whether the peer runs this time, saying so when it does not; an error when it is
    /// required (`--peer`) and the interpreter cannot import its module.
    pub fn decide(&self, choice: &PeerArgs) -> Result<bool> {
        let python = &choice.python;
        if choice.no_peer {
            println!("{} peer: skipped (--no-peer)", self.name);
            return Ok(false);
        }
        let available = Command::new(python)
            .args(["-c", &format!("import {}", self.module)])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if available {
            return Ok(true);
        }
        let why = format!(
            "`{python} -c \"import {}\"` fails; `{}` installs it",
            self.module, self.install
        );
        if choice.peer {
            bail!("--peer: {why}");
        }
        println!(
            "{} peer: NOT AVAILABLE ({why}). Only cybergov's numbers follow.",
            self.name
        );
        Ok(false)
    }

    /// Runs the script with `python` and `args`, and decodes the last line of its output that
    /// is a JSON object.
    pub fn run<T: serde::de::DeserializeOwned>(&self, python: &str, args: &[String]) -> Result<T> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(self.script);
        let out = Command::new(python)
            .arg(&script)
            .args(args)
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("{} printed no JSON", self.name))?;
        serde_json::from_str(line).with_context(|| format!("{} JSON: {line}", self.name))
    }
}
