//! The Sidecar transport against a local Sidecar double (`tests/common/sidecar_server.rs`):
//! Sidecar's JSON shapes, its `400 Failed to submit transaction.` errors, and the vote stage
//! end to end over REST with offline signing.

use crate::common::metadata::{material, metadata_bytes};
use crate::common::sidecar_server::{SidecarServer, spawn_sidecar};
use crate::common::vote_run::write_vote_run;
use cybergov::account::AccountId;
use cybergov::chain::call::AccountVote;
use cybergov::chain::outcome::Failure;
use cybergov::chain::sidecar::SidecarTransport;
use cybergov::chain::transport::{ReferendumStatus, Transport, TransportError};
use cybergov::chain::tx;
use cybergov::config::Config;
use cybergov::hash::Sha256Hash;
use cybergov::manifest::Manifest;
use cybergov::manifest::VoteKind;
use cybergov::network::Network;
use cybergov::network::TransportKind;
use cybergov::records::receipt::Receipt;
use cybergov::records::run_id::RunId;
use cybergov::secret::Secret;
use cybergov::secret::Secrets;
use cybergov::stages::vote::{StageHooks, VoteError, VoteJob, VoteMode, VoteOutcome, vote_stage};
use cybergov::store::layout::Artefact;
use cybergov::store::layout::ReferendumLayout;
use cybergov::store::{FsStore, ObjectStore};
use cybergov::verify::chain::{ChainLookup, check_chain};
use serde_json::json;
use subxt_signer::sr25519::dev;

const NET: Network = Network::Polkadot;

fn alice() -> String {
    AccountId(dev::alice().public_key().0).to_ss58(0)
}

fn bob() -> AccountId {
    AccountId(dev::bob().public_key().0)
}

struct Env {
    server: SidecarServer,
    store: FsStore,
    _dir: tempfile::TempDir,
    config: Config,
    secrets: Secrets,
}

async fn setup() -> Env {
    let server = spawn_sidecar(
        material("asset-hub-polkadot"),
        &metadata_bytes("asset-hub-polkadot"),
        0,
    )
    .await;
    {
        let mut c = server.state.chain.lock().unwrap();
        c.free.insert(alice(), 1_000_000_000_000_000);
        c.referenda.insert(123, json!({"ongoing": {"track": "33", "origin": {"origins": "MediumSpender"}, "submitted": "90"}}));
        c.referenda
            .insert(124, json!({"ongoing": {"track": 11, "submitted": "95"}}));
        c.referenda
            .insert(125, json!({"approved": ["99", null, null]}));
    }
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let mut config = Config::default();
    let spec = config.networks.get_mut(&NET).unwrap();
    spec.sidecar_url = Some(server.url.clone());
    spec.vote.transport = TransportKind::Sidecar;
    spec.real_account = Some(bob().to_ss58(0));
    spec.vote.inclusion_timeout_s = 10;
    let secrets = Secrets {
        proxy_seed: Some(Secret::new("//Alice")),
        ..Secrets::default()
    };
    Env {
        server,
        store,
        _dir: dir,
        config,
        secrets,
    }
}

impl Env {
    async fn vote(
        &self,
        referendum: u32,
        run: u32,
        mode: VoteMode,
    ) -> Result<VoteOutcome, VoteError> {
        vote_stage(
            &self.store,
            &self.job(referendum, run, mode, StageHooks::default()),
        )
        .await
    }

    fn job(&self, referendum: u32, run: u32, mode: VoteMode, hooks: StageHooks) -> VoteJob<'_> {
        VoteJob {
            spec: self.config.network(NET),
            proxy_seed: self.secrets.proxy_seed.as_ref(),
            id: RunId::new(NET, referendum, run),
            mode,
            hooks,
        }
    }

    fn posted(&self) -> usize {
        self.server.state.chain.lock().unwrap().posted.len()
    }
}

