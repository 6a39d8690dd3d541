//! What an operator may change by hand: a failed stage of a referendum's latest run made due
//! again, its run active again, in one transaction.

use super::db::Arg;
use super::sql::key_args;
use super::{Ledger, LedgerError, RunState, StageKey, StageState, now_ms};

impl Ledger {
    /// Makes failed stage `key` due now, with a fresh budget of attempts, and its run active,
    /// when `key` is failed and its run is the referendum's latest (a later run supersedes it:
    /// retrying an older one would race the newer run's vote). Returns whether it did; the
    /// caller then queues the stage. The last error stays on the row until the next attempt.
    pub async fn retry_failed(&self, key: &StageKey, note: &str) -> Result<bool, LedgerError> {
        let k = key_args(key);
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                "UPDATE cybergov_stages SET state = $5, due_at = $6, attempts = 0, \
                 finished_at = NULL, lease_owner = NULL, lease_expires_at = NULL, note = $7 \
                 WHERE network = $1 AND referendum = $2 AND run = $3 AND stage = $4 \
                 AND state = $8 AND run = (SELECT MAX(r.run) FROM cybergov_runs r \
                                           WHERE r.network = $1 AND r.referendum = $2)",
                &[
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    Arg::T(StageState::Scheduled.as_str()),
                    Arg::I(now_ms()),
                    Arg::T(note),
                    Arg::T(StageState::Failed.as_str()),
                ],
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        tx.execute(
            "UPDATE cybergov_runs SET state = $4, finished_at = NULL \
             WHERE network = $1 AND referendum = $2 AND run = $3",
            &[k[0], k[1], k[2], Arg::T(RunState::Active.as_str())],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
