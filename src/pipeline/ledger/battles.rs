//! The arena's battles (issue #16), kept in the ledger's database beside the runs: who compared
//! which two models on which stored proposal, when, and what they picked. A round is written
//! once (its session and number are the key), so a retried write never counts a battle twice.
//!
//! The rounds a session will show are prepared first ([`ArenaRoundRow`]): both texts, and which
//! model wrote which, written in one transaction before the reviewer sees anything. The
//! terminal and the dashboard show the same prepared pairs, and a session can be resumed.

use super::db::Arg;
use super::{Ledger, LedgerError};

/// One battle as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BattleRow {
    /// The review session.
    pub session: String,
    /// The round within it, from 1.
    pub round: i64,
    /// Who judged (a name the reviewer gives; never shown to other reviewers).
    pub reviewer: String,
    /// When, Unix milliseconds.
    pub created_at: i64,
    /// The proposal's network.
    pub network: String,
    /// Its referendum.
    pub referendum: i64,
    /// The run whose stored proposal was judged.
    pub run: i64,
    /// The model shown first.
    pub model_a: String,
    /// The model shown second.
    pub model_b: String,
    /// `a`, `b`, `tie` or `both_bad`.
    pub outcome: String,
}

impl Ledger {
    /// Records `b`; `false` when its session already has that round (nothing is changed).
    pub async fn record_battle(&self, b: &BattleRow) -> Result<bool, LedgerError> {
        let written = self
            .db
            .execute(
                "INSERT INTO cybergov_battles (session, round, reviewer, created_at, network, \
                 referendum, run, model_a, model_b, outcome) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[
                    Arg::T(&b.session),
                    Arg::I(b.round),
                    Arg::T(&b.reviewer),
                    Arg::I(b.created_at),
                    Arg::T(&b.network),
                    Arg::I(b.referendum),
                    Arg::I(b.run),
                    Arg::T(&b.model_a),
                    Arg::T(&b.model_b),
                    Arg::T(&b.outcome),
                ],
            )
            .await?;
        Ok(written == 1)
    }

    /// Every battle, in the order they were fought.
    pub async fn battles(&self) -> Result<Vec<BattleRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_battles ORDER BY created_at, session, round",
                &[],
            )
            .await
    }
}

/// One prepared round of a review session.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ArenaRoundRow {
    /// The review session.
    pub session: String,
    /// The round within it, from 1.
    pub round: i64,
    /// Who will judge it.
    pub reviewer: String,
    /// When it was prepared, Unix milliseconds.
    pub created_at: i64,
    /// The proposal's network.
    pub network: String,
    /// Its referendum.
    pub referendum: i64,
    /// The run whose stored proposal (`content.md`) both models read.
    pub run: i64,
    /// The juror whose persona and prompts both models were given.
    pub juror: String,
    /// The candidate model.
    pub candidate: String,
    /// The incumbent juror's model.
    pub incumbent: String,
    /// The model whose text is shown first.
    pub model_a: String,
    /// The model whose text is shown second.
    pub model_b: String,
    /// SHA-256 (hex) of the proposal text both read.
    pub content_sha256: String,
    /// The first text shown.
    pub text_a: String,
    /// The second text shown.
    pub text_b: String,
}

impl Ledger {
    /// Writes a session's prepared rounds, all or none.
    pub async fn prepare_arena_rounds(&self, rounds: &[ArenaRoundRow]) -> Result<(), LedgerError> {
        let mut tx = self.db.begin().await?;
        for r in rounds {
            tx.execute(
                "INSERT INTO cybergov_arena_rounds (session, round, reviewer, created_at, \
                 network, referendum, run, juror, candidate, incumbent, model_a, model_b, \
                 content_sha256, text_a, text_b) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    Arg::T(&r.session),
                    Arg::I(r.round),
                    Arg::T(&r.reviewer),
                    Arg::I(r.created_at),
                    Arg::T(&r.network),
                    Arg::I(r.referendum),
                    Arg::I(r.run),
                    Arg::T(&r.juror),
                    Arg::T(&r.candidate),
                    Arg::T(&r.incumbent),
                    Arg::T(&r.model_a),
                    Arg::T(&r.model_b),
                    Arg::T(&r.content_sha256),
                    Arg::T(&r.text_a),
                    Arg::T(&r.text_b),
                ],
            )
            .await?;
        }
        tx.commit().await
    }

    /// The prepared rounds of `session`, in order (empty for an unknown session).
    pub async fn arena_rounds(&self, session: &str) -> Result<Vec<ArenaRoundRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_arena_rounds WHERE session = $1 ORDER BY round",
                &[Arg::T(session)],
            )
            .await
    }

    /// Every prepared round of every session (what a publication shows beside the battles).
    pub async fn all_arena_rounds(&self) -> Result<Vec<ArenaRoundRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_arena_rounds ORDER BY created_at, session, round",
                &[],
            )
            .await
    }

    /// The battles of `session`, by round.
    pub async fn session_battles(&self, session: &str) -> Result<Vec<BattleRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_battles WHERE session = $1 ORDER BY round",
                &[Arg::T(session)],
            )
            .await
    }
}
