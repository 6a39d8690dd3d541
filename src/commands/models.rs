//! `cybergov models`: the named juror models and their cache.

use crate::cli::ModelsAction;
use crate::config::Config;
use crate::magi::candle::speed::ModelSpeed;
use crate::magi::models::{NAMED, default_models_dir, named, resolve};
use crate::magi::settings::Backend;
use anyhow::Context;
use std::process::ExitCode;

/// Lists or fetches models.
pub fn run(config: &Config, action: ModelsAction) -> anyhow::Result<ExitCode> {
    let dir = config
        .magi
        .models_dir
        .clone()
        .unwrap_or_else(default_models_dir);
    match action {
        ModelsAction::List => {
            println!("cache: {}", dir.display());
            for m in NAMED {
                let q = m
                    .requantize
                    .map_or(String::new(), |q| format!(", requantized to {q:?}"));
                let packages: Vec<&str> = m.parts.iter().map(|(p, _)| *p).collect();
                println!(
                    "{:<28} {} {} ({} bytes, sha256 {}{q})",
                    m.name,
                    packages.join(" + "),
                    m.version,
                    m.bytes,
                    m.sha256
                );
            }
            // What the configured jurors would need, for the models already here, and how fast
            // each last ran on this machine.
            println!("jurors:");
            let mut hashes = std::collections::HashMap::new();
            for (juror, j) in &config.magi.jurors {
                let shown = match (j.backend, crate::magi::models::cached(&j.model, &dir)) {
                    (Backend::Candle, Some(path)) => {
                        let speed = match hashes.get(&path) {
                            Some(sha) => Ok(*sha),
                            None => crate::magi::models::sha256(&path),
                        }
                        .map(|sha| {
                            hashes.insert(path.clone(), sha);
                            ModelSpeed::read(&dir, &sha)
                                .map_or("not run here yet".into(), |s| s.summary())
                        })
                        .unwrap_or_else(|e| format!("unreadable: {e}"));
                        match crate::magi::candle::footprint::footprint(&path) {
                            Ok(f) => format!(
                                "{} {}, {:.0} M parameters, file {} MiB, {} MiB loaded; {speed}",
                                f.arch,
                                f.quantization.unwrap_or_default(),
                                f.parameters as f64 / 1e6,
                                f.file_bytes >> 20,
                                f.memory_bytes >> 20
                            ),
                            Err(e) => format!("unreadable: {e}"),
                        }
                    }
                    (Backend::Candle, None) => "not fetched yet (cybergov models fetch)".into(),
                    (Backend::OpenAi, _) => "served by an OpenAI-compatible endpoint".into(),
                };
                println!("  {juror:<10} {:<28} {shown}", j.model);
            }
            if let Some(a) = crate::magi::candle::footprint::available_memory() {
                println!("memory available: {} MiB", a >> 20);
            }
        }
        ModelsAction::Fetch { name } => {
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => config
                    .magi
                    .jurors
                    .values()
                    .filter(|j| {
                        j.backend == Backend::Candle
                            && (named(&j.model).is_some()
                                || j.model.starts_with(crate::magi::models::hub::PREFIX))
                    })
                    .map(|j| j.model.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            for n in names {
                let (path, _) = resolve(&n, &dir, super::progress::bars().as_ref())
                    .with_context(|| format!("fetching {n}"))?;
                let sha = crate::magi::models::sha256(&path)?;
                println!("{n}: {} (sha256 {sha})", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
