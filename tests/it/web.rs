//! The HTTP surface of `cybergov serve` (issue #14): the JSON API over a real ledger on SQLite
//! and on PostgreSQL (paging, filters, errors in one shape, artefact links), the health checks,
//! and the binary serving a real run end to end: every artefact the API lists hashes, in the
//! store, to the SHA-256 it lists.

use crate::common::pipeline::{Backend, REF, TestDb, World, wait_for_run};
use crate::common::serve_on_loopback;
use crate::common::workers::{Watched, terminate, watch};
use cybergov::hash::Sha256Hash;
use cybergov::network::Network;
use cybergov::pipeline::ledger::{Claim, Db, Entry, Ledger, NewRun, StageKey, now_ms};
use cybergov::store::fs::FsStore;
use cybergov::web::{ServerConfig, WebState, router};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(600);

/// Creates run 1 of `network` #`id` with its `dispatch` stage, and ends it: `Some(true)`
/// completes it with one artefact, `Some(false)` fails it, `None` leaves it scheduled.
async fn add_run(ledger: &Ledger, network: Network, id: u32, end: Option<bool>) {
    let run = ledger
        .create_run(&NewRun {
            network,
            referendum: id,
            min_run: 1,
            previous_run: None,
            from_stage: None,
            expect_last: None,
            entry: Some(Entry {
                stage: "dispatch",
                due_at: now_ms(),
                claimed_by: None,
            }),
        })
        .await
        .unwrap()
        .expect("a run");
    let key = StageKey {
        network,
        referendum: id,
        run,
        stage: "dispatch".into(),
    };
    let Some(ok) = end else { return };
    let claim = ledger.claim(&key, "w", LEASE).await.unwrap();
    assert!(matches!(claim, Claim::Claimed { .. }), "{claim:?}");
    if ok {
        let outputs = format!(r#"{{"dispatch.json":"{}"}}"#, "ab".repeat(32));
        ledger
            .complete(&key, "w", &outputs, None, &[], LEASE)
            .await
            .unwrap();
        ledger.complete_run_if_done(&key).await.unwrap();
    } else {
        ledger
            .fail(&key, "w", "malformed proposal: <script>alert(1)</script>")
            .await
            .unwrap();
    }
}

/// The API on `backend`, over five referenda on two networks.
async fn api_on(backend: Backend) -> (String, tempfile::TempDir, TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend, dir.path()).await;
    let ledger = Ledger::open(Db::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    add_run(&ledger, Network::Polkadot, 3, Some(true)).await;
    add_run(&ledger, Network::Polkadot, 12, Some(false)).await;
    add_run(&ledger, Network::Polkadot, 40, None).await;
    add_run(&ledger, Network::Kusama, 7, Some(true)).await;
    add_run(&ledger, Network::Kusama, 8, Some(true)).await;
    let state = WebState {
        ledger,
        store: Arc::new(FsStore::new(dir.path().join("store")).unwrap()),
        public_base_url: Some("https://data.example.org/".into()),
        settings: ServerConfig {
            max_page: 3,
            ..ServerConfig::default()
        },
        networks: cybergov::config::Config::default().networks,
        dispatch: None,
        operator: None,
        openai: None,
        arena: Default::default(),
    };
    (serve_on_loopback(router(state)).await, dir, db)
}

/// A GET through the crate's own client builder (it installs the TLS provider reqwest needs).
async fn fetch(url: &str) -> reqwest::Response {
    let client = cybergov::http::client_builder().build().unwrap();
    client.get(url).send().await.unwrap()
}

async fn get(url: &str) -> (u16, Value) {
    let r = fetch(url).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    (status, v)
}

/// `(network, referendum, state)` of a page's referenda.
fn listed(page: &Value) -> Vec<(String, i64, String)> {
    page["referenda"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["network"].as_str().unwrap().to_owned(),
                r["referendum"].as_i64().unwrap(),
                r["latest_run"]["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Times vary from run to run: replaced before a snapshot.
fn without_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if (k.ends_with("_at") || k == "duration_ms") && !x.is_null() {
                    *x = Value::String("[time]".into());
                } else {
                    without_times(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(without_times),
        _ => {}
    }
}

async fn api_pages_filters_and_errors(backend: Backend) {
    let (base, _dir, _db) = api_on(backend).await;
    // Pages of two follow one another to the end, in network then referendum order.
    let mut all = Vec::new();
    let mut url = format!("{base}/api/v1/referenda?limit=2");
    let mut pages = 0;
    loop {
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        all.extend(listed(&page));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => url = format!("{base}/api/v1/referenda?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected = [
        ("kusama", 7, "completed"),
        ("kusama", 8, "completed"),
        ("polkadot", 3, "completed"),
        ("polkadot", 12, "failed"),
        ("polkadot", 40, "active"),
    ];
    assert_eq!(
        all,
        expected.map(|(n, r, s)| (n.to_owned(), r, s.to_owned()))
    );
    // Filters.
    let (status, failed) = get(&format!("{base}/api/v1/referenda?state=failed")).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(listed(&failed), [("polkadot".into(), 12, "failed".into())]);
    assert!(failed["next"].is_null());
    let (status, kusama) = get(&format!("{base}/api/v1/referenda?network=kusama")).await;
    assert_eq!(status, 200, "{kusama}");
    assert_eq!(listed(&kusama).len(), 2);
    // Bad input: 400 in one shape, naming what was wrong.
    for (query, says) in [
        ("network=moon", "unknown network `moon`"),
        ("state=lost", "unknown state `lost`"),
        ("limit=0", "limit 0"),
        ("limit=4", "server.max_page"),
        ("after=polkadot", "expected NETWORK:REFERENDUM"),
    ] {
        let (status, e) = get(&format!("{base}/api/v1/referenda?{query}")).await;
        assert_eq!(status, 400, "{query}: {e}");
        assert_eq!(e["error"]["code"], "bad_request", "{query}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    let (status, e) = get(&format!("{base}/api/v1/referenda/polkadot/999")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = get(&format!("{base}/api/v1/runs/polkadot/3/2")).await;
    assert_eq!(status, 404);
    // A run's stages and artefacts, linked under the public base URL.
    let (status, run) = get(&format!("{base}/api/v1/runs/polkadot/3/1")).await;
    assert_eq!(status, 200, "{run}");
    let artefact = &run["stages"][0]["artefacts"][0];
    assert_eq!(artefact["key"], "proposals/polkadot/3/runs/1/dispatch.json");
    assert_eq!(
        artefact["url"],
        "https://data.example.org/proposals/polkadot/3/runs/1/dispatch.json"
    );
    // The failed referendum, field names and all.
    let (status, mut failed) = get(&format!("{base}/api/v1/referenda/polkadot/12")).await;
    assert_eq!(status, 200);
    without_times(&mut failed);
    insta::assert_json_snapshot!("api_referendum_failed", failed);
    // The dashboard over the same ledger: failures first, their text escaped, under a policy
    // that allows no script.
    let page = fetch(&format!("{base}/")).await;
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    let failed_at = html.find("Failed runs").unwrap_or_else(|| panic!("{html}"));
    let failed_row = html
        .find(r#"data-network="polkadot" data-referendum="12""#)
        .unwrap_or_else(|| panic!("{html}"));
    let other_row = html
        .find(r#"data-network="polkadot" data-referendum="3""#)
        .unwrap_or_else(|| panic!("{html}"));
    assert!(failed_at < failed_row && failed_row < other_row, "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    for (path, want) in [
        ("/referenda/polkadot/12", 200),
        ("/referenda/polkadot/99", 404),
        ("/referenda/mars/1", 400),
        ("/?network=kusama", 200),
        ("/store/proposals/polkadot/3/missing.json", 404),
    ] {
        let r = fetch(&format!("{base}{path}")).await;
        assert_eq!(r.status().as_u16(), want, "{path}");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>"), "{path}: {html}");
    }
    // Health.
    let ok = fetch(&format!("{base}/healthz")).await;
    assert_eq!(ok.status().as_u16(), 200);
    let ready = fetch(&format!("{base}/readyz")).await;
    assert_eq!(
        ready.status().as_u16(),
        200,
        "{}",
        ready.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pages_filters_and_refuses_bad_input_on_sqlite() {
    api_pages_filters_and_errors(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pages_filters_and_refuses_bad_input_on_postgres() {
    api_pages_filters_and_errors(Backend::Postgres).await;
}

/// A real run, then `serve --web-only`: the API lists every stage completed and every artefact
/// with the hash of its bytes in the store; a non-loopback address is refused without
/// `server.allow_public`; SIGTERM stops the server gracefully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_web_only_serves_a_real_run_whose_artefacts_hash_as_listed() {
    let w = World::new(Backend::Sqlite).await;
    w.run_ok(REF);
    wait_for_run(
        &w.ledger().await,
        Network::Polkadot,
        REF,
        Duration::from_secs(5),
    )
    .await;

    let refused = w
        .cybergov(&["serve", "--web-only"])
        .env("CYBERGOV_SERVER__BIND", "0.0.0.0:0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("server.allow_public"), "{text}");

    let keyless = w
        .cybergov(&["serve", "--web-only"])
        .env("CYBERGOV_SERVER__OPENAI__ENABLED", "true")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&keyless.stderr);
    assert_eq!(keyless.status.code(), Some(1), "{text}");
    assert!(text.contains("CYBERGOV_OPENAI_SERVER_KEY"), "{text}");

    let mut served = watch(w.cybergov(&["serve", "--web-only"]));
    let base = http_address(&served).await;
    let (status, r) = get(&format!("{base}/api/v1/referenda/polkadot/{REF}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["published_run"], 1);
    let stages = r["runs"][0]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 6, "{r}");
    let mut checked = 0;
    for s in stages {
        assert_eq!(s["state"], "completed", "{s}");
        for a in s["artefacts"].as_array().unwrap() {
            let path = w.store_path().join(a["key"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert_eq!(
                Sha256Hash::of(&bytes).to_hex(),
                a["sha256"].as_str().unwrap(),
                "{a}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} artefacts");
    // A mirror offers no operator action, and accepts none.
    let page = fetch(&format!("{base}/referenda/polkadot/{REF}")).await;
    assert!(!page.text().await.unwrap().contains("Operator actions"));
    let client = cybergov::http::client_builder().build().unwrap();
    let posted = client
        .post(format!("{base}/referenda/polkadot/{REF}/rerun"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=anything")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 404);
    terminate(&mut served.child);
}

/// The address `serve` printed (`HTTP on http://…`), waiting up to 30 s for it.
pub async fn http_address(served: &Watched) -> String {
    let started = std::time::Instant::now();
    let line = loop {
        let found = served
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("HTTP on "))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve printed no address: {:?}",
            served.lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned()
}

/// `network`'s scrape of `/metrics`, parsed by a Prometheus text parser.
async fn scrape(base: &str) -> prometheus_parse::Scrape {
    let r = fetch(&format!("{base}/metrics")).await;
    assert_eq!(r.status().as_u16(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = r.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of `metric` with (at least) `labels`; 0 when no such series exists yet.
fn sample(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is not a number"),
        })
        .sum()
}

/// `serve`'s `/metrics` before and after it runs a dispatched referendum to the end: the stage
/// counters, the stage durations, the vote, the comment and the jurors' tokens move; the queue
/// gauges come from the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_serve_completes_a_run() {
    let w = World::new(Backend::Sqlite).await;
    let mut served = watch(w.cybergov(&["serve"]));
    let base = http_address(&served).await;
    let before = scrape(&base).await;
    let stage = |s: &prometheus_parse::Scrape, name: &str| {
        sample(
            s,
            "cybergov_stage_runs_total",
            &[("stage", name), ("outcome", "completed")],
        )
    };
    for name in ["dispatch", "scrape", "infer", "vote", "comment"] {
        assert_eq!(stage(&before, name), 0.0, "{name}");
    }
    let o = w
        .cybergov(&["dispatch", "--network", "polkadot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = wait_for_run(
        &w.ledger().await,
        Network::Polkadot,
        REF,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(runs[0].state, "completed", "{runs:?}");
    let after = scrape(&base).await;
    for name in ["dispatch", "scrape", "augment", "infer", "vote", "comment"] {
        assert_eq!(stage(&after, name), 1.0, "{name}");
        assert_eq!(
            sample(
                &after,
                "cybergov_stage_duration_seconds_count",
                &[("stage", name)]
            ),
            1.0,
            "{name}"
        );
    }
    let votes = sample(&after, "cybergov_votes_total", &[("network", "polkadot")]);
    assert_eq!(votes, 1.0);
    let comments = sample(
        &after,
        "cybergov_comments_posted_total",
        &[("network", "polkadot")],
    );
    assert_eq!(comments, 1.0);
    for juror in ["balthazar", "melchior", "caspar"] {
        let wrote = sample(
            &after,
            "cybergov_juror_tokens_total",
            &[("juror", juror), ("kind", "completion")],
        );
        let read = sample(
            &after,
            "cybergov_juror_tokens_total",
            &[("juror", juror), ("kind", "prompt")],
        );
        assert!(
            wrote >= 1.0 && read > wrote,
            "{juror}: {read} read, {wrote} wrote"
        );
    }
    // Every stage of the run is final: nothing waits.
    assert_eq!(
        sample(&after, "cybergov_queue_stages", &[("state", "completed")]),
        6.0
    );
    assert_eq!(
        sample(&after, "cybergov_oldest_due_stage_age_seconds", &[]),
        0.0
    );
    terminate(&mut served.child);
}

/// `serve` dispatching every second while Subsquare cannot be reached: once more than two
/// intervals pass without a dispatch of polkadot, `/readyz` answers 503 and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_network_whose_dispatch_is_overdue() {
    let w = World::new(Backend::Sqlite).await;
    let mut cmd = w.cybergov(&["serve"]);
    cmd.env("CYBERGOV_PIPELINE__DISPATCH_CRON", "* * * * * *")
        .env(
            "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL",
            "http://127.0.0.1:9/",
        );
    let mut served = watch(cmd);
    let base = http_address(&served).await;
    let started = std::time::Instant::now();
    let text = loop {
        let r = fetch(&format!("{base}/readyz")).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if status == 503 {
            break text;
        }
        assert_eq!(status, 200, "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still ready after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not ready at once: {text}"
    );
    assert!(text.contains("dispatch: polkadot"), "{text}");
    assert!(text.contains("more than two intervals (2 s)"), "{text}");
    terminate(&mut served.child);
}
