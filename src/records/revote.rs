//! `revote.json`: this run votes although an earlier run of the referendum already did, on
//! purpose. The vote stage refuses to vote a referendum a second time unless the run carries
//! this record, written when the run is created for a reason (an operator's `rerun`, a changed
//! proposal): so a lost ledger, which makes a plain `run` start afresh, can never vote twice.

use super::run_id::RunId;
use crate::network::Network;
use serde::{Deserialize, Serialize};

/// `schema` of revote.json.
pub const REVOTE_SCHEMA: &str = "cybergov.revote/v1";

/// revote.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevoteRecord {
    /// [`REVOTE_SCHEMA`].
    pub schema: String,
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// This run.
    pub run: u32,
    /// The run it votes again after.
    pub previous_run: u32,
    /// Why, in words.
    pub reason: String,
}

impl RevoteRecord {
    /// The run this record belongs to.
    pub fn id(&self) -> super::run_id::RunId {
        super::run_id::RunId::new(self.network, self.referendum, self.run)
    }

    /// A record for `run`, voting again after `previous_run` because of `reason`.
    pub fn new(id: RunId, previous_run: u32, reason: impl Into<String>) -> Self {
        Self {
            schema: REVOTE_SCHEMA.into(),
            network: id.network,
            referendum: id.referendum,
            run: id.run,
            previous_run,
            reason: reason.into(),
        }
    }

    /// The stored bytes: pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::pretty_json(self)
    }

    /// Parses revote.json.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
