//! The proxy keys, checked against the chain before any work starts: a key that is not a proxy
//! of its network's `real_account` would sign votes that fail, found out only at the first vote
//! hours later, after inference and in public.

use super::OpenError;
use crate::account::AccountId;
use crate::chain::transport::{Transport, TransportError};
use crate::config::Config;
use crate::network::{Network, NetworkSpec};
use crate::secret::Secrets;
use crate::subsquare::sima;

/// Checks every enabled network's proxy key (its own, `CYBERGOV_PROXY_SEED_<NETWORK>`, else the
/// shared one) against `Proxy.Proxies(real_account)` with the configured proxy type, then
/// whether `real_account` delegates on an allowed track (see [`check_delegations`]), over one
/// connection per network. Refuses naming the network when a key is missing or is not such a
/// proxy; a chain that cannot be reached now is a warning (returned), since it says nothing
/// about the key.
pub async fn check_proxy_keys(
    config: &Config,
    secrets: &Secrets,
) -> Result<Vec<String>, OpenError> {
    let mut warnings = Vec::new();
    for network in Network::ALL {
        let spec = config.network(network);
        if !spec.enabled {
            continue;
        }
        let var = crate::env::proxy_seed_var(network);
        let refuse = |why: String| OpenError::Inconsistent(format!("{network}: {why}"));
        let seed = secrets.proxy_seed_for(network).ok_or_else(|| {
            refuse(format!(
                "no proxy key to vote with: set {var} (or CYBERGOV_PROXY_SEED)"
            ))
        })?;
        let keypair = sima::proxy_keypair(Some(seed)).map_err(|e| refuse(e.to_string()))?;
        let proxy = sima::account_of(&keypair);
        let real = spec.real_account_id(network).map_err(refuse)?;
        let unreachable = |e: TransportError| {
            format!(
                "{network}: the chain could not be checked now ({e}); the vote stage checks it before signing"
            )
        };
        let transport = match crate::chain::connect(spec).await {
            Ok(t) => t,
            Err(e @ TransportError::Unavailable { .. }) => {
                warnings.push(unreachable(e));
                continue;
            }
            Err(e) => return Err(refuse(format!("connecting: {e}"))),
        };
        // The endpoint must serve this network's chain (genesis_hash) before anything else.
        match transport.block_hash(0).await {
            Ok(Some(genesis)) => spec
                .check_genesis(network, &genesis.0)
                .map_err(OpenError::Inconsistent)?,
            Ok(None) => return Err(refuse("the endpoint has no block 0".into())),
            Err(e @ TransportError::Unavailable { .. }) => {
                warnings.push(unreachable(e));
                continue;
            }
            Err(e) => return Err(refuse(format!("reading block 0: {e}"))),
        }
        // Without a real account the key votes as itself: nothing to be a proxy of.
        let Some(real) = real else {
            continue;
        };
        let proxies = match transport.proxies(&real).await {
            Ok(p) => p,
            Err(e @ TransportError::Unavailable { .. }) => {
                warnings.push(format!(
                    "{network}: the proxy key could not be checked now ({e}); the vote stage will find out"
                ));
                continue;
            }
            Err(e) => return Err(refuse(format!("reading Proxy.Proxies: {e}"))),
        };
        let wanted = spec.vote.proxy_type.as_deref();
        let fits = |p: &crate::chain::transport::ProxyDefinition| {
            p.delegate == proxy && wanted.is_none_or(|t| t == p.proxy_type)
        };
        if !proxies.iter().any(fits) {
            let listed: Vec<String> = proxies
                .iter()
                .map(|p| format!("{} ({})", spec.address(&p.delegate), p.proxy_type))
                .collect();
            return Err(refuse(format!(
                "the proxy key ({var}, else CYBERGOV_PROXY_SEED) is account {}, which is not a {} proxy of real_account {} on chain (its proxies: {}): every vote would fail",
                spec.address(&proxy),
                wanted.unwrap_or("any"),
                spec.address(&real),
                if listed.is_empty() {
                    "none".to_owned()
                } else {
                    listed.join(", ")
                }
            )));
        }
        delegations(network, spec, &real, transport.as_ref(), &mut warnings).await;
    }
    Ok(warnings)
}

/// The tracks on which an enabled network's `real_account` delegates its votes, as warnings: the
/// chain refuses a delegating account's votes on that track, so every referendum there would
/// fail at its vote, after inference and in public. A warning and not a refusal: the delegation
/// may be deliberate for tracks the operator does not mean cybergov to vote on, and it can end
/// at any time. A chain that cannot be read now is one warning that says so. (A worker that
/// submits votes gets these from [`check_proxy_keys`], on the same connection.)
pub async fn check_delegations(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    for network in Network::ALL {
        let spec = config.network(network);
        if !spec.enabled {
            continue;
        }
        let Ok(Some(real)) = spec.real_account_id(network) else {
            continue;
        };
        match crate::chain::connect(spec).await {
            Ok(transport) => {
                delegations(network, spec, &real, transport.as_ref(), &mut warnings).await
            }
            Err(e) => warnings.push(format!(
                "{network}: could not check whether real_account delegates ({e})"
            )),
        }
    }
    warnings
}

/// [`check_delegations`] for one network, on an open transport.
async fn delegations(
    network: Network,
    spec: &NetworkSpec,
    real: &AccountId,
    transport: &dyn Transport,
    warnings: &mut Vec<String>,
) {
    for &track in &spec.allowed_tracks {
        match transport.delegate_of(real, track).await {
            Ok(Some(target)) => warnings.push(format!(
                "{network}: real_account {} delegates its votes on track {track} to {}; the chain refuses its votes there, so referenda on track {track} cannot be voted until it undelegates (ConvictionVoting.undelegate) or the track is removed from networks.{network}.allowed_tracks",
                spec.address(real),
                spec.address(&target)
            )),
            Ok(None) => {}
            Err(e) => {
                warnings.push(format!(
                    "{network}: could not check whether real_account delegates on track {track} ({e})"
                ));
                break;
            }
        }
    }
}
