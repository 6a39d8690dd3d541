//! A Substrate API Sidecar test double: Sidecar's JSON shapes and errors over real runtime
//! metadata (Asset Hub Polkadot from `@polkadot/types-support`).
//!
//! `POST /transaction` decodes the transaction with that metadata (a malformed one gets
//! Sidecar's 400 `Failed to submit transaction.` with a cause), checks the signer can pay, and
//! "includes" it in a new block whose extrinsic carries Sidecar-shaped events — the
//! `ProxyExecuted` result can be scripted to fail. Referenda and balances are set by the test.

// Handlers answer `Result<Response, Response>`, axum's idiom for early error replies.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cybergov::account::AccountId;
use cybergov::chain::outcome::blake2_256;
use cybergov::chain::tx::{self, TxMaterial};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The chain the double pretends to be.
pub struct SidecarState {
    /// Signing material it hands out (its metadata decodes what is posted).
    pub material: TxMaterial,
    /// The metadata bytes served in `/transaction/material`.
    pub metadata_hex: String,
    /// SS58 prefix of addresses in paths.
    pub ss58_prefix: u16,
    /// Mutable chain state.
    pub chain: Mutex<FakeChain>,
}

/// The double's chain state.
#[derive(Default)]
pub struct FakeChain {
    /// Best (= finalized) block number.
    pub head: u64,
    /// Blocks by number (Sidecar `/blocks/{n}` JSON).
    pub blocks: HashMap<u64, Value>,
    /// Nonces by SS58 address.
    pub nonces: HashMap<String, u64>,
    /// Free balances by SS58 address (absent: 0).
    pub free: HashMap<String, u128>,
    /// `referendumInfoFor` values by referendum (polkadot.js JSON).
    pub referenda: HashMap<u32, Value>,
    /// `votingFor` values by (SS58, class).
    pub voting: HashMap<(String, u16), Value>,
    /// Every transaction accepted by `POST /transaction`.
    pub accepted: Vec<String>,
    /// Every `POST /transaction` body's `tx`, accepted or not.
    pub posted: Vec<String>,
    /// When set, `POST /transaction` answers 400 with this cause.
    pub reject_cause: Option<String>,
    /// When set, `ProxyExecuted` carries `{"err": this}`.
    pub proxy_error: Option<Value>,
    /// When set, every request answers with this status (e.g. 503).
    pub down: Option<u16>,
}

/// A running double.
pub struct SidecarServer {
    /// Base URL.
    pub url: String,
    /// Its state.
    pub state: Arc<SidecarState>,
}

fn block_hash(n: u64) -> String {
    format!("0x{}", hex::encode(blake2_256(&n.to_le_bytes())))
}

fn header(n: u64) -> Value {
    json!({"number": n.to_string(), "hash": block_hash(n), "parentHash": block_hash(n.saturating_sub(1))})
}

type Reply = Result<Response, Response>;

fn check_up(s: &SidecarState) -> Result<(), Response> {
    match s.chain.lock().unwrap().down {
        Some(code) => Err((
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"code": code, "message": "service unavailable"})),
        )
            .into_response()),
        None => Ok(()),
    }
}

async fn get_material(State(s): State<Arc<SidecarState>>) -> Reply {
    check_up(&s)?;
    let head = s.chain.lock().unwrap().head;
    Ok(Json(json!({
        "at": {"hash": block_hash(head), "height": head.to_string()},
        "genesisHash": format!("0x{}", hex::encode(s.material.genesis_hash.0)),
        "chainName": "Polkadot Asset Hub",
        "specName": "statemint",
        "specVersion": s.material.spec_version.to_string(),
        "txVersion": s.material.transaction_version.to_string(),
        "metadata": s.metadata_hex,
    }))
    .into_response())
}

async fn balance_info(State(s): State<Arc<SidecarState>>, Path(id): Path<String>) -> Reply {
    check_up(&s)?;
    if AccountId::from_ss58(&id).is_err() {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 400, "error": "Invalid address", "message": format!("{id} is not a valid address")})),
        )
            .into_response());
    }
    let c = s.chain.lock().unwrap();
    Ok(Json(json!({
        "at": {"hash": block_hash(c.head), "height": c.head.to_string()},
        "nonce": c.nonces.get(&id).copied().unwrap_or(0).to_string(),
        "tokenSymbol": "DOT",
        "free": c.free.get(&id).copied().unwrap_or(0).to_string(),
        "reserved": "0",
        "frozen": "0",
        "locks": [],
    }))
    .into_response())
}

