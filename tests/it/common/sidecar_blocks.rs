//! A stand-in for Substrate API Sidecar's `GET /blocks/{blockId}`, in Sidecar's JSON shape:
//! `{number, hash, parentHash, …, extrinsics: [{method: {pallet, method}, signature, nonce,
//! args, tip, hash, info, era, events: [{method: {pallet, method}, data}], success, paysFee}]}`.
//!
//! Calls are rendered the way Sidecar renders them (polkadot-js names: camelCase pallets,
//! methods and argument names; numbers as decimal strings; `Option` as value or null; enums as
//! `{variantInCamelCase: value}`; `Bytes` as `0x` hex; the conviction `Vote` byte as `0x` hex).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A running stand-in.
pub struct SidecarBlocks {
    /// Base URL.
    pub url: String,
    /// Blocks by number.
    pub blocks: Arc<Mutex<BTreeMap<u64, Value>>>,
}

impl SidecarBlocks {
    /// Serves `block` under its `number`.
    pub fn insert(&self, block: Value) {
        let n: u64 = block["number"].as_str().unwrap().parse().unwrap();
        self.blocks.lock().unwrap().insert(n, block);
    }
}

async fn block(
    State(blocks): State<Arc<Mutex<BTreeMap<u64, Value>>>>,
    Path(id): Path<String>,
) -> Response {
    let found = blocks.lock().unwrap().iter().find_map(|(n, b)| {
        (n.to_string() == id || b["hash"].as_str() == Some(id.as_str())).then(|| b.clone())
    });
    match found {
        Some(b) => axum::Json(b).into_response(),
        // Sidecar answers an unknown block with a 400 and an error object.
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"code": 400, "error": "Invalid block", "message": format!("no block {id}")}),
            ),
        )
            .into_response(),
    }
}

/// Starts the stand-in on an ephemeral loopback port.
pub async fn spawn_sidecar_blocks() -> SidecarBlocks {
    let blocks = Arc::new(Mutex::new(BTreeMap::new()));
    let app = Router::new()
        .route("/blocks/{id}", get(block))
        .with_state(blocks.clone());
    let url = super::serve_on_loopback(app).await;
    SidecarBlocks { url, blocks }
}

/// A call as Sidecar renders it.
pub fn call(pallet: &str, method: &str, args: Value) -> Value {
    json!({"method": {"pallet": pallet, "method": method}, "args": args})
}

/// An event as Sidecar renders it.
pub fn event(pallet: &str, method: &str, data: Value) -> Value {
    json!({"method": {"pallet": pallet, "method": method}, "data": data})
}

/// `AccountVote::Standard` as Sidecar renders it: the vote byte (0x80 = aye | conviction) as hex.
pub fn standard_vote(aye: bool, conviction: u8, balance: &str) -> Value {
    let byte = if aye { 0x80 } else { 0 } | conviction;
    json!({"standard": {"vote": format!("0x{byte:02x}"), "balance": balance}})
}

/// `AccountVote::SplitAbstain` as Sidecar renders it.
pub fn split_abstain_vote(balance: &str) -> Value {
    json!({"splitAbstain": {"aye": "0", "nay": "0", "abstain": balance}})
}

/// The vote extrinsic: `Utility.batch_all([Proxy.proxy(real, Some(Governance),
/// ConvictionVoting.vote(poll, vote)), System.remark_with_event(remark)])`, signed by `signer`,
/// with its events, successful.
pub fn vote_extrinsic(
    hash: &str,
    signer: &str,
    real: &str,
    poll: u32,
    vote: Value,
    remark: &str,
) -> Value {
    let remark_hex = format!("0x{}", hex::encode(remark.as_bytes()));
    json!({
        "method": {"pallet": "utility", "method": "batchAll"},
        "signature": {"signature": format!("0x{}", "ab".repeat(64)), "signer": {"id": signer}},
        "nonce": "7",
        "args": {"calls": [
            call("proxy", "proxy", json!({
                "real": {"id": real},
                "forceProxyType": "Governance",
                "call": call("convictionVoting", "vote", json!({"pollIndex": poll.to_string(), "vote": vote})),
            })),
            call("system", "remarkWithEvent", json!({"remark": remark_hex})),
        ]},
        "tip": "0",
        "hash": hash,
        "info": {},
        "era": {"mortalEra": ["64", "12"]},
        "events": [
            event("balances", "Withdraw", json!([signer, "1570000000"])),
            event("proxy", "ProxyExecuted", json!([{"ok": null}])),
            event("system", "Remarked", json!([signer, format!("0x{}", "cd".repeat(32))])),
            event("utility", "BatchCompleted", json!([])),
            event("system", "ExtrinsicSuccess", json!([{"dispatchInfo": {"weight": {"refTime": "1000", "proofSize": "100"}, "class": "Normal", "paysFee": "Yes"}}])),
        ],
        "success": true,
        "paysFee": true,
    })
}

/// A block holding a timestamp inherent and then `extrinsics`.
pub fn block_with(number: u64, hash: &str, extrinsics: Vec<Value>) -> Value {
    let mut all = vec![json!({
        "method": {"pallet": "timestamp", "method": "set"},
        "signature": null, "nonce": null, "args": {"now": "1763800000000"}, "tip": null,
        "hash": format!("0x{}", "11".repeat(32)), "info": {}, "era": {"immortalEra": "0x00"},
        "events": [event("system", "ExtrinsicSuccess", json!([{}]))],
        "success": true, "paysFee": false,
    })];
    all.extend(extrinsics);
    json!({
        "number": number.to_string(),
        "hash": hash,
        "parentHash": format!("0x{}", "22".repeat(32)),
        "stateRoot": format!("0x{}", "33".repeat(32)),
        "extrinsicsRoot": format!("0x{}", "44".repeat(32)),
        "authorId": null,
        "logs": [],
        "onInitialize": {"events": []},
        "extrinsics": all,
        "onFinalize": {"events": []},
        "finalized": true,
    })
}
