//! A complete voted run for the verifiers: three tiny-model jurors through the real infer
//! stage, a receipt.json as the vote stage writes it, and the Sidecar block that holds the
//! vote extrinsic.

use super::sidecar_blocks::{block_with, split_abstain_vote, standard_vote, vote_extrinsic};
use cybergov::config::Config;
use cybergov::hash::Sha256Hash;
use cybergov::magi::jury::Jury;
use cybergov::magi::tally::VoteRecord;
use cybergov::manifest::VoteKind;
use cybergov::network::Network;
use cybergov::secret::Secrets;
use cybergov::stages::infer::infer;
use cybergov::store::layout::{Artefact, ReferendumLayout, RunLayout};
use cybergov::store::{FsStore, ObjectStore};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The referendum of the voted run.
pub const NETWORK: Network = Network::Polkadot;
/// Its index.
pub const REFERENDUM: u32 = 4242;
/// The block the vote is in.
pub const BLOCK: u64 = 1_234_567;
/// That block's hash.
pub const BLOCK_HASH: &str = "0x5e1f0c8a6b2d4e7f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8";
/// The vote extrinsic's hash.
pub const XT_HASH: &str = "0x9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";
/// The proxy that signs (Alice on Polkadot).
pub const PROXY: &str = "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5";
/// The account voted for (Bob on Polkadot).
pub const REAL: &str = "14E5nqKAp3oAJcmzgZhUD2RcptBeUBScxKHgJKU4HPNcKVf3";

/// Content the jurors read.
pub const CONTENT: &str =
    "# Light-client toolkit\n\nWe request 48,000 USDC for six months of maintenance.\n";

/// A voted run on disk.
pub struct VotedRun {
    /// Keeps the folder alive.
    pub dir: tempfile::TempDir,
    /// The `FsStore` root (serve it with `spawn_http_store`).
    pub root: PathBuf,
    /// The manifest's hash.
    pub manifest_sha256: Sha256Hash,
    /// vote.json.
    pub vote: VoteRecord,
    /// The Sidecar block with the vote extrinsic (insert it into a stand-in).
    pub block: Value,
    /// The configuration the run was made with (tiny model jurors).
    pub config: Config,
}

impl VotedRun {
    /// Layout of the run.
    pub fn run_layout(&self) -> RunLayout {
        ReferendumLayout::new(NETWORK, REFERENDUM).run(1)
    }

    /// The file of `artefact` in the store folder.
    pub fn file(&self, artefact: &Artefact) -> PathBuf {
        self.root.join(self.run_layout().key(artefact).as_str())
    }
}

/// Configuration whose three jurors use the tiny model of `seed`, with short rationales.
pub fn tiny_config(seed: u64) -> Config {
    let mut c = Config::default();
    let model = super::tiny_model_path(seed);
    for j in c.magi.jurors.values_mut() {
        j.model = model.to_str().unwrap().to_owned();
    }
    c.magi.max_new_tokens = 8;
    c
}

/// The on-chain rendering of `vote` (what the vote stage casts for it).
pub fn account_vote(vote: &VoteRecord) -> Value {
    match vote.decision {
        VoteKind::Abstain => split_abstain_vote(&vote.balance),
        d => standard_vote(d == VoteKind::Aye, vote.conviction, &vote.balance),
    }
}

/// Replaces the remark bytes in a block made by [`make_voted_run`].
pub fn set_remark(block: &mut Value, remark: &str) {
    block["extrinsics"][1]["args"]["calls"][1]["args"]["remark"] =
        json!(format!("0x{}", hex::encode(remark.as_bytes())));
}

/// Replaces the vote in a block made by [`make_voted_run`].
pub fn set_vote(block: &mut Value, vote: Value) {
    block["extrinsics"][1]["args"]["calls"][0]["args"]["call"]["args"]["vote"] = vote;
}

/// Writes content.md, plus any `preset` juror files (reused by the stage instead of running
/// that juror), then runs the infer stage.
pub async fn infer_run(
    store: &FsStore,
    config: &Config,
    preset: &[(&str, &[u8])],
) -> cybergov::stages::infer::InferOutcome {
    let rl = ReferendumLayout::new(NETWORK, REFERENDUM).run(1);
    store
        .put(&rl.key(&Artefact::Content), CONTENT.as_bytes())
        .await
        .unwrap();
    for (juror, bytes) in preset {
        store
            .put(&rl.key(&Artefact::Juror((*juror).into())), bytes)
            .await
            .unwrap();
    }
    let jury = Jury::from_config(
        &config.magi,
        &Secrets::default(),
        &cybergov::progress::quiet(),
    )
    .unwrap();
    infer(
        store,
        &config.infer_settings(),
        &jury,
        NETWORK,
        REFERENDUM,
        None,
    )
    .await
    .unwrap()
}

/// A voted run: infer with the tiny model, a receipt, and the block that carries the vote.
pub async fn make_voted_run() -> VotedRun {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FsStore::new(&root).unwrap();
    let config = tiny_config(1);
    let outcome = infer_run(&store, &config, &[]).await;
    let rl = ReferendumLayout::new(NETWORK, REFERENDUM).run(1);
    let vote: VoteRecord =
        serde_json::from_slice(&store.get(&rl.key(&Artefact::Vote)).await.unwrap()).unwrap();
    let remark = cybergov::chain::remark_text(NETWORK, REFERENDUM, 1, &outcome.manifest_sha256);
    let av = account_vote(&vote);
    // receipt.json as the vote stage writes it.
    let receipt = json!({
        "schema": "cybergov.receipt/v1", "network": NETWORK, "referendum": REFERENDUM, "run": 1,
        "manifest_sha256": outcome.manifest_sha256, "remark": remark,
        "signer": PROXY, "real": REAL, "proxy_type": "Governance",
        "account_vote": match vote.decision {
            VoteKind::Abstain => json!({"SplitAbstain": {"aye": "0", "nay": "0", "abstain": vote.balance}}),
            d => json!({"Standard": {"aye": d == VoteKind::Aye, "conviction": vote.conviction, "balance": vote.balance}}),
        },
        "transport": "sidecar", "extrinsic_hash": XT_HASH, "block_number": BLOCK,
        "block_hash": BLOCK_HASH, "extrinsic_index": 1, "finalized": true,
        "events": [{"pallet": "Proxy", "variant": "ProxyExecuted", "fields": {}}],
    });
    store
        .put(
            &rl.key(&Artefact::Receipt),
            &serde_json::to_vec_pretty(&receipt).unwrap(),
        )
        .await
        .unwrap();
    let block = block_with(
        BLOCK,
        BLOCK_HASH,
        vec![vote_extrinsic(
            XT_HASH, PROXY, REAL, REFERENDUM, av, &remark,
        )],
    );
    VotedRun {
        dir,
        root,
        manifest_sha256: outcome.manifest_sha256,
        vote,
        block,
        config,
    }
}

/// The opposite vote of `vote` as the chain would show it (to fake a chain that disagrees).
pub fn other_vote(vote: &VoteRecord) -> Value {
    match vote.decision {
        VoteKind::Aye => standard_vote(false, vote.conviction, &vote.balance),
        _ => standard_vote(true, 1, &vote.balance),
    }
}
