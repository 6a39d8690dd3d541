//! Re-execution: run the jurors again on the stored inputs and compare byte for byte.
//!
//! The models are found by the SHA-256 the manifest records: a named model whose pinned hash
//! it is (fetched and checked by [`crate::magi::models::ensure`]), else a configured juror's
//! `.gguf` file with that hash. Nothing else is loaded: a file with another hash is refused.
//! Each juror runs with the decoding parameters recorded for it, after checking that this
//! binary's prompts give the recorded prompt hash (otherwise the difference would be the
//! prompts, not the model). vote.json is re-tallied from the re-executed votes with the rule,
//! conviction, balance and forced abstain that vote.json records.

use super::check;
use crate::hash::Sha256Hash;
use crate::magi::candle::{CandleModel, LoadOptions};
use crate::magi::juror::{deliberate, rationale_messages};
use crate::magi::model::LanguageModel;
use crate::magi::models;
use crate::magi::prompts::Prompts;
use crate::magi::settings::{Backend, MagiConfig};
use crate::magi::tally::TallyConfig;
use crate::magi::tally::{JurorVote, TallyRule, VoteRecord, tally};
use crate::manifest::verify::Check;
use crate::manifest::{Manifest, ModelRecord};
use crate::records::juror::JurorRecord;
use crate::store::layout::Artefact;
use crate::store::{ObjectKey, ObjectStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Finds the model file whose SHA-256 is `want`: a named model pinned to it, else a
/// configured `.gguf` path with that hash.
pub fn find_model(want: &Sha256Hash, magi: &MagiConfig) -> Result<PathBuf, String> {
    let dir = magi
        .models_dir
        .clone()
        .unwrap_or_else(models::default_models_dir);
    let hex = want.to_hex();
    for m in &models::NAMED {
        let pin = match m.requantize {
            Some(_) => m.requantized_sha256,
            None => Some(m.sha256),
        };
        if pin == Some(hex.as_str()) {
            return models::ensure(m, &dir, &crate::progress::Quiet).map_err(|e| e.to_string());
        }
    }
    for j in magi.jurors.values() {
        if j.backend != Backend::Candle || models::named(&j.model).is_some() {
            continue;
        }
        let p = Path::new(&j.model);
        if p.is_file() && models::sha256(p).map_err(|e| e.to_string())? == *want {
            return Ok(p.to_owned());
        }
    }
    Err(format!(
        "no named model is pinned to sha256 {want} and no configured juror model file has it"
    ))
}

fn juror_name(juror: &str) -> String {
    Artefact::Juror(juror.to_owned()).file_name()
}

/// Where two byte strings first differ, for people.
fn difference(stored: &[u8], again: &[u8]) -> String {
    let at = stored
        .iter()
        .zip(again)
        .position(|(a, b)| a != b)
        .unwrap_or(stored.len().min(again.len()));
    format!(
        "re-executed bytes differ from the stored file at byte {at} (stored {} bytes, re-executed {} bytes)",
        stored.len(),
        again.len()
    )
}

async fn stored(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    name: &str,
) -> Result<Vec<u8>, String> {
    let a = manifest
        .artefacts()
        .find(|a| a.name == name)
        .ok_or_else(|| format!("the manifest lists no {name}"))?;
    let key = ObjectKey::new(a.path.as_str()).map_err(|e| e.to_string())?;
    store.get(&key).await.map_err(|e| e.to_string())
}

async fn run_juror(
    record: &ModelRecord,
    magi: &MagiConfig,
    prompts: &Prompts,
    content: &str,
    loaded: &mut HashMap<(PathBuf, Option<PathBuf>), Arc<CandleModel>>,
) -> Result<JurorRecord, (&'static str, String)> {
    if record.backend != "candle" || !record.deterministic {
        return Err((
            "model",
            format!(
                "backend {} (deterministic: {}) cannot be re-executed byte for byte",
                record.backend, record.deterministic
            ),
        ));
    }
    let want = record.file_sha256.ok_or((
        "model",
        "the manifest records no model file hash".to_owned(),
    ))?;
    let path = find_model(&want, magi).map_err(|e| ("model", e))?;
    let tokenizer = magi
        .jurors
        .get(&record.juror)
        .and_then(|j| j.tokenizer.clone());
    let key = (path.clone(), tokenizer.clone());
    let model = match loaded.get(&key) {
        Some(m) => m.clone(),
        None => {
            let opts = LoadOptions {
                model_id: Some(record.model_id.clone()),
                tokenizer_json: tokenizer,
                device: magi.device,
                progress: crate::progress::quiet(),
                threads: None,
                // A verifier checks; it records nothing in the operator's cache.
                speed_dir: None,
            };
            let m =
                Arc::new(CandleModel::load(&path, &opts).map_err(|e| ("model", e.to_string()))?);
            loaded.insert(key, m.clone());
            m
        }
    };
    // `load` hashes the file it read: the model that runs is the one the manifest names.
    if model.info().file_sha256 != Some(want) {
        return Err((
            "model",
            format!(
                "{} hashes to {:?}, the manifest records {want}; refusing to use it",
                path.display(),
                model.info().file_sha256
            ),
        ));
    }
    let messages = rationale_messages(prompts, &record.juror, content);
    let prompt_sha256 = Sha256Hash::of(
        &crate::manifest::canonical::to_vec(&messages).map_err(|e| ("reexecute", e.to_string()))?,
    );
    if prompt_sha256 != record.prompt_sha256 {
        return Err((
            "reexecute",
            format!(
                "this binary's prompts give prompt sha256 {prompt_sha256}, the run used {}; re-execute with cybergov built from the manifest's commit",
                record.prompt_sha256
            ),
        ));
    }
    deliberate(
        &record.juror,
        model.as_ref(),
        prompts,
        content,
        &record.decoding,
    )
    .await
    .map_err(|e| ("reexecute", e.to_string()))
}

/// When the stored record was computed by another engine than this binary's, says so: the
/// bytes then differ because the arithmetic does, not because the record was altered.
fn engine_note(stored: &[u8], again: &JurorRecord) -> Option<String> {
    let before: JurorRecord = serde_json::from_slice(stored).ok()?;
    let (was, now) = (before.model.engine.as_ref(), again.model.engine.as_ref()?);
    match was {
        Some(was) if was.kernel == now.kernel => None,
        Some(was) => Some(format!(
            "the record was computed by {was}, this binary is {now}: re-run with cybergov {}",
            was.version
        )),
        None => Some(format!(
            "the record names no engine (made before cybergov recorded one), this binary is {now}: re-run with the cybergov built from the manifest's commit"
        )),
    }
}

/// Re-runs every juror of `manifest` on the inputs in `store` and compares the outputs.
pub async fn reexecute(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    magi: &MagiConfig,
) -> Vec<Check> {
    let mut out = Vec::new();
    let content = match stored(store, manifest, &Artefact::Content.file_name()).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            out.push(check(false, "reexecute", e));
            return out;
        }
    };
    let prompts = match &magi.prompts_dir {
        Some(dir) => match Prompts::from_dir(dir) {
            Ok(p) => p,
            Err(e) => {
                out.push(check(false, "reexecute", e.to_string()));
                return out;
            }
        },
        None => Prompts::embedded(),
    };
    let mut loaded = HashMap::new();
    let mut votes = Vec::new();
    for record in &manifest.models {
        let name = juror_name(&record.juror);
        let again = match run_juror(record, magi, &prompts, &content, &mut loaded).await {
            Ok(r) => r,
            Err(("model", e)) => {
                out.push(check(false, format!("model {}", record.juror), e));
                continue;
            }
            Err((_, e)) => {
                out.push(check(false, format!("reexecute {name}"), e));
                continue;
            }
        };
        out.push(check(
            true,
            format!("model {}", record.juror),
            format!(
                "{} with sha256 {}",
                record.model_id,
                record.file_sha256.map(|h| h.to_hex()).unwrap_or_default()
            ),
        ));
        votes.push(JurorVote {
            juror: record.juror.clone(),
            vote: again.vote,
        });
        let bytes = again.to_bytes();
        out.push(match stored(store, manifest, &name).await {
            Ok(s) if s == bytes => check(
                true,
                format!("reexecute {name}"),
                format!("{} bytes identical, vote {:?}", bytes.len(), again.vote),
            ),
            Ok(s) => check(
                false,
                format!("reexecute {name}"),
                engine_note(&s, &again).unwrap_or_else(|| difference(&s, &bytes)),
            ),
            Err(e) => check(false, format!("reexecute {name}"), e),
        });
    }
    if votes.len() != manifest.models.len() {
        out.push(check(
            false,
            "reexecute vote.json",
            "not every juror could be re-executed",
        ));
        return out;
    }
    out.push(retally(store, manifest, votes).await);
    out
}

