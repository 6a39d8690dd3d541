//! The fields of `receipt.json` the verifier reads. The vote stage writes the file; unknown
//! fields are tolerated so a richer receipt still verifies.

use crate::hash::Sha256Hash;
use crate::network::Network;
use serde::Deserialize;

/// `receipt.json`, as far as verification needs it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReceiptView {
    /// The network voted on.
    pub network: Network,
    /// The referendum.
    pub referendum: u32,
    /// The run.
    pub run: u32,
    /// The manifest hash put on chain.
    pub manifest_sha256: Sha256Hash,
    /// The remark text.
    pub remark: String,
    /// The account voted for (SS58), if a proxy voted.
    #[serde(default)]
    pub real: Option<String>,
    /// Hash of the vote extrinsic (`0x…`).
    pub extrinsic_hash: String,
    /// Block it was included in.
    pub block_number: u64,
    /// That block's hash (`0x…`).
    #[serde(default)]
    pub block_hash: Option<String>,
    /// Index of the extrinsic in the block.
    #[serde(default)]
    pub extrinsic_index: Option<u32>,
}
