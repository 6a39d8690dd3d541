//! Publishing the arena's results like votes: the battles, the ratings and the upgrade
//! decisions as artefacts under `arena/{n}/`, a manifest over them whose SHA-256
//! `arena/latest.json` records, and each publication chained to the one before.
//!
//! Why it is built so:
//! - **Recomputable.** `ratings.json` and `decisions.json` are functions of `battles.json` and
//!   the parameters they state (Elo's step, the bootstrap's rounds and seed, the rule), so
//!   [`check`] recomputes them and compares bytes: a publication whose ratings were edited, or
//!   whose battles were thinned, fails. `scripts/verify.sh --arena` checks the hashes and
//!   recomputes the online Elo and the rule with jq alone.
//! - **What the reviewers saw is public once judged**: each battle carries both texts and the
//!   hash of the proposal they were written on, so anyone can read the pairs and disagree.
//! - **Canonical manifest, integers only**, like the runs' (`manifest::canonical`); the
//!   ratings' floats live in `ratings.json`, whose bytes are what is hashed.

use super::decision::{UpgradeRule, decide};
use super::ratings::{Battle, Interval, Outcome, bootstrap, bradley_terry, elo};
use crate::hash::Sha256Hash;
use crate::manifest::ArtefactRef;
use crate::pipeline::ledger::battles::{ArenaRoundRow, BattleRow};
use crate::store::layout::{ARENA_FILES, ArenaLatest, ArenaLayout};
use crate::store::{ObjectStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `schema` of `battles.json`.
pub const BATTLES_SCHEMA: &str = "cybergov.arena-battles/v1";
/// `schema` of `ratings.json`.
pub const RATINGS_SCHEMA: &str = "cybergov.arena-ratings/v1";
pub use crate::records::arena::{DECISIONS_SCHEMA, DecisionsRecord};
/// `schema` of an arena publication's `manifest.json`.
pub const MANIFEST_SCHEMA: &str = "cybergov.arena-manifest/v1";

/// Why a publication could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error("the ledger: {0}")]
    Ledger(#[from] crate::pipeline::ledger::LedgerError),
    /// A file is not what its schema says.
    #[error("{file}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// Nothing was judged since the latest publication.
    #[error("nothing new to publish: publication {0} already holds these battles")]
    Unchanged(u32),
}

/// `battles.json`: every battle, in the order the ratings took them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BattlesRecord {
    /// [`BATTLES_SCHEMA`].
    pub schema: String,
    /// The battles.
    pub battles: Vec<PublishedBattle>,
}

/// One battle, with what its reviewer was shown when the session was prepared here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedBattle {
    /// The review session.
    pub session: String,
    /// The round within it.
    pub round: i64,
    /// Who judged.
    pub reviewer: String,
    /// When, Unix milliseconds.
    pub created_at: i64,
    /// The proposal's network.
    pub network: String,
    /// Its referendum.
    pub referendum: i64,
    /// The run whose `content.md` was judged on.
    pub run: i64,
    /// The model shown first.
    pub model_a: String,
    /// The model shown second.
    pub model_b: String,
    /// What the reviewer picked.
    pub outcome: Outcome,
    /// The juror whose persona both took (absent for a battle recorded without a prepared round).
    pub juror: Option<String>,
    /// The candidate of the pair.
    pub candidate: Option<String>,
    /// The incumbent of the pair.
    pub incumbent: Option<String>,
    /// SHA-256 of the proposal text.
    pub content_sha256: Option<String>,
    /// The first text shown.
    pub text_a: Option<String>,
    /// The second text shown.
    pub text_b: Option<String>,
}

impl BattlesRecord {
    /// The ledger's battles in order, each with its prepared round where there is one; a
    /// battle whose outcome cannot be read is an error naming it.
    pub fn from_ledger(
        battles: &[BattleRow],
        rounds: &[ArenaRoundRow],
    ) -> Result<Self, PublishError> {
        let by_key: BTreeMap<(&str, i64), &ArenaRoundRow> = rounds
            .iter()
            .map(|r| ((r.session.as_str(), r.round), r))
            .collect();
        let parsed = super::battles(battles).map_err(|problem| PublishError::Invalid {
            file: "the ledger's battles".into(),
            problem,
        })?;
        let battles = battles
            .iter()
            .zip(parsed)
            .map(|(b, p)| {
                let round = by_key.get(&(b.session.as_str(), b.round));
                PublishedBattle {
                    session: b.session.clone(),
                    round: b.round,
                    reviewer: b.reviewer.clone(),
                    created_at: b.created_at,
                    network: b.network.clone(),
                    referendum: b.referendum,
                    run: b.run,
                    model_a: b.model_a.clone(),
                    model_b: b.model_b.clone(),
                    outcome: p.outcome,
                    juror: round.map(|r| r.juror.clone()),
                    candidate: round.map(|r| r.candidate.clone()),
                    incumbent: round.map(|r| r.incumbent.clone()),
                    content_sha256: round.map(|r| r.content_sha256.clone()),
                    text_a: round.map(|r| r.text_a.clone()),
                    text_b: round.map(|r| r.text_b.clone()),
                }
            })
            .collect();
        Ok(Self {
            schema: BATTLES_SCHEMA.into(),
            battles,
        })
    }

