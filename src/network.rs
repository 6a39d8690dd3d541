//! The networks cybergov votes on, as data.
//!
//! Every field here is a default that configuration can override (`[networks.polkadot]` in
//! `cybergov.toml`, or `CYBERGOV_NETWORKS__POLKADOT__RPC_URL`), because endpoints move: governance
//! already moved once, from the relay chains to Asset Hub. Code reads the chain's metadata at run
//! time, so a runtime upgrade needs no code change either.

use crate::account::{AccountError, AccountId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A network cybergov knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Polkadot (governance on Polkadot Asset Hub).
    Polkadot,
    /// Kusama (governance on Kusama Asset Hub).
    Kusama,
    /// Paseo, the community testnet (governance on Paseo Asset Hub).
    Paseo,
}

impl Network {
    /// Every network, in a stable order.
    pub const ALL: [Network; 3] = [Network::Polkadot, Network::Kusama, Network::Paseo];

    /// The lowercase name used in paths, URLs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Polkadot => "polkadot",
            Network::Kusama => "kusama",
            Network::Paseo => "paseo",
        }
    }

    /// Built-in defaults for this network.
    pub fn default_spec(self) -> NetworkSpec {
        // Tracks where a treasury-minded delegate votes (docs/DESIGN.md §5): wish_for_change,
        // treasurer, the tippers and the spenders.
        let treasury_tracks = vec![2, 11, 30, 31, 32, 33, 34];
        match self {
            Network::Polkadot => NetworkSpec {
                rpc_url: "wss://polkadot-asset-hub-rpc.polkadot.io".into(),
                sidecar_url: Some(
                    "https://polkadot-asset-hub-public-sidecar.parity-chains.parity.io".into(),
                ),
                subsquare_api_url: "https://polkadot-api.subsquare.io".into(),
                subsquare_web_url: "https://polkadot.subsquare.io".into(),
                explorer_url: Some("https://assethub-polkadot.subscan.io".into()),
                ss58_prefix: 0,
                token_symbol: "DOT".into(),
                token_decimals: 10,
                allowed_tracks: treasury_tracks,
                min_referendum_id: 0,
                enabled: true,
                real_account: None,
                genesis_hash: POLKADOT_GENESIS.into(),
                vote: VoteSettings::default(),
            },
            Network::Kusama => NetworkSpec {
                rpc_url: "wss://kusama-asset-hub-rpc.polkadot.io".into(),
                sidecar_url: Some(
                    "https://kusama-asset-hub-public-sidecar.parity-chains.parity.io".into(),
                ),
                subsquare_api_url: "https://kusama-api.subsquare.io".into(),
                subsquare_web_url: "https://kusama.subsquare.io".into(),
                explorer_url: Some("https://assethub-kusama.subscan.io".into()),
                ss58_prefix: 2,
                token_symbol: "KSM".into(),
                token_decimals: 12,
                allowed_tracks: treasury_tracks,
                min_referendum_id: 0,
                enabled: true,
                real_account: None,
                genesis_hash: KUSAMA_GENESIS.into(),
                vote: VoteSettings::default(),
            },
            Network::Paseo => NetworkSpec {
                rpc_url: "wss://sys.ibp.network/asset-hub-paseo".into(),
                sidecar_url: None,
                subsquare_api_url: "https://paseo-api.subsquare.io".into(),
                subsquare_web_url: "https://paseo.subsquare.io".into(),
                explorer_url: Some("https://assethub-paseo.subscan.io".into()),
                ss58_prefix: 0,
                token_symbol: "PAS".into(),
                token_decimals: 10,
                allowed_tracks: treasury_tracks,
                min_referendum_id: 0,
                // A testnet is opt-in: nobody should vote there by accident.
                enabled: false,
                real_account: None,
                genesis_hash: PASEO_GENESIS.into(),
                vote: VoteSettings::default(),
            },
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown network name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown network {0:?}: expected one of polkadot, kusama, paseo")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Network::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| UnknownNetwork(s.to_owned()))
    }
}

/// Genesis hash of Polkadot Asset Hub (where Polkadot's governance lives).
pub const POLKADOT_GENESIS: &str =
    "0x68d56f15f85d3136970ec16946040bc1752654e906147f7e43e9d539d7c3de2f";
/// Genesis hash of Kusama Asset Hub.
pub const KUSAMA_GENESIS: &str =
    "0x48239ef607d7928874027a43a67689209727dfb3d3dc5e5b03a39bdc2eda771a";