async fn head_header(State(s): State<Arc<SidecarState>>) -> Reply {
    check_up(&s)?;
    let head = s.chain.lock().unwrap().head;
    Ok(Json(header(head)).into_response())
}

fn no_block(n: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": 400, "error": format!("Specified block number {n} is larger than the current largest block")})),
    )
        .into_response()
}

async fn block_header(State(s): State<Arc<SidecarState>>, Path(n): Path<String>) -> Reply {
    check_up(&s)?;
    let head = s.chain.lock().unwrap().head;
    match n.parse::<u64>() {
        Ok(n) if n <= head => Ok(Json(header(n)).into_response()),
        _ => Err(no_block(&n)),
    }
}

async fn block(State(s): State<Arc<SidecarState>>, Path(n): Path<String>) -> Reply {
    check_up(&s)?;
    let c = s.chain.lock().unwrap();
    match n.parse::<u64>() {
        Ok(num) if num <= c.head => Ok(Json(c.blocks.get(&num).cloned().unwrap_or_else(|| {
            let mut b = header(num);
            b["extrinsics"] = json!([]);
            b
        }))
        .into_response()),
        _ => Err(no_block(&n)),
    }
}

fn keys(query: &Option<String>) -> Vec<String> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| {
            kv.strip_prefix("keys[]=")
                .or_else(|| kv.strip_prefix("keys%5B%5D="))
        })
        .map(str::to_owned)
        .collect()
}

async fn storage(
    State(s): State<Arc<SidecarState>>,
    Path((pallet, item)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Reply {
    check_up(&s)?;
    let keys = keys(&query);
    let c = s.chain.lock().unwrap();
    let value = match (pallet.as_str(), item.as_str(), &keys[..]) {
        ("referenda", "referendumInfoFor", [id]) => id
            .parse()
            .ok()
            .and_then(|id: u32| c.referenda.get(&id).cloned())
            .unwrap_or(Value::Null),
        ("convictionVoting", "votingFor", [who, class]) => class
            .parse()
            .ok()
            .and_then(|class: u16| c.voting.get(&(who.clone(), class)).cloned())
            .unwrap_or(json!({"casting": {"votes": [], "delegations": {"votes": "0", "capital": "0"}, "prior": [0, "0"]}})),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                Json(json!({"code": 400, "message": format!("unknown storage item {pallet}.{item}")})),
            )
                .into_response());
        }
    };
    Ok(Json(json!({
        "at": {"hash": block_hash(c.head), "height": c.head.to_string()},
        "pallet": pallet, "palletIndex": "0", "storageItem": item, "keys": keys, "value": value,
    }))
    .into_response())
}

fn failed(tx: &str, cause: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "code": 400,
            "error": "Failed to submit transaction.",
            "transaction": tx,
            "cause": cause,
            "stack": format!("Error: {cause}\n    at TransactionSubmitService.submitTransaction"),
        })),
    )
        .into_response()
}

fn tx_bytes(body: &Value) -> Option<(String, Vec<u8>)> {
    let tx = body.get("tx")?.as_str()?.to_owned();
    let bytes = hex::decode(tx.strip_prefix("0x")?).ok()?;
    Some((tx, bytes))
}

async fn fee_estimate(State(s): State<Arc<SidecarState>>, Json(body): Json<Value>) -> Reply {
    check_up(&s)?;
    match tx_bytes(&body) {
        Some((_, bytes)) => Ok(Json(json!({
            "weight": {"refTime": "1000000", "proofSize": "1000"},
            "class": "Normal",
            "partialFee": (1_000_000 + bytes.len() as u128 * 1_000).to_string(),
        }))
        .into_response()),
        None => Err(failed("", "Unable to fetch fee info")),
    }
}

