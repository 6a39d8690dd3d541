//! Reading the vote's events: did the vote and the remark really happen?
//!
//! `batch_all` succeeds even when the proxied vote fails: `Proxy.proxy` reports the inner
//! call's result in `Proxy.ProxyExecuted`, not as its own failure. So success means all of: no
//! `System.ExtrinsicFailed`, a `Proxy.ProxyExecuted` whose result is `Ok`, and a
//! `System.Remarked` whose hash is the BLAKE2-256 of our remark.

pub use crate::records::receipt::EventRecord;
use blake2::Blake2b;
use blake2::Digest;
use blake2::digest::consts::U32;

/// Why the vote extrinsic did not do what it should.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The whole extrinsic failed (e.g. `Proxy.NotProxy` when the proxy relationship does not
    /// exist): nothing it did stands.
    #[error("the extrinsic failed: {0}")]
    ExtrinsicFailed(String),
    /// The proxied vote failed (e.g. `CallFiltered`, or ConvictionVoting refused it).
    #[error("the proxied vote failed: {0}")]
    ProxyFailed(String),
    /// No `Proxy.ProxyExecuted` event.
    #[error("no Proxy.ProxyExecuted event: the vote did not run")]
    NoProxyExecuted,
    /// No `System.Remarked` event carrying our remark's hash.
    #[error("no System.Remarked event with the remark's hash 0x{0}")]
    RemarkMissing(String),
}

/// BLAKE2-256 of `bytes`: what `System.Remarked` carries for a remark.
pub fn blake2_256(bytes: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(bytes).into()
}

/// Checks the events of the vote extrinsic against `remark`.
pub fn check(events: &[EventRecord], remark: &str) -> Result<(), Failure> {
    if let Some(e) = events.iter().find(|e| e.is("System", "ExtrinsicFailed")) {
        return Err(Failure::ExtrinsicFailed(e.fields.to_string()));
    }
    let proxied = events
        .iter()
        .find(|e| e.is("Proxy", "ProxyExecuted"))
        .ok_or(Failure::NoProxyExecuted)?;
    if let Some(err) = find_err(&proxied.fields) {
        return Err(Failure::ProxyFailed(err.to_string()));
    }
    let hash = hex::encode(blake2_256(remark.as_bytes()));
    let remarked = events
        .iter()
        .filter(|e| e.is("System", "Remarked"))
        .any(|e| e.fields.to_string().contains(&hash));
    if !remarked {
        return Err(Failure::RemarkMissing(hash));
    }
    Ok(())
}

/// The `Err` of a `Result` rendered as JSON, wherever the renderer put it: subxt gives
/// `{"result": {"Err": …}}`, Sidecar `[{"err": …}]`. `ProxyExecuted` has no other field that
/// could hold such a key, so a deep search is exact and survives other wrappings.
fn find_err(v: &serde_json::Value) -> Option<&serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("err"))
            .map(|(_, e)| e)
            .or_else(|| map.values().find_map(find_err)),
        serde_json::Value::Array(items) => items.iter().find_map(find_err),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(pallet: &str, variant: &str, fields: serde_json::Value) -> EventRecord {
        EventRecord {
            pallet: pallet.into(),
            variant: variant.into(),
            fields,
        }
    }

    #[test]
    fn success_needs_ok_proxy_and_our_remark() {
        let remark = "cybergov:v1:polkadot:1:1:x";
        let hash = format!("0x{}", hex::encode(blake2_256(remark.as_bytes())));
        let ok = vec![
            ev("Proxy", "ProxyExecuted", json!({"result": {"Ok": null}})),
            ev(
                "System",
                "Remarked",
                json!({"sender": "0x00", "hash": hash}),
            ),
        ];
        assert_eq!(check(&ok, remark), Ok(()));
        assert!(matches!(
            check(&ok, "another remark"),
            Err(Failure::RemarkMissing(_))
        ));
        let filtered = vec![
            ev(
                "Proxy",
                "ProxyExecuted",
                json!([{"err": {"module": {"index": 0, "error": "0x05000000"}}}]),
            ),
            ok[1].clone(),
        ];
        assert!(matches!(
            check(&filtered, remark),
            Err(Failure::ProxyFailed(_))
        ));
        let failed = vec![ev("System", "ExtrinsicFailed", json!({}))];
        assert!(matches!(
            check(&failed, remark),
            Err(Failure::ExtrinsicFailed(_))
        ));
        assert_eq!(check(&ok[1..], remark), Err(Failure::NoProxyExecuted));
    }
}