/// Re-derives vote.json from re-executed votes and compares it with the stored one.
async fn retally(store: &dyn ObjectStore, manifest: &Manifest, votes: Vec<JurorVote>) -> Check {
    let name = format!("reexecute {}", Artefact::Vote.file_name());
    let stored_bytes = match stored(store, manifest, &Artefact::Vote.file_name()).await {
        Ok(b) => b,
        Err(e) => return check(false, name, e),
    };
    let recorded: VoteRecord = match serde_json::from_slice(&stored_bytes) {
        Ok(r) => r,
        Err(e) => return check(false, name, format!("vote.json is not a vote record: {e}")),
    };
    let rules = [
        TallyRule::MajorityWithoutOpposition,
        TallyRule::SimpleMajority,
        TallyRule::Unanimous,
    ];
    let Some(rule) = rules.into_iter().find(|r| r.id() == recorded.rule) else {
        return check(
            false,
            name,
            format!("unknown tally rule {:?}", recorded.rule),
        );
    };
    // Conviction and balance are configuration, not computation: take them as recorded (the
    // chain check compares them with the vote actually cast).
    let config = TallyConfig {
        rule,
        conviction_unanimous: recorded.conviction,
        conviction_majority: recorded.conviction,
        balance: [(manifest.network, recorded.balance.clone())].into(),
    };
    let again = tally(
        &config,
        manifest.network,
        manifest.referendum,
        manifest.run,
        votes,
        recorded.forced_abstain.clone(),
    );
    let bytes = again.to_bytes();
    if bytes == stored_bytes {
        check(
            true,
            name,
            format!("decision {:?} re-derived identically", again.decision),
        )
    } else {
        check(
            false,
            name,
            format!(
                "{}; re-executed decision {:?}, recorded {:?}",
                difference(&stored_bytes, &bytes),
                again.decision,
                recorded.decision
            ),
        )
    }
}
