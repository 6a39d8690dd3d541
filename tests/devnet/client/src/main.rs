//! A manual end-to-end check of the devnet, against chopsticks running `tests/devnet/spec.json`:
//!
//! ```sh
//! tests/node/node_modules/.bin/chopsticks --genesis tests/devnet/spec.json \
//!     --host 127.0.0.1 --port 18000 --build-block-mode Instant &
//! cargo run --manifest-path tests/devnet/Cargo.toml -p devnet-client   # CHAIN_WS=ws://127.0.0.1:18000
//! ```
//!
//! It reads the genesis state, casts cybergov's vote transaction (Alice for Bob through the
//! Governance proxy, with the remark outside the proxy), reads the vote back, and checks that the
//! Governance proxy refuses non-governance calls. Every step prints what it saw; the first broken
//! expectation ends the run with an error. It changes the chain, so run it on a fresh chopsticks.
//!
//! Only names from the metadata are used (subxt's dynamic API), like cybergov itself.

use std::str::FromStr;

use anyhow::{anyhow, bail, ensure, Context, Result};
use subxt::backend::LegacyBackend;
use subxt::dynamic::{self, At, Value};
use subxt::ext::frame_decode::storage::{IntoDecodableValues, IntoEncodableValues};
use subxt::ext::scale_value::ValueDef;
use subxt::rpcs::{rpc_params, RpcClient};
use subxt::{Metadata, OnlineClient, SubstrateConfig};
use subxt_signer::sr25519::{dev, Keypair};
use subxt_signer::SecretUri;

type Client = OnlineClient<SubstrateConfig>;

const UNIT: u128 = 1_000_000_000_000;
const MEDIUM_SPENDER: u16 = 33;

/// A pallet call as a dynamic value, e.g. `call("System", "remark", [("remark", ..)])`.
fn call<const N: usize>(pallet: &str, name: &str, fields: [(&str, Value); N]) -> Value {
    Value::unnamed_variant(pallet, [Value::named_variant(name, fields)])
}

/// `MultiAddress::Id(account)`.
fn address(who: &Keypair) -> Value {
    Value::unnamed_variant("Id", [Value::from_bytes(who.public_key().0)])
}

/// `Proxy.proxy(real, force_proxy_type, call)`.
fn proxied(real: &Keypair, proxy_type: Option<&str>, inner: Value) -> Value {
    let force = match proxy_type {
        Some(t) => Value::unnamed_variant("Some", [Value::unnamed_variant(t, [])]),
        None => Value::unnamed_variant("None", []),
    };
    call(
        "Proxy",
        "proxy",
        [
            ("real", address(real)),
            ("force_proxy_type", force),
            ("call", inner),
        ],
    )
}

/// `ConvictionVoting.vote(poll, Standard { vote, balance })`; the vote byte is
/// `0x80 * aye | conviction`.
fn standard_vote(poll: u32, aye: bool, conviction: u8, balance: u128) -> Value {
    let vote = (if aye { 0x80 } else { 0 }) | conviction;
    call(
        "ConvictionVoting",
        "vote",
        [
            ("poll_index", Value::u128(poll.into())),
            (
                "vote",
                Value::named_variant(
                    "Standard",
                    [
                        ("vote", Value::unnamed_composite([Value::u128(vote.into())])),
                        ("balance", Value::u128(balance)),
                    ],
                ),
            ),
        ],
    )
}

fn transfer(dest: &Keypair, value: u128) -> Value {
    call(
        "Balances",
        "transfer_keep_alive",
        [("dest", address(dest)), ("value", Value::u128(value))],
    )
}

fn remark_with_event(text: &[u8]) -> Value {
    call(
        "System",
        "remark_with_event",
        [("remark", Value::from_bytes(text))],
    )
}

fn variant_name(value: &Value) -> Option<&str> {
    match &value.value {
        ValueDef::Variant(v) => Some(&v.name),
        _ => None,
    }
}

/// An event, as `Pallet.Event` and its decoded fields.
struct Event {
    name: String,
    fields: Value,
}

