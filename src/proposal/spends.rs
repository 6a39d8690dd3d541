//! Requested spends: read from Subsquare's `allSpends`, else found in the on-chain call, and
//! summarized with the right decimals per asset.
//!
//! Decimals come from a fixed table for the assets we know (a wrong number of decimals turns a
//! 48,000 USDC request into 4.8 billion, which is exactly the kind of error a juror cannot spot),
//! then from the response's own `decimals`, else the amount is shown raw and marked unknown.

use super::{ProposalError, Spend, type_name};
use crate::network::NetworkSpec;
use serde_json::Value;

/// Decimals of the assets cybergov knows by symbol.
pub const KNOWN_DECIMALS: [(&str, u8); 5] = [
    ("DOT", 10),
    ("KSM", 12),
    ("PAS", 10),
    ("USDC", 6),
    ("USDT", 6),
];

/// Asset Hub asset ids of the stablecoins (`generalIndex` in an asset location).
const ASSET_IDS: [(u64, &str); 2] = [(1337, "USDC"), (1984, "USDT")];

/// The decimals of `symbol`, when it is a known asset.
pub fn known_decimals(symbol: &str) -> Option<u8> {
    KNOWN_DECIMALS
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(symbol))
        .map(|(_, d)| *d)
}

fn parse_amount(field: &str, v: &Value) -> Result<u128, ProposalError> {
    let invalid = |message: String| ProposalError::Invalid {
        field: field.into(),
        message,
    };
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(u128::from)
            .ok_or_else(|| invalid(format!("{n} is not a non-negative integer amount"))),
        Value::String(s) => {
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u128::from_str_radix(hex, 16),
                None => s.replace(',', "").parse(),
            };
            parsed.map_err(|_| invalid(format!("{s:?} is not an integer amount")))
        }
        other => Err(ProposalError::WrongType {
            field: field.into(),
            expected: "integer or integer string",
            found: type_name(other),
        }),
    }
}

/// A beneficiary as text: a plain string, or the first `address`/`id`/`accountId32` string inside.
fn beneficiary_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => ["address", "id", "accountId32", "value"]
            .iter()
            .filter_map(|k| m.get(*k))
            .chain(m.values())
            .find_map(beneficiary_text),
        Value::Array(a) => a.iter().find_map(beneficiary_text),
        _ => None,
    }
}

/// Reads the spends of a Subsquare detail response: `allSpends` when present, else the treasury
/// calls found in `onchainData.proposal.call` (inside batches too).
pub(crate) fn parse_spends(root: &Value, spec: &NetworkSpec) -> Result<Vec<Spend>, ProposalError> {
    match root.get("allSpends") {
        None | Some(Value::Null) => Ok(onchain_spends(root, spec)),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| all_spends_item(i, item, spec))
            .collect(),
        Some(other) => Err(ProposalError::WrongType {
            field: "allSpends".into(),
            expected: "array",
            found: type_name(other),
        }),
    }
}

fn all_spends_item(i: usize, item: &Value, spec: &NetworkSpec) -> Result<Spend, ProposalError> {
    let field = |f: &str| format!("allSpends[{i}].{f}");
    if !item.is_object() {
        return Err(ProposalError::WrongType {
            field: format!("allSpends[{i}]"),
            expected: "object",
            found: type_name(item),
        });
    }
    let amount_v =
        item.get("amount")
            .filter(|v| !v.is_null())
            .ok_or_else(|| ProposalError::Missing {
                field: field("amount"),
            })?;
    let amount = parse_amount(&field("amount"), amount_v)?;
    let symbol = match item.get("symbol") {
        None | Some(Value::Null) => spec.token_symbol.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ProposalError::WrongType {
                field: field("symbol"),
                expected: "string",
                found: type_name(other),
            });
        }
    };
    let stated = match item.get("decimals") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| ProposalError::WrongType {
                    field: field("decimals"),
                    expected: "small integer",
                    found: type_name(v),
                })?,
        ),
    };
    let decimals = if symbol == spec.token_symbol {
        Some(spec.token_decimals)
    } else {
        known_decimals(&symbol).or(stated)
    };
    Ok(Spend {
        symbol,
        amount,
        decimals,
        beneficiary: item.get("beneficiary").and_then(beneficiary_text),
        source: "allSpends".into(),
    })
}

/// Best effort: treasury `spend`/`spendLocal` calls anywhere in the proposal's call tree.
fn onchain_spends(root: &Value, spec: &NetworkSpec) -> Vec<Spend> {
    let mut out = Vec::new();
    if let Some(call) = root.pointer("/onchainData/proposal/call") {
        collect_calls(call, spec, &mut out);
    }
    out
}

