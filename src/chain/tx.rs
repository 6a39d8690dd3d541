//! Building, signing and decoding the vote extrinsic, offline.
//!
//! Both transports end here: they fetch [`TxMaterial`] (metadata, genesis hash, versions and a
//! recent block) from the chain, and the extrinsic is built and signed without a connection,
//! with an explicit nonce and a mortal era anchored at that block. So the exact bytes (and hash)
//! are known before anything is sent, which is what makes a crash between submission and
//! receipt recoverable: the hash is recorded first, then looked for on chain.

use super::call::{AddressForm, DecodedVote, VoteCall};
use super::value::Value;
use crate::account::AccountId;
use std::sync::Arc;
use subxt::config::substrate::SpecVersionForRange;
use subxt::config::{DefaultExtrinsicParamsBuilder, SubstrateConfig};
use subxt::utils::{AccountId32, H256, MultiSignature};
use subxt::{Metadata, OfflineClient};
use subxt_signer::sr25519::Keypair;

/// What offline signing needs from the chain.
#[derive(Clone, Debug)]
pub struct TxMaterial {
    /// Genesis hash.
    pub genesis_hash: H256,
    /// Runtime spec version.
    pub spec_version: u32,
    /// Runtime transaction version.
    pub transaction_version: u32,
    /// The runtime's metadata.
    pub metadata: Arc<Metadata>,
    /// The block the mortal era starts at.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: H256,
}

/// Why an extrinsic could not be built or decoded.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The runtime lacks a call or type the vote needs, or the values do not fit it.
    #[error("cannot build the vote call against this runtime's metadata: {0}")]
    Build(String),
    /// Bytes that are not a cybergov vote extrinsic.
    #[error("cannot decode the extrinsic: {0}")]
    Decode(String),
}

/// A signed vote extrinsic.
#[derive(Clone, Debug)]
pub struct SignedTx {
    /// The encoded extrinsic (what is submitted).
    pub bytes: Vec<u8>,
    /// Its hash (BLAKE2-256 of `bytes`), as the chain reports it.
    pub hash: H256,
    /// The nonce it was signed with.
    pub nonce: u64,
    /// The block its era starts at.
    pub era_start: u64,
    /// The last block it can be included in (a conservative bound of its mortal era).
    pub era_end: u64,
    /// The bytes that were signed (hashed by the signer when over 256 bytes).
    pub signer_payload: Vec<u8>,
}

/// A decoded vote extrinsic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedTx {
    /// The signing account.
    pub signer: AccountId,
    /// The sr25519 signature.
    pub signature: [u8; 64],
    /// What the call asks for.
    pub call: DecodedVote,
    /// `Pallet.call` of the outer call.
    pub outer_call: String,
}

fn offline(material: &TxMaterial) -> OfflineClient<SubstrateConfig> {
    let config = SubstrateConfig::builder()
        .set_genesis_hash(material.genesis_hash)
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: material.spec_version,
            transaction_version: material.transaction_version,
        }])
        .set_metadata_for_spec_versions([(material.spec_version, material.metadata.clone())])
        .build();
    OfflineClient::new_with_config(config)
}

/// Mortality periods are powers of two between 4 and 65536 blocks.
pub fn era_period(blocks: u64) -> u64 {
    blocks.clamp(4, MAX_MORTALITY_BLOCKS).next_power_of_two()
}

/// The longest era we sign. Above 4,096 blocks the era's phase is quantised (to a multiple of
/// `period / 4096`), so its birth block is no longer the block we sign against, and the signature
/// would not verify. Configuration refuses longer periods (`networks.<n>.vote.mortality_blocks`).
pub const MAX_MORTALITY_BLOCKS: u64 = 4096;

