//! Canonical JSON (RFC 8785 / JCS for the subset the project uses).
//!
//! The manifest is hashed as *bytes*, and anyone re-serializing it must get the same bytes, in
//! any language. So: object keys sorted by their UTF-16 code units, no whitespace, strings with
//! the minimal JSON escapes (which is what serde_json writes), integers only. Floats are refused
//! rather than formatted, because float-to-text rules differ between libraries and a manifest
//! has no need for them.

use serde::Serialize;
use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// The value did not serialize to JSON.
    #[error("cannot serialize to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A non-integer number was found at this JSON path.
    #[error("non-integer number {value} at {path}: canonical manifests hold integers only")]
    Float {
        /// JSON pointer to the number.
        path: String,
        /// The number.
        value: String,
    },
}

/// Serializes `value` as canonical JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(1024);
    write(&value, &mut out, &mut String::new())?;
    Ok(out)
}

fn write(v: &Value, out: &mut Vec<u8>, path: &mut String) -> Result<(), CanonicalError> {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => {
            serde_json::to_writer(&mut *out, v)?;
        }
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(CanonicalError::Float {
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.clone()
                    },
                    value: n.to_string(),
                });
            }
            serde_json::to_writer(&mut *out, n)?;
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push_str(&format!("/{i}"));
                write(item, out, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // JCS orders by UTF-16 code units, which differs from byte order only outside the
            // Basic Multilingual Plane; doing it properly costs nothing.
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                let len = path.len();
                path.push('/');
                path.push_str(k);
                write(val, out, path)?;
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let a = json!({"b": 1, "a": [true, null, {"d": "x", "c": -2}]});
        assert_eq!(
            String::from_utf8(to_vec(&a).unwrap()).unwrap(),
            r#"{"a":[true,null,{"c":-2,"d":"x"}],"b":1}"#
        );
    }

    #[test]
    fn strings_use_minimal_escapes_and_raw_utf8() {
        let v = json!({"t": "é\u{1F600}\"\\\n\u{1}/"});
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            "{\"t\":\"é\u{1F600}\\\"\\\\\\n\\u0001/\"}"
        );
    }

    #[test]
    fn utf16_key_order() {
        // U+FF61 sorts after U+1F600 in UTF-8 byte order but before it in UTF-16.
        let v = json!({"\u{1F600}": 1, "\u{FF61}": 2});
        let s = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        assert!(s.find('\u{1F600}').unwrap() < s.find('\u{FF61}').unwrap());
    }

    #[test]
    fn floats_are_refused_with_their_path() {
        let e = to_vec(&json!({"a": [1, 2.5]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "non-integer number 2.5 at /a/1: canonical manifests hold integers only"
        );
    }
}