fn arg<'a>(call: &'a Value, names: &[&str]) -> Option<&'a Value> {
    call.get("args")?
        .as_array()?
        .iter()
        .find(|a| {
            a.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| names.contains(&n))
        })?
        .get("value")
}

fn general_index(v: &Value) -> Option<u64> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("generalIndex", v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.replace(',', "").parse().ok())),
            _ => general_index(v),
        }),
        Value::Array(a) => a.iter().find_map(general_index),
        _ => None,
    }
}

fn collect_calls(v: &Value, spec: &NetworkSpec, out: &mut Vec<Spend>) {
    match v {
        Value::Object(m) => {
            let section = m.get("section").and_then(Value::as_str);
            let method = m.get("method").and_then(Value::as_str);
            if section == Some("treasury") && matches!(method, Some("spend" | "spendLocal")) {
                if let Some(amount) = arg(v, &["amount"]).and_then(|a| parse_amount("", a).ok()) {
                    let symbol = arg(v, &["assetKind", "asset_kind"])
                        .and_then(general_index)
                        .and_then(|id| ASSET_IDS.iter().find(|(i, _)| *i == id))
                        .map_or_else(|| spec.token_symbol.clone(), |(_, s)| (*s).to_owned());
                    let decimals = if symbol == spec.token_symbol {
                        Some(spec.token_decimals)
                    } else {
                        known_decimals(&symbol)
                    };
                    out.push(Spend {
                        symbol,
                        amount,
                        decimals,
                        beneficiary: arg(v, &["beneficiary"]).and_then(beneficiary_text),
                        source: "onchainData".into(),
                    });
                }
                return;
            }
            m.values().for_each(|v| collect_calls(v, spec, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_calls(v, spec, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use crate::records::augment::summarize;
    use serde_json::json;

    #[test]
    fn decimals_per_asset() {
        let dot = Network::Polkadot.default_spec();
        let ksm = Network::Kusama.default_spec();
        let root = json!({"allSpends": [
            {"amount": "480000000000", "symbol": "USDC"},
            {"amount": 15_000_000_000u64},
            {"amount": "0x3b9aca00", "symbol": "USDT", "beneficiary": {"address": "1abc"}},
        ]});
        let s = summarize(&parse_spends(&root, &dot).unwrap());
        assert_eq!(s[0].formatted, "480000 USDC");
        assert_eq!(s[1].formatted, "1.5 DOT");
        assert_eq!(s[2].formatted, "1000 USDT");
        assert_eq!(s[2].beneficiary.as_deref(), Some("1abc"));
        let k = summarize(
            &parse_spends(&json!({"allSpends": [{"amount": "1500000000000"}]}), &ksm).unwrap(),
        );
        assert_eq!(k[0].formatted, "1.5 KSM");
        let u = summarize(
            &parse_spends(
                &json!({"allSpends": [{"amount": "5", "symbol": "XYZ"}]}),
                &dot,
            )
            .unwrap(),
        );
        assert!(u[0].formatted.contains("decimals unknown"));
    }

    #[test]
    fn errors_name_the_field() {
        let dot = Network::Polkadot.default_spec();
        let e = parse_spends(&json!({"allSpends": [{"amount": true}]}), &dot).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field \"allSpends[0].amount\": expected integer or integer string, found boolean"
        );
        let e = parse_spends(&json!({"allSpends": {}}), &dot).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"allSpends\": expected array, found object")
        );
    }

    #[test]
    fn onchain_fallback_finds_nested_treasury_calls() {
        let dot = Network::Polkadot.default_spec();
        let root = json!({"allSpends": null, "onchainData": {"proposal": {"call": {
            "section": "utility", "method": "batchAll", "args": [{"name": "calls", "value": [
                {"section": "treasury", "method": "spend", "args": [
                    {"name": "assetKind", "value": {"v4": {"assetId": {"parents": 0, "interior": {"x2": [{"palletInstance": 50}, {"generalIndex": 1984}]}}}}},
                    {"name": "amount", "value": "25000000000"},
                    {"name": "beneficiary", "value": {"v4": {"interior": {"x1": [{"accountId32": {"id": "0xabcd"}}]}}}}
                ]},
                {"section": "treasury", "method": "spendLocal", "args": [{"name": "amount", "value": 20_000_000_000u64}]}
            ]}]
        }}}});
        let s = summarize(&parse_spends(&root, &dot).unwrap());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].formatted, "25000 USDT");
        assert_eq!(s[0].beneficiary.as_deref(), Some("0xabcd"));
        assert_eq!(s[1].formatted, "2 DOT");
    }
}
