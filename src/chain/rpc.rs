//! The JSON-RPC transport: subxt's online client (chainHead methods, or the legacy ones by
//! configuration), storage read with metadata fetched from the chain at run time.

use super::call::AccountVote;
use super::outcome::{EventRecord, blake2_256};
use super::transport::{Included, ProxyDefinition, ReferendumStatus, Transport, TransportError};
use super::tx::TxMaterial;
use super::value::{self, Value};
use crate::account::AccountId;
use async_trait::async_trait;
use std::sync::Arc;
use subxt::config::{RpcConfigFor, SubstrateConfig};
use subxt::dynamic;
use subxt::events::Phase;
use subxt::rpcs::RpcClient;
use subxt::rpcs::methods::legacy::{LegacyRpcMethods, NumberOrHex};
use subxt::utils::{AccountId32, H256};
use subxt::{OnlineClient, OnlineClientAtBlock};

/// A JSON-RPC connection.
pub struct RpcTransport {
    endpoint: String,
    client: OnlineClient<SubstrateConfig>,
    methods: LegacyRpcMethods<RpcConfigFor<SubstrateConfig>>,
}

impl std::fmt::Debug for RpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RpcTransport({})", self.endpoint)
    }
}

fn unavailable(endpoint: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Unavailable {
        endpoint: endpoint.to_owned(),
        message: e.to_string(),
    }
}

impl RpcTransport {
    /// `ConvictionVoting.VotingFor(real, track)` at the best block.
    async fn voting_for(
        &self,
        real: &AccountId,
        track: u16,
    ) -> Result<Option<Value>, TransportError> {
        let at = self.at_best().await?;
        self.fetch(
            &at,
            "ConvictionVoting",
            "VotingFor",
            vec![Value::from_bytes(real.0), Value::u128(track.into())],
        )
        .await
    }

