//! The on-chain remark that ties a vote to its manifest.
//!
//! Format (version 1), plain UTF-8 with no spaces:
//!
//! ```text
//! cybergov:v1:<network>:<referendum>:<run>:<manifest sha256, 64 lowercase hex>
//! ```
//!
//! e.g. `cybergov:v1:polkadot:123:1:9f86d0…`. It is self-describing so that a verifier that only
//! has a block explorer can find the manifest (`proposals/<network>/<referendum>/runs/<run>/`)
//! and compare its `sha256sum` with the last field. `System.Remarked` itself only carries the
//! remark's BLAKE2-256 hash, so the verifier reads the remark text from the extrinsic's call
//! data (or from `receipt.json`, which records it) and checks it against that event hash.

use crate::hash::Sha256Hash;
#[cfg(test)]
use crate::network::Network;
use crate::records::run_id::RunId;

/// The fixed prefix of every version-1 remark.
pub const REMARK_PREFIX: &str = "cybergov:v1:";

/// A parsed remark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remark {
    /// The run whose manifest this is.
    pub id: RunId,
    /// SHA-256 of that run's `manifest.json`.
    pub manifest_sha256: Sha256Hash,
}

impl Remark {
    /// The remark's text.
    pub fn text(&self) -> String {
        remark_text(self.id, &self.manifest_sha256)
    }
}

/// The remark text for a run's manifest.
pub fn remark_text(id: RunId, manifest: &Sha256Hash) -> String {
    let RunId {
        network,
        referendum,
        run,
    } = id;
    format!("{REMARK_PREFIX}{network}:{referendum}:{run}:{manifest}")
}

/// Why a text is not a cybergov remark.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a cybergov v1 remark ({reason}): {text:?}")]
pub struct RemarkError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses a remark written by [`remark_text`]. Strict: exactly six fields, canonical numbers
/// (no sign, no leading zeros) and a lowercase hash, so that one remark has one spelling.
pub fn parse_remark(text: &str) -> Result<Remark, RemarkError> {
    let err = |reason| RemarkError {
        text: text.to_owned(),
        reason,
    };
    let rest = text
        .strip_prefix(REMARK_PREFIX)
        .ok_or_else(|| err("it does not start with cybergov:v1:"))?;
    let fields: Vec<&str> = rest.split(':').collect();
    let [network, referendum, run, hash] = fields[..] else {
        return Err(err("want network:referendum:run:sha256 after the prefix"));
    };
    let number = |s: &str, what| -> Result<u32, RemarkError> {
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !canonical {
            return Err(err(what));
        }
        s.parse().map_err(|_| err(what))
    };
    let remark = Remark {
        id: RunId::new(
            network.parse().map_err(|_| err("unknown network"))?,
            number(referendum, "bad referendum number")?,
            number(run, "bad run number")?,
        ),
        manifest_sha256: hash
            .parse()
            .map_err(|_| err("the hash is not 64 lowercase hex characters"))?,
    };
    if remark.id.run == 0 {
        return Err(err("run numbers start at 1"));
    }
    Ok(remark)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_strict() {
        let h = Sha256Hash::of(b"manifest");
        let text = remark_text(RunId::new(Network::Kusama, 7, 2), &h);
        assert_eq!(text, format!("cybergov:v1:kusama:7:2:{h}"));
        let r = parse_remark(&text).unwrap();
        assert_eq!(r.id, RunId::new(Network::Kusama, 7, 2));
        assert_eq!(r.text(), text);
        for bad in [
            format!("cybergov:v2:kusama:7:2:{h}"),
            format!("cybergov:v1:westend:7:2:{h}"),
            format!("cybergov:v1:kusama:07:2:{h}"),
            format!("cybergov:v1:kusama:7:0:{h}"),
            format!("cybergov:v1:kusama:7:2:{}", h.to_hex().to_uppercase()),
            format!("cybergov:v1:kusama:7:2:{h}:extra"),
        ] {
            assert!(parse_remark(&bad).is_err(), "{bad} accepted");
        }
    }
}
