//! An arena session end to end (issue #16), with real models: the tiny juror model is the
//! incumbent and SmolLM2-135M-Instruct the candidate. `cybergov arena prepare` has both write
//! rationales on ten stored proposals; a reviewer judges five rounds in the terminal and the
//! other five on the dashboard; neither ever shows a model's name or file; the battles land in
//! the ledger once each; `arena publish` writes them with ratings and decisions, which
//! `cybergov arena verify` and `scripts/verify.sh --arena` pass — and fail once the ratings are
//! rewritten with every hash fixed.

use crate::common::http_store::spawn_http_store;
use crate::common::pipeline::{Backend, TestDb};
use crate::common::serve_on_loopback;
use cybergov::hash::Sha256Hash;
use cybergov::magi::models;
use cybergov::pipeline::ledger::{Db, Ledger};
use cybergov::store::FsStore;
use cybergov::web::arena::ArenaPages;
use cybergov::web::{ServerConfig, WebState, router};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

const ROUNDS: usize = 10;

struct Arena {
    dir: tempfile::TempDir,
    db: TestDb,
    tiny: PathBuf,
    smol: PathBuf,
}

impl Arena {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn cybergov(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cybergov"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("RAYON_NUM_THREADS", "1")
            .env("CYBERGOV_STORE__PATH", self.store())
            .env("CYBERGOV_DATABASE__URL", &self.db.url)
            .env("CYBERGOV_MAGI__MAX_NEW_TOKENS", "12")
            .env("CYBERGOV_MAGI__THREADS", "1")
            // Few battles: the test's decision is judged, not only counted.
            .env("CYBERGOV_ARENA__MIN_BATTLES", "5")
            .env("CYBERGOV_ARENA__ROUNDS", "200")
            .env("CYBERGOV_LOG__FILTER", "warn");
        for j in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
            c.env(format!("CYBERGOV_MAGI__JURORS__{j}__MODEL"), &self.tiny);
        }
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cybergov(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    async fn ledger(&self) -> Ledger {
        Ledger::open(Db::connect(&self.db.url).await.unwrap())
            .await
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn arena() -> Arena {
    let smol = models::ensure(
        models::named(models::DEFAULT_MODEL).unwrap(),
        &models::default_models_dir(),
        &cybergov::progress::Quiet,
    )
    .unwrap_or_else(|e| panic!("SmolLM2 must be fetchable for this test: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(Backend::Sqlite, dir.path()).await;
    let tiny = dir.path().join("incumbent-tiny.gguf");
    crate::common::tiny_gguf::write_tiny_llama(&tiny, 7);
    // Ten referenda the pipeline has read: each a content.md in its run folder.
    for i in 0..ROUNDS {
        let run = dir
            .path()
            .join(format!("store/proposals/polkadot/{}/runs/1", 300 + i));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("content.md"),
            format!(
                "# Proposal {i}: fund the Asset Hub indexer for {} months\n\nWe request {} DOT \
                 for maintenance, monthly releases and a public issue tracker.\n",
                i + 2,
                (i + 1) * 1000
            ),
        )
        .unwrap();
    }
    Arena {
        dir,
        db,
        tiny,
        smol,
    }
}

/// What must never reach a reviewer: the models' ids and files.
fn secrets_of(
    rows: &[cybergov::pipeline::ledger::battles::ArenaRoundRow],
    a: &Arena,
) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| [r.candidate.clone(), r.incumbent.clone()])
        .collect();
    for path in [&a.tiny, &a.smol] {
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    names.push("SmolLM".into());
    names.sort();
    names.dedup();
    names
}

fn assert_anonymous(shown: &str, names: &[String], what: &str) {
    for name in names {
        assert!(
            !shown.to_lowercase().contains(&name.to_lowercase()),
            "{what} shows {name:?}:\n{shown}"
        );
    }
}

async fn dashboard(a: &Arena, review: bool) -> String {
    let state = WebState {
        ledger: a.ledger().await,
        store: Arc::new(FsStore::new(a.store()).unwrap()),
        public_base_url: None,
        settings: ServerConfig::default(),
        networks: cybergov::config::Config::default().networks,
        dispatch: None,
        operator: None,
        openai: None,
        arena: ArenaPages {
            rule: cybergov::arena::decision::UpgradeRule {
                min_battles: 5,
                rounds: 200,
                ..Default::default()
            },
            review,
        },
    };
    serve_on_loopback(router(state)).await
}

/// The body of a GET that must answer 200.
async fn page(client: &reqwest::Client, url: String) -> String {
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.unwrap()
}

fn verify_sh(base: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify.sh");
    Command::new("dash")
        .arg(script)
        .args(["--arena", "latest", "--base-url", base])
        .env_remove("CYBERGOV_PUBLIC_BASE_URL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arena_session_with_the_tiny_model_and_smollm2_end_to_end() {
    let a = arena().await;
    let smol = a.smol.display().to_string();
    let out = a.ok(&[
        "arena",
        "prepare",
        "--candidate",
        &smol,
        "--reviewer",
        "ada",
    ]);
    let session = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    assert_eq!(session.len(), 32, "{out}");
    let ledger = a.ledger().await;
    let rows = ledger.arena_rounds(&session).await.unwrap();
    assert_eq!(rows.len(), ROUNDS, "one round per stored proposal");
    let names = secrets_of(&rows, &a);
    assert_eq!(rows[0].juror, "balthazar");
    assert!(rows.iter().all(|r| r.candidate != r.incumbent
        && [&r.model_a, &r.model_b].contains(&&r.candidate)
        && [&r.model_a, &r.model_b].contains(&&r.incumbent)));
    assert!(
        rows.iter()
            .all(|r| !r.text_a.is_empty() && !r.text_b.is_empty())
    );

    // Five rounds in the terminal: a wrong answer is asked again, end of input stops.
    let mut child = a
        .cybergov(&["arena", "review", &session])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"maybe\na\nb\nt\nx\nA\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let terminal = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(terminal.contains("Round 1 of 10"), "{terminal}");
    assert!(
        terminal.contains("\"maybe\" is not an answer"),
        "{terminal}"
    );
    assert!(
        terminal.contains("Stopped after 5 of 10 rounds"),
        "{terminal}"
    );
    for r in &rows[..5] {
        assert!(terminal.contains(&r.text_a) && terminal.contains(&r.text_b));
    }
    assert_anonymous(&terminal, &names, "the terminal review");

    // The other five on the dashboard, from round 6.
    let base = dashboard(&a, true).await;
    let client = cybergov::http::client_builder().build().unwrap();
    let mut pages = String::new();
    for (i, choice) in ["a", "b", "tie", "both_bad", "a"].iter().enumerate() {
        let html = page(&client, format!("{base}/arena/review/{session}")).await;
        let round = &rows[5 + i];
        assert!(
            html.contains(&format!("Round {} of 10", round.round)),
            "{html}"
        );
        // The texts as prepared (one holding a character HTML escapes is not compared).
        for t in [&round.text_a, &round.text_b] {
            assert!(
                html.contains(t.as_str()) || t.contains(['&', '<', '>', '"', '\'']),
                "{t:?} not in {html}"
            );
        }
        pages.push_str(&html);
        let answered = client
            .post(format!("{base}/arena/review/{session}/{}", round.round))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("choice={choice}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), 200, "redirected to the next round");
    }
    let done = page(&client, format!("{base}/arena/review/{session}")).await;
    assert!(done.contains("All 10 rounds are judged"), "{done}");
    pages.push_str(&done);
    assert_anonymous(&pages, &names, "the review pages");

    // Judged once: the same answer again changes nothing, another is refused.
    let again = |choice: &'static str| {
        client
            .post(format!("{base}/arena/review/{session}/10"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("choice={choice}"))
            .send()
    };
    assert_eq!(again("a").await.unwrap().status(), 200);
    assert_eq!(again("b").await.unwrap().status(), 409);
    let unknown = client
        .get(format!("{base}/arena/review/{}", "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The battles: ten, in order, each the answer given, with the reviewer.
    let battles = ledger.session_battles(&session).await.unwrap();
    let answers = [
        "a", "b", "tie", "both_bad", "a", "a", "b", "tie", "both_bad", "a",
    ];
    assert_eq!(
        battles
            .iter()
            .map(|b| b.outcome.as_str())
            .collect::<Vec<_>>(),
        answers
    );
    for (b, r) in battles.iter().zip(&rows) {
        assert_eq!(
            (&b.model_a, &b.model_b, &b.reviewer),
            (&r.model_a, &r.model_b, &r.reviewer)
        );
        assert_eq!((b.referendum, b.run), (r.referendum, r.run));
    }
    // A read-only mirror shows no review.
    let mirror = dashboard(&a, false).await;
    let refused = client
        .get(format!("{mirror}/arena/review/{session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    // The leaderboard, in the terminal and on the page, names both models.
    let board = a.ok(&["arena", "leaderboard"]);
    let board_html = page(&client, format!("{base}/arena")).await;
    for model in [&rows[0].candidate, &rows[0].incumbent] {
        assert!(board.contains(model.as_str()), "{board}");
        assert!(board_html.contains(model.as_str()), "{board_html}");
    }
    assert!(board.contains("10 battles"), "{board}");

    // Published like votes, and verified.
    let published = a.ok(&["arena", "publish"]);
    assert!(
        published.contains("arena publication 1: 10 battles"),
        "{published}"
    );
    assert!(
        a.ok(&["arena", "publish"])
            .contains("nothing new to publish")
    );
    let verified = a.ok(&["arena", "verify"]);
    assert!(verified.ends_with("PASS\n"), "{verified}");
    let http = spawn_http_store(a.store()).await;
    let o = verify_sh(&http);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for check in [
        "PASS online Elo",
        "PASS decisions",
        "PASS artefact ratings.json",
    ] {
        assert!(text(&o).contains(check), "{check}: {}", text(&o));
    }
    let board_page = page(&client, format!("{base}/arena")).await;
    assert!(board_page.contains("arena publication 1"), "{board_page}");

    // A forger raises the candidate's Elo and fixes every hash: both verifiers fail it.
    let root = a.store();
    let ratings_path = root.join("arena/1/ratings.json");
    let mut ratings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ratings_path).unwrap()).unwrap();
    let elo = ratings["models"][0]["elo"].as_f64().unwrap();
    ratings["models"][0]["elo"] = (elo + 25.0).into();
    let mut forged = serde_json::to_vec_pretty(&ratings).unwrap();
    forged.push(b'\n');
    rewrite(&ratings_path, &forged);
    let manifest_path = root.join("arena/1/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for entry in manifest["artefacts"].as_array_mut().unwrap() {
        if entry["name"] == "ratings.json" {
            entry["sha256"] = Sha256Hash::of(&forged).to_string().into();
            entry["bytes"] = forged.len().into();
        }
    }
    let canonical = cybergov::manifest::canonical::to_vec(&manifest).unwrap();
    rewrite(&manifest_path, &canonical);
    let latest = BTreeMap::from([
        ("publication", serde_json::Value::from(1)),
        (
            "manifest_sha256",
            Sha256Hash::of(&canonical).to_string().into(),
        ),
    ]);
    rewrite(
        &root.join("arena/latest.json"),
        &serde_json::to_vec(&latest).unwrap(),
    );
    let o = verify_sh(&http);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("PASS artefact ratings.json"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("FAIL online Elo"), "{}", text(&o));
    let o = a.cybergov(&["arena", "verify"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL ratings"), "{}", text(&o));
}

/// Replaces a stored file the way a forger with write access would (the store links files
/// read-only into place).
fn rewrite(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

/// A session reads each referendum's newest run that has a `content.md`, newest referenda first,
/// and a store without any is refused by name.
#[tokio::test]
async fn sessions_read_the_newest_stored_proposals() {
    use cybergov::arena::session::stored_proposals;
    use cybergov::store::ObjectStore;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    assert!(stored_proposals(&store, 10).await.unwrap().is_empty());
    for (id, run, text) in [
        (5, 1, "five, first"),
        (5, 2, "five, second"),
        (9, 1, "nine"),
    ] {
        let key =
            cybergov::store::layout::ReferendumLayout::new(cybergov::network::Network::Kusama, id)
                .run(run)
                .key(&cybergov::store::layout::Artefact::Content);
        store.put(&key, text.as_bytes()).await.unwrap();
    }
    // A run without content.md (a scrape that failed) is not a proposal to judge.
    let vote =
        cybergov::store::layout::ReferendumLayout::new(cybergov::network::Network::Kusama, 5)
            .run(3)
            .key(&cybergov::store::layout::Artefact::Vote);
    store.put(&vote, b"{}").await.unwrap();
    let found = stored_proposals(&store, 10).await.unwrap();
    let got: Vec<(u32, u32, &str)> = found
        .iter()
        .map(|p| (p.referendum, p.run, p.content.as_str()))
        .collect();
    assert_eq!(got, [(9, 1, "nine"), (5, 2, "five, second")]);
    assert_eq!(stored_proposals(&store, 1).await.unwrap().len(), 1);
}

/// A juror whose model the arena seated: the infer stage checks the published decision before
/// anyone deliberates, the manifest references it, both verifiers hash it and check that it
/// seats that model, and a rewritten decision fails them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_seated_by_the_arena_names_its_decision_in_the_manifest() {
    use cybergov::arena::decision::UpgradeRule;
    use cybergov::arena::publish::{BattlesRecord, publish};
    use cybergov::network::Network;
    use cybergov::pipeline::ledger::battles::{ArenaRoundRow, BattleRow};
    use cybergov::store::ObjectStore;
    use cybergov::store::layout::{Artefact, ReferendumLayout};
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(Backend::Sqlite, dir.path()).await;
    let ledger = Ledger::open(Db::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    let store = FsStore::new(dir.path().join("store")).unwrap();
    let incumbent = dir.path().join("incumbent.gguf");
    let candidate = dir.path().join("candidate.gguf");
    crate::common::tiny_gguf::write_tiny_llama(&incumbent, 7);
    crate::common::tiny_gguf::write_tiny_llama(&candidate, 8);

    // Six battles, the candidate's rationale preferred each time, published.
    let mut rounds = Vec::new();
    for round in 1..=6 {
        let first = round % 2 == 0;
        let (a, b) = if first {
            ("candidate", "incumbent")
        } else {
            ("incumbent", "candidate")
        };
        rounds.push(ArenaRoundRow {
            session: "s".into(),
            round,
            reviewer: "ada".into(),
            created_at: round,
            network: "polkadot".into(),
            referendum: 1,
            run: 1,
            juror: "balthazar".into(),
            candidate: "candidate".into(),
            incumbent: "incumbent".into(),
            model_a: a.into(),
            model_b: b.into(),
            content_sha256: "00".repeat(32),
            text_a: "one".into(),
            text_b: "two".into(),
        });
    }
    ledger.prepare_arena_rounds(&rounds).await.unwrap();
    for r in &rounds {
        let won = if r.model_a == "candidate" { "a" } else { "b" };
        let battle = BattleRow {
            session: r.session.clone(),
            round: r.round,
            reviewer: r.reviewer.clone(),
            created_at: r.round,
            network: r.network.clone(),
            referendum: r.referendum,
            run: r.run,
            model_a: r.model_a.clone(),
            model_b: r.model_b.clone(),
            outcome: won.into(),
        };
        assert!(ledger.record_battle(&battle).await.unwrap());
    }
    let record = BattlesRecord::load(&ledger).await.unwrap();
    let rule = UpgradeRule {
        min_battles: 5,
        rounds: 200,
        ..UpgradeRule::default()
    };
    let published = publish(&store, &record, &rule, "2026-12-06T12:00:00Z")
        .await
        .unwrap();
    assert_eq!(published.publication, 1);
    let decisions_key = "arena/1/decisions.json";
    let decisions = std::fs::read(dir.path().join("store").join(decisions_key)).unwrap();
    let parsed: cybergov::records::arena::DecisionsRecord =
        serde_json::from_slice(&decisions).unwrap();
    assert!(parsed.replacing("candidate").is_some(), "{parsed:?}");

    // balthazar now runs the candidate, on the strength of that decision.
    let mut config = cybergov::config::Config::default();
    config.magi.max_new_tokens = 4;
    for (name, j) in config.magi.jurors.iter_mut() {
        j.model = incumbent.display().to_string();
        if name == "balthazar" {
            j.model = candidate.display().to_string();
            j.arena_decision = Some(decisions_key.into());
        }
    }
    let jury = cybergov::magi::jury::Jury::from_config(
        &config.magi,
        &cybergov::secret::Secrets::default(),
        &cybergov::progress::quiet(),
    )
    .unwrap();
    let content = |id: u32| {
        ReferendumLayout::new(Network::Polkadot, id)
            .run(1)
            .key(&Artefact::Content)
    };
    store
        .put(&content(77), b"# A proposal\n\nFund the indexer.\n")
        .await
        .unwrap();
    let outcome = cybergov::stages::infer::infer(
        &store,
        &config.infer_settings(),
        &jury,
        Network::Polkadot,
        77,
        None,
    )
    .await
    .unwrap();
    let seated: Vec<_> = outcome
        .manifest
        .models
        .iter()
        .filter_map(|m| Some((m.juror.as_str(), m.arena_decision.as_ref()?)))
        .collect();
    assert_eq!(seated.len(), 1, "{:?}", outcome.manifest.models);
    assert_eq!(seated[0].0, "balthazar");
    assert_eq!(seated[0].1.path, decisions_key);
    assert_eq!(seated[0].1.sha256, Sha256Hash::of(&decisions));

    let verify = || async {
        cybergov::verify::verify(
            &store,
            Network::Polkadot,
            77,
            None,
            cybergov::verify::VerifyOptions {
                chain: None,
                chain_unavailable: Some("not in this test".into()),
                reexecute: None,
            },
        )
        .await
        .report
    };
    let report = verify().await;
    let passed = |name: &str| {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
            .passed
    };
    assert!(passed("artefact arena decision of balthazar"), "{report}");
    assert!(passed("arena decision balthazar"), "{report}");

    // scripts/verify.sh hashes and checks it the same way (the chain is not reached here).
    let http = spawn_http_store(dir.path().join("store")).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify.sh");
    let sh = |base: String| {
        Command::new("dash")
            .arg(&script)
            .args(["--network", "polkadot", "--id", "77", "--base-url", &base])
            .args([
                "--rpc-url",
                "http://127.0.0.1:9",
                "--real",
                &format!("0x{}", "11".repeat(32)),
            ])
            .output()
            .unwrap()
    };
    let o = sh(http.clone());
    for line in [
        "PASS artefact arena decision of balthazar",
        "PASS arena decision balthazar",
    ] {
        assert!(text(&o).contains(line), "{line}: {}", text(&o));
    }

    // Another juror claiming the decision for a model it did not seat is refused by name.
    let mut wrong = config.clone();
    wrong
        .magi
        .jurors
        .get_mut("melchior")
        .unwrap()
        .arena_decision = Some(decisions_key.into());
    store.put(&content(78), b"# Another\n").await.unwrap();
    let e = cybergov::stages::infer::infer(
        &store,
        &wrong.infer_settings(),
        &jury,
        Network::Polkadot,
        78,
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("magi.jurors.melchior.arena_decision arena/1/decisions.json")
            && e.contains("incumbent"),
        "{e}"
    );
    assert!(
        !dir.path()
            .join("store/proposals/polkadot/78/runs/1/jurors")
            .exists(),
        "refused before any juror deliberated"
    );

    // The decision rewritten to keep the incumbent: both verifiers fail the run.
    let mut kept = parsed.clone();
    kept.decisions[0].replace = false;
    rewrite(
        &dir.path().join("store").join(decisions_key),
        &cybergov::records::pretty_json(&kept),
    );
    let report = verify().await;
    for name in [
        "artefact arena decision of balthazar",
        "arena decision balthazar",
    ] {
        let c = report.checks.iter().find(|c| c.name == name).unwrap();
        assert!(!c.passed, "{name}: {report}");
    }
    let o = sh(http);
    for line in [
        "FAIL artefact arena decision of balthazar",
        "FAIL arena decision balthazar",
    ] {
        assert!(text(&o).contains(line), "{line}: {}", text(&o));
    }
}
