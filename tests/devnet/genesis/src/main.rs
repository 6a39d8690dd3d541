//! Writes the devnet's raw chain spec: `devnet-genesis [OUTPUT]` (default `spec.json`).
//!
//! The genesis state is built natively rather than through the runtime's genesis presets, because
//! it contains more than pallet genesis configs can express: the writer builds the balances'
//! genesis storage, then dispatches real calls inside `TestExternalities` (proxies, referenda,
//! decision deposits), so every deposit, hold and index is what the pallets themselves write.
//! Finally it clears the events and dumps every storage key, plus `:code`, as a raw chain spec
//! that `chopsticks --genesis` accepts.
//!
//! The output is deterministic: the same runtime wasm gives the same bytes (`serde_json`'s map is
//! sorted, zstd at a fixed level is deterministic, and nothing reads the clock).

use std::process::ExitCode;

use codec::Encode;
use devnet_runtime::{
    self as rt, pallet_custom_origins::Origin as TrackOrigin, AccountId, OriginCaller, ProxyType,
    Runtime, RuntimeCall, RuntimeOrigin, DEV_ENDOWMENT, UNIT,
};
use frame::deps::frame_support::traits::{
    schedule::v3::Anon, schedule::DispatchTime, StorePreimage,
};
use frame::deps::sp_core::{sr25519, Pair};
use frame::deps::sp_keyring::Sr25519Keyring as Keyring;
use frame::deps::sp_runtime::BuildStorage;
use frame::deps::{frame_system, sp_io};
use pallet_referenda::{ReferendumInfo, ReferendumInfoFor};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

type Referenda = pallet_referenda::Pallet<Runtime>;

/// Refuse to decompress anything larger (the runtime is ~4 MB uncompressed).
const CODE_BOMB_LIMIT: usize = 50 * 1024 * 1024;

/// One referendum the genesis state starts with.
struct Referendum {
    proposer: Keyring,
    origin: OriginCaller,
    /// The proposal is a `System.remark` carrying this text. Texts over 128 bytes are stored as a
    /// preimage (`Bounded::Lookup`), shorter ones inline, as the Preimage pallet decides.
    remark: &'static str,
    decision_deposit: bool,
    /// Rewrite the referendum as `Approved` after submitting it.
    approved: bool,
}

fn referenda() -> [Referendum; 5] {
    let custom = OriginCaller::Origins;
    let root = OriginCaller::system(frame_system::RawOrigin::Root);
    [
        Referendum {
            proposer: Keyring::Alice,
            origin: custom(TrackOrigin::MediumSpender),
            remark: "cybergov devnet referendum 0: medium_spender, deciding",
            decision_deposit: true,
            approved: false,
        },
        Referendum {
            proposer: Keyring::Bob,
            origin: custom(TrackOrigin::Treasurer),
            remark: "cybergov devnet referendum 1: treasurer, deciding",
            decision_deposit: true,
            approved: false,
        },
        Referendum {
            proposer: Keyring::Charlie,
            origin: custom(TrackOrigin::WishForChange),
            remark: "cybergov devnet referendum 2: wish_for_change, no decision deposit",
            decision_deposit: false,
            approved: false,
        },
        Referendum {
            proposer: Keyring::Dave,
            origin: custom(TrackOrigin::SmallTipper),
            remark: "cybergov devnet referendum 3: small_tipper, approved",
            decision_deposit: true,
            approved: true,
        },
        Referendum {
            proposer: Keyring::Eve,
            origin: root,
            remark: "cybergov devnet referendum 4: root, deciding. This proposal is deliberately \
			         longer than 128 bytes, so that it is stored as a preimage and the referendum \
			         refers to it by hash (Bounded::Lookup), as most real proposals do.",
            decision_deposit: true,
            approved: false,
        },
    ]
}

/// The account of the sr25519 dev derivation `//Unfunded` (subxt_signer's `SecretUri` of the
/// same string), which tests use as an account with no funds.
fn unfunded() -> AccountId {
    let pair = sr25519::Pair::from_string("//Unfunded", None).expect("a valid dev derivation");
    pair.public().into()
}

