//! `cybergov arena …`: review sessions (`arena/session.rs`), the leaderboard, publishing and
//! rechecking the results (`arena/results.rs`), and here `arena agreement [--network N]`: for
//! every juror model in the store's published runs, how often its juror's vote agreed with how
//! the referendum ended (Subsquare's state now), with Wilson's 95 % interval.

mod results;
mod session;

use crate::arena::agreement::{Ending, agreement};
use crate::cli::ArenaAction;
use crate::config::Config;
use crate::manifest::VoteKind;
use crate::network::Network;
use crate::proposal::Proposal;
use crate::records::juror::JurorRecord;
use crate::records::vote::VoteRecord;
use crate::secret::Secrets;
use crate::store::layout::{Artefact, ReferendumLayout};
use crate::subsquare::client::SubsquareClient;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

/// Runs an arena action.
pub async fn run(
    config: &Config,
    secrets: &Arc<Secrets>,
    action: ArenaAction,
) -> anyhow::Result<ExitCode> {
    match action {
        ArenaAction::Agreement { network } => agreement_table(config, secrets, network).await,
        ArenaAction::Prepare {
            candidate,
            juror,
            reviewer,
            rounds,
        } => {
            session::prepare_session(
                config,
                secrets,
                &candidate,
                &juror,
                &reviewer,
                usize::from(rounds),
            )
            .await
        }
        ArenaAction::Review { session } => session::review(config, secrets, &session).await,
        ArenaAction::Leaderboard => results::leaderboard(config, secrets).await,
        ArenaAction::Publish => results::publish_results(config, secrets).await,
        ArenaAction::Verify { publication } => results::verify(config, secrets, publication).await,
    }
}

async fn agreement_table(
    config: &Config,
    secrets: &Arc<Secrets>,
    only: Option<Network>,
) -> anyhow::Result<ExitCode> {
    let store = super::open_store(config, secrets)?;
    let mut by_model: BTreeMap<String, Vec<(VoteKind, Ending)>> = BTreeMap::new();
    for (network, spec) in &config.networks {
        if only.is_some_and(|n| n != *network) || (only.is_none() && !spec.enabled) {
            continue;
        }
        let client = SubsquareClient::new(*network, spec, &config.subsquare)
            .with_context(|| format!("{network}: the Subsquare client"))?;
        // proposals/{network}/{id}/…: the referenda the store holds.
        let ids: BTreeSet<u32> = store
            .list(&format!("proposals/{network}/"))
            .await?
            .iter()
            .filter_map(|k| k.as_str().split('/').nth(2)?.parse().ok())
            .collect();
        for id in ids {
            let layout = ReferendumLayout::new(*network, id);
            let Some(latest) = layout.read_latest(store.as_ref()).await? else {
                continue;
            };
            let run = layout.run(latest.run);
            let Some(vote) = store.get_optional(&run.key(&Artefact::Vote)).await? else {
                continue;
            };
            let vote: VoteRecord = serde_json::from_slice(&vote)
                .with_context(|| format!("{network} #{id}: vote.json"))?;
            let raw = client
                .referendum(id)
                .await
                .with_context(|| format!("{network} #{id}: Subsquare"))?;
            let proposal = Proposal::from_subsquare(*network, spec, &raw)
                .with_context(|| format!("{network} #{id}: Subsquare's answer"))?;
            let ending = Ending::from_state(proposal.state.as_deref().unwrap_or(""));
            for juror in &vote.jurors {
                let key = run.key(&Artefact::Juror(juror.juror.clone()));
                let Some(bytes) = store.get_optional(&key).await? else {
                    continue;
                };
                let record: JurorRecord =
                    serde_json::from_slice(&bytes).with_context(|| format!("{key}"))?;
                by_model
                    .entry(record.model.model_id.clone())
                    .or_default()
                    .push((record.vote, ending));
            }
        }
    }
    println!(
        "{:<40} {:>8} {:>7} {:>7} {:>17} {:>9} {:>8}",
        "model", "compared", "agreed", "rate", "95 % interval", "abstained", "left out"
    );
    for (model, decisions) in &by_model {
        let a = agreement(decisions);
        println!(
            "{model:<40} {:>8} {:>7} {:>6.1}% {:>7.1}% – {:>5.1}% {:>9} {:>8}",
            a.compared,
            a.agreed,
            a.rate * 100.0,
            a.low * 100.0,
            a.high * 100.0,
            a.abstained,
            a.left_out
        );
    }
    if by_model.is_empty() {
        println!("(no published run with jurors in the store)");
    }
    Ok(ExitCode::SUCCESS)
}
