//! The Subsquare client against a local server that speaks Subsquare's formats and fails on
//! purpose: each failure has its documented outcome (src/subsquare/client.rs).

use crate::common::subsquare_server::{Behaviour, fixture, fixture_as, spawn_subsquare};
use cybergov::network::{Network, NetworkSpec};
use cybergov::stages::scrape::scrape;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{FsStore, ObjectStore, PutOutcome};
use cybergov::subsquare::{SubsquareClient, SubsquareConfig, SubsquareError};
use std::time::{Duration, Instant};

fn fast_config() -> SubsquareConfig {
    SubsquareConfig {
        user_agent: "cybergov-test/1".into(),
        timeout_ms: 300,
        max_retries: 2,
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        retry_after_max_ms: 5_000,
        page_size: 2,
        max_body_bytes: 1024 * 1024,
    }
}

fn spec(url: &str) -> NetworkSpec {
    NetworkSpec {
        subsquare_api_url: url.to_owned(),
        ..Network::Polkadot.default_spec()
    }
}

fn client(url: &str, config: &SubsquareConfig) -> SubsquareClient {
    SubsquareClient::new(Network::Polkadot, &spec(url), config).unwrap()
}

/// Scrapes referendum `index` from `url`, which must be refused: a permanent error, and nothing
/// stored. Returns the error's text.
async fn refused_scrape(url: &str, index: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let run = ReferendumLayout::new(Network::Polkadot, index).run(1);
    let e = scrape(&client(url, &fast_config()), &store, &run)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!cybergov::retry::Transient::is_transient(&e), "{text}");
    assert!(
        store
            .get_optional(&run.key(&Artefact::RawSubsquare))
            .await
            .unwrap()
            .is_none(),
        "nothing is stored: {text}"
    );
    text
}

#[tokio::test]
async fn another_referendums_body_is_refused_and_nothing_is_stored() {
    let server = spawn_subsquare().await;
    // Asked for #1, Subsquare answers with #1801's body.
    server.add_referendum(1, fixture("polkadot-1801-toolkit.json"));
    let text = refused_scrape(&server.url, 1).await;
    assert!(
        text.contains("answered with referendum 1801, not 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_oversize_body_is_refused_at_once_and_nothing_is_stored() {
    let server = spawn_subsquare().await;
    let mut body = br#"{"referendumIndex": 9, "content": ""#.to_vec();
    body.resize(body.len() + 2 * 1024 * 1024, b'a');
    body.extend_from_slice(b"\"}");
    server.add_referendum(9, body);
    let started = Instant::now();
    let text = refused_scrape(&server.url, 9).await;
    assert!(text.contains("more than 1048576 bytes"), "{text}");
    assert_eq!(
        server.hits("GET /gov2/referendums/9").len(),
        1,
        "not retried"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_reported_with_its_byte_offset() {
    let server = spawn_subsquare().await;
    let mut body = br#"{"referendumIndex": 7, "title": "caf"#.to_vec();
    let offset = body.len();
    body.extend_from_slice(b"\xff\"}");
    server.add_referendum(7, body);
    let c = client(&server.url, &fast_config());
    let e = c.referendum(7).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("not UTF-8: invalid byte at offset {offset}")),
        "{text}"
    );
}

#[tokio::test]
async fn detail_is_stored_byte_for_byte_with_our_user_agent() {
    let server = spawn_subsquare().await;
    let raw = fixture("polkadot-1801-toolkit.json");
    server.add_referendum(1801, raw.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let run = ReferendumLayout::new(Network::Polkadot, 1801).run(1);
    let c = client(&server.url, &fast_config());
    let (bytes, outcome) = scrape(&c, &store, &run).await.unwrap();
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!(bytes, raw);
    assert_eq!(
        store.get(&run.key(&Artefact::RawSubsquare)).await.unwrap(),
        raw
    );
    let hits = server.hits("GET /gov2/referendums/1801");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].user_agent.as_deref(), Some("cybergov-test/1"));
    // A second scrape reads the store, not Subsquare.
    let (_, outcome) = scrape(&c, &store, &run).await.unwrap();
    assert_eq!(outcome, PutOutcome::AlreadyPresent);
    assert_eq!(server.hits("GET /gov2/referendums/1801").len(), 1);
}

#[tokio::test]
async fn unknown_referendum_is_not_found_at_once() {
    let server = spawn_subsquare().await;
    let e = client(&server.url, &fast_config())
        .referendum(999)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            SubsquareError::NotFound {
                network: Network::Polkadot,
                index: 999
            }
        ),
        "{e}"
    );
    assert_eq!(
        server.hits("GET /gov2/referendums/999").len(),
        1,
        "404 is never retried"
    );
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let server = spawn_subsquare().await;
    server.add_referendum(5, fixture_as("polkadot-1802-links-only.json", 5));
    server.script(5, [Behaviour::TooMany { retry_after: 1 }]);
    let started = Instant::now();
    let bytes = client(&server.url, &fast_config())
        .referendum(5)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(bytes, fixture_as("polkadot-1802-links-only.json", 5));
    assert_eq!(server.hits("GET /gov2/referendums/5").len(), 2);

    // A huge Retry-After is capped.
    server.script(5, [Behaviour::TooMany { retry_after: 3600 }]);
    let config = SubsquareConfig {
        retry_after_max_ms: 50,
        ..fast_config()
    };
    let started = Instant::now();
    client(&server.url, &config).referendum(5).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_back_off_and_then_give_up_naming_url_and_status() {
    let server = spawn_subsquare().await;
    server.add_referendum(6, fixture_as("polkadot-1802-links-only.json", 6));
    server.script(6, [Behaviour::Status(500), Behaviour::Status(503)]);
    let c = client(&server.url, &fast_config());
    c.referendum(6).await.unwrap();
    assert_eq!(server.hits("GET /gov2/referendums/6").len(), 3);

    server.script(
        6,
        [
            Behaviour::Status(500),
            Behaviour::Status(502),
            Behaviour::Status(500),
        ],
    );
    let e = c.referendum(6).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, SubsquareError::Exhausted { attempts: 3, .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/gov2/referendums/6", server.url)),
        "{text}"
    );
    assert!(text.contains("HTTP 500"), "{text}");
    assert_eq!(server.hits("GET /gov2/referendums/6").len(), 6);
}