/// Signs a call (the outer call value, `Pallet(call)`), waits for its block and returns its events.
async fn submit(api: &Client, signer: &Keypair, outer: Value) -> Result<Vec<Event>> {
    let ValueDef::Variant(pallet) = outer.value else {
        bail!("not a call")
    };
    let [inner] = pallet
        .values
        .into_values()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| anyhow!("not a call"))?;
    let ValueDef::Variant(function) = inner.value else {
        bail!("not a call")
    };
    let tx = dynamic::tx(&pallet.name, &function.name, function.values);
    let at = api.at_current_block().await?;
    let events = at
        .tx()
        .sign_and_submit_then_watch_default(&tx, signer)
        .await?
        .wait_for_finalized_success()
        .await?;
    let mut out = Vec::new();
    for event in events.iter() {
        let event = event?;
        let name = format!("{}.{}", event.pallet_name(), event.event_name());
        // The event decodes as `Pallet(Event { fields })`; keep the inner `Event { fields }`.
        let outer: Value = event.decode_as()?;
        let fields = outer
            .at(0)
            .cloned()
            .context("an event without its variant")?;
        println!("    event {name} {fields}");
        out.push(Event { name, fields });
    }
    Ok(out)
}

fn find<'a>(events: &'a [Event], name: &str) -> Result<&'a Event> {
    events
        .iter()
        .find(|e| e.name == name)
        .with_context(|| format!("no {name} event"))
}

/// The inner result of `Proxy.ProxyExecuted`: `Ok(())`, or the dispatch error, with a module
/// error resolved to `Pallet.Error` through the metadata.
fn proxy_result(events: &[Event], metadata: &Metadata) -> Result<Result<(), String>> {
    let result = find(events, "Proxy.ProxyExecuted")?
        .fields
        .at("result")
        .context("no result")?;
    match variant_name(result) {
        Some("Ok") => Ok(Ok(())),
        Some("Err") => {
            let error = result.at(0).context("an empty Err")?;
            let Some("Module") = variant_name(error) else {
                return Ok(Err(error.to_string()));
            };
            let module = error.at(0).context("an empty Module error")?;
            let index = module
                .at("index")
                .and_then(Value::as_u128)
                .context("no pallet index")? as u8;
            let code = module
                .at("error")
                .and_then(|e| e.at(0))
                .and_then(Value::as_u128)
                .context("no error")? as u8;
            let pallet = metadata
                .pallet_by_error_index(index)
                .context("unknown pallet")?;
            let variant = pallet
                .error_variant_by_index(code)
                .context("unknown error")?;
            Ok(Err(format!("{}.{}", pallet.name(), variant.name)))
        }
        _ => bail!("ProxyExecuted result is neither Ok nor Err: {result}"),
    }
}

