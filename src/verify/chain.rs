//! The chain check, through Substrate API Sidecar's `GET /blocks/{blockId}`.
//!
//! Sidecar renders calls as `{method: {pallet, method}, args}` with polkadot-js names (camelCase
//! pallets, methods and argument names: `utility.batchAll`, `proxy.proxy` with `real`,
//! `forceProxyType`, `call`; `convictionVoting.vote` with `pollIndex`, `vote`;
//! `system.remarkWithEvent` with `remark` as `0x` hex). Numbers come as decimal strings. An
//! `AccountVote` is an enum object: `{"standard": {"vote": "0x81", "balance": "…"}}` (the vote
//! byte: 0x80 = aye, low bits = conviction) or `{"splitAbstain": {"aye", "nay", "abstain"}}`.

use super::check;
use crate::chain::call::AccountVote;
use crate::chain::receipt::Receipt;
use crate::hash::Sha256Hash;
use crate::manifest::verify::Check;
use crate::network::Network;
use serde_json::Value;
use std::time::Duration;

/// What the chain must show for this run.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Network.
    pub network: Network,
    /// Referendum (the poll index).
    pub referendum: u32,
    /// Run.
    pub run: u32,
    /// The manifest's hash.
    pub manifest_sha256: Sha256Hash,
}

/// The vote vote.json asks for: AYE/NAY as `Standard` with its conviction and balance,
/// ABSTAIN as `SplitAbstain { 0, 0, balance }`.
pub fn vote_from_vote_json(bytes: &[u8]) -> Result<AccountVote, String> {
    let record: crate::magi::tally::VoteRecord =
        serde_json::from_slice(bytes).map_err(|e| format!("vote.json: {e}"))?;
    AccountVote::from_record(&record).map_err(|e| format!("vote.json: {e}"))
}

/// A number as Sidecar writes it: a decimal string, `0x` hex, or a JSON number.
fn number(v: &Value) -> Option<u128> {
    match v {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(hex) => u128::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// An enum variant name as Sidecar writes it (camelCase), for case-insensitive matching.
fn variant<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Reads an `AccountVote` as Sidecar renders it.
pub fn vote_from_sidecar(v: &Value) -> Result<AccountVote, String> {
    let amount = |v: &Value, field: &str| {
        number(&v[field]).ok_or_else(|| format!("{field} is not an amount: {}", v[field]))
    };
    if let Some(s) = variant(v, "standard") {
        let byte = match &s["vote"] {
            obj @ Value::Object(_) => {
                let aye = obj["aye"].as_bool().ok_or("vote.aye is not a bool")?;
                let conviction = match &obj["conviction"] {
                    Value::String(c) => conviction_from_name(c)?,
                    other => number(other)
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or("vote.conviction is not a conviction")?,
                };
                (if aye { 0x80 } else { 0 }) | conviction
            }
            other => number(other)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("vote byte {other} is not one byte"))?,
        };
        return Ok(AccountVote::Standard {
            aye: byte & 0x80 != 0,
            conviction: byte & 0x7f,
            balance: amount(s, "balance")?,
        });
    }
    if let Some(s) = variant(v, "splitAbstain") {
        return Ok(AccountVote::SplitAbstain {
            aye: amount(s, "aye")?,
            nay: amount(s, "nay")?,
            abstain: amount(s, "abstain")?,
        });
    }
    if variant(v, "split").is_some() {
        return Err(format!("a Split vote, which cybergov never casts: {v}"));
    }
    Err(format!("unknown AccountVote shape {v}"))
}

fn conviction_from_name(name: &str) -> Result<u8, String> {
    match name {
        "None" => Ok(0),
        _ => name
            .strip_prefix("Locked")
            .and_then(|r| r.strip_suffix('x'))
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=6).contains(n))
            .ok_or_else(|| format!("unknown conviction {name:?}")),
    }
}

fn is_call(call: &Value, pallet: &str, method: &str) -> bool {
    call["method"]["pallet"].as_str() == Some(pallet)
        && call["method"]["method"].as_str() == Some(method)
}

fn call_name(call: &Value) -> String {
    format!(
        "{}.{}",
        call["method"]["pallet"].as_str().unwrap_or("?"),
        call["method"]["method"].as_str().unwrap_or("?")
    )
}