#[tokio::test]
async fn a_slow_response_times_out_and_is_retried() {
    let server = spawn_subsquare().await;
    server.add_referendum(7, fixture_as("polkadot-1802-links-only.json", 7));
    let c = client(&server.url, &fast_config());
    server.script(7, [Behaviour::Slow(Duration::from_secs(2))]);
    let started = Instant::now();
    c.referendum(7).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the slow attempt was abandoned"
    );
    assert_eq!(server.hits("GET /gov2/referendums/7").len(), 2);

    server.script(
        7,
        std::iter::repeat_n(Behaviour::Slow(Duration::from_secs(2)), 3),
    );
    let e = c.referendum(7).await.unwrap_err();
    assert!(
        matches!(&e, SubsquareError::Exhausted { last, unreachable: false, .. } if last.starts_with("timeout: ") && last.contains("timed out")),
        "{e}"
    );
}

#[tokio::test]
async fn truncated_json_is_malformed() {
    let server = spawn_subsquare().await;
    server.add_referendum(8, fixture_as("polkadot-1802-links-only.json", 8));
    server.script(8, [Behaviour::Truncated]);
    let e = client(&server.url, &fast_config())
        .referendum(8)
        .await
        .unwrap_err();
    assert!(matches!(e, SubsquareError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("/gov2/referendums/8"), "{e}");
}

#[tokio::test]
async fn listing_pages_through_every_referendum() {
    let server = spawn_subsquare().await;
    for (i, f) in [
        (1801, "polkadot-1801-toolkit.json"),
        (1802, "polkadot-1802-links-only.json"),
        (1803, "polkadot-1803-long.json"),
    ] {
        server.add_referendum(i, fixture(f));
    }
    let c = client(&server.url, &fast_config());
    let first = c.referenda_page(1).await.unwrap();
    assert_eq!(first.total, 3);
    assert_eq!(first.items.len(), 2);
    let all = c.referenda().await.unwrap();
    let ids: Vec<u32> = all.iter().map(|r| r.index).collect();
    assert_eq!(ids, [1803, 1802, 1801]);
    assert_eq!(all[0].track, Some(34));
    assert_eq!(all[0].state.as_deref(), Some("Deciding"));
    assert_eq!(server.hits("GET /gov2/referendums?page=").len(), 3);
}