/// A storage value at the current block, or `None` where there is none. `key` holds the key
/// parts as a tuple, e.g. `(account,)` or `(account, class)`.
async fn storage<K: IntoEncodableValues + IntoDecodableValues>(
    api: &Client,
    pallet: &str,
    entry: &str,
    key: K,
) -> Result<Option<Value>> {
    let at = api.at_current_block().await?;
    let address = dynamic::storage::<K, Value>(pallet, entry);
    Ok(match at.storage().try_fetch(address, key).await? {
        Some(value) => Some(value.decode()?),
        None => None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let ws = std::env::var("CHAIN_WS").unwrap_or_else(|_| "ws://127.0.0.1:18000".into());
    let rpc = RpcClient::from_insecure_url(&ws)
        .await
        .with_context(|| format!("connecting to {ws}"))?;

    println!("1. state_getMetadata");
    let metadata_hex: String = rpc.request("state_getMetadata", rpc_params![]).await?;
    let bytes = hex::decode(metadata_hex.trim_start_matches("0x"))?;
    ensure!(
        bytes.starts_with(b"meta"),
        "metadata without the `meta` magic"
    );
    println!("    {} bytes, metadata version {}", bytes.len(), bytes[4]);

    // chopsticks serves the legacy JSON-RPC methods; subxt's default backend wants chainHead.
    let backend = LegacyBackend::<SubstrateConfig>::builder().build(rpc);
    let api = Client::from_backend(std::sync::Arc::new(backend)).await?;
    let metadata = api.at_current_block().await?.metadata();
    let [alice, bob, charlie, dave, eve, ferdie] = [
        dev::alice(),
        dev::bob(),
        dev::charlie(),
        dev::dave(),
        dev::eve(),
        dev::ferdie(),
    ];
    let unfunded = Keypair::from_uri(&SecretUri::from_str("//Unfunded")?)?;

    println!("2. genesis state");
    for (name, who) in [
        ("Alice", &alice),
        ("Bob", &bob),
        ("Charlie", &charlie),
        ("Dave", &dave),
        ("Eve", &eve),
        ("Ferdie", &ferdie),
    ] {
        let account = storage(&api, "System", "Account", (who.public_key().0,))
            .await?
            .context("no account")?;
        let free = account
            .at("data")
            .and_then(|d| d.at("free"))
            .and_then(Value::as_u128)
            .context("no free balance")?;
        let reserved = account
            .at("data")
            .and_then(|d| d.at("reserved"))
            .and_then(Value::as_u128)
            .unwrap_or(0);
        println!(
            "    {name}: free {} UNIT, reserved {} UNIT",
            free / UNIT,
            reserved as f64 / UNIT as f64
        );
        ensure!(free > 1000 * UNIT, "{name} is not well funded");
    }
    let account = storage(&api, "System", "Account", (unfunded.public_key().0,)).await?;
    let free = account
        .as_ref()
        .and_then(|a| a.at("data")?.at("free")?.as_u128())
        .unwrap_or(0);
    println!("    //Unfunded: free {free}");
    ensure!(free == 0, "//Unfunded has funds");
    for (name, who) in [("Bob", &bob), ("Dave", &dave), ("Ferdie", &ferdie)] {
        let proxies = storage(&api, "Proxy", "Proxies", (who.public_key().0,)).await?;
        println!(
            "    Proxy.Proxies({name}) = {}",
            proxies.map(|p| p.to_string()).unwrap_or("none".into())
        );
    }
    for index in 0u32..5 {
        let info = storage(&api, "Referenda", "ReferendumInfoFor", (index,))
            .await?
            .context("no referendum")?;
        let state = variant_name(&info).unwrap_or("?");
        let track = info
            .at(0)
            .and_then(|s| s.at("track"))
            .and_then(Value::as_u128);
        let deciding = info
            .at(0)
            .and_then(|s| s.at("deciding"))
            .and_then(variant_name);
        println!("    referendum {index}: {state}, track {track:?}, deciding {deciding:?}");
        ensure!(
            (state == "Ongoing") == (index != 3),
            "referendum {index} is {state}"
        );
    }

    println!("3. Alice votes for Bob through the Governance proxy, with a remark");
    let vote = proxied(&bob, Some("Governance"), standard_vote(0, true, 1, UNIT));
    let batch = call(
        "Utility",
        "batch_all",
        [(
            "calls",
            Value::unnamed_composite([vote, remark_with_event(b"x")]),
        )],
    );
    let events = submit(&api, &alice, batch).await?;
    ensure!(
        proxy_result(&events, &metadata)?.is_ok(),
        "the proxied vote failed"
    );
    find(&events, "ConvictionVoting.Voted")?;
    find(&events, "System.Remarked")?;
    find(&events, "Utility.BatchCompleted")?;

    println!("4. the vote is on chain");
    let voting = storage(
        &api,
        "ConvictionVoting",
        "VotingFor",
        (bob.public_key().0, MEDIUM_SPENDER),
    )
    .await?;
    let voting = voting.context("no ConvictionVoting.VotingFor(Bob, 33)")?;
    println!("    ConvictionVoting.VotingFor(Bob, 33) = {voting}");
    let votes = voting
        .at(0)
        .and_then(|c| c.at("votes"))
        .context("not Casting")?;
    // votes: BoundedVec (a newtype) of Vec of (poll index, vote).
    let first_poll = votes
        .at(0)
        .and_then(|v| v.at(0))
        .and_then(|t| t.at(0))
        .and_then(Value::as_u128);
    ensure!(first_poll == Some(0), "no vote on referendum 0");
    let info = storage(&api, "Referenda", "ReferendumInfoFor", (0u32,))
        .await?
        .context("no referendum 0")?;
    let tally = info.at(0).and_then(|s| s.at("tally")).context("no tally")?;
    println!("    referendum 0 tally = {tally}");

    println!("5. the Governance proxy refuses other calls");
    for (what, inner) in [
        ("a transfer", transfer(&alice, UNIT)),
        ("a remark", remark_with_event(b"x")),
    ] {
        let events = submit(&api, &alice, proxied(&bob, Some("Governance"), inner)).await?;
        let result = proxy_result(&events, &metadata)?;
        println!("    {what} -> {result:?}");
        ensure!(
            result == Err("System.CallFiltered".into()),
            "{what} was not filtered"
        );
    }

    println!("6. the Any proxy admits a transfer (Charlie for Dave)");
    let events = submit(
        &api,
        &charlie,
        proxied(&dave, None, transfer(&charlie, UNIT)),
    )
    .await?;
    ensure!(
        proxy_result(&events, &metadata)?.is_ok(),
        "the Any proxy's transfer failed"
    );
    find(&events, "Balances.Transfer")?;

    println!("all checks passed");
    Ok(())
}
