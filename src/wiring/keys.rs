//! The proxy keys, checked against the chain before any work starts: a key that is not a proxy
//! of its network's `real_account` would sign votes that fail, found out only at the first vote
//! hours later, after inference and in public.

use super::OpenError;
use crate::chain::transport::TransportError;
use crate::config::Config;
use crate::network::Network;
use crate::secret::Secrets;
use crate::subsquare::sima;

/// Checks every enabled network's proxy key (its own, `CYBERGOV_PROXY_SEED_<NETWORK>`, else the
/// shared one) against `Proxy.Proxies(real_account)` with the configured proxy type. Refuses
/// naming the network when a key is missing or is not such a proxy; a chain that cannot be
/// reached now is a warning (returned), since it says nothing about the key.
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
        // Without a real account the key votes as itself: nothing to be a proxy of.
        let Some(real) = spec.real_account_id(network).map_err(refuse)? else {
            continue;
        };
        let proxies = match crate::chain::connect(spec).await {
            Ok(t) => t.proxies(&real).await,
            Err(e) => Err(e),
        };
        let proxies = match proxies {
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
    }
    Ok(warnings)
}
