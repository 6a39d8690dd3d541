//! Secrets never printed (issue "Hostile input bounded everywhere"): every command, with a
//! password in every URL setting, against the devnet, the Subsquare stand-in and a PostgreSQL
//! ledger (trust auth, so the password is accepted and ignored). Whatever the commands print
//! (stdout, stderr, text and JSON logs), whatever they store (every file under the world's
//! folder: artefacts, the store's pointers) and keep (every row of every ledger table) and post
//! (comments) is searched for the password.

use crate::common::output_text as text;
use crate::common::pipeline::{Backend, REF, World};

/// The password put into every URL.
const PASSWORD: &str = "hunter2-sweep";
/// The key put into URL queries, where a URL may have one.
const KEY: &str = "sekrit-sweep-key";

fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{PASSWORD}@{host}"),
        None => format!("{scheme}://ops:{PASSWORD}@{rest}"),
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every row of every table of the ledger, as text.
async fn ledger_rows(url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(tables.len() >= 3, "the ledger's tables: {tables:?}");
    let mut rows = Vec::new();
    for t in tables {
        let q = format!("SELECT t::text FROM \"{t}\" t");
        for r in sqlx::query(sqlx::AssertSqlSafe(q))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            rows.push(format!("{t}: {}", r.get::<String, _>(0)));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_any_url_setting_appears_in_no_output_log_ledger_row_or_artefact() {
    let w = World::new(Backend::Postgres).await;
    let vars = w.vars();
    let db_url = with_password(&w.db.url);
    let settings = [
        ("CYBERGOV_DATABASE__URL", db_url.clone()),
        (
            "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL",
            with_password(&vars["CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL"]),
        ),
        (
            "CYBERGOV_NETWORKS__POLKADOT__RPC_URL",
            with_password(&vars["CYBERGOV_NETWORKS__POLKADOT__RPC_URL"]),
        ),
        (
            "CYBERGOV_NETWORKS__POLKADOT__SIDECAR_URL",
            format!(
                "http://ops:{PASSWORD}@127.0.0.1:{}/?api_key={KEY}",
                closed_port()
            ),
        ),
        (
            "CYBERGOV_STORE__S3__ENDPOINT",
            format!(
                "http://ops:{PASSWORD}@127.0.0.1:{}/?token={KEY}",
                closed_port()
            ),
        ),
        (
            "CYBERGOV_RUNNER__GITHUB__API_URL",
            format!("https://ops:{PASSWORD}@github.example/api?access_token={KEY}"),
        ),
    ];
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = ["--network", "polkadot", "--id", &REF.to_string()].map(String::from);
    let with_target = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(target.iter().cloned())
            .collect()
    };
    let unreachable_rpc = format!("ws://ops:{PASSWORD}@127.0.0.1:{}", closed_port());
    let unreachable_public = format!("http://ops:{PASSWORD}@127.0.0.1:{}", closed_port());
    // (arguments, extra settings, must it succeed)
    type Invocation<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, bool);
    let commands: Vec<Invocation> = vec![
        (vec!["config".into()], vec![], true),
        (with_target(&["run"]), vec![], true),
        (vec!["status".into()], vec![], true),
        (with_target(&["status"]), vec![], true),
        (
            vec!["dispatch".into(), "--network".into(), "polkadot".into()],
            vec![],
            true,
        ),
        (with_target(&["infer"]), vec![], true),
        (with_target(&["vote", "--dry-run"]), vec![], true),
        (with_target(&["comment"]), vec![], true),
        (with_target(&["verify"]), vec![], true),
        (
            with_target(&["verify", "--base-url", &unreachable_public]),
            vec![],
            false,
        ),
        (
            with_target(&["verify"]),
            vec![(
                "CYBERGOV_NETWORKS__POLKADOT__RPC_URL",
                unreachable_rpc.as_str(),
            )],
            false,
        ),
        (
            vec!["config".into()],
            vec![(
                "CYBERGOV_PUBLIC_BASE_URL",
                "https://ops:hunter2-sweep@bucket.example",
            )],
            false,
        ),
        (
            vec!["config".into()],
            vec![(
                "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_WEB_URL",
                "https://polkadot.subsquare.io/?api_key=sekrit-sweep-key",
            )],
            false,
        ),
    ];
    let mut printed = Vec::new();
    for (i, (args, extra, succeeds)) in commands.iter().enumerate() {
        let format = if i % 2 == 0 { "json" } else { "text" };
        let o = w
            .cybergov(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .envs(env.iter().copied())
            .envs(extra.iter().copied())
            .env("CYBERGOV_LOG__FORMAT", format)
            .env("CYBERGOV_LOG__FILTER", "cybergov=debug,info")
            .output()
            .unwrap();
        let all = text(&o);
        assert_eq!(o.status.success(), *succeeds, "{args:?}: {all}");
        printed.push((args.join(" "), all));
    }
    // The commands did reach what the URLs point at: the run voted and commented.
    assert_eq!(w.comment_posts(REF), 1);
    assert!(printed[1].1.contains("completed"), "{}", printed[1].1);
    assert!(printed[0].1.contains("[redacted]"), "{}", printed[0].1);
    assert!(
        printed[11].1.contains("public_base_url") && printed[12].1.contains("subsquare_web_url"),
        "published URLs with credentials are refused by key: {printed:#?}"
    );

    let mut leaks = Vec::new();
    for (what, out) in &printed {
        if out.contains(PASSWORD) || out.contains(KEY) {
            leaks.push(format!("printed by `cybergov {what}`:\n{out}"));
        }
    }
    for (file, bytes) in crate::common::pipeline::files_under(w.dir.path()) {
        let s = String::from_utf8_lossy(&bytes);
        if s.contains(PASSWORD) || s.contains(KEY) {
            leaks.push(format!("in {file}"));
        }
    }
    for row in ledger_rows(&w.db.url).await {
        if row.contains(PASSWORD) || row.contains(KEY) {
            leaks.push(format!("in the ledger: {row}"));
        }
    }
    for (_, body) in w.subsquare.posts() {
        if body.contains(PASSWORD) || body.contains(KEY) {
            leaks.push(format!("in a comment: {body}"));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}
