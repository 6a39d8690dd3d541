//! A run ready to vote on: content.md, a real vote.json and a published manifest whose
//! decision matches it, for any network and referendum.

use cybergov::hash::Sha256Hash;
use cybergov::magi::tally::{Agreement, Counts, JurorVote, VOTE_SCHEMA, VoteRecord};
use cybergov::manifest::{ArtefactRef, Decision, Manifest, SCHEMA_V1, VoteKind};
use cybergov::network::Network;
use cybergov::store::ObjectStore;
use cybergov::store::layout::{Artefact, ReferendumLayout};

/// Writes run `run` of `network` #`referendum` deciding `vote` with `conviction` and `balance`
/// (planck), chained to the previous run's manifest when there is one. Returns the manifest's
/// SHA-256.
pub async fn write_vote_run(
    store: &dyn ObjectStore,
    network: Network,
    referendum: u32,
    run: u32,
    vote: VoteKind,
    conviction: u8,
    balance: &str,
) -> Sha256Hash {
    let layout = ReferendumLayout::new(network, referendum);
    let rl = layout.run(run);
    let content = format!("# Referendum {referendum}\n\nRun {run} of the devnet vote tests.\n");
    let record = VoteRecord {
        schema: VOTE_SCHEMA.into(),
        network,
        referendum,
        run,
        rule: "majority-without-opposition-v1".into(),
        jurors: ["balthazar", "melchior", "caspar"]
            .iter()
            .map(|j| JurorVote {
                juror: (*j).into(),
                vote,
            })
            .collect(),
        counts: Counts::of(&[vote, vote, vote]),
        agreement: Agreement::Unanimous,
        forced_abstain: None,
        decision: vote,
        conviction,
        balance: balance.into(),
    };
    let vote_bytes = record.to_bytes();
    store
        .put(&rl.key(&Artefact::Content), content.as_bytes())
        .await
        .expect("put content");
    store
        .put(&rl.key(&Artefact::Vote), &vote_bytes)
        .await
        .expect("put vote");
    let previous = cybergov::manifest::previous_manifest(store, layout, run)
        .await
        .expect("previous manifest")
        .map(|(_, h)| h);
    let manifest = Manifest {
        schema: SCHEMA_V1.into(),
        network,
        referendum,
        run,
        provenance: super::sample_provenance("2026-11-22T10:01:00Z"),
        models: Vec::new(),
        inputs: vec![ArtefactRef::describe(
            "content.md",
            rl.key(&Artefact::Content).as_str(),
            content.as_bytes(),
        )],
        outputs: vec![ArtefactRef::describe(
            "vote.json",
            rl.key(&Artefact::Vote).as_str(),
            &vote_bytes,
        )],
        decision: Decision {
            vote,
            conviction,
            balance: balance.into(),
        },
        previous,
    };
    cybergov::manifest::publish::publish(store, &manifest)
        .await
        .expect("publish manifest")
}
