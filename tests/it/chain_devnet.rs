//! End-to-end votes against chopsticks running our governance devnet (`tests/devnet/`), through
//! `vote_stage`, the code path a real vote takes.
//!
//! Devnet genesis: Alice..Ferdie funded, `//Unfunded` not; Bob (real) → Alice `Governance`
//! proxy; Dave → Charlie `Any`; Ferdie has no proxies. Referenda #0 (track 33), #1 (track 11),
//! #2 (track 2) and #4 (track 0) ongoing, #3 decided.

use crate::common::chopsticks::Chopsticks;
use crate::common::vote_run::write_vote_run;
use cybergov::account::AccountId;
use cybergov::chain::call::AccountVote;
use cybergov::chain::outcome::{Failure, blake2_256};
use cybergov::chain::parse_remark;
use cybergov::chain::rpc::RpcTransport;
use cybergov::chain::transport::Transport;
use cybergov::chain::value::Value;
use cybergov::config::Config;
use cybergov::hash::Sha256Hash;
use cybergov::manifest::VoteKind;
use cybergov::network::Network;
use cybergov::network::TransportKind;
use cybergov::records::receipt::{Receipt, Submission};
use cybergov::records::run_id::RunId;
use cybergov::secret::Secret;
use cybergov::secret::Secrets;
use cybergov::stages::vote::{StageHooks, VoteError, VoteJob, VoteMode, VoteOutcome, vote_stage};
use cybergov::store::FsStore;
use cybergov::store::ObjectStore;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use subxt_signer::SecretUri;
use subxt_signer::sr25519::Keypair;

const NET: Network = Network::Paseo;
const UNIT: u128 = 1_000_000_000_000;

fn account(uri: &str) -> AccountId {
    let uri: SecretUri = uri.parse().unwrap();
    AccountId(Keypair::from_uri(&uri).unwrap().public_key().0)
}

fn ss58(uri: &str) -> String {
    account(uri).to_ss58(42)
}

struct Env {
    chain: Chopsticks,
    store: FsStore,
    _dir: tempfile::TempDir,
    config: Config,
}

impl Env {
    async fn start() -> Self {
        let chain = Chopsticks::start().await;
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path()).unwrap();
        let mut config = Config::default();
        let spec = config.networks.get_mut(&NET).unwrap();
        spec.rpc_url = chain.ws_url.clone();
        spec.genesis_hash = crate::common::chopsticks::DEVNET_GENESIS.into();
        spec.ss58_prefix = 42;
        spec.enabled = true;
        spec.allowed_tracks = vec![33, 11, 2, 0];
        spec.real_account = Some(ss58("//Bob"));
        spec.vote.legacy_backend = true;
        spec.vote.proxy_type = Some("Governance".into());
        spec.vote.inclusion_timeout_s = 60;
        Env {
            chain,
            store,
            _dir: dir,
            config,
        }
    }

    fn secrets(seed: &str) -> Secrets {
        Secrets {
            proxy_seed: Some(Secret::new(seed)),
            ..Secrets::default()
        }
    }

    async fn vote(
        &self,
        referendum: u32,
        run: u32,
        mode: VoteMode,
    ) -> Result<VoteOutcome, VoteError> {
        self.vote_with(referendum, run, mode, &StageHooks::default())
            .await
    }

    /// [`Env::vote`] with test hooks (another inner call, a crash after sending).
    async fn vote_with(
        &self,
        referendum: u32,
        run: u32,
        mode: VoteMode,
        hooks: &StageHooks,
    ) -> Result<VoteOutcome, VoteError> {
        let seed = Self::secrets("//Alice");
        vote_stage(
            &self.store,
            &self.job(&seed, referendum, run, mode, hooks.clone()),
        )
        .await
    }

    fn job<'a>(
        &'a self,
        secrets: &'a Secrets,
        referendum: u32,
        run: u32,
        mode: VoteMode,
        hooks: StageHooks,
    ) -> VoteJob<'a> {
        VoteJob {
            spec: self.config.network(NET),
            proxy_seed: secrets.proxy_seed.as_ref(),
            id: RunId::new(NET, referendum, run),
            mode,
            hooks,
        }
    }

    async fn transport(&self) -> RpcTransport {
        RpcTransport::connect(&self.chain.ws_url, true)
            .await
            .unwrap()
    }

    async fn alice_nonce(&self) -> u64 {
        self.chain.nonce(&ss58("//Alice")).await
    }

    async fn receipt_file(&self, referendum: u32, run: u32) -> Option<Receipt> {
        let rl = ReferendumLayout::new(NET, referendum).run(run);
        Receipt::read(&self.store, &rl).await.unwrap()
    }

    async fn manifest_sha(&self, referendum: u32, run: u32) -> Sha256Hash {
        let rl = ReferendumLayout::new(NET, referendum).run(run);
        Sha256Hash::of(&self.store.get(&rl.key(&Artefact::Manifest)).await.unwrap())
    }
}

