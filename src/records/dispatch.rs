//! `inference-dispatch.json`: the workflow run an infer stage asked GitHub for, recorded before
//! the request is sent. A retried stage finds that run by its correlation id and waits for it
//! instead of dispatching another: two public inference runs for one manifest is exactly what
//! a reader looking for re-rolled votes would flag.

use crate::network::Network;
use serde::{Deserialize, Serialize};

/// `schema` of inference-dispatch.json.
pub const DISPATCH_SCHEMA: &str = "cybergov.inference-dispatch/v1";

/// inference-dispatch.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRecord {
    /// [`DISPATCH_SCHEMA`].
    pub schema: String,
    /// The network.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run.
    pub run: u32,
    /// The id the workflow run carries in its name.
    pub correlation_id: String,
    /// The workflow file.
    pub workflow: String,
}

impl DispatchRecord {
    /// The run this record belongs to.
    pub fn id(&self) -> super::run_id::RunId {
        super::run_id::RunId::new(self.network, self.referendum, self.run)
    }

    /// The stored bytes: pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::pretty_json(self)
    }

    /// Parses inference-dispatch.json.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