    /// Connects to `url` (`ws://`, `wss://`, `http://` or `https://`).
    pub async fn connect(url: &str, legacy_backend: bool) -> Result<Self, TransportError> {
        let rpc = RpcClient::from_insecure_url(url)
            .await
            .map_err(|e| unavailable(url, e))?;
        let client = if legacy_backend {
            let backend =
                subxt::backend::LegacyBackend::<SubstrateConfig>::builder().build(rpc.clone());
            OnlineClient::from_backend(Arc::new(backend)).await
        } else {
            OnlineClient::from_rpc_client(rpc.clone()).await
        }
        .map_err(|e| unavailable(url, e))?;
        Ok(Self {
            endpoint: url.to_owned(),
            client,
            methods: LegacyRpcMethods::new(rpc),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> TransportError {
        unavailable(&self.endpoint, e)
    }

    /// The extrinsics of block `number` whose bytes satisfy `matches`: each one's hash, where
    /// it is, and its events.
    async fn find_where(
        &self,
        number: u64,
        matches: impl Fn(&[u8]) -> bool + Send,
    ) -> Result<Vec<(H256, Included)>, TransportError> {
        let Some(block_hash) = self.block_hash(number).await? else {
            return Ok(Vec::new());
        };
        let Some(block) = self
            .methods
            .chain_get_block(Some(block_hash))
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(Vec::new());
        };
        let found: Vec<(usize, H256)> = block
            .block
            .extrinsics
            .iter()
            .enumerate()
            .filter(|(_, x)| matches(&x.0))
            .map(|(i, x)| (i, H256(blake2_256(&x.0))))
            .collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let at = self
            .client
            .at_block_hash_and_number(block_hash, number)
            .await
            .map_err(|e| self.err(e))?;
        let events = at.events().fetch().await.map_err(|e| self.err(e))?;
        let mut out: Vec<(H256, Included)> = found
            .iter()
            .map(|&(index, hash)| {
                let included = Included {
                    block_number: number,
                    block_hash,
                    index: index as u32,
                    events: Vec::new(),
                };
                (hash, included)
            })
            .collect();
        for ev in events.iter() {
            let ev = ev.map_err(|e| TransportError::Unexpected(e.to_string()))?;
            let Phase::ApplyExtrinsic(i) = ev.phase() else {
                continue;
            };
            let Some((_, included)) = out.iter_mut().find(|(_, inc)| inc.index == i) else {
                continue;
            };
            let fields: Value = ev
                .decode_as()
                .map_err(|e| TransportError::Unexpected(e.to_string()))?;
            included.events.push(EventRecord {
                pallet: ev.pallet_name().to_owned(),
                variant: ev.event_name().to_owned(),
                fields: value::event_fields_json(&fields),
            });
        }
        Ok(out)
    }

    async fn at_best(&self) -> Result<OnlineClientAtBlock<SubstrateConfig>, TransportError> {
        let (number, hash) = self.head(false).await?;
        self.client
            .at_block_hash_and_number(hash, number)
            .await
            .map_err(|e| self.err(e))
    }

    async fn fetch(
        &self,
        at: &OnlineClientAtBlock<SubstrateConfig>,
        pallet: &str,
        entry: &str,
        keys: Vec<Value>,
    ) -> Result<Option<Value>, TransportError> {
        let addr = dynamic::storage::<Vec<Value>, Value>(pallet, entry);
        let found = at
            .storage()
            .try_fetch(addr, keys)
            .await
            .map_err(|e| TransportError::Unexpected(format!("{pallet}.{entry}: {e}")))?;
        found
            .map(|v| v.decode())
            .transpose()
            .map_err(|e| TransportError::Unexpected(format!("{pallet}.{entry}: {e}")))
    }
}

#[async_trait]
impl Transport for RpcTransport {
    async fn head(&self, finalized: bool) -> Result<(u64, H256), TransportError> {
        let hash = if finalized {
            Some(
                self.methods
                    .chain_get_finalized_head()
                    .await
                    .map_err(|e| self.err(e))?,
            )
        } else {
            None
        };
        let header = self
            .methods
            .chain_get_header(hash)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| TransportError::Unexpected("no head header".into()))?;
        let hash = match hash {
            Some(h) => h,
            None => self
                .block_hash(header.number)
                .await?
                .ok_or_else(|| TransportError::Unexpected("no best block hash".into()))?,
        };
        Ok((header.number, hash))
    }

    async fn block_hash(&self, number: u64) -> Result<Option<H256>, TransportError> {
        self.methods
            .chain_get_block_hash(Some(NumberOrHex::Number(number)))
            .await
            .map_err(|e| self.err(e))
    }

    async fn find_in_block(
        &self,
        number: u64,
        hash: H256,
    ) -> Result<Option<Included>, TransportError> {
        let found = self.find_where(number, |x| blake2_256(x) == hash.0).await?;
        Ok(found.into_iter().next().map(|(_, included)| included))
    }

    async fn find_carrying(
        &self,
        number: u64,
        needle: &[u8],
    ) -> Result<Vec<(H256, Included)>, TransportError> {
        self.find_where(number, |x| contains(x, needle)).await
    }

    async fn referendum(&self, referendum: u32) -> Result<ReferendumStatus, TransportError> {
        let at = self.at_best().await?;
        let info = self
            .fetch(
                &at,
                "Referenda",
                "ReferendumInfoFor",
                vec![Value::u128(referendum.into())],
            )
            .await?;
        Ok(referendum_status(info.as_ref()))
    }

    async fn current_vote(
        &self,
        real: &AccountId,
        track: u16,
        referendum: u32,
    ) -> Result<Option<AccountVote>, TransportError> {
        let voting = self.voting_for(real, track).await?;
        Ok(voting.as_ref().and_then(|v| vote_in(v, referendum)))
    }

    async fn delegate_of(
        &self,
        real: &AccountId,
        track: u16,
    ) -> Result<Option<AccountId>, TransportError> {
        let voting = self.voting_for(real, track).await?;
        let Some(("Delegating", fields)) = voting.as_ref().and_then(value::variant) else {
            return Ok(None);
        };
        value::field(fields, "target")
            .and_then(value::as_bytes)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|b| Some(AccountId(b)))
            .ok_or_else(|| {
                TransportError::Unexpected(format!(
                    "ConvictionVoting.VotingFor delegation without a target: {}",
                    voting.as_ref().map(value::to_json).unwrap_or_default()
                ))
            })
    }

    async fn proxies(&self, real: &AccountId) -> Result<Vec<ProxyDefinition>, TransportError> {
        let at = self.at_best().await?;
        let found = self
            .fetch(&at, "Proxy", "Proxies", vec![Value::from_bytes(real.0)])
            .await?;
        let Some(found) = found else {
            return Ok(Vec::new());
        };
        // `(BoundedVec<ProxyDefinition>, deposit)`; the BoundedVec may wrap its sequence.
        let parts = value::items(&found);
        let Some(list) = parts.first() else {
            return Err(TransportError::Unexpected(format!(
                "Proxy.Proxies: {}",
                value::to_json(&found)
            )));
        };
        let mut defs = value::items(list);
        if defs.len() == 1 && value::get(defs[0], "delegate").is_none() {
            defs = value::items(defs[0]);
        }
        defs.into_iter()
            .map(|d| {
                let delegate = value::get(d, "delegate")
                    .and_then(value::as_bytes)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(AccountId);
                let proxy_type = value::get(d, "proxy_type")
                    .and_then(value::variant)
                    .map(|(name, _)| name.to_owned());
                match (delegate, proxy_type) {
                    (Some(delegate), Some(proxy_type)) => Ok(ProxyDefinition {
                        delegate,
                        proxy_type,
                    }),
                    _ => Err(TransportError::Unexpected(format!(
                        "Proxy.Proxies entry {}",
                        value::to_json(d)
                    ))),
                }
            })
            .collect()
    }

