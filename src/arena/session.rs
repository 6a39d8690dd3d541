//! A review session: ten rounds in which a reviewer reads two rationales on the same stored
//! proposal — one by the candidate model, one by the incumbent juror's — without knowing which
//! is which, and picks the better one, a tie, or both bad.
//!
//! Why it is built so:
//! - **Prepared before it is shown.** Both models write their rationales first
//!   ([`prepare`]), with the same juror's persona and prompts and greedy decoding, and the
//!   pairs are kept in the ledger (`cybergov_arena_rounds`) in one transaction. The terminal
//!   and the dashboard then show the same pairs, a session survives a closed terminal, and no
//!   reviewer waits on a model.
//! - **Anonymous by construction.** The order of each pair is drawn from the operating
//!   system's randomness, and what a reviewer is shown is a [`ReviewRound`], a type that has no
//!   field for a model's name: a page or a prompt cannot leak what it was never given.
//! - **A round is judged once.** The battle's key is (session, round); a retried answer
//!   changes nothing, so a double-clicked button does not count twice.
//! - **Session ids are unguessable** (UUID v4): knowing one is what lets a reviewer judge it on
//!   the dashboard, so rounds cannot be judged by someone who was not given the link.

use super::ratings::Outcome;
use crate::hash::Sha256Hash;
use crate::magi::juror::rationale_messages;
use crate::magi::model::{GenerateParams, LanguageModel, ModelError};
use crate::magi::prompts::Prompts;
use crate::network::Network;
use crate::pipeline::ledger::battles::{ArenaRoundRow, BattleRow};
use crate::pipeline::ledger::{Ledger, LedgerError};
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::store::{ObjectStore, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// Rounds in a session unless told otherwise (the SubDAO's validation process uses ten).
pub const ROUNDS: usize = 10;

/// Why a session could not be prepared or judged.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error("the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A model failed to write its rationale.
    #[error("model {model}: {source}")]
    Model {
        /// The model.
        model: String,
        /// What went wrong.
        source: ModelError,
    },
    /// Nothing to judge.
    #[error("the store holds no proposal to judge (no run with a content.md under proposals/)")]
    NoProposals,
    /// The two contenders are one model.
    #[error("the candidate {0} is the incumbent's model: an arena needs two different models")]
    SameModel(String),
    /// The juror is not one of the MAGI.
    #[error("{0:?} is not a juror (balthazar, melchior or caspar)")]
    UnknownJuror(String),
    /// No such session.
    #[error("there is no review session {0:?}")]
    UnknownSession(String),
    /// No such round.
    #[error("session {session} has no round {round}")]
    UnknownRound {
        /// The session.
        session: String,
        /// The round asked for.
        round: i64,
    },
    /// A round judged before with another answer.
    #[error("round {round} of session {session} was already judged {earlier}")]
    AlreadyJudged {
        /// The session.
        session: String,
        /// The round.
        round: i64,
        /// What was picked then.
        earlier: String,
    },
    /// Not one of the four answers.
    #[error("{0:?} is not an answer: a, b, tie or both_bad")]
    BadChoice(String),
}

/// A stored proposal: the newest run's `content.md` of one referendum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProposal {
    /// Its network.
    pub network: Network,
    /// Its referendum.
    pub referendum: u32,
    /// The run whose `content.md` it is.
    pub run: u32,
    /// The text the jurors read.
    pub content: String,
}

/// Up to `limit` stored proposals, newest referenda first: for each referendum, the latest run
/// that has a `content.md` (what its jurors read).
pub async fn stored_proposals(
    store: &dyn ObjectStore,
    limit: usize,
) -> Result<Vec<StoredProposal>, SessionError> {
    // proposals/{network}/{id}/runs/{run}/content.md
    let mut latest: BTreeMap<(u32, Network), u32> = BTreeMap::new();
    for key in store.list("proposals/").await? {
        let parts: Vec<&str> = key.as_str().split('/').collect();
        if let ["proposals", net, id, "runs", run, "content.md"] = parts[..]
            && let (Ok(net), Ok(id), Ok(run)) = (net.parse(), id.parse(), run.parse())
        {
            let newest = latest.entry((id, net)).or_insert(run);
            *newest = (*newest).max(run);
        }
    }
    let mut found = Vec::new();
    for ((referendum, network), run) in latest.into_iter().rev().take(limit) {
        let key = ReferendumLayout::new(network, referendum)
            .run(run)
            .key(&Artefact::Content);
        let content = String::from_utf8_lossy(&store.get(&key).await?).into_owned();
        found.push(StoredProposal {
            network,
            referendum,
            run,
            content,
        });
    }
    Ok(found)
}