/// Dispatches the genesis calls. Runs inside `TestExternalities` at block 0.
fn populate() -> Result<(), String> {
    let [alice, bob, charlie, dave, ..] = rt::dev_accounts();

    // Bob lets Alice vote for him (Governance proxy); Dave gives Charlie everything (Any).
    // Delay 0: the proxy may act at once, without announcements.
    pallet_proxy::Pallet::<Runtime>::add_proxy_delegate(&bob, alice, ProxyType::Governance, 0)
        .map_err(|e| format!("Bob -> Alice proxy: {e:?}"))?;
    pallet_proxy::Pallet::<Runtime>::add_proxy_delegate(&dave, charlie, ProxyType::Any, 0)
        .map_err(|e| format!("Dave -> Charlie proxy: {e:?}"))?;

    for (index, r) in referenda().into_iter().enumerate() {
        let index = index as u32;
        let proposer = RuntimeOrigin::signed(r.proposer.to_account_id());
        let call = RuntimeCall::System(frame_system::Call::remark {
            remark: r.remark.into(),
        });
        let proposal = <rt::Preimage as StorePreimage>::bound(call)
            .map_err(|e| format!("referendum {index}: preimage: {e:?}"))?;
        Referenda::submit(
            proposer.clone(),
            Box::new(r.origin),
            proposal,
            DispatchTime::After(1),
        )
        .map_err(|e| format!("referendum {index}: submit: {e:?}"))?;
        if r.decision_deposit {
            Referenda::place_decision_deposit(proposer, index)
                .map_err(|e| format!("referendum {index}: decision deposit: {e:?}"))?;
        }
        if r.approved {
            approve(index)?;
        }
    }
    Ok(())
}

/// Concludes an ongoing, deciding referendum as `Approved` at the current block, doing what the
/// pallet does when a referendum passes, minus the enactment: both deposits stay held for their
/// owners to refund; the track's deciding slot is freed (the pallet defers that to a
/// `one_fewer_deciding` alarm; the track's queue is empty, so it only lowers the count); the
/// referendum's pending alarm is cancelled, so the scheduler never nudges a concluded referendum.
fn approve(index: u32) -> Result<(), String> {
    let Some(ReferendumInfo::Ongoing(status)) = ReferendumInfoFor::<Runtime>::get(index) else {
        return Err(format!("referendum {index} is not ongoing"));
    };
    if status.deciding.is_none() {
        return Err(format!(
            "referendum {index} must be deciding to be approved"
        ));
    }
    if let Some((_, address)) = status.alarm {
        <rt::Scheduler as Anon<_, RuntimeCall, OriginCaller>>::cancel(address)
            .map_err(|e| format!("referendum {index}: cancel alarm: {e:?}"))?;
    }
    pallet_referenda::DecidingCount::<Runtime>::mutate(status.track, |n| *n = n.saturating_sub(1));
    let since = frame_system::Pallet::<Runtime>::block_number();
    ReferendumInfoFor::<Runtime>::insert(
        index,
        ReferendumInfo::Approved(
            since,
            Some(status.submission_deposit),
            status.decision_deposit,
        ),
    );
    Ok(())
}