/// Genesis hash of Paseo Asset Hub.
pub const PASEO_GENESIS: &str =
    "0xd6eec26135305a8ad257a20d003357284c8aa03d0bdb2b357ab0a22371e11ef2";

/// Everything cybergov needs to know about one network. Every field is configurable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// JSON-RPC (WebSocket) endpoint of the chain that hosts governance.
    pub rpc_url: String,
    /// Substrate API Sidecar base URL, the REST alternative transport.
    pub sidecar_url: Option<String>,
    /// Subsquare API base URL (`…/gov2/referendums/{id}`).
    pub subsquare_api_url: String,
    /// Subsquare web base URL, for links in comments.
    pub subsquare_web_url: String,
    /// Block explorer base URL, for the dashboard's links to the vote's extrinsic and block
    /// (`{explorer_url}/extrinsic/{hash}`, `{explorer_url}/block/{number}`, Subscan's paths);
    /// unset: no links.
    #[serde(default)]
    pub explorer_url: Option<String>,
    /// SS58 address prefix.
    pub ss58_prefix: u16,
    /// Native token symbol.
    pub token_symbol: String,
    /// Native token decimals (planck per token = 10^decimals).
    pub token_decimals: u8,
    /// Referendum tracks cybergov votes on; others are ignored.
    pub allowed_tracks: Vec<u16>,
    /// Referenda below this index are never considered.
    pub min_referendum_id: u32,
    /// Whether dispatch looks at this network at all.
    pub enabled: bool,
    /// The real (proxied) account cybergov votes and comments for, as SS58 or hex; unset: the
    /// proxy acts for itself. Comments name it as SIMA's `real`.
    #[serde(default)]
    pub real_account: Option<String>,
    /// `0x` hash of block 0 of the chain this network votes on. Every vote is signed for it and
    /// checked against the endpoint first, so that an endpoint of another chain (a Kusama node
    /// configured as `polkadot`, a testnet) is refused before anything is signed. A devnet
    /// declares its own; empty: not pinned.
    #[serde(default)]
    pub genesis_hash: String,
    /// How votes are cast on this network: proxy type, transport, waiting, mortality.
    #[serde(default)]
    pub vote: VoteSettings,
}

/// How votes are sent (`networks.<network>.vote.*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoteSettings {
    /// `force_proxy_type` of `Proxy.proxy`, e.g. `Governance`; `None` or `""`: the chain uses
    /// whichever proxy relationship admits the call.
    pub proxy_type: Option<String>,
    /// `rpc` (JSON-RPC through `rpc_url`) or `sidecar` (REST through `sidecar_url`).
    pub transport: TransportKind,
    /// Use subxt's legacy JSON-RPC methods instead of the `chainHead` ones (chopsticks and older
    /// nodes need it).
    pub legacy_backend: bool,
    /// `finalization` (the default: the receipt, and so the comment, wait until the vote can no
    /// longer be reorganised away) or `inclusion` (best block; a public comment may then
    /// announce a vote that a reorganisation drops).
    pub wait_for: WaitFor,
    /// Mortal era length in blocks (rounded up to a power of two, 4–65536).
    pub mortality_blocks: u64,
    /// Longest wait for inclusion after sending, seconds.
    pub inclusion_timeout_s: u64,
    /// Largest answer read from Sidecar, in bytes: signing material carries the runtime
    /// metadata (a few MB of hex) and a block its extrinsics.
    pub sidecar_max_body_bytes: u64,
}

/// What the vote stage waits for after sending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// Included in a best block.
    Inclusion,
    /// Included in a finalized block.
    #[default]
    Finalization,
}

impl Default for VoteSettings {
    fn default() -> Self {
        Self {
            proxy_type: Some("Governance".into()),
            transport: Default::default(),
            legacy_backend: false,
            wait_for: WaitFor::Finalization,
            mortality_blocks: 64,
            inclusion_timeout_s: 300,
            sidecar_max_body_bytes: 64 << 20,
        }
    }
}

impl NetworkSpec {
    /// Renders an account as this network's SS58 address.
    pub fn address(&self, account: &AccountId) -> String {
        account.to_ss58(self.ss58_prefix)
    }