/// What a session is prepared from.
pub struct Preparation<'a> {
    /// The model that would replace the juror's.
    pub candidate: &'a dyn LanguageModel,
    /// The juror's model now.
    pub incumbent: &'a dyn LanguageModel,
    /// The prompts both are given.
    pub prompts: &'a Prompts,
    /// The juror whose persona both take.
    pub juror: &'a str,
    /// How both decode.
    pub params: GenerateParams,
    /// Who will judge.
    pub reviewer: &'a str,
    /// When, Unix milliseconds.
    pub now_ms: i64,
}

/// Prepares a session over `proposals` (one round each) and returns its id. Each model writes
/// its rationale as the juror would; which is shown first is a fair coin per round.
pub async fn prepare(
    ledger: &Ledger,
    p: &Preparation<'_>,
    proposals: &[StoredProposal],
) -> Result<String, SessionError> {
    if !crate::magi::prompts::JURORS.contains(&p.juror) {
        return Err(SessionError::UnknownJuror(p.juror.to_owned()));
    }
    let candidate = p.candidate.info().model_id.clone();
    let incumbent = p.incumbent.info().model_id.clone();
    if candidate == incumbent {
        return Err(SessionError::SameModel(candidate));
    }
    if proposals.is_empty() {
        return Err(SessionError::NoProposals);
    }
    let session = uuid::Uuid::new_v4().simple().to_string();
    let mut rows = Vec::with_capacity(proposals.len());
    for (i, proposal) in proposals.iter().enumerate() {
        let messages = vec![rationale_messages(p.prompts, p.juror, &proposal.content)];
        let mut texts = Vec::with_capacity(2);
        for model in [p.candidate, p.incumbent] {
            let generation =
                model
                    .generate_batch(&messages, &p.params)
                    .await
                    .map_err(|source| SessionError::Model {
                        model: model.info().model_id.clone(),
                        source,
                    })?;
            texts.push(
                generation
                    .into_iter()
                    .next()
                    .map_or_else(String::new, |g| g.text.trim().to_owned()),
            );
        }
        let (incumbent_text, candidate_text) = (texts.pop().unwrap(), texts.pop().unwrap());
        let candidate_first: bool = rand::random();
        let ((model_a, text_a), (model_b, text_b)) = if candidate_first {
            ((&candidate, candidate_text), (&incumbent, incumbent_text))
        } else {
            ((&incumbent, incumbent_text), (&candidate, candidate_text))
        };
        rows.push(ArenaRoundRow {
            session: session.clone(),
            round: i as i64 + 1,
            reviewer: p.reviewer.to_owned(),
            created_at: p.now_ms,
            network: proposal.network.to_string(),
            referendum: i64::from(proposal.referendum),
            run: i64::from(proposal.run),
            juror: p.juror.to_owned(),
            candidate: candidate.clone(),
            incumbent: incumbent.clone(),
            model_a: model_a.clone(),
            model_b: model_b.clone(),
            content_sha256: Sha256Hash::of(proposal.content.as_bytes()).to_string(),
            text_a,
            text_b,
        });
    }
    ledger.prepare_arena_rounds(&rows).await?;
    Ok(session)
}

/// What a reviewer is shown of one round: the proposal and two anonymous texts. It has no
/// field for a model's name, by design.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReviewRound {
    /// The session.
    pub session: String,
    /// This round, from 1.
    pub round: i64,
    /// Rounds in the session.
    pub rounds: usize,
    /// The proposal's network.
    pub network: String,
    /// Its referendum.
    pub referendum: i64,
    /// The proposal text both read.
    pub proposal: String,
    /// The first rationale.
    pub a: String,
    /// The second rationale.
    pub b: String,
}

