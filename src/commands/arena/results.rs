//! `cybergov arena leaderboard`, `publish` and `verify`: the ratings from the ledger's battles,
//! published as artefacts with a manifest, and rechecked from the store
//! (`arena::publish` says why it is built so).

use crate::arena::publish::{
    ArenaManifest, BattlesRecord, MANIFEST_SCHEMA, PublishError, check, decisions, latest, publish,
    ratings,
};
use crate::config::Config;
use crate::hash::Sha256Hash;
use crate::secret::Secrets;
use crate::store::layout::ArenaLayout;
use anyhow::Context;
use std::process::ExitCode;

async fn battles_record(config: &Config, secrets: &Secrets) -> anyhow::Result<BattlesRecord> {
    let ledger = crate::wiring::open_ledger(config, secrets).await?;
    Ok(BattlesRecord::load(&ledger).await?)
}

/// `arena leaderboard`.
pub async fn leaderboard(config: &Config, secrets: &Secrets) -> anyhow::Result<ExitCode> {
    let record = battles_record(config, secrets).await?;
    if record.battles.is_empty() {
        println!("(no battles yet: `cybergov arena prepare` starts a review session)");
        return Ok(ExitCode::SUCCESS);
    }
    let r = ratings(&record.battles(), &config.arena);
    println!(
        "{} battles; online Elo K {}, bootstrap of {} rounds (seed {}), Bradley–Terry",
        r.battles, r.k, r.rounds, r.seed
    );
    println!(
        "{:>4}  {:<40} {:>7} {:>8} {:>8} {:>19} {:>8}",
        "rank", "model", "battles", "elo", "median", "95 % interval", "bt"
    );
    for (i, m) in r.models.iter().enumerate() {
        println!(
            "{:>4}  {:<40} {:>7} {:>8.1} {:>8.1}   [{:>7.1}, {:>7.1}] {:>8.1}",
            i + 1,
            m.model,
            m.battles,
            m.elo,
            m.bootstrap.median,
            m.bootstrap.low,
            m.bootstrap.high,
            m.bradley_terry
        );
    }
    for d in decisions(&record, &config.arena).decisions {
        let impact = d
            .impact
            .as_ref()
            .map_or("impact: too few battles".into(), |i| {
                format!("impact {:+.1} [{:+.1}, {:+.1}]", i.median, i.low, i.high)
            });
        println!(
            "{} over {}: {} battles, {impact} — {}",
            d.candidate, d.incumbent, d.battles, d.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `arena publish`.
pub async fn publish_results(config: &Config, secrets: &Secrets) -> anyhow::Result<ExitCode> {
    let store = super::super::open_store(config, secrets)?;
    let record = battles_record(config, secrets).await?;
    anyhow::ensure!(
        !record.battles.is_empty(),
        "no battles to publish: `cybergov arena prepare` starts a review session"
    );
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match publish(store.as_ref(), &record, &config.arena, &now).await {
        Ok(p) => {
            println!(
                "arena publication {}: {} battles, manifest sha256 {}",
                p.publication, p.manifest.battles, p.manifest_sha256
            );
            for a in &p.manifest.artefacts {
                println!("  {}  {}", a.sha256, a.path);
            }
            println!(
                "check it: cybergov arena verify --publication {}   or   scripts/verify.sh --arena {} --base-url URL",
                p.publication, p.publication
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(PublishError::Unchanged(n)) => {
            println!("nothing new to publish: publication {n} already holds these battles");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e).context("publishing the arena's results"),
    }
}

/// `arena verify [--publication N]`: prints PASS or FAIL per check, then the verdict.
pub async fn verify(
    config: &Config,
    secrets: &Secrets,
    publication: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let store = super::super::open_store(config, secrets)?;
    let pointer = latest(store.as_ref()).await?;
    let Some(publication) = publication.or(pointer.as_ref().map(|p| p.publication)) else {
        anyhow::bail!("the store holds no arena publication (no arena/latest.json)");
    };
    let layout = ArenaLayout { publication };
    let mut failed = 0;
    let mut line = |name: &str, r: Result<String, String>| match r {
        Ok(detail) => println!("PASS {name}: {detail}"),
        Err(why) => {
            failed += 1;
            println!("FAIL {name}: {why}");
        }
    };
    let key = layout.key("manifest.json");
    let Some(bytes) = store.get_optional(&key).await? else {
        line("manifest.json", Err(format!("{key} is missing")));
        println!("FAIL");
        return Ok(ExitCode::FAILURE);
    };
    let hash = Sha256Hash::of(&bytes);
    line(
        "manifest hash",
        match &pointer {
            Some(p) if p.publication == publication && p.manifest_sha256 != hash => Err(format!(
                "manifest.json hashes to {hash}, arena/latest.json records {}",
                p.manifest_sha256
            )),
            Some(p) if p.publication == publication => {
                Ok(format!("{hash} matches arena/latest.json"))
            }
            _ => Ok(format!("{hash} (not the latest publication)")),
        },
    );
    let manifest: ArenaManifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            line("manifest format", Err(format!("{key}: {e}")));
            println!("FAIL");
            return Ok(ExitCode::FAILURE);
        }
    };
    let canonical = crate::manifest::canonical::to_vec(&manifest).ok();
    line(
        "manifest format",
        if manifest.schema == MANIFEST_SCHEMA && canonical.as_deref() == Some(bytes.as_slice()) {
            Ok(format!(
                "valid, canonical, publication {}",
                manifest.publication
            ))
        } else {
            Err(format!("not canonical {MANIFEST_SCHEMA} bytes"))
        },
    );
    let mut files = Vec::new();
    for (i, name) in crate::store::layout::ARENA_FILES.iter().enumerate() {
        let Some(a) = manifest.artefacts.get(i).filter(|a| a.name == *name) else {
            line(
                &format!("artefact {name}"),
                Err("not listed in the manifest".into()),
            );
            files.push(Vec::new());
            continue;
        };
        let got = store
            .get_optional(&layout.key(name))
            .await?
            .unwrap_or_default();
        let (h, n) = (Sha256Hash::of(&got), got.len() as u64);
        line(
            &format!("artefact {name}"),
            if a.path == layout.key(name).as_str() && h == a.sha256 && n == a.bytes {
                Ok(format!("{n} bytes, sha256 {h}"))
            } else {
                Err(format!(
                    "{} has {n} bytes with sha256 {h}; the manifest lists {} bytes with sha256 {}",
                    a.path, a.bytes, a.sha256
                ))
            },
        );
        files.push(got);
    }
    for (name, r) in check(&files[0], &files[1], &files[2]) {
        line(&name, r);
    }
    if failed > 0 {
        println!("FAIL ({failed} failed)");
        Ok(ExitCode::FAILURE)
    } else {
        println!("PASS");
        Ok(ExitCode::SUCCESS)
    }
}
