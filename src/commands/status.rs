//! `cybergov status`: what the store holds, per referendum and run.

use crate::config::{Config, Secrets};
use crate::network::Network;
use crate::store::layout::ReferendumLayout;
use std::collections::BTreeSet;
use std::process::ExitCode;

/// Prints referenda (optionally of one network / one id), their runs and artefacts.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    network: Option<Network>,
    id: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let networks: Vec<Network> = network.map_or_else(|| Network::ALL.to_vec(), |n| vec![n]);
    let mut any = false;
    for net in networks {
        let ids: BTreeSet<u32> = match id {
            Some(i) => BTreeSet::from([i]),
            None => {
                let prefix = format!("proposals/{net}/");
                store
                    .list(&prefix)
                    .await?
                    .iter()
                    .filter_map(|k| {
                        k.as_str()
                            .strip_prefix(&prefix)?
                            .split('/')
                            .next()?
                            .parse()
                            .ok()
                    })
                    .collect()
            }
        };
        for rid in ids {
            let layout = ReferendumLayout::new(net, rid);
            let runs = layout.runs(store.as_ref()).await?;
            if runs.is_empty() && id.is_none() {
                continue;
            }
            any = true;
            let latest = layout.read_latest(store.as_ref()).await?;
            println!("{net} #{rid}");
            if runs.is_empty() {
                println!("  no runs");
            }
            for r in runs {
                let run = layout.run(r);
                let prefix = run.prefix();
                let files: Vec<String> = store
                    .list(&prefix)
                    .await?
                    .iter()
                    .map(|k| k.as_str()[prefix.len()..].to_owned())
                    .collect();
                let mark = if latest.as_ref().is_some_and(|l| l.run == r) {
                    " (latest)"
                } else {
                    ""
                };
                println!("  run {r}{mark}: {}", files.join(", "));
            }
        }
    }
    if !any {
        println!("nothing in the store at {}", store.location());
    }
    Ok(ExitCode::SUCCESS)
}
