//! The arena's battles (issue #16), kept in the ledger's database beside the runs: who compared
//! which two models on which stored proposal, when, and what they picked. A round is written
//! once (its session and number are the key), so a retried write never counts a battle twice.

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