/// Checks a receipt against the chain and the store: the vote in `VotingFor`, the events, the
/// remark and its hash.
async fn check_receipt(
    env: &Env,
    r: &Receipt,
    referendum: u32,
    run: u32,
    track: u16,
    want: AccountVote,
) {
    let transport = env.transport().await;
    let on_chain = transport
        .current_vote(&account("//Bob"), track, referendum)
        .await
        .unwrap();
    assert_eq!(
        on_chain,
        Some(want),
        "ConvictionVoting.VotingFor(Bob, {track}) holds vote.json's vote"
    );
    assert_eq!(r.account_vote, want);
    assert_eq!((r.network, r.referendum, r.run), (NET, referendum, run));
    assert_eq!(r.signer, ss58("//Alice"));
    assert_eq!(r.real, ss58("//Bob"));
    assert_eq!(r.proxy_type.as_deref(), Some("Governance"));
    assert_eq!(r.transport, TransportKind::Rpc);
    assert!(
        r.finalized,
        "by default the receipt (and so the comment) waits for finality"
    );
    let manifest = env.manifest_sha(referendum, run).await;
    assert_eq!(r.manifest_sha256, manifest);
    let remark = parse_remark(&r.remark).unwrap();
    assert_eq!(remark.id, RunId::new(NET, referendum, run));
    assert_eq!(
        remark.manifest_sha256, manifest,
        "the remark carries the manifest hash"
    );
    let proxied = r
        .events
        .iter()
        .find(|e| e.pallet == "Proxy" && e.variant == "ProxyExecuted")
        .expect("Proxy.ProxyExecuted");
    assert!(
        proxied.fields.to_string().contains("Ok") && !proxied.fields.to_string().contains("Err"),
        "ProxyExecuted is Ok: {}",
        proxied.fields
    );
    let remarked = r
        .events
        .iter()
        .find(|e| e.pallet == "System" && e.variant == "Remarked")
        .expect("System.Remarked");
    assert_eq!(
        remarked.fields["hash"],
        serde_json::json!(format!(
            "0x{}",
            hex::encode(blake2_256(r.remark.as_bytes()))
        )),
        "System.Remarked carries the hash of the remark, which names the manifest"
    );
    assert!(
        r.events
            .iter()
            .any(|e| e.pallet == "ConvictionVoting" && e.variant == "Voted"),
        "ConvictionVoting.Voted: {:?}",
        r.events
    );
    // What the chain holds at that block is what the receipt says.
    let found = transport
        .find_in_block(r.block_number, parse_h256(&r.extrinsic_hash))
        .await
        .unwrap()
        .expect("the extrinsic is in the receipt's block");
    assert_eq!(found.index, r.extrinsic_index);
    assert_eq!(
        format!("0x{}", hex::encode(found.block_hash.0)),
        r.block_hash
    );
    // And the stored bytes are the pretty JSON of the receipt.
    let stored = env
        .receipt_file(referendum, run)
        .await
        .expect("receipt.json");
    assert_eq!(&stored, r);
}

