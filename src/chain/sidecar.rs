//! The Substrate API Sidecar transport (REST), with offline signing.
//!
//! Endpoints used (Sidecar v17+ shapes; numbers arrive as decimal strings):
//!
//! | what | request |
//! |---|---|
//! | signing material | `GET /transaction/material?noMeta=false&metadata=scale` → `{at: {hash, height}, genesisHash, specVersion, txVersion, metadata: "0x…"}` |
//! | nonce, free balance | `GET /accounts/{ss58}/balance-info` → `{nonce, free, …}` |
//! | fee | `POST /transaction/fee-estimate {tx}` → `{partialFee}` |
//! | send | `POST /transaction {tx}` → `{hash}`; 400 `{code, error: "Failed to submit transaction.", transaction, cause, stack}` |
//! | heads | `GET /blocks/head/header?finalized=false` (best) or `GET /blocks/head/header` (finalized) → `{number, hash}` |
//! | inclusion | `GET /blocks/{n}` → `{number, hash, extrinsics: [{hash, events: [{method: {pallet, method}, data}]}]}` |
//! | referendum | `GET /pallets/referenda/storage/referendumInfoFor?keys[]={id}` → `{value: {ongoing: {track, …}} \| {approved: …} \| null}` |
//! | current vote | `GET /pallets/convictionVoting/storage/votingFor?keys[]={ss58}&keys[]={class}` → `{value: {casting: {votes: [[poll, {standard: {vote, balance}}]]}}}` |
//!
//! Inclusion is found by polling blocks for the extrinsic hash, as for JSON-RPC.

use super::call::AccountVote;
use super::outcome::EventRecord;
use super::transport::{Included, ProxyDefinition, ReferendumStatus, Transport, TransportError};
use super::tx::TxMaterial;
use crate::account::AccountId;
use async_trait::async_trait;
use serde_json::Value as Json;
use std::sync::Arc;
use std::time::Duration;
use subxt::Metadata;
use subxt::ext::codec::Decode;
use subxt::utils::H256;

/// A Sidecar connection.
#[derive(Debug, Clone)]
pub struct SidecarTransport {
    base: String,
    ss58_prefix: u16,
    max_body_bytes: u64,
    http: reqwest::Client,
}

/// A number Sidecar may send as a string or a JSON number.
fn num(v: &Json) -> Option<u128> {
    match v {
        Json::String(s) => s.parse().ok().or_else(|| {
            let h = s.strip_prefix("0x")?;
            u128::from_str_radix(h, 16).ok()
        }),
        Json::Number(n) => n.as_u64().map(u128::from),
        _ => None,
    }
}

fn hash_of(v: &Json) -> Option<H256> {
    let s = v.as_str()?.strip_prefix("0x")?;
    let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
    Some(H256(bytes))
}

fn unexpected(what: &str, body: &Json) -> TransportError {
    let mut text = body.to_string();
    text.truncate(300);
    TransportError::Unexpected(format!("{what}: {text}"))
}

/// An extrinsic's events as Sidecar lists them under it.
fn events_of(ext: &Json) -> Vec<EventRecord> {
    let Some(events) = ext.get("events").and_then(Json::as_array) else {
        return Vec::new();
    };
    events
        .iter()
        .map(|e| EventRecord {
            pallet: pallet_name(
                e.pointer("/method/pallet")
                    .and_then(Json::as_str)
                    .unwrap_or(""),
            ),
            variant: e
                .pointer("/method/method")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            fields: e.get("data").cloned().unwrap_or(Json::Null),
        })
        .collect()
}

impl SidecarTransport {
    /// `convictionVoting.votingFor(real, track)`, as polkadot.js renders it.
    async fn voting_for(&self, real: &AccountId, track: u16) -> Result<Json, TransportError> {
        self.storage(
            "convictionVoting",
            "votingFor",
            &[real.to_ss58(self.ss58_prefix), track.to_string()],
        )
        .await
    }