/// How `real` must be encoded on this runtime: tried as `MultiAddress::Id` first (every current
/// runtime), then as a bare account.
pub fn address_form(material: &TxMaterial, call: &VoteCall) -> Result<AddressForm, TxError> {
    let client = offline(material);
    let at = client
        .at_block(material.block_number)
        .map_err(|e| TxError::Build(e.to_string()))?;
    let mut last = None;
    for form in [AddressForm::MultiAddress, AddressForm::AccountId] {
        match at.tx().call_data(&call.payload(form)) {
            Ok(_) => return Ok(form),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(TxError::Build(last.unwrap_or_default()))
}

/// Signs the vote batch (or, with `inner`, the batch with another proxied call) with `signer`,
/// `nonce` and a mortal era of `mortality` blocks from the material's block.
pub fn sign(
    material: &TxMaterial,
    call: &VoteCall,
    inner: Option<Value>,
    signer: &Keypair,
    nonce: u64,
    mortality: u64,
) -> Result<SignedTx, TxError> {
    let form = address_form(material, call)?;
    let payload = match inner {
        Some(inner) => call.payload_with_inner(form, inner),
        None => call.payload(form),
    };
    let client = offline(material);
    let at = client
        .at_block(material.block_number)
        .map_err(|e| TxError::Build(e.to_string()))?;
    let period = era_period(mortality);
    let params = DefaultExtrinsicParamsBuilder::<SubstrateConfig>::new()
        .nonce(nonce)
        .tip(0)
        .mortal_from_unchecked(period, material.block_number, material.block_hash)
        .build();
    let build = |e: subxt::error::ExtrinsicError| TxError::Build(e.to_string());
    let mut signable = at
        .tx()
        .create_signable_offline(&payload, params)
        .map_err(build)?;
    let signer_payload = signable.signer_payload().map_err(build)?;
    let signature = signer.sign(&signer_payload);
    let account = AccountId32(signer.public_key().0);
    let signed = signable
        .sign_with_account_and_signature(&account, &MultiSignature::Sr25519(signature.0))
        .map_err(build)?;
    Ok(SignedTx {
        bytes: signed.encoded().to_vec(),
        hash: signed.hash(),
        nonce,
        era_start: material.block_number,
        era_end: material.block_number + period,
        signer_payload,
    })
}

/// Decodes a signed vote extrinsic with the material's metadata.
pub async fn decode(material: &TxMaterial, bytes: &[u8]) -> Result<DecodedTx, TxError> {
    let client = offline(material);
    let at = client
        .at_block(material.block_number)
        .map_err(|e| TxError::Decode(e.to_string()))?;
    let exts = at.extrinsics().from_bytes(vec![bytes.to_vec()]).await;
    let ext = exts
        .iter()
        .next()
        .ok_or_else(|| TxError::Decode("no extrinsic".into()))?
        .map_err(|e| TxError::Decode(e.to_string()))?;
    let address = ext
        .address_bytes()
        .ok_or_else(|| TxError::Decode("the extrinsic is not signed".into()))?;
    // MultiAddress::Id is variant 0 followed by the 32-byte key.
    let key: [u8; 32] = match address {
        [0, rest @ ..] if rest.len() == 32 => rest.try_into().expect("32 bytes"),
        rest if rest.len() == 32 => rest.try_into().expect("32 bytes"),
        _ => {
            return Err(TxError::Decode(
                "the signer is not a 32-byte account".into(),
            ));
        }
    };
    let sig = ext
        .signature_bytes()
        .ok_or_else(|| TxError::Decode("no signature".into()))?;
    let signature: [u8; 64] = match sig {
        // MultiSignature::Sr25519 is variant 1.
        [1, rest @ ..] if rest.len() == 64 => rest.try_into().expect("64 bytes"),
        _ => return Err(TxError::Decode("not an sr25519 signature".into())),
    };
    let outer_call = format!("{}.{}", ext.pallet_name(), ext.call_name());
    let mut calls = None;
    for f in ext.iter_call_data_fields() {
        if f.name() == "calls" {
            let v: Value = f.decode_as().map_err(|e| TxError::Decode(e.to_string()))?;
            calls = Some(v);
        }
    }
    let call = calls
        .as_ref()
        .and_then(DecodedVote::from_calls)
        .ok_or_else(|| TxError::Decode(format!("{outer_call} is not cybergov's vote batch")))?;
    Ok(DecodedTx {
        signer: AccountId(key),
        signature,
        call,
        outer_call,
    })
}

/// Whether `signature` by `signer` is valid over `payload`.
pub fn verify(signature: &[u8; 64], payload: &[u8], signer: &AccountId) -> bool {
    subxt_signer::sr25519::verify(
        &subxt_signer::sr25519::Signature(*signature),
        payload,
        &subxt_signer::sr25519::PublicKey(signer.0),
    )
}