fn parse_h256(s: &str) -> subxt::utils::H256 {
    subxt::utils::H256(hex::decode(&s[2..]).unwrap().try_into().unwrap())
}

#[tokio::test]
async fn aye_nay_and_abstain_are_cast_and_read_back() {
    let env = Env::start().await;
    let cases = [
        (
            0u32,
            33u16,
            VoteKind::Aye,
            1u8,
            10 * UNIT,
            AccountVote::Standard {
                aye: true,
                conviction: 1,
                balance: 10 * UNIT,
            },
        ),
        (
            1,
            11,
            VoteKind::Nay,
            3,
            7 * UNIT,
            AccountVote::Standard {
                aye: false,
                conviction: 3,
                balance: 7 * UNIT,
            },
        ),
        (
            2,
            2,
            VoteKind::Abstain,
            0,
            5 * UNIT,
            AccountVote::SplitAbstain {
                aye: 0,
                nay: 0,
                abstain: 5 * UNIT,
            },
        ),
    ];
    for (referendum, track, kind, conviction, balance, want) in cases {
        write_vote_run(
            &env.store,
            NET,
            referendum,
            1,
            kind,
            conviction,
            &balance.to_string(),
        )
        .await;

        // A dry run shows the call and the fee and sends nothing.
        let nonce = env.alice_nonce().await;
        let VoteOutcome::DryRun(plan) = env.vote(referendum, 1, VoteMode::DryRun).await.unwrap()
        else {
            panic!("dry run expected")
        };
        assert_eq!(plan.decoded.call.vote, want);
        assert_eq!(plan.decoded.call.real, account("//Bob"));
        assert_eq!(plan.track, track);
        assert!(
            plan.fee_estimate.is_some_and(|f| f > 0),
            "fee estimate: {:?}",
            plan.fee_estimate
        );
        let text = plan.to_string();
        assert!(
            text.contains("Utility.batch_all") && text.contains(&ss58("//Alice")),
            "{text}"
        );
        assert_eq!(env.alice_nonce().await, nonce, "a dry run sends nothing");

        let VoteOutcome::Submitted(receipt) =
            env.vote(referendum, 1, VoteMode::Submit).await.unwrap()
        else {
            panic!("submitted expected")
        };
        check_receipt(&env, &receipt, referendum, 1, track, want).await;
        assert_eq!(env.alice_nonce().await, nonce + 1);

        // Running the stage again changes nothing.
        let VoteOutcome::AlreadyDone(again) =
            env.vote(referendum, 1, VoteMode::Submit).await.unwrap()
        else {
            panic!("already done expected")
        };
        assert_eq!(again, receipt);
        assert_eq!(env.alice_nonce().await, nonce + 1);
    }
}

