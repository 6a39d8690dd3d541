//! The dashboard in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini), over real pipeline data: a run voted on the devnet by the
//! tiny test model whose proposal is titled with a `<script>`, and a run whose scrape failed;
//! then the operators' actions (a rerun, a retry of the failed stage) with and without the token.
//! The test asserts on the DOM; it also leaves a screenshot of each page in
//! `target/tmp/browser/` for review.

use crate::common::pipeline::{Backend, REF, World, toolkit_as, wait_for_run};
use crate::common::workers::{terminate, watch};
use crate::web::http_address;
use cybergov::hash::Sha256Hash;
use cybergov::manifest::Manifest;
use cybergov::network::Network;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The proposal title the test serves: markup that must render as text.
const HOSTILE_TITLE: &str = "<script>document.title='pwned'</script><b>bold</b>";
/// The operators' token the server is given.
const TOKEN: &str = "correct horse battery staple";
/// A referendum Subsquare does not know: its scrape fails for good.
const MISSING: u32 = 3;

/// `chromedriver` on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("chromedriver (Debian's chromium-driver, installed by scripts/test.sh): {e}")
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = cybergov::http::client_builder().build().unwrap();
    let started = Instant::now();
    while client
        .get(format!("{}/status", driver.url))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,1000"],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The page's URL once `done` holds of it: a click's navigation may end after the click