    async fn material(&self) -> Result<TxMaterial, TransportError> {
        let at = self.at_best().await?;
        Ok(TxMaterial {
            genesis_hash: self.client.genesis_hash(),
            spec_version: at.spec_version(),
            transaction_version: at.transaction_version(),
            metadata: at.metadata(),
            block_number: at.block_number(),
            block_hash: at.block_hash(),
        })
    }

    async fn nonce(&self, account: &AccountId) -> Result<u64, TransportError> {
        self.methods
            .system_account_next_index(&AccountId32(account.0))
            .await
            .map_err(|e| self.err(e))
    }

    async fn free_balance(&self, account: &AccountId) -> Result<u128, TransportError> {
        let at = self.at_best().await?;
        let info = self
            .fetch(&at, "System", "Account", vec![Value::from_bytes(account.0)])
            .await?;
        Ok(info
            .as_ref()
            .and_then(|v| value::get(v, "data"))
            .and_then(|d| value::get(d, "free"))
            .and_then(value::as_u128)
            .unwrap_or(0))
    }

    async fn fee_estimate(&self, tx: &[u8]) -> Result<Option<u128>, TransportError> {
        let at = self.at_best().await?;
        match at.tx().from_bytes(tx.to_vec()).partial_fee_estimate().await {
            Ok(fee) => Ok(Some(fee)),
            Err(e) => {
                tracing::warn!(error = %e, "the chain gave no fee estimate");
                Ok(None)
            }
        }
    }

    async fn submit(&self, tx: &[u8]) -> Result<H256, TransportError> {
        self.methods
            .author_submit_extrinsic(tx)
            .await
            .map_err(|e| submit_error(&self.endpoint, e))
    }
}

/// Errors from `author_submitExtrinsic`: the pool's verdicts (codes 1010–1014, "Invalid
/// Transaction", …) are rejections; anything else is the connection's fault.
fn submit_error(endpoint: &str, e: subxt::rpcs::Error) -> TransportError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let rejected = [
        "1010",
        "1011",
        "1012",
        "1013",
        "1014",
        "invalid transaction",
    ]
    .iter()
    .any(|m| lower.contains(m));
    if rejected && !matches!(e, subxt::rpcs::Error::DisconnectedWillReconnect(_)) {
        TransportError::Rejected { cause: text }
    } else {
        unavailable(endpoint, text)
    }
}

/// Whether `haystack` holds `needle` as a contiguous run of bytes.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads `Referenda.ReferendumInfoFor`'s value.
pub fn referendum_status(info: Option<&Value>) -> ReferendumStatus {
    let Some(info) = info else {
        return ReferendumStatus::Unknown;
    };
    match value::variant(info) {
        Some(("Ongoing", fields)) => {
            let track = value::field(fields, "track")
                .and_then(value::as_u128)
                .and_then(|t| u16::try_from(t).ok());
            match track {
                Some(track) => ReferendumStatus::Ongoing {
                    track,
                    submitted: value::field(fields, "submitted")
                        .and_then(value::as_u128)
                        .and_then(|n| u64::try_from(n).ok()),
                },
                None => ReferendumStatus::Closed("Ongoing without a readable track".into()),
            }
        }
        Some((other, _)) => ReferendumStatus::Closed(other.to_owned()),
        None => ReferendumStatus::Unknown,
    }
}

/// The vote on `referendum` in a `ConvictionVoting.VotingFor` value (`Casting { votes: [(poll,
/// vote)] }`); delegating accounts have none of their own.
pub fn vote_in(voting: &Value, referendum: u32) -> Option<AccountVote> {
    let (name, fields) = value::variant(voting)?;
    if name != "Casting" {
        return None;
    }
    let votes = value::field(fields, "votes")?;
    // `votes` is a BoundedVec: usually a newtype around the sequence of (poll, vote) pairs.
    let is_pair = |v: &Value| {
        let it = value::items(v);
        it.len() == 2 && value::as_u128(it[0]).is_some() && value::variant(it[1]).is_some()
    };
    let outer = value::items(votes);
    let list = if outer.iter().all(|v| is_pair(v)) {
        outer
    } else if outer.len() == 1 {
        value::items(outer[0])
    } else {
        outer
    };
    list.into_iter().find_map(|pair| {
        let parts = value::items(pair);
        let [poll, vote] = parts[..] else {
            return None;
        };
        (value::as_u128(poll)? == u128::from(referendum))
            .then(|| AccountVote::from_value(vote))
            .flatten()
    })
}