#[tokio::test]
async fn refusals_and_failed_votes_are_reported_not_recorded() {
    let mut env = Env::start().await;
    let start_nonce = env.alice_nonce().await;

    // #3 is decided: refused before anything is signed or sent.
    write_vote_run(&env.store, NET, 3, 1, VoteKind::Aye, 1, &UNIT.to_string()).await;
    let err = env.vote(3, 1, VoteMode::Submit).await.unwrap_err();
    assert!(
        matches!(err, VoteError::NotOngoing { referendum: 3, .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(env.alice_nonce().await, start_nonce);
    let rl = ReferendumLayout::new(NET, 3).run(1);
    assert!(
        !env.store
            .exists(&rl.key(&Artefact::Submission(1)))
            .await
            .unwrap()
    );

    // A track outside allowed_tracks: refused.
    write_vote_run(&env.store, NET, 4, 1, VoteKind::Aye, 1, &UNIT.to_string()).await;
    env.config.networks.get_mut(&NET).unwrap().allowed_tracks = vec![33];
    let err = env.vote(4, 1, VoteMode::Submit).await.unwrap_err();
    assert!(
        matches!(err, VoteError::TrackNotAllowed { track: 0, .. }),
        "{err}"
    );
    env.config.networks.get_mut(&NET).unwrap().allowed_tracks = vec![33, 11, 2, 0];

    // An endpoint of another chain than the network's (the devnet configured as Paseo Asset
    // Hub): refused before anything is signed.
    env.config.networks.get_mut(&NET).unwrap().genesis_hash =
        cybergov::network::PASEO_GENESIS.into();
    let err = env.vote(4, 1, VoteMode::Submit).await.unwrap_err();
    assert!(matches!(err, VoteError::WrongChain(_)), "{err}");
    assert!(
        err.to_string()
            .contains("refusing to sign for another chain")
            && err
                .to_string()
                .contains(crate::common::chopsticks::DEVNET_GENESIS),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(env.alice_nonce().await, start_nonce);
    let rl4 = ReferendumLayout::new(NET, 4).run(1);
    assert!(
        !env.store
            .exists(&rl4.key(&Artefact::Submission(1)))
            .await
            .unwrap()
    );
    env.config.networks.get_mut(&NET).unwrap().genesis_hash =
        crate::common::chopsticks::DEVNET_GENESIS.into();

    // An unfunded proxy: a clear error, nothing sent.
    let unfunded = Env::secrets("//Unfunded");
    let job = env.job(&unfunded, 4, 1, VoteMode::Submit, StageHooks::default());
    let err = vote_stage(&env.store, &job).await.unwrap_err();
    assert!(matches!(err, VoteError::Unfunded { free: 0, .. }), "{err}");
    assert!(err.to_string().contains("cannot pay"), "{err}");
    assert!(err.to_string().contains(&ss58("//Unfunded")), "{err}");
    assert!(!err.is_transient());

    // Ferdie has no proxies: Proxy.proxy fails, so the whole batch fails — a failed vote.
    env.config.networks.get_mut(&NET).unwrap().real_account = Some(ss58("//Ferdie"));
    write_vote_run(&env.store, NET, 0, 1, VoteKind::Aye, 1, &UNIT.to_string()).await;
    let err = env.vote(0, 1, VoteMode::Submit).await.unwrap_err();
    let VoteError::Failed { failure, .. } = &err else {
        panic!("failed vote expected, got {err}")
    };
    assert!(matches!(failure, Failure::ExtrinsicFailed(_)), "{failure}");
    assert!(!err.is_transient());
    assert!(
        env.receipt_file(0, 1).await.is_none(),
        "no receipt claims success"
    );
    let transport = env.transport().await;
    assert_eq!(
        transport
            .current_vote(&account("//Ferdie"), 33, 0)
            .await
            .unwrap(),
        None
    );

    // A call the Governance proxy filters: ProxyExecuted carries the error — a failed vote.
    env.config.networks.get_mut(&NET).unwrap().real_account = Some(ss58("//Bob"));
    write_vote_run(&env.store, NET, 1, 1, VoteKind::Aye, 1, &UNIT.to_string()).await;
    let transfer = Value::unnamed_variant(
        "Balances",
        [Value::named_variant(
            "transfer_keep_alive",
            [
                (
                    "dest",
                    Value::unnamed_variant("Id", [Value::from_bytes(account("//Alice").0)]),
                ),
                ("value", Value::u128(UNIT)),
            ],
        )],
    );
    let hooks = StageHooks {
        inner_call: Some(transfer),
        stop_after_submit: false,
        ..StageHooks::default()
    };
    let err = env
        .vote_with(1, 1, VoteMode::Submit, &hooks)
        .await
        .unwrap_err();
    let VoteError::Failed { failure, .. } = &err else {
        panic!("failed vote expected, got {err}")
    };
    assert!(matches!(failure, Failure::ProxyFailed(_)), "{failure}");
    assert!(env.receipt_file(1, 1).await.is_none());
    // A retry finds the same failed extrinsic and sends nothing more.
    let nonce = env.alice_nonce().await;
    let again = env
        .vote_with(1, 1, VoteMode::Submit, &hooks)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            VoteError::Failed {
                failure: Failure::ProxyFailed(_),
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(env.alice_nonce().await, nonce);
}

/// A vote whose nonce another transaction of the proxy spent first (two referenda voted at the
/// same moment) is refused as stale: the stage fails as transient, and its retry confirms those
/// bytes are in no block and signs anew. One vote lands, none is lost.
#[tokio::test]
async fn a_vote_whose_nonce_was_spent_first_is_signed_anew_on_retry() {
    let env = Env::start().await;
    for referendum in [0, 1] {
        write_vote_run(
            &env.store,
            NET,
            referendum,
            1,
            VoteKind::Aye,
            1,
            &UNIT.to_string(),
        )
        .await;
    }
    // Another vote of the proxy first, so that its previous nonce is a spent one.
    env.vote(0, 1, VoteMode::Submit).await.unwrap();
    let nonce = env.alice_nonce().await;
    let hooks = StageHooks {
        spent_nonce: true,
        ..StageHooks::default()
    };
    let err = env
        .vote_with(1, 1, VoteMode::Submit, &hooks)
        .await
        .unwrap_err();
    assert!(matches!(err, VoteError::NonceSpent { .. }), "{err}");
    assert!(err.is_transient(), "{err}");
    assert!(env.receipt_file(1, 1).await.is_none());
    assert_eq!(env.alice_nonce().await, nonce, "nothing was included");
    let VoteOutcome::Submitted(receipt) = env.vote(1, 1, VoteMode::Submit).await.unwrap() else {
        panic!("the retry submits")
    };
    assert_eq!(
        env.alice_nonce().await,
        nonce + 1,
        "exactly one vote landed"
    );
    let rl = ReferendumLayout::new(NET, 1).run(1);
    let subs = Submission::read_all(&env.store, &rl).await.unwrap();
    assert_eq!(
        subs.len(),
        2,
        "the refused bytes and the new ones are both on record"
    );
    assert_eq!(receipt.extrinsic_hash, subs[1].extrinsic_hash);
}

#[tokio::test]
async fn a_crash_after_sending_is_recovered_and_a_rerun_replaces_the_vote() {
    let env = Env::start().await;
    write_vote_run(
        &env.store,
        NET,
        4,
        1,
        VoteKind::Aye,
        2,
        &(3 * UNIT).to_string(),
    )
    .await;
    let nonce = env.alice_nonce().await;

    // Crash right after sending: a submission record, no receipt.
    let hooks = StageHooks {
        inner_call: None,
        stop_after_submit: true,
        ..StageHooks::default()
    };
    let err = env
        .vote_with(4, 1, VoteMode::Submit, &hooks)
        .await
        .unwrap_err();
    assert!(matches!(err, VoteError::Interrupted { .. }), "{err}");
    assert!(err.is_transient());
    assert!(env.receipt_file(4, 1).await.is_none());
    let rl = ReferendumLayout::new(NET, 4).run(1);
    let subs = Submission::read_all(&env.store, &rl).await.unwrap();
    assert_eq!(subs.len(), 1);
    // Chopsticks builds the block just after accepting the transaction.
    for _ in 0..100 {
        if env.alice_nonce().await > nonce {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(env.alice_nonce().await, nonce + 1, "the vote was sent once");
    let best = env.chain.best_number().await;

    // The retry finds it on chain and sends nothing.
    let VoteOutcome::AlreadyDone(receipt) = env.vote(4, 1, VoteMode::Submit).await.unwrap() else {
        panic!("the retry must find the vote, not send another")
    };
    assert_eq!(receipt.extrinsic_hash, subs[0].extrinsic_hash);
    assert_eq!(env.alice_nonce().await, nonce + 1, "no second transaction");
    assert_eq!(
        env.chain.best_number().await,
        best,
        "no new block: nothing was sent"
    );
    assert_eq!(
        Submission::read_all(&env.store, &rl).await.unwrap().len(),
        1
    );
    let want1 = AccountVote::Standard {
        aye: true,
        conviction: 2,
        balance: 3 * UNIT,
    };
    check_receipt(&env, &receipt, 4, 1, 0, want1).await;

    // A second run that is not a deliberate re-vote (what a lost ledger makes `run` start) is
    // refused: run 1's receipt, and the chain, show the referendum was voted.
    write_vote_run(
        &env.store,
        NET,
        4,
        2,
        VoteKind::Nay,
        1,
        &(2 * UNIT).to_string(),
    )
    .await;
    let err = env.vote(4, 2, VoteMode::Submit).await.unwrap_err();
    assert!(
        matches!(&err, VoteError::AlreadyVoted { id: RunId { run: 2, .. }, by, .. } if by.contains("run 1 has a receipt.json")),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(env.alice_nonce().await, nonce + 1, "nothing sent");
    // With the whole store lost, a fresh run 1 is refused by the chain alone: the account's
    // vote on the referendum stands.
    let lost = tempfile::tempdir().unwrap();
    let fresh = FsStore::new(lost.path()).unwrap();
    write_vote_run(&fresh, NET, 4, 1, VoteKind::Nay, 1, &UNIT.to_string()).await;
    let seed = Env::secrets("//Alice");
    let job = env.job(&seed, 4, 1, VoteMode::Submit, StageHooks::default());
    let err = vote_stage(&fresh, &job).await.unwrap_err();
    assert!(
        matches!(&err, VoteError::AlreadyVoted { by, .. } if by.contains("the chain holds")),
        "{err}"
    );
    assert_eq!(env.alice_nonce().await, nonce + 1, "nothing sent");

    // A rerun with a new manifest votes again on purpose (revote.json) and replaces the vote.
    let record =
        cybergov::records::revote::RevoteRecord::new(RunId::new(NET, 4, 2), 1, "a test's rerun");
    env.store
        .put(
            &ReferendumLayout::new(NET, 4).run(2).key(&Artefact::Revote),
            &record.to_bytes(),
        )
        .await
        .unwrap();
    let VoteOutcome::Submitted(second) = env.vote(4, 2, VoteMode::Submit).await.unwrap() else {
        panic!("the rerun votes")
    };
    let want2 = AccountVote::Standard {
        aye: false,
        conviction: 1,
        balance: 2 * UNIT,
    };
    check_receipt(&env, &second, 4, 2, 0, want2).await;
    assert_eq!(env.alice_nonce().await, nonce + 2);
    let first = env
        .receipt_file(4, 1)
        .await
        .expect("run 1 keeps its receipt");
    assert_eq!(first, receipt);
    assert_ne!(first.remark, second.remark);
    assert_ne!(first.manifest_sha256, second.manifest_sha256);
}

/// A worker whose claim on the vote stage lapsed (paused past its lease while another worker
/// took the stage over) signs and sends nothing: the stage asks right before signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_claim_signs_nothing() {
    use cybergov::pipeline::claim::{Check, scope};
    let env = Env::start().await;
    let start_nonce = env.alice_nonce().await;
    write_vote_run(&env.store, NET, 0, 1, VoteKind::Aye, 1, &UNIT.to_string()).await;
    let lost: Check = std::sync::Arc::new(|| Box::pin(async { false }));
    let err = scope(lost, env.vote(0, 1, VoteMode::Submit))
        .await
        .unwrap_err();
    assert!(matches!(err, VoteError::ClaimLost(_)), "{err}");
    assert!(
        err.to_string().contains("no longer holds its claim"),
        "{err}"
    );
    assert_eq!(env.alice_nonce().await, start_nonce, "nothing was sent");
    let rl = ReferendumLayout::new(NET, 0).run(1);
    assert!(
        !env.store
            .exists(&rl.key(&Artefact::Submission(1)))
            .await
            .unwrap(),
        "nothing was signed"
    );

    // Still held: it votes.
    let held: Check = std::sync::Arc::new(|| Box::pin(async { true }));
    let outcome = scope(held, env.vote(0, 1, VoteMode::Submit)).await.unwrap();
    assert!(matches!(outcome, VoteOutcome::Submitted(_)));
    assert_eq!(env.alice_nonce().await, start_nonce + 1);
}