#[tokio::test]
async fn votes_over_sidecar_and_reads_them_back() {
    let env = setup().await;
    let transport = SidecarTransport::new(&env.server.url, 0, 64 << 20).unwrap();
    for (referendum, track, kind, conviction, want) in [
        (
            123u32,
            33u16,
            VoteKind::Aye,
            1u8,
            AccountVote::Standard {
                aye: true,
                conviction: 1,
                balance: 10_000_000_000,
            },
        ),
        (
            124,
            11,
            VoteKind::Abstain,
            0,
            AccountVote::SplitAbstain {
                aye: 0,
                nay: 0,
                abstain: 10_000_000_000,
            },
        ),
    ] {
        write_vote_run(
            &env.store,
            NET,
            referendum,
            1,
            kind,
            conviction,
            "10000000000",
        )
        .await;
        let VoteOutcome::DryRun(plan) = env.vote(referendum, 1, VoteMode::DryRun).await.unwrap()
        else {
            panic!("dry run")
        };
        assert_eq!(plan.transport, TransportKind::Sidecar);
        assert!(plan.fee_estimate.is_some_and(|f| f > 1_000_000));
        assert_eq!(plan.current_vote, None);
        let before = env.posted();

        let VoteOutcome::Submitted(receipt) =
            env.vote(referendum, 1, VoteMode::Submit).await.unwrap()
        else {
            panic!("submitted")
        };
        assert_eq!(env.posted(), before + 1);
        assert_eq!(receipt.transport, TransportKind::Sidecar);
        assert_eq!(receipt.account_vote, want);
        assert_eq!(receipt.extrinsic_index, 1);
        assert_eq!(receipt.signer, alice());
        let pallets: Vec<String> = receipt
            .events
            .iter()
            .map(|e| format!("{}.{}", e.pallet, e.variant))
            .collect();
        assert!(
            pallets.contains(&"Proxy.ProxyExecuted".to_owned()),
            "{pallets:?}"
        );
        assert!(
            pallets.contains(&"System.Remarked".to_owned()),
            "{pallets:?}"
        );

        // What the double accepted decodes to what vote.json asked for.
        let accepted = env
            .server
            .state
            .chain
            .lock()
            .unwrap()
            .accepted
            .last()
            .cloned()
            .unwrap();
        let bytes = hex::decode(&accepted[2..]).unwrap();
        let decoded = tx::decode(&material("asset-hub-polkadot"), &bytes)
            .await
            .unwrap();
        assert_eq!(decoded.call.vote, want);
        assert_eq!(decoded.call.real, bob());
        assert_eq!(decoded.call.remark, receipt.remark);

        assert_eq!(
            transport
                .current_vote(&bob(), track, referendum)
                .await
                .unwrap(),
            Some(want)
        );
        let rl = ReferendumLayout::new(NET, referendum).run(1);
        assert_eq!(
            Receipt::read(&env.store, &rl).await.unwrap(),
            Some(receipt.clone())
        );

        // The verifier finds the vote and the remark through Sidecar, without the receipt.
        let bytes = env.store.get(&rl.key(&Artefact::Manifest)).await.unwrap();
        let manifest = Manifest::from_canonical_bytes(&bytes).unwrap();
        let lookup = ChainLookup {
            transport: &transport,
            real: bob(),
            ss58_prefix: 0,
            tracks: vec![track],
            from_block: None,
            to_block: None,
            max_blocks: 1_000,
            hint_block: None,
        };
        let found = check_chain(&lookup, &manifest, Sha256Hash::of(&bytes)).await;
        assert!(found.not_voted.is_empty(), "{found:?}");
        assert_eq!(found.checks.len(), 2, "{found:?}");
        assert!(found.checks.iter().all(|c| c.passed), "{found:?}");

        let VoteOutcome::AlreadyDone(again) =
            env.vote(referendum, 1, VoteMode::Submit).await.unwrap()
        else {
            panic!("already done")
        };
        assert_eq!(again, receipt);
        assert_eq!(env.posted(), before + 1, "nothing sent twice");
    }
}

#[tokio::test]
async fn a_crash_after_posting_is_recovered_without_posting_again() {
    let env = setup().await;
    write_vote_run(&env.store, NET, 123, 1, VoteKind::Nay, 2, "5000000000").await;
    let hooks = StageHooks {
        inner_call: None,
        stop_after_submit: true,
        ..StageHooks::default()
    };
    let err = vote_stage(&env.store, &env.job(123, 1, VoteMode::Submit, hooks))
        .await
        .unwrap_err();
    assert!(matches!(err, VoteError::Interrupted { .. }), "{err}");
    assert_eq!(env.posted(), 1);
    let VoteOutcome::AlreadyDone(receipt) = env.vote(123, 1, VoteMode::Submit).await.unwrap()
    else {
        panic!("recovered")
    };
    assert_eq!(
        env.posted(),
        1,
        "the recorded extrinsic was found, not sent again"
    );
    assert_eq!(
        receipt.account_vote,
        AccountVote::Standard {
            aye: false,
            conviction: 2,
            balance: 5_000_000_000
        }
    );
}