async fn submit(State(s): State<Arc<SidecarState>>, Json(body): Json<Value>) -> Reply {
    check_up(&s)?;
    let Some((tx, bytes)) = tx_bytes(&body) else {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 400, "error": "Missing field `tx` on request body."})),
        )
            .into_response());
    };
    s.chain.lock().unwrap().posted.push(tx.clone());
    if let Some(cause) = s.chain.lock().unwrap().reject_cause.clone() {
        return Err(failed(&tx, &cause));
    }
    let decoded = match tx::decode(&s.material, &bytes).await {
        Ok(d) => d,
        Err(e) => return Err(failed(&tx, &format!("createType(Extrinsic):: {e}"))),
    };
    let hash = format!("0x{}", hex::encode(blake2_256(&bytes)));
    let signer = decoded.signer.to_ss58(s.ss58_prefix);
    let mut c = s.chain.lock().unwrap();
    if c.accepted.contains(&tx) {
        return Err(failed(&tx, "1013: Transaction Already Imported"));
    }
    if c.free.get(&signer).copied().unwrap_or(0) == 0 {
        return Err(failed(
            &tx,
            "1010: Invalid Transaction: Inability to pay some fees , e.g. account balance too low",
        ));
    }
    c.accepted.push(tx);
    *c.nonces.entry(signer.clone()).or_insert(0) += 1;
    let proxy_result = match &c.proxy_error {
        Some(err) => json!({"err": err}),
        None => json!({"ok": []}),
    };
    let call = &decoded.call;
    let mut events = vec![
        json!({"method": {"pallet": "proxy", "method": "ProxyExecuted"}, "data": [proxy_result]}),
    ];
    if c.proxy_error.is_none() {
        let real = call.real.to_ss58(s.ss58_prefix);
        let track = c
            .referenda
            .get(&call.referendum)
            .and_then(|r| r.pointer("/ongoing/track"))
            .and_then(|t| {
                t.as_str()
                    .and_then(|t| t.parse().ok())
                    .or_else(|| t.as_u64().map(|t| t as u16))
            })
            .unwrap_or(0);
        let vote = match call.vote {
            cybergov::chain::call::AccountVote::Standard {
                aye,
                conviction,
                balance,
            } => json!({"standard": {
                "vote": {"aye": aye, "conviction": if conviction == 0 { "None".to_owned() } else { format!("Locked{conviction}x") }},
                "balance": balance.to_string(),
            }}),
            cybergov::chain::call::AccountVote::SplitAbstain { aye, nay, abstain } => {
                json!({"splitAbstain": {
                    "aye": aye.to_string(), "nay": nay.to_string(), "abstain": abstain.to_string(),
                }})
            }
        };
        c.voting.insert(
            (real, track),
            json!({"casting": {"votes": [[call.referendum.to_string(), vote]], "delegations": {"votes": "0", "capital": "0"}, "prior": [0, "0"]}}),
        );
        events.push(json!({"method": {"pallet": "convictionVoting", "method": "Voted"}, "data": [call.real.to_ss58(s.ss58_prefix), {}]}));
    }
    events.push(
        json!({"method": {"pallet": "system", "method": "Remarked"}, "data": [
            signer, format!("0x{}", hex::encode(blake2_256(call.remark.as_bytes())))
        ]}),
    );
    events.push(json!({"method": {"pallet": "system", "method": "ExtrinsicSuccess"}, "data": [{"weight": {"refTime": "1", "proofSize": "1"}, "class": "Normal", "paysFee": "Yes"}]}));
    c.head += 1;
    let n = c.head;
    let mut b = header(n);
    b["extrinsics"] = json!([
        {"method": {"pallet": "timestamp", "method": "set"}, "hash": format!("0x{}", "00".repeat(32)), "events": [], "success": true},
        {"method": {"pallet": "utility", "method": "batchAll"}, "hash": hash, "events": events, "success": true, "paysFee": true,
         "args": {"calls": [
             {"method": {"pallet": "proxy", "method": "proxy"}, "args": {"real": {"id": call.real.to_ss58(s.ss58_prefix)}, "forceProxyType": null, "call": {"method": {"pallet": "convictionVoting", "method": "vote"}, "args": {"pollIndex": call.referendum.to_string()}}}},
             {"method": {"pallet": "system", "method": "remarkWithEvent"}, "args": {"remark": format!("0x{}", hex::encode(call.remark.as_bytes()))}},
         ]}},
    ]);
    c.blocks.insert(n, b);
    Ok(Json(json!({"hash": hash})).into_response())
}

/// Starts the double on a loopback port, at block 100, pretending to be the runtime of
/// `material`.
pub async fn spawn_sidecar(
    material: TxMaterial,
    metadata: &[u8],
    ss58_prefix: u16,
) -> SidecarServer {
    let state = Arc::new(SidecarState {
        material,
        metadata_hex: format!("0x{}", hex::encode(metadata)),
        ss58_prefix,
        chain: Mutex::new(FakeChain {
            head: 100,
            ..FakeChain::default()
        }),
    });
    let app = Router::new()
        .route("/transaction/material", get(get_material))
        .route("/transaction", post(submit))
        .route("/transaction/fee-estimate", post(fee_estimate))
        .route("/accounts/{id}/balance-info", get(balance_info))
        .route("/blocks/head/header", get(head_header))
        .route("/blocks/{n}/header", get(block_header))
        .route("/blocks/{n}", get(block))
        .route("/pallets/{pallet}/storage/{item}", get(storage))
        .with_state(state.clone());
    let url = super::serve_on_loopback(app).await;
    SidecarServer { url, state }
}
