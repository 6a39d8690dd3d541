//! `comment.json`: what the comment stage posted (or found) on Subsquare, and the one sentence
//! every comment states its decision in, so that the stage that writes it and the verifiers that
//! read it agree on both.

use crate::hash::Sha256Hash;
use crate::manifest::VoteKind;
use crate::network::Network;
use serde::{Deserialize, Serialize};

/// comment.json. Never holds a secret: the signature and the signed entity are public.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRecord {
    /// Whether this run posted the comment (false: an existing one was found).
    pub posted: bool,
    /// Why nothing was posted, when nothing was.
    pub skipped_reason: Option<String>,
    /// Subsquare's id of the comment, if known.
    pub comment_id: Option<String>,
    /// The manifest hash the comment carries.
    pub manifest_sha256: Sha256Hash,
    /// The signed SIMA entity as JSON *text*, exactly the bytes signed and sent (when posted):
    /// a string, not an object, because re-serializing an object would change the signed
    /// bytes.
    pub entity: Option<String>,
    /// The signer's address (when posted).
    pub address: Option<String>,
    /// `0x`-hex sr25519 signature over `entity` (when posted).
    pub signature: Option<String>,
}

impl CommentRecord {
    /// The pretty JSON stored as comment.json (with a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        super::pretty_json(self)
    }

    /// Parses comment.json.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The heading of every comment: the one place the decision is stated. A verifier looks for
/// this exact text, since every comment also names AYE, NAY and ABSTAIN in its tally line.
pub fn headline(network: Network, referendum: u32, decision: VoteKind) -> String {
    format!(
        "cybergov votes {} on {network} referendum #{referendum}",
        decision.label()
    )
}