/// returns.
async fn url_when(c: &Client, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let url = c.current_url().await.unwrap().to_string();
        if done(&url) {
            return url;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element `css`, waiting up to 20 s for it to appear.
async fn text(c: &Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        let found = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        match found.text().await {
            Ok(text) => return text,
            // A form's submission can replace the page between finding the element and reading
            // it (the element is then stale): find it again on the page that replaced it.
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                eprintln!("{css}: {e}; looking again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

/// Types the operators' token into the form `form` and presses its `button`.
async fn submit_with_token(c: &Client, form: &str, button: &str) {
    let form = c.find(Locator::Css(form)).await.unwrap();
    let field = form.find(Locator::Css("input[name=token]")).await.unwrap();
    field.send_keys(TOKEN).await.unwrap();
    let button = form.find(Locator::Css(button)).await.unwrap();
    button.click().await.unwrap();
}

async fn bytes_of(url: &str) -> Vec<u8> {
    let client = cybergov::http::client_builder().build().unwrap();
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_shows_real_runs_and_runs_no_proposal_script() {
    let w = World::new(Backend::Sqlite).await;
    let mut proposal: serde_json::Value = serde_json::from_slice(&toolkit_as(REF)).unwrap();
    proposal["title"] = HOSTILE_TITLE.into();
    w.subsquare
        .add_referendum(REF, serde_json::to_vec(&proposal).unwrap());
    for id in [REF, MISSING] {
        let o = w
            .cybergov(&["run", "--network", "polkadot", "--id", &id.to_string()])
            .output()
            .unwrap();
        // The voted run is what the pages below show: if it failed, say why here (the last
        // lines of its log) rather than as a missing row later.
        let log = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            id != REF || o.status.success(),
            "cybergov run --id {REF} failed ({}):\n{}",
            o.status,
            lines[lines.len().saturating_sub(12)..].join("\n")
        );
    }
    let ledger = w.ledger().await;
    for id in [REF, MISSING] {
        wait_for_run(&ledger, Network::Polkadot, id, Duration::from_secs(5)).await;
    }
    let mut cmd = w.cybergov(&["serve"]);
    cmd.env("CYBERGOV_ADMIN_TOKEN", TOKEN);
    let mut served = watch(cmd);
    let base = http_address(&served).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // The overview: the failed run first, with its error; the voted one below.
    c.goto(&format!("{base}/")).await.unwrap();
    screenshot(&c, "overview").await;
    let failed = text(&c, "#failed").await;
    assert!(failed.contains(&format!("polkadot #{MISSING}")), "{failed}");
    assert!(failed.contains("HTTP 404"), "{failed}");
    let voted = format!("#runs-polkadot tr[data-referendum=\"{REF}\"]");
    let row = text(&c, &voted).await;
    assert!(row.contains("completed"), "{row}");
    assert!(row.contains("vote: completed"), "{row}");

    // Follow it to its page.
    c.find(Locator::Css(&format!("{voted} a.referendum")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    url_when(&c, |u| u.ends_with(&format!("/referenda/polkadot/{REF}"))).await;
    screenshot(&c, "referendum").await;
    // The title is text: the markup shows literally and no element came of it.
    assert_eq!(text(&c, "#title").await, HOSTILE_TITLE);
    assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());
    assert!(
        c.find_all(Locator::Css("#title b"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!c.title().await.unwrap().contains("pwned"));
    // Three jurors, each with its bars and its rationale; the vote's block; the verification.
    let jurors = c.find_all(Locator::Css(".juror")).await.unwrap();
    assert_eq!(jurors.len(), 3);
    for j in &jurors {
        let bars = j.find_all(Locator::Css("svg.bars rect")).await.unwrap();
        assert_eq!(bars.len(), 3);
        let chosen = j
            .find_all(Locator::Css("svg.bars rect.chosen"))
            .await
            .unwrap();
        assert_eq!(chosen.len(), 1);
    }
    assert!(text(&c, "#vote").await.contains("in block"));
    assert!(text(&c, "#verification").await.contains("PASS"));

    // On a phone's width nothing but the tables' own boxes scrolls sideways.
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    screenshot(&c, "referendum-phone").await;
    // The elements sticking out to the right, outside any box that scrolls on its own.
    let wide = c
        .execute(
            "return [...document.querySelectorAll('body *')]
                .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > window.innerWidth + 1)
                .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(wide, serde_json::json!([]), "wider than a phone");
    c.set_window_size(1200, 1000).await.unwrap();

    // Every artefact link opens the bytes the page and the manifest say.
    let manifest_sha = text(&c, "#manifest-sha256").await;
    let links = c.find_all(Locator::Css("a.artefact")).await.unwrap();
    assert!(links.len() >= 6, "{} artefact links", links.len());
    let mut listed = Vec::new();
    for l in &links {
        let href = l.prop("href").await.unwrap().expect("an href");
        let sha = l.attr("data-sha256").await.unwrap().expect("a hash");
        listed.push((l.text().await.unwrap(), href, sha));
    }
    let (_, manifest_url, sha) = listed
        .iter()
        .find(|(name, _, _)| name == "manifest.json")
        .expect("a manifest link");
    assert_eq!(*sha, manifest_sha);
    let manifest = bytes_of(manifest_url).await;
    assert_eq!(Sha256Hash::of(&manifest).to_hex(), manifest_sha);
    let manifest = Manifest::from_canonical_bytes(&manifest).unwrap();
    for a in manifest.artefacts() {
        let (_, href, sha) = listed
            .iter()
            .find(|(_, href, _)| href.ends_with(&a.path))
            .unwrap_or_else(|| panic!("no link to {}", a.path));
        assert_eq!(*sha, a.sha256.to_hex(), "{}", a.path);
        assert_eq!(Sha256Hash::of(&bytes_of(href).await).to_hex(), *sha);
    }
    // Opening one in the browser shows its bytes, not a page.
    c.goto(manifest_url).await.unwrap();
    assert!(c.find_all(Locator::Css("script")).await.unwrap().is_empty());

    // A rerun without the token is refused; with it, run 2 starts.
    let page = format!("{base}/referenda/polkadot/{REF}");
    c.goto(&page).await.unwrap();
    c.find(Locator::Css("#rerun"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        text(&c, "#error")
            .await
            .contains("token is missing or wrong")
    );
    screenshot(&c, "rerun-refused").await;
    let runs = |ledger: &cybergov::pipeline::ledger::Ledger, id: u32| {
        let ledger = ledger.clone();
        async move {
            ledger
                .runs(Some(Network::Polkadot), Some(id))
                .await
                .unwrap()
        }
    };
    assert_eq!(runs(&ledger, REF).await.len(), 1);
    c.goto(&page).await.unwrap();
    submit_with_token(&c, "#actions form", "#rerun").await;
    url_when(&c, |u| u.ends_with("?run=2")).await;
    assert_eq!(runs(&ledger, REF).await.len(), 2);
    screenshot(&c, "rerun").await;

    // The failed scrape is offered for a retry, and retried with the token.
    let scrape = |ledger: &cybergov::pipeline::ledger::Ledger| {
        let ledger = ledger.clone();
        async move {
            let rows = ledger
                .stages(Some(Network::Polkadot), Some(MISSING), Some(1))
                .await
                .unwrap();
            rows.into_iter().find(|r| r.stage == "scrape").unwrap()
        }
    };
    let before = scrape(&ledger).await;
    assert_eq!(before.state, "failed");
    c.goto(&format!("{base}/referenda/polkadot/{MISSING}"))
        .await
        .unwrap();
    submit_with_token(&c, "#actions form:has(button.retry)", "button.retry").await;
    let started = Instant::now();
    loop {
        let now = scrape(&ledger).await;
        if now.started_at > before.started_at && now.state == "failed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the retried scrape did not run again: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    c.close().await.unwrap();
    terminate(&mut served.child);
}

/// An arena review session judged in Chromium with the forms alone (the pages carry no script):
/// each round shows the two texts as text, a click records the battle and brings the next
/// round, the last one ends the session, and the page's source never names a model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arena_review_in_chromium_judges_rounds_without_naming_the_models() {
    use cybergov::pipeline::ledger::battles::ArenaRoundRow;
    use cybergov::pipeline::ledger::{Db, Ledger};
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::pipeline::TestDb::create(Backend::Sqlite, dir.path()).await;
    let ledger = Ledger::open(Db::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    let store = dir.path().join("store");
    let run = store.join("proposals/polkadot/55/runs/1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("content.md"), "# Fund the indexer\n\n1000 DOT.\n").unwrap();
    let round = |n: i64, text_a: &str, text_b: &str| ArenaRoundRow {
        session: "0123456789abcdef0123456789abcdef".into(),
        round: n,
        reviewer: "ada".into(),
        created_at: n,
        network: "polkadot".into(),
        referendum: 55,
        run: 1,
        juror: "balthazar".into(),
        candidate: "secret-candidate-7b".into(),
        incumbent: "secret-incumbent-135m".into(),
        model_a: if n == 1 {
            "secret-candidate-7b"
        } else {
            "secret-incumbent-135m"
        }
        .into(),
        model_b: if n == 1 {
            "secret-incumbent-135m"
        } else {
            "secret-candidate-7b"
        }
        .into(),
        content_sha256: "00".repeat(32),
        text_a: text_a.into(),
        text_b: text_b.into(),
    };
    ledger
        .prepare_arena_rounds(&[
            round(1, HOSTILE_TITLE, "A careful budget with milestones."),
            round(2, "Too vague to fund.", "Fund it: the indexer is used."),
        ])
        .await
        .unwrap();
    let state = cybergov::web::WebState {
        ledger: ledger.clone(),
        store: std::sync::Arc::new(cybergov::store::FsStore::new(&store).unwrap()),
        public_base_url: None,
        settings: cybergov::web::ServerConfig::default(),
        networks: cybergov::config::Config::default().networks,
        dispatch: None,
        operator: None,
        openai: None,
        arena: cybergov::web::arena::ArenaPages {
            rule: Default::default(),
            review: true,
        },
    };
    let base = crate::common::serve_on_loopback(cybergov::web::router(state)).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let review = format!("{base}/arena/review/0123456789abcdef0123456789abcdef");
    c.goto(&review).await.unwrap();
    assert!(text(&c, "h1").await.starts_with("Round 1 of 2"));
    assert_eq!(
        text(&c, "#a .rationale").await,
        HOSTILE_TITLE,
        "shown as text"
    );
    assert!(text(&c, "#proposal").await.contains("Fund the indexer"));
    let scripts = c.find_all(Locator::Css("script")).await.unwrap();
    assert!(scripts.is_empty(), "the review page runs no script");
    let mut sources = c.source().await.unwrap();
    screenshot(&c, "arena-review").await;
    c.find(Locator::Css("#choose-b"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    while !text(&c, "h1").await.starts_with("Round 2 of 2") {
        assert!(started.elapsed() < Duration::from_secs(20), "no round 2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sources.push_str(&c.source().await.unwrap());
    c.find(Locator::Css("#choose-tie"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(&c, "#done").await.contains("All 2 rounds are judged"));
    sources.push_str(&c.source().await.unwrap());
    for secret in ["secret-candidate-7b", "secret-incumbent-135m", "secret"] {
        assert!(!sources.contains(secret), "a review page names {secret}");
    }
    let battles = ledger.battles().await.unwrap();
    let outcomes: Vec<(&str, &str)> = battles
        .iter()
        .map(|b| (b.model_a.as_str(), b.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("secret-candidate-7b", "b"),
            ("secret-incumbent-135m", "tie")
        ]
    );
    // The leaderboard, a page for everyone, names them.
    c.goto(&format!("{base}/arena")).await.unwrap();
    let board = text(&c, "#leaderboard").await;
    assert!(board.contains("secret-candidate-7b") && board.contains("secret-incumbent-135m"));
    screenshot(&c, "arena-leaderboard").await;
    c.close().await.unwrap();
}
