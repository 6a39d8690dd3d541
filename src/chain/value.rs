//! Reading dynamic (`scale_value`) values decoded with the chain's own metadata.
//!
//! The vote code reads a handful of storage items and events whose exact Rust types live in the
//! runtime, not here; they are decoded into [`Value`]s and walked by name, so a runtime upgrade
//! that keeps the names needs no code change. [`to_json`] renders a value the way polkadot.js
//! and Sidecar do (enum variants as `{"Name": fields}`, 32-byte arrays as hex, large numbers as
//! decimal text) for `receipt.json`.

use serde_json::json;
use subxt::ext::scale_value::{Composite, Primitive, ValueDef};

/// A decoded dynamic value.
pub type Value = subxt::dynamic::Value<()>;

/// The variant name and fields of `v`, looking through single-field wrappers.
pub fn variant(v: &Value) -> Option<(&str, &Composite<()>)> {
    match &v.value {
        ValueDef::Variant(var) => Some((var.name.as_str(), &var.values)),
        ValueDef::Composite(c) if c.len() == 1 => variant(c.values().next()?),
        _ => None,
    }
}

/// Field `name` of a named composite (or of the single value it wraps).
pub fn field<'a>(c: &'a Composite<()>, name: &str) -> Option<&'a Value> {
    match c {
        Composite::Named(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        Composite::Unnamed(vals) if vals.len() == 1 => match &vals[0].value {
            ValueDef::Composite(inner) => field(inner, name),
            _ => None,
        },
        Composite::Unnamed(_) => None,
    }
}

/// Field `name` of `v` when `v` is a (possibly wrapped) named composite.
pub fn get<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match &v.value {
        ValueDef::Composite(c) => field(c, name),
        ValueDef::Variant(var) => field(&var.values, name),
        _ => None,
    }
}

/// The unsigned number in `v`, looking through newtype wrappers such as `Vote(u8)`.
pub fn as_u128(v: &Value) -> Option<u128> {
    match &v.value {
        ValueDef::Primitive(p) => p.as_u128(),
        ValueDef::Composite(c) if c.len() == 1 => as_u128(c.values().next()?),
        _ => None,
    }
}

/// The bytes of a byte sequence or array (`[u8; 32]`, `Vec<u8>`, `AccountId32(..)`).
pub fn as_bytes(v: &Value) -> Option<Vec<u8>> {
    match &v.value {
        ValueDef::Composite(c) => {
            let vals: Vec<&Value> = c.values().collect();
            if vals.len() == 1
                && let ValueDef::Composite(_) = vals[0].value
            {
                return as_bytes(vals[0]);
            }
            vals.iter()
                .map(|x| match &x.value {
                    ValueDef::Primitive(Primitive::U128(n)) => u8::try_from(*n).ok(),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// The values of an unnamed composite (a sequence or tuple).
pub fn items(v: &Value) -> Vec<&Value> {
    match &v.value {
        ValueDef::Composite(c) => c.values().collect(),
        _ => Vec::new(),
    }
}

/// Renders `v` as JSON: variants as `{"Name": fields}` (`"Name"` alone when it has none),
/// named composites as objects, byte arrays of 20 or more bytes as `0x` hex, numbers beyond
/// JavaScript's safe integers as decimal text.
pub fn to_json(v: &Value) -> serde_json::Value {
    match &v.value {
        ValueDef::Variant(var) => {
            if var.values.is_empty() {
                json!(var.name)
            } else {
                let mut map = serde_json::Map::new();
                map.insert(var.name.clone(), composite_json(&var.values));
                serde_json::Value::Object(map)
            }
        }
        ValueDef::Composite(c) => composite_json(c),
        ValueDef::BitSequence(bits) => json!(bits.iter().map(u8::from).collect::<Vec<_>>()),
        ValueDef::Primitive(p) => match p {
            Primitive::Bool(b) => json!(b),
            Primitive::Char(c) => json!(c.to_string()),
            Primitive::String(s) => json!(s),
            Primitive::U128(n) if *n <= (1 << 53) => json!(*n as u64),
            Primitive::U128(n) => json!(n.to_string()),
            Primitive::I128(n) if n.unsigned_abs() <= (1 << 53) => json!(*n as i64),
            Primitive::I128(n) => json!(n.to_string()),
            Primitive::U256(b) | Primitive::I256(b) => json!(format!("0x{}", hex::encode(b))),
        },
    }
}

/// The fields of a decoded event as JSON. Events decode as `Pallet(Event { fields })`; the two
/// enum levels are dropped so that receipts hold `{"result": …}`, not `{"Proxy": {…}}`.
pub fn event_fields_json(event: &Value) -> serde_json::Value {
    let fields = variant(event)
        .and_then(|(_, pallet)| pallet.values().next())
        .and_then(|inner| match &inner.value {
            ValueDef::Variant(v) => Some(&v.values),
            _ => None,
        });
    match fields {
        Some(f) => composite_json(f),
        None => to_json(event),
    }
}

fn composite_json(c: &Composite<()>) -> serde_json::Value {
    match c {
        Composite::Named(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(n, v)| (n.clone(), to_json(v)))
                .collect(),
        ),
        Composite::Unnamed(vals) => {
            if vals.len() >= 20
                && let Some(bytes) =
                    as_bytes(&Value::without_context(ValueDef::Composite(c.clone())))
            {
                return json!(format!("0x{}", hex::encode(bytes)));
            }
            match vals.len() {
                0 => serde_json::Value::Null,
                // Newtypes (`AccountId32([u8; 32])`, `Vote(u8)`) render as what they wrap.
                1 => to_json(&vals[0]),
                _ => serde_json::Value::Array(vals.iter().map(to_json).collect()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rendering() {
        let account = Value::unnamed_composite([Value::from_bytes([7u8; 32])]);
        let v = Value::named_variant(
            "Remarked",
            [("sender", account), ("amount", Value::u128(u128::MAX))],
        );
        let j = to_json(&v);
        assert_eq!(
            j["Remarked"]["sender"],
            json!(format!("0x{}", "07".repeat(32)))
        );
        assert_eq!(j["Remarked"]["amount"], json!(u128::MAX.to_string()));
        let ok = Value::unnamed_variant("Ok", [Value::unnamed_composite([])]);
        assert_eq!(to_json(&ok), json!({"Ok": null}));
        assert_eq!(
            as_u128(&Value::unnamed_composite([Value::u128(129)])),
            Some(129)
        );
    }
}