    /// The extrinsics of block `number` (as Sidecar renders them) that satisfy `matches`: each
    /// one's hash, where it is, and its events.
    async fn find_where(
        &self,
        number: u64,
        matches: impl Fn(&Json) -> bool + Send,
    ) -> Result<Vec<(H256, Included)>, TransportError> {
        let json = match self.get(&format!("/blocks/{number}")).await? {
            (200, json) => json,
            (400 | 404, _) => return Ok(Vec::new()),
            (status, json) => return Err(unexpected(&format!("block {number}: {status}"), &json)),
        };
        let block_hash = json
            .get("hash")
            .and_then(hash_of)
            .ok_or_else(|| unexpected("block hash", &json))?;
        let extrinsics = json
            .get("extrinsics")
            .and_then(Json::as_array)
            .ok_or_else(|| unexpected("block extrinsics", &json))?;
        let mut out = Vec::new();
        for (index, ext) in extrinsics.iter().enumerate().filter(|(_, x)| matches(x)) {
            let extrinsic_hash = ext
                .get("hash")
                .and_then(hash_of)
                .ok_or_else(|| unexpected("extrinsic hash", ext))?;
            let included = Included {
                block_number: number,
                block_hash,
                index: index as u32,
                events: events_of(ext),
            };
            out.push((extrinsic_hash, included));
        }
        Ok(out)
    }

    /// A client for the Sidecar at `base` (e.g. `https://sidecar.example.org`), reading answers
    /// of at most `max_body_bytes`.
    pub fn new(base: &str, ss58_prefix: u16, max_body_bytes: u64) -> Result<Self, TransportError> {
        let http = crate::http::client_builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("cybergov/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Unexpected(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            ss58_prefix,
            max_body_bytes,
            http,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError::Unavailable {
            endpoint: self.base.clone(),
            message: e.to_string(),
        }
    }

    async fn read(&self, resp: reqwest::Response) -> Result<(u16, Json), TransportError> {
        let status = resp.status().as_u16();
        let limit = self.max_body_bytes;
        let bytes = crate::http::read_capped(resp, limit)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| {
                TransportError::Unexpected(format!(
                    "Sidecar at {} answered with more than {limit} bytes (vote.sidecar_max_body_bytes): refused",
                    self.base
                ))
            })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        if status >= 500 || status == 429 {
            return Err(self.err(format!("HTTP {status}: {json}")));
        }
        Ok((status, json))
    }

    async fn get(&self, path: &str) -> Result<(u16, Json), TransportError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.err(e))?;
        self.read(resp).await
    }

    async fn get_ok(&self, path: &str) -> Result<Json, TransportError> {
        match self.get(path).await? {
            (200, json) => Ok(json),
            (status, json) => Err(unexpected(&format!("GET {path} answered {status}"), &json)),
        }
    }

    async fn post(&self, path: &str, tx: &[u8]) -> Result<(u16, Json), TransportError> {
        let body = serde_json::json!({ "tx": format!("0x{}", hex::encode(tx)) });
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.err(e))?;
        self.read(resp).await
    }

    async fn storage(
        &self,
        pallet: &str,
        item: &str,
        keys: &[String],
    ) -> Result<Json, TransportError> {
        let query: Vec<String> = keys.iter().map(|k| format!("keys[]={k}")).collect();
        let json = self
            .get_ok(&format!(
                "/pallets/{pallet}/storage/{item}?{}",
                query.join("&")
            ))
            .await?;
        Ok(json.get("value").cloned().unwrap_or(Json::Null))
    }
}

/// The single `{key: value}` of a polkadot.js enum rendering, with the key as given.
fn json_variant(v: &Json) -> Option<(&str, &Json)> {
    match v {
        Json::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        Json::String(s) => Some((s.as_str(), &Json::Null)),
        _ => None,
    }
}

/// Reads a polkadot.js rendering of `AccountVote`.
fn json_account_vote(v: &Json) -> Option<AccountVote> {
    let (name, f) = json_variant(v)?;
    match name.to_ascii_lowercase().as_str() {
        "standard" => {
            let balance = num(f.get("balance")?)?;
            let vote = f.get("vote")?;
            // `Vote` renders as its byte (number or hex) or as {aye, conviction}.
            let (aye, conviction) = match vote {
                Json::Object(o) => {
                    let conviction = match o.get("conviction")? {
                        Json::String(s) => match s.as_str() {
                            "None" => 0,
                            other => other
                                .strip_prefix("Locked")?
                                .strip_suffix('x')?
                                .parse()
                                .ok()?,
                        },
                        other => u8::try_from(num(other)?).ok()?,
                    };
                    (o.get("aye")?.as_bool()?, conviction)
                }
                other => {
                    let byte = u8::try_from(num(other)?).ok()?;
                    (byte & 0x80 != 0, byte & 0x7f)
                }
            };
            Some(AccountVote::Standard {
                aye,
                conviction,
                balance,
            })
        }
        "splitabstain" => Some(AccountVote::SplitAbstain {
            aye: num(f.get("aye")?)?,
            nay: num(f.get("nay")?)?,
            abstain: num(f.get("abstain")?)?,
        }),
        _ => None,
    }
}