/// Decodes `0x…` remark bytes as text (lossy: a foreign remark still shows).
fn remark_text(v: &Value) -> Option<String> {
    let hex = v.as_str()?.strip_prefix("0x")?;
    hex::decode(hex)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Fetches `GET {sidecar}/blocks/{n}`.
async fn fetch_block(sidecar: &str, number: u64) -> Result<Value, String> {
    let url = format!("{}/blocks/{number}", sidecar.trim_end_matches('/'));
    let client = crate::http::client_builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// The chain checks of one run: `receipt`, `extrinsic`, `remark`, `vote on chain`.
pub async fn check_chain(
    sidecar: Option<&str>,
    expected: &Expected,
    receipt_bytes: &[u8],
    vote_json: Result<&[u8], String>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let remark = crate::chain::remark_text(
        expected.network,
        expected.referendum,
        expected.run,
        &expected.manifest_sha256,
    );
    let receipt: Receipt = match serde_json::from_slice(receipt_bytes) {
        Ok(r) => r,
        Err(e) => {
            out.push(check(
                false,
                "receipt",
                format!("receipt.json is invalid: {e}"),
            ));
            return out;
        }
    };
    let mut problems = Vec::new();
    if (receipt.network, receipt.referendum, receipt.run)
        != (expected.network, expected.referendum, expected.run)
    {
        problems.push(format!(
            "it is for {} #{} run {}",
            receipt.network, receipt.referendum, receipt.run
        ));
    }
    if receipt.manifest_sha256 != expected.manifest_sha256 {
        problems.push(format!(
            "it records manifest {}, the manifest hashes to {}",
            receipt.manifest_sha256, expected.manifest_sha256
        ));
    }
    if receipt.remark != remark {
        problems.push(format!("its remark is {:?}", receipt.remark));
    }
    out.push(if problems.is_empty() {
        check(
            true,
            "receipt",
            format!(
                "extrinsic {} in block {}",
                receipt.extrinsic_hash, receipt.block_number
            ),
        )
    } else {
        check(false, "receipt", problems.join("; "))
    });

    let Some(sidecar) = sidecar else {
        out.push(check(
            false,
            "extrinsic",
            format!(
                "no Sidecar URL for {}: give --sidecar or set networks.{}.sidecar_url",
                expected.network, expected.network
            ),
        ));
        return out;
    };
    let block = match fetch_block(sidecar, receipt.block_number).await {
        Ok(b) => b,
        Err(e) => {
            out.push(check(false, "extrinsic", e));
            return out;
        }
    };
    let want = &receipt.block_hash;
    if block["hash"].as_str() != Some(want.as_str()) {
        out.push(check(
            false,
            "extrinsic",
            format!(
                "block {} has hash {}, receipt.json records {want}",
                receipt.block_number, block["hash"]
            ),
        ));
        return out;
    }
    let extrinsics = block["extrinsics"].as_array().cloned().unwrap_or_default();
    let Some((index, xt)) = extrinsics
        .iter()
        .enumerate()
        .find(|(_, x)| x["hash"].as_str() == Some(receipt.extrinsic_hash.as_str()))
    else {
        out.push(check(
            false,
            "extrinsic",
            format!(
                "block {} has no extrinsic {}",
                receipt.block_number, receipt.extrinsic_hash
            ),
        ));
        return out;
    };
    let calls = xt["args"]["calls"].as_array().cloned().unwrap_or_default();
    let shape_ok = is_call(xt, "utility", "batchAll") && calls.len() == 2;
    if xt["success"].as_bool() != Some(true) || !shape_ok {
        out.push(check(
            false,
            "extrinsic",
            format!(
                "extrinsic {index} of block {} is {} with {} calls, success {}; expected a successful utility.batchAll of 2 calls",
                receipt.block_number,
                call_name(xt),
                calls.len(),
                xt["success"]
            ),
        ));
        return out;
    }
    out.push(check(
        true,
        "extrinsic",
        format!(
            "{} is extrinsic {index} of block {}, a successful utility.batchAll",
            receipt.extrinsic_hash, receipt.block_number
        ),
    ));

    // The remark: the batch's second call.
    let remark_call = &calls[1];
    out.push(
        match (
            is_call(remark_call, "system", "remarkWithEvent"),
            remark_text(&remark_call["args"]["remark"]),
        ) {
            (true, Some(text)) if text == remark => check(
                true,
                "remark",
                format!("{text:?} carries the manifest hash"),
            ),
            (true, Some(text)) => check(
                false,
                "remark",
                format!("the chain's remark is {text:?}, expected {remark:?}"),
            ),
            _ => check(
                false,
                "remark",
                format!(
                    "the batch's second call is {}, not system.remarkWithEvent with hex bytes",
                    call_name(remark_call)
                ),
            ),
        },
    );

    // The vote: the batch's first call, through the proxy (or direct when no proxy is used).
    out.push(check_vote(&calls[0], xt, expected, &receipt, vote_json));
    out
}

fn check_vote(
    first: &Value,
    xt: &Value,
    expected: &Expected,
    receipt: &Receipt,
    vote_json: Result<&[u8], String>,
) -> Check {
    let name = "vote on chain";
    let want = match vote_json.and_then(vote_from_vote_json) {
        Ok(v) => v,
        Err(e) => return check(false, name, e),
    };
    let vote_call = if is_call(first, "proxy", "proxy") {
        {
            let real = &receipt.real;
            let on_chain = &first["args"]["real"];
            let matches = on_chain.as_str() == Some(real)
                || variant(on_chain, "id").and_then(Value::as_str) == Some(real);
            if !matches {
                return check(
                    false,
                    name,
                    format!("the proxy voted for {on_chain}, receipt.json names {real}"),
                );
            }
        }
        &first["args"]["call"]
    } else {
        first
    };
    if !is_call(vote_call, "convictionVoting", "vote") {
        return check(
            false,
            name,
            format!(
                "the batch's first call is {}, not convictionVoting.vote (through proxy.proxy)",
                call_name(vote_call)
            ),
        );
    }
    let poll = number(&vote_call["args"]["pollIndex"]);
    if poll != Some(u128::from(expected.referendum)) {
        return check(
            false,
            name,
            format!(
                "the vote is on poll {}, not referendum {}",
                vote_call["args"]["pollIndex"], expected.referendum
            ),
        );
    }
    // A failed inner call does not fail the batch: Proxy.ProxyExecuted carries its result.
    let events = xt["events"].as_array().cloned().unwrap_or_default();
    if let Some(err) = events
        .iter()
        .filter(|e| is_call(e, "proxy", "ProxyExecuted"))
        .find_map(|e| variant(&e["data"][0], "err"))
    {
        return check(
            false,
            name,
            format!("the proxied vote failed on chain: {err}"),
        );
    }
    match vote_from_sidecar(&vote_call["args"]["vote"]) {
        Ok(got) if got == want => check(
            true,
            name,
            format!(
                "{} on referendum {} matches vote.json",
                got.describe(),
                expected.referendum
            ),
        ),
        Ok(got) => check(
            false,
            name,
            format!(
                "the chain has {}, vote.json asks for {}",
                got.describe(),
                want.describe()
            ),
        ),
        Err(e) => check(false, name, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sidecar_vote_shapes() {
        let std = json!({"standard": {"vote": "0x81", "balance": "1000"}});
        assert_eq!(
            vote_from_sidecar(&std).unwrap(),
            AccountVote::Standard {
                aye: true,
                conviction: 1,
                balance: 1000
            }
        );
        let human =
            json!({"Standard": {"vote": {"aye": false, "conviction": "Locked3x"}, "balance": 5}});
        assert_eq!(
            vote_from_sidecar(&human).unwrap(),
            AccountVote::Standard {
                aye: false,
                conviction: 3,
                balance: 5
            }
        );
        let abstain = json!({"splitAbstain": {"aye": "0", "nay": "0", "abstain": "7"}});
        assert_eq!(
            vote_from_sidecar(&abstain).unwrap(),
            AccountVote::SplitAbstain {
                aye: 0,
                nay: 0,
                abstain: 7
            }
        );
        let split = json!({"split": {"aye": "1", "nay": "2"}});
        assert!(
            vote_from_sidecar(&split)
                .unwrap_err()
                .contains("never casts")
        );
    }
}
