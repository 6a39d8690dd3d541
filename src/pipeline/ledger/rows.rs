//! What the ledger stores: the states of stages and runs, the stage key, and the rows as read.

use super::LedgerError;
use crate::network::Network;
use crate::records::run_id::RunId;
use std::fmt;
use std::str::FromStr;

/// The state of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageState {
    /// Waiting until it is due.
    Scheduled,
    /// Claimed by a worker.
    Running,
    /// Done; its outputs are recorded.
    Completed,
    /// Failed for good; the run stops here.
    Failed,
    /// Failed with a transient error (or its worker was lost); due again later.
    Retrying,
    /// Not run in this run: its outputs were reused from an earlier run.
    Skipped,
}

impl StageState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the stage will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }
}

impl fmt::Display for StageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StageState {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Scheduled,
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Retrying,
            Self::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| LedgerError::Invalid(format!("unknown stage state {s:?}")))
    }
}

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Some stage is still to run.
    Active,
    /// Every stage completed (or was reused).
    Completed,
    /// A stage failed for good.
    Failed,
}

impl RunState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// Which stage of which run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StageKey {
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run (1-based).
    pub run: u32,
    /// The stage name.
    pub stage: String,
}

impl StageKey {
    /// The run this stage belongs to.
    pub fn run_id(&self) -> RunId {
        RunId::new(self.network, self.referendum, self.run)
    }

    /// The same run's stage `stage`.
    pub fn with_stage(&self, stage: &str) -> Self {
        Self {
            stage: stage.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{} run {} {}",
            self.network, self.referendum, self.run, self.stage
        )
    }
}

/// One stage row, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StageRow {
    /// Network name.
    pub network: String,
    /// Referendum.
    pub referendum: i64,
    /// Run.
    pub run: i64,
    /// Stage name.
    pub stage: String,
    /// State name ([`StageState`]).
    pub state: String,
    /// Tries started so far.
    pub attempts: i64,
    /// The last error, if any.
    pub error: Option<String>,
    /// JSON object: output name → SHA-256 hex.
    pub outputs: Option<String>,
    /// What the stage did (e.g. "already done", "reused from run 1").
    pub note: Option<String>,
    /// When it is (or was) due.
    pub due_at: i64,
    /// When the row was written.
    pub created_at: i64,
    /// When the last try started.
    pub started_at: Option<i64>,
    /// When it reached a final state.
    pub finished_at: Option<i64>,
    /// The worker holding the claim.
    pub lease_owner: Option<String>,
    /// When that claim expires.
    pub lease_expires_at: Option<i64>,
}

impl StageRow {
    /// The outputs recorded with the stage: artefact name → SHA-256 hex (empty when none).
    pub fn recorded_outputs(&self) -> std::collections::BTreeMap<String, String> {
        self.outputs
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default()
    }

    /// The parsed state.
    pub fn state(&self) -> Result<StageState, LedgerError> {
        self.state.parse()
    }

    /// The key.
    pub fn key(&self) -> Result<StageKey, LedgerError> {
        Ok(StageKey {
            network: self
                .network
                .parse()
                .map_err(|e: crate::network::UnknownNetwork| LedgerError::Invalid(e.to_string()))?,
            referendum: u32::try_from(self.referendum)
                .map_err(|_| LedgerError::Invalid(format!("referendum {}", self.referendum)))?,
            run: u32::try_from(self.run)
                .map_err(|_| LedgerError::Invalid(format!("run {}", self.run)))?,
            stage: self.stage.clone(),
        })
    }
}

/// One run row, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    /// Network name.
    pub network: String,
    /// Referendum.
    pub referendum: i64,
    /// Run.
    pub run: i64,
    /// State name ([`RunState`]).
    pub state: String,
    /// The run this one re-does, if it is a rerun.
    pub previous_run: Option<i64>,
    /// The stage a rerun started from.
    pub from_stage: Option<String>,
    /// When the run was created.
    pub created_at: i64,
    /// When it completed or failed.
    pub finished_at: Option<i64>,
}

/// What a claim attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: this is try number `attempt`.
    Claimed {
        /// 1-based try number.
        attempt: u32,
    },
    /// Already in a final state: nothing to do.
    Final(StageState),
    /// Another worker holds a live claim until this time (ms).
    Busy {
        /// Claim expiry, Unix ms.
        until: i64,
    },
    /// Not due before this time (ms).
    NotDue {
        /// Unix ms.
        at: i64,
    },
    /// The ledger has no such stage.
    Missing,
}

/// Now, as Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A run number from the database.
pub(super) fn run_number(run: i64) -> Result<u32, LedgerError> {
    u32::try_from(run).map_err(|_| LedgerError::Invalid(format!("run number {run}")))
}
