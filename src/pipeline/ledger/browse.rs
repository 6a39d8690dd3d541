//! Reading the ledger page by page, for the HTTP API and the dashboard: what a reader asks for
//! (the latest run of each referendum, one referendum's runs) with keyset paging, so that a
//! page costs the same with ten or ten thousand referenda in the ledger.

use super::db::Arg;
use super::{Ledger, LedgerError, RunRow, StageRow};
use crate::network::Network;

/// Where a page of referenda starts: after this network and referendum, in the API's order
/// (network name, then referendum number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct After {
    /// The network of the last referendum of the page before.
    pub network: String,
    /// Its referendum (−1: from the network's first one).
    pub referendum: i64,
}

impl Ledger {
    /// The latest run of each referendum, at most `limit` of them after `after`, optionally of
    /// one network and only those whose latest run is in `state`; ordered by network name and
    /// referendum. Uses the runs' primary key for the order and for each latest run.
    pub async fn latest_runs(
        &self,
        network: Option<Network>,
        state: Option<&str>,
        after: &After,
        limit: u32,
    ) -> Result<Vec<RunRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT r.* FROM cybergov_runs r \
                 WHERE r.run = (SELECT MAX(l.run) FROM cybergov_runs l \
                                WHERE l.network = r.network AND l.referendum = r.referendum) \
                 AND ($1 IS NULL OR r.network = $1) AND ($2 IS NULL OR r.state = $2) \
                 AND (r.network > $3 OR (r.network = $3 AND r.referendum > $4)) \
                 ORDER BY r.network, r.referendum LIMIT $5",
                &[
                    Arg::OptT(network.map(Network::as_str)),
                    Arg::OptT(state),
                    Arg::T(&after.network),
                    Arg::I(after.referendum),
                    Arg::I(i64::from(limit)),
                ],
            )
            .await
    }

    /// The latest run of each referendum of `network` numbered below `before`, newest
    /// referendum first, at most `limit` of them (the dashboard's order: what was proposed
    /// last is what an operator looks at first).
    pub async fn newest_runs(
        &self,
        network: Network,
        before: i64,
        limit: u32,
    ) -> Result<Vec<RunRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT r.* FROM cybergov_runs r \
                 WHERE r.run = (SELECT MAX(l.run) FROM cybergov_runs l \
                                WHERE l.network = r.network AND l.referendum = r.referendum) \
                 AND r.network = $1 AND r.referendum < $2 \
                 ORDER BY r.referendum DESC LIMIT $3",
                &[
                    Arg::T(network.as_str()),
                    Arg::I(before),
                    Arg::I(i64::from(limit)),
                ],
            )
            .await
    }

    /// The stages of every run of `network`'s referenda `low..=high`: one query for a page of
    /// the dashboard instead of one per referendum.
    pub async fn stages_between(
        &self,
        network: Network,
        low: i64,
        high: i64,
    ) -> Result<Vec<StageRow>, LedgerError> {
        self.db
            .fetch(
                "SELECT * FROM cybergov_stages WHERE network = $1 \
                 AND referendum >= $2 AND referendum <= $3 \
                 ORDER BY referendum, run, created_at, stage",
                &[Arg::T(network.as_str()), Arg::I(low), Arg::I(high)],
            )
            .await
    }

    /// How many stages are in each state (the metrics' queue depth).
    pub async fn stages_by_state(&self) -> Result<Vec<(String, i64)>, LedgerError> {
        self.db
            .fetch(
                "SELECT state, COUNT(*) FROM cybergov_stages GROUP BY state ORDER BY state",
                &[],
            )
            .await
    }

    /// When the longest-waiting stage that is due (scheduled or retrying, due at or before
    /// `now`) became due, if one is.
    pub async fn oldest_due(&self, now: i64) -> Result<Option<i64>, LedgerError> {
        let rows: Vec<(Option<i64>,)> = self
            .db
            .fetch(
                "SELECT MIN(due_at) FROM cybergov_stages \
                 WHERE state IN ('scheduled', 'retrying') AND due_at <= $1",
                &[Arg::I(now)],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.0))
    }

    /// Whether the database answers (a readiness check).
    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.db
            .fetch::<RunRow>("SELECT * FROM cybergov_runs WHERE 1 = 0", &[])
            .await
            .map(|_| ())
    }
}