    /// Parses an address given for this network (hex, its own SS58 prefix, or generic 42).
    pub fn parse_address(&self, s: &str) -> Result<AccountId, AccountError> {
        AccountId::parse_for(s, self.ss58_prefix)
    }

    /// `real_account` (the account the proxy votes for), parsed; `None` when it is not set.
    /// The error names the key: `networks.<network>.real_account: …`.
    pub fn real_account_id(&self, network: Network) -> Result<Option<AccountId>, String> {
        self.real_account
            .as_deref()
            .map(|r| self.parse_address(r))
            .transpose()
            .map_err(|e| format!("networks.{network}.real_account: {e}"))
    }

    /// Checks that `found`, the genesis hash an endpoint reports, is this network's. The error
    /// names the network, both hashes and, when it is one, the network the endpoint serves.
    pub fn check_genesis(&self, network: Network, found: &[u8; 32]) -> Result<(), String> {
        let pinned = self.genesis_hash.trim();
        if pinned.is_empty() {
            return Ok(());
        }
        let found_hex = format!("0x{}", hex::encode(found));
        if pinned.eq_ignore_ascii_case(&found_hex) {
            return Ok(());
        }
        let known = [
            (Network::Polkadot, POLKADOT_GENESIS),
            (Network::Kusama, KUSAMA_GENESIS),
            (Network::Paseo, PASEO_GENESIS),
        ]
        .into_iter()
        .find(|(_, h)| h.eq_ignore_ascii_case(&found_hex))
        .map_or_else(String::new, |(n, _)| format!(" (that is {n} Asset Hub)"));
        Err(format!(
            "{network}: the endpoint serves the chain with genesis {found_hex}{known}, not the one networks.{network}.genesis_hash pins ({pinned}); refusing to sign for another chain"
        ))
    }

    /// Formats `planck` as a decimal token amount, e.g. `12.5 DOT`, exactly (no float).
    pub fn format_amount(&self, planck: u128) -> String {
        format!(
            "{} {}",
            format_units(planck, self.token_decimals),
            self.token_symbol
        )
    }

    /// Whether referenda on `track` are in scope.
    pub fn track_allowed(&self, track: u16) -> bool {
        self.allowed_tracks.contains(&track)
    }
}

/// `amount / 10^decimals` as exact decimal text with trailing zeros removed.
pub fn format_units(amount: u128, decimals: u8) -> String {
    let scale = 10u128.pow(u32::from(decimals));
    let (whole, frac) = (amount / scale, amount % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_pinned_to_its_chain() {
        let genesis = |h: &str| -> [u8; 32] { hex::decode(&h[2..]).unwrap().try_into().unwrap() };
        let polkadot = Network::Polkadot.default_spec();
        assert!(
            polkadot
                .check_genesis(Network::Polkadot, &genesis(POLKADOT_GENESIS))
                .is_ok()
        );
        let e = polkadot
            .check_genesis(Network::Polkadot, &genesis(KUSAMA_GENESIS))
            .unwrap_err();
        assert!(e.contains("(that is kusama Asset Hub)"), "{e}");
        assert!(e.starts_with("polkadot: the endpoint serves"), "{e}");
        let unpinned = NetworkSpec {
            genesis_hash: String::new(),
            ..polkadot
        };
        assert!(unpinned.check_genesis(Network::Polkadot, &[7; 32]).is_ok());
    }

    #[test]
    fn names_round_trip_and_unknown_is_named() {
        for n in Network::ALL {
            assert_eq!(n.as_str().parse::<Network>().unwrap(), n);
        }
        let e = "westend".parse::<Network>().unwrap_err();
        assert!(e.to_string().contains("\"westend\""));
    }

    #[test]
    fn amounts_use_each_networks_decimals() {
        assert_eq!(
            Network::Polkadot
                .default_spec()
                .format_amount(125_000_000_000),
            "12.5 DOT"
        );
        assert_eq!(
            Network::Kusama
                .default_spec()
                .format_amount(1_000_000_000_000),
            "1 KSM"
        );
        assert_eq!(format_units(1, 6), "0.000001");
        assert_eq!(format_units(u128::MAX, 10).len(), 40);
    }
}

/// Which transport carries a network's votes (and, in `receipt.json`, carried one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// JSON-RPC through subxt.
    #[default]
    Rpc,
    /// Substrate API Sidecar (REST).
    Sidecar,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Rpc => "rpc",
            TransportKind::Sidecar => "sidecar",
        })
    }
}
