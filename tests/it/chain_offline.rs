//! The vote extrinsic built, signed and decoded offline against real runtime metadata
//! (Polkadot, Kusama and their Asset Hubs, from `@polkadot/types-support`, extracted at test
//! time by `tests/node/extract-metadata.mjs`).

use crate::common::metadata::{CHAINS, material};
use cybergov::account::AccountId;
use cybergov::chain::call::{AccountVote, DecodedVote, VoteCall};
use cybergov::chain::tx;
use cybergov::chain::{parse_remark, remark_text};
use cybergov::hash::Sha256Hash;
use cybergov::magi::tally::VoteRecord;
use cybergov::network::Network;
use cybergov::records::run_id::RunId;
use subxt_signer::sr25519::dev;

/// A vote.json as the infer stage writes it.
fn vote_record(decision: &str, conviction: u8, balance: &str) -> VoteRecord {
    serde_json::from_value(serde_json::json!({
        "schema": "cybergov.vote/v1", "network": "polkadot", "referendum": 123, "run": 1,
        "rule": "majority-without-opposition-v1",
        "jurors": [{"juror": "balthazar", "vote": decision}],
        "counts": {"aye": 0, "nay": 0, "abstain": 0}, "agreement": "unanimous",
        "forced_abstain": null, "decision": decision, "conviction": conviction, "balance": balance
    }))
    .expect("vote.json shape")
}

#[tokio::test]
async fn aye_nay_and_abstain_on_four_real_runtimes() {
    let alice = dev::alice();
    let alice_id = AccountId(alice.public_key().0);
    let bob = AccountId(dev::bob().public_key().0);
    let manifest = Sha256Hash::of(b"manifest.json bytes");
    let cases = [
        (
            vote_record("aye", 1, "10000000000"),
            AccountVote::Standard {
                aye: true,
                conviction: 1,
                balance: 10_000_000_000,
            },
        ),
        (
            vote_record("nay", 6, "123456789012345678901234"),
            AccountVote::Standard {
                aye: false,
                conviction: 6,
                balance: 123_456_789_012_345_678_901_234,
            },
        ),
        (
            vote_record("abstain", 0, "5000"),
            AccountVote::SplitAbstain {
                aye: 0,
                nay: 0,
                abstain: 5000,
            },
        ),
    ];
    for chain in CHAINS {
        let material = material(chain);
        for (record, expected) in &cases {
            let vote = AccountVote::from_record(record).unwrap();
            assert_eq!(&vote, expected);
            let remark = remark_text(RunId::new(Network::Polkadot, 123, 1), &manifest);
            let call = VoteCall {
                real: bob,
                proxy_type: Some("Governance".into()),
                referendum: 123,
                vote,
                remark: remark.clone(),
            };
            let signed = tx::sign(&material, &call, None, &alice, 7, 64)
                .unwrap_or_else(|e| panic!("{chain}: {e}"));
            assert_eq!(
                signed.era_end, 1_000_064,
                "{chain}: mortal era of 64 blocks"
            );
            let decoded = tx::decode(&material, &signed.bytes)
                .await
                .unwrap_or_else(|e| panic!("{chain}: {e}"));
            assert_eq!(decoded.outer_call, "Utility.batch_all", "{chain}");
            assert_eq!(decoded.signer, alice_id, "{chain}");
            assert_eq!(
                decoded.call,
                DecodedVote {
                    real: bob,
                    proxy_type: Some("Governance".into()),
                    referendum: 123,
                    vote: *expected,
                    remark: remark.clone(),
                },
                "{chain}: the decoded call is what vote.json asked for"
            );
            assert_eq!(
                parse_remark(&decoded.call.remark).unwrap().manifest_sha256,
                manifest
            );
            assert!(
                tx::verify(&decoded.signature, &signed.signer_payload, &alice_id),
                "{chain}: the signature verifies"
            );
            assert!(
                !tx::verify(&decoded.signature, &signed.signer_payload, &bob),
                "{chain}: not Bob's"
            );
            let mut tampered = signed.signer_payload.clone();
            tampered[0] ^= 1;
            assert!(
                !tx::verify(&decoded.signature, &tampered, &alice_id),
                "{chain}"
            );
        }
    }
}

#[tokio::test]
async fn unforced_proxy_type_and_unknown_proxy_type() {
    let material = material("asset-hub-polkadot");
    let mut call = VoteCall {
        real: AccountId(dev::bob().public_key().0),
        proxy_type: None,
        referendum: 9,
        vote: AccountVote::Standard {
            aye: true,
            conviction: 0,
            balance: 1,
        },
        remark: "cybergov:v1:polkadot:9:1:00".into(),
    };
    let signed = tx::sign(&material, &call, None, &dev::alice(), 0, 64).unwrap();
    let decoded = tx::decode(&material, &signed.bytes).await.unwrap();
    assert_eq!(decoded.call.proxy_type, None);
    call.proxy_type = Some("NoSuchProxyType".into());
    let err = tx::sign(&material, &call, None, &dev::alice(), 0, 64).unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");
}