/// Checks the state against what tests rely on, so a change to the writer or the runtime that
/// breaks a promise in `tests/devnet/README.md` fails the build rather than a test later.
fn check() -> Result<(), String> {
    type Balances = pallet_balances::Pallet<Runtime>;
    let total = |who: &AccountId| Balances::free_balance(who) + Balances::reserved_balance(who);
    for who in rt::dev_accounts() {
        if total(&who) != DEV_ENDOWMENT {
            return Err(format!(
                "{who} holds {} instead of the endowment",
                total(&who)
            ));
        }
    }
    if frame_system::Account::<Runtime>::contains_key(unfunded()) {
        return Err("//Unfunded has an account".into());
    }
    if pallet_referenda::ReferendumCount::<Runtime>::get() != 5 {
        return Err("expected 5 referenda".into());
    }
    for (index, r) in referenda().iter().enumerate() {
        let info = ReferendumInfoFor::<Runtime>::get(index as u32);
        match (info, r.approved) {
            (Some(ReferendumInfo::Approved(..)), true) => {}
            (Some(ReferendumInfo::Ongoing(s)), false) => {
                // A referendum with a decision deposit decides at once (no prepare period).
                if s.deciding.is_some() != r.decision_deposit {
                    return Err(format!("referendum {index}: deciding {:?}", s.deciding));
                }
            }
            (other, _) => return Err(format!("referendum {index}: unexpected {other:?}")),
        }
    }
    Ok(())
}

/// Every key and value of the top trie, in key order.
fn dump_storage() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    let mut key = Vec::new();
    if let Some(value) = sp_io::storage::get(&key) {
        pairs.push((key.clone(), value.to_vec()));
    }
    while let Some(next) = sp_io::storage::next_key(&key) {
        let value = sp_io::storage::get(&next).expect("next_key returned a key without a value");
        pairs.push((next.clone(), value.to_vec()));
        key = next;
    }
    pairs
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(bytes)))
}

fn run(out: &str) -> Result<(), String> {
    let blob = rt::WASM_BINARY.ok_or("the runtime was built without wasm (SKIP_WASM_BUILD?)")?;
    // A release build's blob is already compressed; a debug build's is not. Start from the plain
    // wasm either way, and compress it once: `:code` in the Substrate format is zstd behind an
    // 8-byte magic prefix, which every Substrate executor (chopsticks' included) inflates.
    let wasm = sp_maybe_compressed_blob::decompress(blob, CODE_BOMB_LIMIT)
        .map_err(|e| format!("the runtime blob: {e}"))?;
    let code = sp_maybe_compressed_blob::compress_strongly(&wasm, CODE_BOMB_LIMIT)
        .ok_or("the runtime wasm did not compress under the bomb limit")?;

    let config = rt::RuntimeGenesisConfig {
        balances: rt::BalancesConfig {
            balances: rt::dev_accounts()
                .into_iter()
                .map(|a| (a, DEV_ENDOWMENT))
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let storage = config.build_storage()?;
    let mut ext = sp_io::TestExternalities::new(storage);
    let pairs = ext.execute_with(|| -> Result<_, String> {
        populate()?;
        check()?;
        // Block 1 starts with no events left over from the genesis calls.
        frame_system::Pallet::<Runtime>::reset_events();
        Ok(dump_storage())
    })?;

    let mut top = Map::new();
    for (key, value) in &pairs {
        top.insert(hex(key).as_str().expect("a string").to_owned(), hex(value));
    }
    top.insert(
        hex(b":code").as_str().expect("a string").to_owned(),
        hex(&code),
    );
    let spec = json!({
        "name": "cybergov devnet",
        "id": "cybergov_devnet",
        "chainType": "Development",
        "bootNodes": [],
        "telemetryEndpoints": null,
        "protocolId": null,
        "properties": {"tokenDecimals": 12, "tokenSymbol": "UNIT", "ss58Format": 42},
        "codeSubstitutes": {},
        "genesis": {"raw": {"top": top, "childrenDefault": {}}}
    });
    let mut text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;

    println!(
		"wrote {out}: {} storage keys, runtime wasm {} bytes ({} compressed), {} UNIT per dev account",
		pairs.len() + 1,
		wasm.len(),
		code.len(),
		DEV_ENDOWMENT / UNIT,
	);
    println!("runtime wasm sha256 {}", hex::encode(Sha256::digest(&wasm)));
    println!(
        "Governance proxy type encodes as {:?}; //Unfunded is {}",
        ProxyType::Governance.encode(),
        unfunded()
    );
    Ok(())
}

fn main() -> ExitCode {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "spec.json".into());
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devnet-genesis: {e}");
            ExitCode::FAILURE
        }
    }
}