    /// Every battle in the ledger, with its prepared round (what the leaderboard, `arena
    /// publish` and the dashboard rate).
    pub async fn load(ledger: &crate::pipeline::ledger::Ledger) -> Result<Self, PublishError> {
        let battles = ledger.battles().await?;
        let rounds = ledger.all_arena_rounds().await?;
        Self::from_ledger(&battles, &rounds)
    }

    /// The battles as the ratings take them.
    pub fn battles(&self) -> Vec<Battle> {
        self.battles
            .iter()
            .map(|b| Battle {
                a: b.model_a.clone(),
                b: b.model_b.clone(),
                outcome: b.outcome,
            })
            .collect()
    }

    /// The (candidate, incumbent) pairs the prepared sessions set, in order.
    pub fn pairs(&self) -> BTreeSet<(String, String)> {
        self.battles
            .iter()
            .filter_map(|b| Some((b.candidate.clone()?, b.incumbent.clone()?)))
            .collect()
    }
}

/// `ratings.json`: each model's online Elo, its bootstrap and its Bradley–Terry rating.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatingsRecord {
    /// [`RATINGS_SCHEMA`].
    pub schema: &'static str,
    /// Battles rated.
    pub battles: usize,
    /// Elo's step.
    pub k: f64,
    /// The bootstrap's rounds.
    pub rounds: u32,
    /// The bootstrap's seed (`ratings::SplitMix64`).
    pub seed: u64,
    /// The models, best bootstrap median first.
    pub models: Vec<ModelRating>,
}

/// One model's ratings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRating {
    /// The model.
    pub model: String,
    /// Battles it fought.
    pub battles: usize,
    /// Online Elo over the battles in order.
    pub elo: f64,
    /// The bootstrap's median and 95 % interval.
    pub bootstrap: Interval,
    /// The Bradley–Terry fit on the Elo scale.
    pub bradley_terry: f64,
}

/// The ratings of `battles` under `rule`'s step, rounds and seed.
pub fn ratings(battles: &[Battle], rule: &UpgradeRule) -> RatingsRecord {
    let online = elo(battles, rule.k);
    let boot = bootstrap(battles, rule.k, rule.rounds, rule.seed);
    let bt = bradley_terry(battles);
    let mut fought: BTreeMap<&str, usize> = BTreeMap::new();
    for b in battles {
        *fought.entry(&b.a).or_default() += 1;
        *fought.entry(&b.b).or_default() += 1;
    }
    let mut models: Vec<ModelRating> = online
        .iter()
        .filter_map(|(model, r)| {
            Some(ModelRating {
                model: model.clone(),
                battles: fought.get(model.as_str()).copied().unwrap_or(0),
                elo: *r,
                bootstrap: boot.get(model)?.clone(),
                bradley_terry: bt.get(model).copied().unwrap_or(f64::NAN),
            })
        })
        .collect();
    models.sort_by(|x, y| {
        y.bootstrap
            .median
            .total_cmp(&x.bootstrap.median)
            .then_with(|| x.model.cmp(&y.model))
    });
    RatingsRecord {
        schema: RATINGS_SCHEMA,
        battles: battles.len(),
        k: rule.k,
        rounds: rule.rounds,
        seed: rule.seed,
        models,
    }
}

/// The decisions on `record`'s pairs under `rule`.
pub fn decisions(record: &BattlesRecord, rule: &UpgradeRule) -> DecisionsRecord {
    let battles = record.battles();
    DecisionsRecord {
        schema: DECISIONS_SCHEMA.into(),
        decisions: record
            .pairs()
            .iter()
            .map(|(candidate, incumbent)| decide(&battles, candidate, incumbent, rule))
            .collect(),
    }
}

/// An arena publication's manifest. Stored as canonical JSON (`manifest::canonical`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArenaManifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// This publication's number.
    pub publication: u32,
    /// When, UTC, RFC 3339 with seconds.
    pub published_at: String,
    /// Battles published.
    pub battles: u64,
    /// The artefacts, [`ARENA_FILES`] in order.
    pub artefacts: Vec<ArtefactRef>,
    /// SHA-256 of the previous publication's manifest (`null` for the first).
    pub previous: Option<Sha256Hash>,
}

/// What [`publish`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The publication's number.
    pub publication: u32,
    /// Its manifest's SHA-256.
    pub manifest_sha256: Sha256Hash,
    /// Its manifest.
    pub manifest: ArenaManifest,
}

/// Reads `arena/latest.json`, if there is one.
pub async fn latest(store: &dyn ObjectStore) -> Result<Option<ArenaLatest>, PublishError> {
    let Some(bytes) = store.get_optional(&ArenaLayout::latest()).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PublishError::Invalid {
            file: ArenaLayout::latest().to_string(),
            problem: e.to_string(),
        })
}

