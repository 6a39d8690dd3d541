//! `cybergov status`: each referendum's runs — from the ledger, their stages, states,
//! attempts, errors and artefact links; runs made outside the job graph from the store.

use crate::config::Config;
use crate::network::Network;
use crate::pipeline::ledger::Ledger;
use crate::pipeline::report::{ReferendumStatus, render};
use crate::secret::Secrets;
use crate::store::ObjectStore;
use crate::store::layout::ReferendumLayout;
use std::collections::BTreeSet;
use std::process::ExitCode;

/// Prints referenda (optionally of one network / one id), their runs and stages.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    network: Option<Network>,
    id: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let ledger = crate::wiring::open_ledger(config, secrets).await?;
    print_status(config, &ledger, store.as_ref(), network, id).await?;
    // An account that delegates cannot vote: the operator sees it here, not at a failed vote.
    for warning in crate::wiring::keys::check_delegations(config).await {
        println!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the status of the selected referenda.
pub async fn print_status(
    config: &Config,
    ledger: &Ledger,
    store: &dyn ObjectStore,
    network: Option<Network>,
    id: Option<u32>,
) -> anyhow::Result<()> {
    let networks: Vec<Network> = network.map_or_else(|| Network::ALL.to_vec(), |n| vec![n]);
    let all_runs = ledger.runs(network, id).await?;
    let all_stages = ledger.stages(network, id, None).await?;
    let mut any = false;
    for net in networks {
        let mut ids: BTreeSet<u32> = all_runs
            .iter()
            .filter(|r| r.network == net.as_str())
            .filter_map(|r| u32::try_from(r.referendum).ok())
            .collect();
        match id {
            Some(i) => {
                ids.insert(i);
            }
            None => {
                let prefix = format!("proposals/{net}/");
                ids.extend(store.list(&prefix).await?.iter().filter_map(|k| {
                    k.as_str()
                        .strip_prefix(&prefix)?
                        .split('/')
                        .next()?
                        .parse::<u32>()
                        .ok()
                }));
            }
        }
        for rid in ids {
            let layout = ReferendumLayout::new(net, rid);
            let runs: Vec<_> = all_runs
                .iter()
                .filter(|r| r.network == net.as_str() && r.referendum == i64::from(rid))
                .collect();
            let stages: Vec<_> = all_stages
                .iter()
                .filter(|s| s.network == net.as_str() && s.referendum == i64::from(rid))
                .collect();
            let mut store_only = Vec::new();
            for r in layout.runs(store).await? {
                if runs.iter().any(|lr| lr.run == i64::from(r)) {
                    continue;
                }
                let prefix = layout.run(r).prefix();
                let files = store
                    .list(&prefix)
                    .await?
                    .iter()
                    .map(|k| k.as_str()[prefix.len()..].to_owned())
                    .collect();
                store_only.push((r, files));
            }
            if runs.is_empty() && store_only.is_empty() && id.is_none() {
                continue;
            }
            any = true;
            let latest = layout.read_latest(store).await?.map(|l| l.run);
            let status = ReferendumStatus {
                network: net,
                referendum: rid,
                runs,
                stages,
                store_only,
                latest,
            };
            print!(
                "{}",
                render(
                    &status,
                    config.public_base_url.as_deref(),
                    &store.location()
                )
            );
        }
    }
    if !any {
        println!(
            "nothing in the ledger or in the store at {}",
            store.location()
        );
    }
    Ok(())
}
