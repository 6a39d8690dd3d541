//! SIMA comments: the entity, and its sr25519 signature by the proxy account.
//!
//! The signature covers the exact UTF-8 bytes of the entity JSON *as sent*. So the entity is
//! serialized once ([`SignedComment::entity`]), those bytes are signed, and the request body is
//! built around them verbatim (through [`serde_json::value::RawValue`]): no re-serialization can
//! reorder keys or change escapes between signing and sending.

use crate::account::AccountId;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use subxt_signer::SecretUri;
use subxt_signer::sr25519::Keypair;

/// The `signerWallet` we report: not a browser wallet, but cybergov itself.
pub const SIGNER_WALLET: &str = "cybergov";

/// `entity.indexer`: which on-chain object the comment is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indexer {
    /// `referenda`.
    pub pallet: String,
    /// `referendumInfoFor`.
    pub object: String,
    /// Block the referendum was submitted at.
    pub proposed_height: u64,
    /// Referendum index.
    pub id: u32,
}

/// `entity.real`: the account the proxy acts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Real {
    /// SS58 address of the real (proxied) account.
    pub address: String,
    /// `proxy`.
    pub section: String,
}

/// A SIMA comment entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentEntity {
    /// `comment`.
    pub action: String,
    /// The referendum.
    pub indexer: Indexer,
    /// The comment text.
    pub content: String,
    /// `HTML`.
    pub content_format: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The proxied account, when the signer is a proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<Real>,
}

impl CommentEntity {
    /// An HTML comment on referendum `id` (submitted at `proposed_height`), signed for `real`.
    pub fn referendum_html(
        id: u32,
        proposed_height: u64,
        content: String,
        timestamp_ms: u64,
        real_address: Option<String>,
    ) -> Self {
        Self {
            action: "comment".into(),
            indexer: Indexer {
                pallet: "referenda".into(),
                object: "referendumInfoFor".into(),
                proposed_height,
                id,
            },
            content,
            content_format: "HTML".into(),
            timestamp: timestamp_ms,
            real: real_address.map(|address| Real {
                address,
                section: "proxy".into(),
            }),
        }
    }
}

/// A signed comment, ready to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedComment {
    /// The entity JSON, exactly the bytes signed and sent.
    pub entity: String,
    /// The signer's SS58 address.
    pub address: String,
    /// `0x`-hex sr25519 signature over `entity`'s bytes.
    pub signature: String,
    /// [`SIGNER_WALLET`].
    pub signer_wallet: String,
}

#[derive(Serialize)]
struct Body<'a> {
    entity: &'a RawValue,
    address: &'a str,
    signature: &'a str,
    #[serde(rename = "signerWallet")]
    signer_wallet: &'a str,
}

impl SignedComment {
    /// The request body: `{entity, address, signature, signerWallet}` with the entity verbatim.
    pub fn request_body(&self) -> String {
        let entity: &RawValue =
            serde_json::from_str(&self.entity).expect("the entity was serialized by us");
        serde_json::to_string(&Body {
            entity,
            address: &self.address,
            signature: &self.signature,
            signer_wallet: &self.signer_wallet,
        })
        .expect("body serializes")
    }
}

/// Why a key could not be made or a comment not signed.
#[derive(Debug, thiserror::Error)]
pub enum SimaError {
    /// The proxy seed is neither a secret URI nor a mnemonic. The value is never shown.
    #[error(
        "the proxy key (CYBERGOV_PROXY_SEED or CYBERGOV_PROXY_SEED_<NETWORK>) is not a valid secret URI or mnemonic (the value is a secret and is not shown)"
    )]
    InvalidSeed,
    /// No proxy seed is configured.
    #[error(
        "the proxy's key is needed to sign: set CYBERGOV_PROXY_SEED_<NETWORK> or CYBERGOV_PROXY_SEED (or their _FILE forms)"
    )]
    NoSeed,
}

/// The proxy's keypair from the configured seed, if there is one: what the vote and the
/// comment both sign with.
pub fn proxy_keypair(seed: Option<&Secret>) -> Result<Keypair, SimaError> {
    keypair(seed.ok_or(SimaError::NoSeed)?)
}

/// The proxy's sr25519 keypair from a secret URI (`//Alice`, `0x…` seed, or a mnemonic with
/// optional `//derivation` and `///password`).
pub fn keypair(seed: &Secret) -> Result<Keypair, SimaError> {
    let uri: SecretUri = seed.expose().parse().map_err(|_| SimaError::InvalidSeed)?;
    Keypair::from_uri(&uri).map_err(|_| SimaError::InvalidSeed)
}

/// The account of `keypair`.
pub fn account_of(keypair: &Keypair) -> AccountId {
    AccountId(keypair.public_key().0)
}

/// Serializes `entity` once and signs those bytes with `keypair`.
pub fn sign(entity: &CommentEntity, keypair: &Keypair, ss58_prefix: u16) -> SignedComment {
    let entity = serde_json::to_string(entity).expect("entity serializes");
    let signature = keypair.sign(entity.as_bytes());
    SignedComment {
        address: account_of(keypair).to_ss58(ss58_prefix),
        signature: format!("0x{}", hex::encode(signature.0)),
        signer_wallet: SIGNER_WALLET.into(),
        entity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_the_signed_bytes_verbatim() {
        let kp = keypair(&Secret::new("//Alice")).unwrap();
        let e =
            CommentEntity::referendum_html(7, 100, "<p>é \"q\" </p>".into(), 1, Some("x".into()));
        let s = sign(&e, &kp, 0);
        let body = s.request_body();
        assert!(body.contains(&format!("\"entity\":{}", s.entity)));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["signerWallet"], "cybergov");
        let sig = hex::decode(&s.signature[2..]).unwrap();
        assert!(subxt_signer::sr25519::verify(
            &subxt_signer::sr25519::Signature(sig.try_into().unwrap()),
            s.entity.as_bytes(),
            &kp.public_key()
        ));
        assert!(matches!(
            keypair(&Secret::new("not a seed at all")),
            Err(SimaError::InvalidSeed)
        ));
    }
}