/// Publishes `record` with its ratings and decisions under `rule` as the next publication;
/// refused when the latest publication holds the same battles. Artefacts first, then the
/// manifest, then `latest.json`: a reader never finds a pointer to something missing.
pub async fn publish(
    store: &dyn ObjectStore,
    record: &BattlesRecord,
    rule: &UpgradeRule,
    published_at: &str,
) -> Result<Published, PublishError> {
    let battles_bytes = crate::records::pretty_json(record);
    let previous = latest(store).await?;
    if let Some(p) = &previous {
        let key = ArenaLayout {
            publication: p.publication,
        }
        .key(ARENA_FILES[0]);
        if store.get_optional(&key).await?.as_deref() == Some(battles_bytes.as_slice()) {
            return Err(PublishError::Unchanged(p.publication));
        }
    }
    // After the highest number any writer used, even one that crashed before its pointer.
    let publication = ArenaLayout::publications(store)
        .await?
        .last()
        .map_or(1, |n| n + 1);
    let layout = ArenaLayout { publication };
    let files = [
        battles_bytes,
        crate::records::pretty_json(&ratings(&record.battles(), rule)),
        crate::records::pretty_json(&decisions(record, rule)),
    ];
    let mut artefacts = Vec::new();
    for (name, bytes) in ARENA_FILES.iter().zip(&files) {
        let key = layout.key(name);
        store.put(&key, bytes).await?;
        artefacts.push(ArtefactRef {
            name: (*name).into(),
            path: key.to_string(),
            sha256: Sha256Hash::of(bytes),
            bytes: bytes.len() as u64,
        });
    }
    let manifest = ArenaManifest {
        schema: MANIFEST_SCHEMA.into(),
        publication,
        published_at: published_at.into(),
        battles: record.battles.len() as u64,
        artefacts,
        previous: previous.map(|p| p.manifest_sha256),
    };
    let bytes =
        crate::manifest::canonical::to_vec(&manifest).map_err(|e| PublishError::Invalid {
            file: "manifest.json".into(),
            problem: e.to_string(),
        })?;
    store.put(&layout.key("manifest.json"), &bytes).await?;
    let manifest_sha256 = Sha256Hash::of(&bytes);
    let pointer = ArenaLatest {
        publication,
        manifest_sha256,
    };
    store
        .put_pointer(
            &ArenaLayout::latest(),
            &crate::records::pretty_json(&pointer),
        )
        .await?;
    Ok(Published {
        publication,
        manifest_sha256,
        manifest,
    })
}

/// Rechecks a publication from its files' bytes: `ratings.json` and `decisions.json` must be
/// exactly what `battles.json` gives under the parameters they state. Returns one line per
/// check, `Ok` or `Err` with why.
pub fn check(
    battles: &[u8],
    ratings_bytes: &[u8],
    decisions_bytes: &[u8],
) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    let record = match serde_json::from_slice::<BattlesRecord>(battles) {
        Ok(r) if r.schema == BATTLES_SCHEMA => r,
        Ok(_) => {
            out.push((
                "battles".into(),
                Err(format!("battles.json is not {BATTLES_SCHEMA}")),
            ));
            return out;
        }
        Err(e) => {
            out.push(("battles".into(), Err(format!("battles.json: {e}"))));
            return out;
        }
    };
    out.push((
        "battles".into(),
        Ok(format!("{} battles", record.battles.len())),
    ));
    #[derive(Deserialize)]
    struct Stated {
        k: f64,
        rounds: u32,
        seed: u64,
    }
    match serde_json::from_slice::<Stated>(ratings_bytes) {
        Ok(s) => {
            let rule = UpgradeRule {
                k: s.k,
                rounds: s.rounds,
                seed: s.seed,
                ..UpgradeRule::default()
            };
            let again = crate::records::pretty_json(&ratings(&record.battles(), &rule));
            out.push((
                "ratings".into(),
                if again == ratings_bytes {
                    Ok(format!(
                        "recomputed from the battles (K {}, {} bootstrap rounds, seed {}): the same bytes",
                        s.k, s.rounds, s.seed
                    ))
                } else {
                    Err("ratings.json is not what its battles give under its own parameters".into())
                },
            ));
        }
        Err(e) => out.push(("ratings".into(), Err(format!("ratings.json: {e}")))),
    }
    match serde_json::from_slice::<DecisionsRecord>(decisions_bytes) {
        Ok(stated) => {
            // Every decision states its rule; one publication applies one rule to every pair.
            let rule = stated
                .decisions
                .first()
                .map(|d| d.rule.clone())
                .unwrap_or_default();
            let again = crate::records::pretty_json(&decisions(&record, &rule));
            out.push((
                "decisions".into(),
                if again == decisions_bytes {
                    Ok(format!(
                        "{} decisions recomputed from the battles under their rule: the same bytes",
                        stated.decisions.len()
                    ))
                } else {
                    Err("decisions.json is not what its battles give under its own rule".into())
                },
            ));
        }
        Err(e) => out.push(("decisions".into(), Err(format!("decisions.json: {e}")))),
    }
    out
}
