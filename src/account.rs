//! Accounts as raw 32-byte public keys, rendered per network in SS58.
//!
//! The project stores and compares the raw key; the SS58 text is only a view, because the same
//! key has a different address on every network (prefix 0 on Polkadot, 2 on Kusama, …).

use blake2::{Blake2b512, Digest};
use std::fmt;
use std::str::FromStr;

/// A 32-byte account key (sr25519 or ed25519 public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 32]);

/// Why a string is not an account.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    /// Not base58 and not 0x-hex.
    #[error("{0:?} is neither an SS58 address nor 0x-prefixed 32-byte hex")]
    Format(String),
    /// Decoded to the wrong length (not a 32-byte account).
    #[error("{input:?} decodes to {len} bytes, not an SS58 address of a 32-byte account")]
    Length {
        /// The text given.
        input: String,
        /// Its decoded length.
        len: usize,
    },
    /// The SS58 checksum does not match: a typo.
    #[error("{0:?} has a bad SS58 checksum (a typo?)")]
    Checksum(String),
    /// A valid address, but for another network.
    #[error(
        "{input:?} is an address for SS58 prefix {found}, but this network uses prefix {expected}"
    )]
    WrongNetwork {
        /// The text given.
        input: String,
        /// Its prefix.
        found: u16,
        /// The network's prefix.
        expected: u16,
    },
}

const SS58_PRE: &[u8] = b"SS58PRE";

impl AccountId {
    /// SS58 address for `prefix` (0 = Polkadot, 2 = Kusama, 42 = generic Substrate).
    pub fn to_ss58(&self, prefix: u16) -> String {
        let mut data = prefix_bytes(prefix);
        data.extend_from_slice(&self.0);
        let sum = checksum(&data);
        data.extend_from_slice(&sum[..2]);
        bs58::encode(data).into_string()
    }

    /// Parses an SS58 address of any prefix, returning the key and the prefix.
    pub fn from_ss58(s: &str) -> Result<(Self, u16), AccountError> {
        let data = bs58::decode(s)
            .into_vec()
            .map_err(|_| AccountError::Format(s.to_owned()))?;
        let (prefix, prefix_len) = match data.first() {
            Some(&b) if b < 64 => (u16::from(b), 1),
            Some(&b) if b < 128 && data.len() > 1 => {
                // Two-byte form: 14 bits spread over two bytes, see the SS58 spec.
                // In u8 arithmetic on purpose: the shift drops the 0b01 marker bits.
                let lower = u16::from((b << 2) | (data[1] >> 6));
                let upper = u16::from(data[1] & 0b0011_1111);
                (lower | (upper << 8), 2)
            }
            _ => return Err(AccountError::Format(s.to_owned())),
        };
        if data.len() != prefix_len + 32 + 2 {
            return Err(AccountError::Length {
                input: s.to_owned(),
                len: data.len(),
            });
        }
        let body = &data[..prefix_len + 32];
        if checksum(body)[..2] != data[prefix_len + 32..] {
            return Err(AccountError::Checksum(s.to_owned()));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&body[prefix_len..]);
        Ok((Self(key), prefix))
    }

    /// Parses an address meant for the network with `prefix`: hex is accepted as is, SS58 must
    /// carry the same prefix (or the generic 42, which tools such as subkey print by default).
    pub fn parse_for(s: &str, prefix: u16) -> Result<Self, AccountError> {
        if s.starts_with("0x") {
            return s.parse();
        }
        let (id, found) = Self::from_ss58(s)?;
        if found != prefix && found != 42 {
            return Err(AccountError::WrongNetwork {
                input: s.to_owned(),
                found,
                expected: prefix,
            });
        }
        Ok(id)
    }
}

fn prefix_bytes(prefix: u16) -> Vec<u8> {
    if prefix < 64 {
        vec![prefix as u8]
    } else {
        let first = ((prefix & 0b0000_0000_1111_1100) as u8 >> 2) | 0b0100_0000;
        let second = ((prefix >> 8) as u8) | (((prefix & 0b0000_0000_0000_0011) as u8) << 6);
        vec![first, second]
    }
}

fn checksum(data: &[u8]) -> [u8; 64] {
    let mut h = Blake2b512::new();
    h.update(SS58_PRE);
    h.update(data);
    h.finalize().into()
}

impl FromStr for AccountId {
    type Err = AccountError;

    /// Accepts `0x` + 64 hex characters, or an SS58 address of any prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(h) = s.strip_prefix("0x") {
            let bytes = hex::decode(h).map_err(|_| AccountError::Format(s.to_owned()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| AccountError::Length {
                    input: s.to_owned(),
                    len: b.len(),
                })?;
            return Ok(Self(key));
        }
        Self::from_ss58(s).map(|(id, _)| id)
    }
}

impl fmt::Display for AccountId {
    /// Network-neutral rendering: 0x-hex. Use [`AccountId::to_ss58`] for addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

impl serde::Serialize for AccountId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Alice's well-known sr25519 dev key.
    const ALICE_HEX: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const ALICE_42: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    const ALICE_0: &str = "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5";
    const ALICE_2: &str = "HNZata7iMYWmk5RvZRTiAsSDhV8366zq2YGb3tLH5Upf74F";

    #[test]
    fn renders_per_network() {
        let a: AccountId = ALICE_HEX.parse().unwrap();
        assert_eq!(a.to_ss58(42), ALICE_42);
        assert_eq!(a.to_ss58(0), ALICE_0);
        assert_eq!(a.to_ss58(2), ALICE_2);
        assert_eq!(a.to_string(), ALICE_HEX);
    }

    #[test]
    fn parses_and_round_trips_two_byte_prefix() {
        let a: AccountId = ALICE_HEX.parse().unwrap();
        for p in [0u16, 2, 42, 63, 64, 1284, 16383] {
            let (b, q) = AccountId::from_ss58(&a.to_ss58(p)).unwrap();
            assert_eq!((b, q), (a, p));
        }
    }

    #[test]
    fn rejects_typos_and_wrong_network() {
        let mut s = ALICE_0.to_owned();
        s.replace_range(10..11, if &s[10..11] == "a" { "b" } else { "a" });
        assert!(matches!(
            AccountId::from_ss58(&s),
            Err(AccountError::Checksum(_))
        ));
        assert!(matches!(
            AccountId::parse_for(ALICE_2, 0),
            Err(AccountError::WrongNetwork {
                found: 2,
                expected: 0,
                ..
            })
        ));
        assert!(AccountId::parse_for(ALICE_42, 0).is_ok());
        assert!("0x1234".parse::<AccountId>().is_err());
    }
}