#[tokio::test]
async fn failed_to_submit_transaction_carries_its_cause() {
    let env = setup().await;
    write_vote_run(&env.store, NET, 123, 1, VoteKind::Aye, 1, "10000000000").await;
    env.server.state.chain.lock().unwrap().reject_cause =
        Some("1010: Invalid Transaction: Transaction has a bad signature".into());
    let err = env.vote(123, 1, VoteMode::Submit).await.unwrap_err();
    assert!(matches!(err, VoteError::Rejected { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Failed to submit transaction.") && text.contains("bad signature"),
        "{text}"
    );
    assert!(!err.is_transient());

    // The transport on its own reports the same.
    let transport = SidecarTransport::new(&env.server.url, 0, 64 << 20).unwrap();
    let e = transport.submit(&[1, 2, 3]).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Rejected { ref cause } if cause.contains("bad signature")),
        "{e}"
    );

    // A payment refusal is an unfunded signer.
    env.server.state.chain.lock().unwrap().reject_cause = Some(
        "1010: Invalid Transaction: Inability to pay some fees , e.g. account balance too low"
            .into(),
    );
    write_vote_run(&env.store, NET, 124, 1, VoteKind::Aye, 1, "10000000000").await;
    let err = env.vote(124, 1, VoteMode::Submit).await.unwrap_err();
    assert!(matches!(err, VoteError::Unfunded { .. }), "{err}");

    // A malformed transaction is refused by the double itself.
    env.server.state.chain.lock().unwrap().reject_cause = None;
    let e = transport.submit(&[1, 2, 3]).await.unwrap_err();
    assert!(
        matches!(e, TransportError::Rejected { ref cause } if cause.contains("createType")),
        "{e}"
    );
}

#[tokio::test]
async fn proxy_errors_decided_referenda_and_outages() {
    let env = setup().await;
    write_vote_run(&env.store, NET, 123, 1, VoteKind::Aye, 1, "10000000000").await;
    env.server.state.chain.lock().unwrap().proxy_error =
        Some(json!({"module": {"index": "42", "error": "0x05000000"}}));
    let err = env.vote(123, 1, VoteMode::Submit).await.unwrap_err();
    assert!(
        matches!(
            err,
            VoteError::Failed {
                failure: Failure::ProxyFailed(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_transient());
    let rl = ReferendumLayout::new(NET, 123).run(1);
    assert_eq!(Receipt::read(&env.store, &rl).await.unwrap(), None);

    write_vote_run(&env.store, NET, 125, 1, VoteKind::Aye, 1, "10000000000").await;
    let before = env.posted();
    let err = env.vote(125, 1, VoteMode::Submit).await.unwrap_err();
    assert!(
        matches!(err, VoteError::NotOngoing { ref state, .. } if state == "Approved"),
        "{err}"
    );
    assert_eq!(env.posted(), before);
    let transport = SidecarTransport::new(&env.server.url, 0, 64 << 20).unwrap();
    assert_eq!(
        transport.referendum(999).await.unwrap(),
        ReferendumStatus::Unknown
    );

    env.server.state.chain.lock().unwrap().down = Some(503);
    write_vote_run(&env.store, NET, 124, 1, VoteKind::Aye, 1, "10000000000").await;
    let err = env.vote(124, 1, VoteMode::Submit).await.unwrap_err();
    assert!(
        err.is_transient(),
        "a Sidecar outage is worth retrying: {err}"
    );
}

/// A real account that delegates on a track is found through Sidecar's polkadot.js rendering of
/// `ConvictionVoting.VotingFor` (lower-case variant, SS58 target); a casting account is not.
#[tokio::test]
async fn a_delegating_real_account_is_seen_over_sidecar() {
    let env = setup().await;
    let charlie = AccountId(dev::charlie().public_key().0);
    env.server.state.chain.lock().unwrap().voting.insert(
        (bob().to_ss58(0), 2),
        json!({"delegating": {"balance": "1000", "target": charlie.to_ss58(0), "conviction": "Locked1x", "delegations": {"votes": "0", "capital": "0"}, "prior": [0, "0"]}}),
    );
    let transport = SidecarTransport::new(&env.server.url, 0, 64 << 20).unwrap();
    assert_eq!(
        transport.delegate_of(&bob(), 2).await.unwrap(),
        Some(charlie)
    );
    assert_eq!(transport.delegate_of(&bob(), 33).await.unwrap(), None);

    let warnings = cybergov::wiring::keys::check_delegations(&{
        let mut config = env.config.clone();
        config.networks.get_mut(&NET).unwrap().allowed_tracks = vec![33, 2];
        config.networks.get_mut(&Network::Kusama).unwrap().enabled = false;
        config
    })
    .await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("polkadot: real_account")
            && warnings[0].contains("on track 2 to")
            && warnings[0].contains(&charlie.to_ss58(0)),
        "{warnings:?}"
    );
}

/// A Sidecar that answers with more than cybergov reads (64 MiB, here announced by its
/// Content-Length) is refused naming the cap, without reading the body.
#[tokio::test]
async fn an_oversize_sidecar_answer_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{\"at\":")
                .await;
        }
    });
    let transport = SidecarTransport::new(&url, 0, 1 << 20).unwrap();
    let e = transport.head(false).await.unwrap_err().to_string();
    assert!(
        e.contains("more than 1048576 bytes (vote.sidecar_max_body_bytes)"),
        "{e}"
    );
}