/// `proxy` → `Proxy`, `convictionVoting` → `ConvictionVoting`: Sidecar lower-cases the first
/// letter of pallet names; the metadata (and receipts) do not.
fn pallet_name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[async_trait]
impl Transport for SidecarTransport {
    async fn head(&self, finalized: bool) -> Result<(u64, H256), TransportError> {
        let path = if finalized {
            "/blocks/head/header"
        } else {
            "/blocks/head/header?finalized=false"
        };
        let json = self.get_ok(path).await?;
        let number = json
            .get("number")
            .and_then(num)
            .ok_or_else(|| unexpected("head", &json))?;
        let hash = json
            .get("hash")
            .and_then(hash_of)
            .ok_or_else(|| unexpected("head", &json))?;
        Ok((number as u64, hash))
    }

    async fn block_hash(&self, number: u64) -> Result<Option<H256>, TransportError> {
        match self.get(&format!("/blocks/{number}/header")).await? {
            (200, json) => Ok(json.get("hash").and_then(hash_of)),
            (400 | 404, _) => Ok(None),
            (status, json) => Err(unexpected(
                &format!("block {number} header: {status}"),
                &json,
            )),
        }
    }

    async fn find_in_block(
        &self,
        number: u64,
        hash: H256,
    ) -> Result<Option<Included>, TransportError> {
        let found = self
            .find_where(number, |x| x.get("hash").and_then(hash_of) == Some(hash))
            .await?;
        Ok(found.into_iter().next().map(|(_, included)| included))
    }

    async fn find_carrying(
        &self,
        number: u64,
        needle: &[u8],
    ) -> Result<Vec<(H256, Included)>, TransportError> {
        // Sidecar renders byte arguments (a remark) as `0x` hex strings.
        let hex = hex::encode(needle);
        self.find_where(number, |x| {
            x.get("args")
                .is_some_and(|args| args.to_string().contains(&hex))
        })
        .await
    }

    async fn referendum(&self, referendum: u32) -> Result<ReferendumStatus, TransportError> {
        let value = self
            .storage("referenda", "referendumInfoFor", &[referendum.to_string()])
            .await?;
        if value.is_null() {
            return Ok(ReferendumStatus::Unknown);
        }
        let (name, fields) =
            json_variant(&value).ok_or_else(|| unexpected("referendumInfoFor", &value))?;
        if name.eq_ignore_ascii_case("ongoing") {
            let track = fields
                .get("track")
                .and_then(num)
                .and_then(|t| u16::try_from(t).ok())
                .ok_or_else(|| unexpected("referendumInfoFor track", &value))?;
            let submitted = fields
                .get("submitted")
                .and_then(num)
                .and_then(|n| u64::try_from(n).ok());
            Ok(ReferendumStatus::Ongoing { track, submitted })
        } else {
            Ok(ReferendumStatus::Closed(pallet_name(name)))
        }
    }

    async fn current_vote(
        &self,
        real: &AccountId,
        track: u16,
        referendum: u32,
    ) -> Result<Option<AccountVote>, TransportError> {
        let value = self.voting_for(real, track).await?;
        let Some(("casting" | "Casting", fields)) = json_variant(&value) else {
            return Ok(None);
        };
        let votes = fields.get("votes").and_then(Json::as_array);
        Ok(votes.and_then(|votes| {
            votes.iter().find_map(|pair| {
                let pair = pair.as_array()?;
                (num(pair.first()?)? == u128::from(referendum))
                    .then(|| json_account_vote(pair.get(1)?))
                    .flatten()
            })
        }))
    }

    async fn delegate_of(
        &self,
        real: &AccountId,
        track: u16,
    ) -> Result<Option<AccountId>, TransportError> {
        let value = self.voting_for(real, track).await?;
        let Some(("delegating" | "Delegating", fields)) = json_variant(&value) else {
            return Ok(None);
        };
        fields
            .get("target")
            .and_then(Json::as_str)
            .and_then(|a| AccountId::from_ss58(a).ok())
            .map(|(a, _)| Some(a))
            .ok_or_else(|| unexpected("votingFor delegation target", &value))
    }