/// Where a session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The next round to judge.
    Next(ReviewRound),
    /// Every round judged.
    Done {
        /// Rounds in the session.
        rounds: usize,
    },
}

/// The first round of `session` not judged yet, or that it is done.
pub async fn standing(
    ledger: &Ledger,
    store: &dyn ObjectStore,
    session: &str,
) -> Result<Standing, SessionError> {
    let rounds = ledger.arena_rounds(session).await?;
    if rounds.is_empty() {
        return Err(SessionError::UnknownSession(session.to_owned()));
    }
    let judged: Vec<i64> = ledger
        .session_battles(session)
        .await?
        .iter()
        .map(|b| b.round)
        .collect();
    let total = rounds.len();
    let Some(r) = rounds.into_iter().find(|r| !judged.contains(&r.round)) else {
        return Ok(Standing::Done { rounds: total });
    };
    // The proposal is the run's content.md, as the store keeps it (the round holds its hash).
    let proposal = match (
        r.network.parse::<Network>(),
        u32::try_from(r.referendum),
        u32::try_from(r.run),
    ) {
        (Ok(net), Ok(id), Ok(run)) => {
            let key = ReferendumLayout::new(net, id)
                .run(run)
                .key(&Artefact::Content);
            String::from_utf8_lossy(&store.get(&key).await?).into_owned()
        }
        _ => String::new(),
    };
    Ok(Standing::Next(ReviewRound {
        session: r.session,
        round: r.round,
        rounds: total,
        network: r.network,
        referendum: r.referendum,
        proposal,
        a: r.text_a,
        b: r.text_b,
    }))
}

/// The reviewer's answer, as typed: `a`, `b`, `tie` (`t`), `both_bad` (`x`, `both bad`).
pub fn parse_choice(s: &str) -> Result<Outcome, SessionError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "a" => Ok(Outcome::A),
        "b" => Ok(Outcome::B),
        "t" | "tie" => Ok(Outcome::Tie),
        "x" | "both_bad" | "both bad" | "bothbad" => Ok(Outcome::BothBad),
        _ => Err(SessionError::BadChoice(s.trim().to_owned())),
    }
}

/// The stored name of `outcome` (`a`, `b`, `tie`, `both_bad`).
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::A => "a",
        Outcome::B => "b",
        Outcome::Tie => "tie",
        Outcome::BothBad => "both_bad",
    }
}

/// Records the reviewer's answer to `round` of `session`. Answering a judged round again with
/// the same answer changes nothing; with another, it is refused.
pub async fn judge(
    ledger: &Ledger,
    session: &str,
    round: i64,
    outcome: Outcome,
    now_ms: i64,
) -> Result<(), SessionError> {
    let rounds = ledger.arena_rounds(session).await?;
    if rounds.is_empty() {
        return Err(SessionError::UnknownSession(session.to_owned()));
    }
    let Some(r) = rounds.into_iter().find(|r| r.round == round) else {
        return Err(SessionError::UnknownRound {
            session: session.to_owned(),
            round,
        });
    };
    let battle = BattleRow {
        session: r.session,
        round: r.round,
        reviewer: r.reviewer,
        created_at: now_ms,
        network: r.network,
        referendum: r.referendum,
        run: r.run,
        model_a: r.model_a,
        model_b: r.model_b,
        outcome: outcome_name(outcome).to_owned(),
    };
    if ledger.record_battle(&battle).await? {
        return Ok(());
    }
    let earlier = ledger
        .session_battles(session)
        .await?
        .into_iter()
        .find(|b| b.round == round)
        .map(|b| b.outcome)
        .unwrap_or_default();
    if earlier == battle.outcome {
        Ok(())
    } else {
        Err(SessionError::AlreadyJudged {
            session: session.to_owned(),
            round,
            earlier,
        })
    }
}
