//! A complete run for the verifiers: three tiny-model jurors through the real infer stage,
//! then, for a voted run, the real vote stage casting it on chopsticks running the governance
//! devnet (Alice as Governance proxy for Bob) and a signed comment.json. No chain answer is
//! mocked: the verifiers read the devnet themselves.

use super::chopsticks::Chopsticks;
use cybergov::chain::call::{AccountVote, VoteCall};
use cybergov::config::Config;
use cybergov::hash::Sha256Hash;
use cybergov::magi::jury::Jury;
use cybergov::magi::tally::VoteRecord;
use cybergov::manifest::VoteKind;
use cybergov::network::Network;
use cybergov::records::comment::{CommentRecord, headline};
use cybergov::records::run_id::RunId;
use cybergov::secret::{Secret, Secrets};
use cybergov::stages::infer::infer;
use cybergov::stages::vote::{StageHooks, VoteJob, VoteMode, vote_stage};
use cybergov::store::layout::{Artefact, ReferendumLayout, RunLayout};
use cybergov::store::{FsStore, ObjectStore};
use cybergov::subsquare::sima::{self, CommentEntity};
use std::path::PathBuf;

/// The network of the run: the devnet stands in for it.
pub const NETWORK: Network = Network::Paseo;
/// The referendum: the devnet's #0, ongoing on track 33.
pub const REFERENDUM: u32 = 0;
/// The account voted for (Bob), with the network's prefix.
pub const REAL: &str = "14E5nqKAp3oAJcmzgZhUD2RcptBeUBScxKHgJKU4HPNcKVf3";
/// Bob's public key, as `scripts/verify.sh` takes it.
pub const REAL_HEX: &str = "0x8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48";

/// Content the jurors read.
pub const CONTENT: &str =
    "# Light-client toolkit\n\nWe request 48,000 USDC for six months of maintenance.\n";

/// A run on disk, and the devnet it was (or was not) voted on.
pub struct VotedRun {
    /// Keeps the folder alive.
    pub dir: tempfile::TempDir,
    /// The `FsStore` root (serve it with `spawn_http_store`).
    pub root: PathBuf,
    /// The manifest's hash.
    pub manifest_sha256: Sha256Hash,
    /// vote.json.
    pub vote: VoteRecord,
    /// The configuration the run was made with (tiny model jurors, the devnet as the chain).
    pub config: Config,
    /// The devnet (none for a run made without a chain).
    pub chain: Option<Chopsticks>,
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

    /// The devnet.
    pub fn chain(&self) -> &Chopsticks {
        self.chain.as_ref().expect("a run made on the devnet")
    }

    /// Casts `vote` for run 1 through the vote stage, with `inner` proxied in place of the
    /// vote.json's vote when given.
    pub async fn cast(&self, inner: Option<AccountVote>) {
        let store = FsStore::new(&self.root).unwrap();
        let secrets = Secrets {
            proxy_seed: Some(Secret::new("//Alice")),
            ..Secrets::default()
        };
        let inner_call = inner.map(|vote| {
            // Only the inner vote call is taken from it; the stage builds the rest.
            VoteCall {
                real: cybergov::account::AccountId([0; 32]),
                proxy_type: None,
                referendum: REFERENDUM,
                vote,
                remark: String::new(),
            }
            .vote_call()
        });
        let job = VoteJob {
            spec: self.config.network(NETWORK),
            proxy_seed: secrets.proxy_seed.as_ref(),
            id: RunId::new(NETWORK, REFERENDUM, 1),
            mode: VoteMode::Submit,
            hooks: StageHooks {
                inner_call,
                ..StageHooks::default()
            },
        };
        vote_stage(&store, &job).await.expect("the devnet vote");
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

/// A run made by the infer stage, without a chain.
pub async fn make_run() -> VotedRun {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FsStore::new(&root).unwrap();
    let config = tiny_config(1);
    let outcome = infer_run(&store, &config, &[]).await;
    let rl = ReferendumLayout::new(NETWORK, REFERENDUM).run(1);
    let vote: VoteRecord =
        serde_json::from_slice(&store.get(&rl.key(&Artefact::Vote)).await.unwrap()).unwrap();
    VotedRun {
        dir,
        root,
        manifest_sha256: outcome.manifest_sha256,
        vote,
        config,
        chain: None,
    }
}

/// A run made on a fresh devnet and not voted.
pub async fn make_unvoted_run() -> VotedRun {
    let chain = Chopsticks::start().await;
    let mut run = make_run().await;
    let spec = run.config.networks.get_mut(&NETWORK).unwrap();
    spec.rpc_url = chain.ws_url.clone();
    spec.genesis_hash = super::chopsticks::DEVNET_GENESIS.into();
    spec.enabled = true;
    spec.allowed_tracks = vec![33, 11, 2, 0];
    spec.real_account = Some(REAL.into());
    spec.vote.legacy_backend = true;
    spec.vote.proxy_type = Some("Governance".into());
    spec.vote.inclusion_timeout_s = 60;
    run.chain = Some(chain);
    run
}

/// A voted run: made, cast on the devnet by the vote stage (receipt.json and all), and
/// commented (comment.json with a signed entity stating the decision and the manifest hash).
pub async fn make_voted_run() -> VotedRun {
    let run = make_unvoted_run().await;
    run.cast(None).await;
    write_comment(&run, run.vote.decision);
    run
}

/// Writes comment.json as the comment stage records a posted comment, stating `decision`.
pub fn write_comment(run: &VotedRun, decision: VoteKind) {
    let hash = run.manifest_sha256.to_hex();
    let html = format!(
        "<h3>{}</h3><p>Manifest sha256 {hash}</p>",
        headline(NETWORK, REFERENDUM, decision)
    );
    let entity =
        CommentEntity::referendum_html(REFERENDUM, 0, html, 1_700_000_000_000, Some(REAL.into()));
    let keypair = subxt_signer::sr25519::dev::alice();
    let signed = sima::sign(&entity, &keypair, 0);
    let record = CommentRecord {
        posted: true,
        skipped_reason: None,
        comment_id: Some("c-1".into()),
        manifest_sha256: run.manifest_sha256,
        entity: Some(signed.entity),
        address: Some(signed.address),
        signature: Some(signed.signature),
    };
    std::fs::write(run.file(&Artefact::Comment), record.to_bytes()).unwrap();
}

/// The opposite vote of `vote`, cast to make the chain disagree with vote.json.
pub fn other_vote(vote: &VoteRecord) -> AccountVote {
    let balance: u128 = vote.balance.parse().unwrap();
    match vote.decision {
        VoteKind::Aye => AccountVote::Standard {
            aye: false,
            conviction: vote.conviction,
            balance,
        },
        _ => AccountVote::Standard {
            aye: true,
            conviction: 1,
            balance,
        },
    }
}