    async fn proxies(&self, real: &AccountId) -> Result<Vec<ProxyDefinition>, TransportError> {
        let value = self
            .storage("proxy", "proxies", &[real.to_ss58(self.ss58_prefix)])
            .await?;
        // `[[{delegate, proxyType, delay}, …], deposit]`, accounts as SS58.
        let Some(list) = value.get(0).and_then(Json::as_array) else {
            return Ok(Vec::new());
        };
        list.iter()
            .map(|d| {
                let delegate = d
                    .get("delegate")
                    .and_then(Json::as_str)
                    .and_then(|a| AccountId::from_ss58(a).ok())
                    .map(|(a, _)| a);
                let proxy_type = d.get("proxyType").and_then(|t| match t {
                    Json::String(s) => Some(s.clone()),
                    other => json_variant(other).map(|(n, _)| n.to_owned()),
                });
                match (delegate, proxy_type) {
                    (Some(delegate), Some(proxy_type)) => Ok(ProxyDefinition {
                        delegate,
                        proxy_type,
                    }),
                    _ => Err(unexpected("proxies entry", d)),
                }
            })
            .collect()
    }

    async fn material(&self) -> Result<TxMaterial, TransportError> {
        let json = self
            .get_ok("/transaction/material?noMeta=false&metadata=scale")
            .await?;
        let field = |name: &str| json.get(name).ok_or_else(|| unexpected(name, &json));
        let metadata_hex = field("metadata")?
            .as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .ok_or_else(|| unexpected("metadata", &json))?;
        let bytes =
            hex::decode(metadata_hex).map_err(|e| TransportError::Unexpected(e.to_string()))?;
        let metadata = Metadata::decode(&mut &bytes[..])
            .map_err(|e| TransportError::Unexpected(format!("metadata: {e}")))?;
        let u32_of = |name: &str| -> Result<u32, TransportError> {
            field(name)
                .ok()
                .and_then(num)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| unexpected(name, &json))
        };
        Ok(TxMaterial {
            genesis_hash: field("genesisHash")
                .ok()
                .and_then(hash_of)
                .ok_or_else(|| unexpected("genesisHash", &json))?,
            spec_version: u32_of("specVersion")?,
            transaction_version: u32_of("txVersion")?,
            metadata: Arc::new(metadata),
            block_number: json
                .pointer("/at/height")
                .and_then(num)
                .ok_or_else(|| unexpected("at.height", &json))? as u64,
            block_hash: json
                .pointer("/at/hash")
                .and_then(hash_of)
                .ok_or_else(|| unexpected("at.hash", &json))?,
        })
    }

    async fn nonce(&self, account: &AccountId) -> Result<u64, TransportError> {
        let path = format!(
            "/accounts/{}/balance-info",
            account.to_ss58(self.ss58_prefix)
        );
        let json = self.get_ok(&path).await?;
        json.get("nonce")
            .and_then(num)
            .map(|n| n as u64)
            .ok_or_else(|| unexpected("nonce", &json))
    }

    async fn free_balance(&self, account: &AccountId) -> Result<u128, TransportError> {
        let path = format!(
            "/accounts/{}/balance-info",
            account.to_ss58(self.ss58_prefix)
        );
        let json = self.get_ok(&path).await?;
        json.get("free")
            .and_then(num)
            .ok_or_else(|| unexpected("free", &json))
    }

    async fn fee_estimate(&self, tx: &[u8]) -> Result<Option<u128>, TransportError> {
        match self.post("/transaction/fee-estimate", tx).await? {
            (200, json) => Ok(json.get("partialFee").and_then(num)),
            (status, json) => {
                tracing::warn!(status, body = %json, "Sidecar gave no fee estimate");
                Ok(None)
            }
        }
    }

    async fn submit(&self, tx: &[u8]) -> Result<H256, TransportError> {
        match self.post("/transaction", tx).await? {
            (200, json) => json
                .get("hash")
                .and_then(hash_of)
                .ok_or_else(|| unexpected("POST /transaction", &json)),
            (_, json) => {
                let error = json.get("error").and_then(Json::as_str).unwrap_or("error");
                let cause = json
                    .get("cause")
                    .map(|c| {
                        c.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| c.to_string())
                    })
                    .unwrap_or_else(|| json.to_string());
                Err(TransportError::Rejected {
                    cause: format!("{error} {cause}"),
                })
            }
        }
    }
}
