//! The `cybergov` binary as a user meets it: exit codes, messages, help text.

use std::path::Path;
use std::process::{Command, Output};

/// `cybergov` in `dir` with none of this process's `CYBERGOV_*` variables (cargo sets some).
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cybergov"));
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("CYBERGOV_"))
    {
        cmd.env_remove(k);
    }
    cmd
}

fn cybergov(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(dir);
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("run cybergov")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_variable_that_is_not_utf8_is_harmless_unless_it_is_ours() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let not_utf8 = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let o = command(dir.path())
        .arg("config")
        .env("SOME_OTHER_TOOL", not_utf8)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("[store]"), "{}", stdout(&o));
    let o = command(dir.path())
        .arg("config")
        .env("CYBERGOV_LOG__FILTER", not_utf8)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CYBERGOV_LOG__FILTER is not valid UTF-8"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_input_is_a_usage_error_that_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["rerun", "--network", "westend", "--id", "1"],
            "unknown network \"westend\"",
        ),
        (&["rerun", "--network", "polkadot", "--id", "-1"], "--id"),
        (
            &["rerun", "--network", "polkadot", "--id", "abc"],
            "invalid digit",
        ),
        (
            &[
                "rerun",
                "--network",
                "polkadot",
                "--id",
                "1",
                "--from",
                "bogus",
            ],
            "possible values: dispatch, scrape, augment, infer, vote, comment",
        ),
        (
            &["verify", "--network", "polkadot", "--id", "1", "--run", "0"],
            "--run",
        ),
    ];
    for (args, want) in cases {
        let o = cybergov(dir.path(), args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn vote_without_a_run_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(
        dir.path(),
        &["vote", "--network", "kusama", "--id", "3", "--dry-run"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has no latest.json"), "{}", stderr(&o));
    let o = cybergov(
        dir.path(),
        &["vote", "--network", "kusama", "--id", "3", "--run", "1"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("manifest"), "{}", stderr(&o));
}

#[test]
fn comment_without_a_run_or_a_key_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(
        dir.path(),
        &["comment", "--network", "kusama", "--id", "3"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has no latest.json"), "{}", stderr(&o));
    let o = cybergov(
        dir.path(),
        &["comment", "--network", "kusama", "--id", "3", "--run", "1"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("CYBERGOV_PROXY_SEED"), "{}", stderr(&o));
    let o = cybergov(
        dir.path(),
        &["comment", "--network", "kusama", "--id", "3", "--run", "1"],
        &[("CYBERGOV_PROXY_SEED", "//Alice")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("manifest.json is missing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(dir.path(), &["config"], &[("CYBERGOV_LOG__FORMAT", "xml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`log.format`"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CYBERGOV_LOG__FORMAT"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(
        dir.path(),
        &["config"],
        &[
            ("CYBERGOV_PROXY_SEED", "//VerySecret"),
            ("CYBERGOV_STORE__PATH", "/srv/x"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/srv/x"));
    assert!(!stdout(&o).contains("VerySecret") && !stderr(&o).contains("VerySecret"));
}

/// The examples were never voted: against a chain (the devnet) they are NOT VOTED, which
/// `--allow-unvoted` accepts, and a tampered artefact is a FAIL all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_the_examples_and_fails_naming_a_tampered_artefact() {
    let chain = crate::common::chopsticks::Chopsticks::start().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "verify",
        "--network",
        "polkadot",
        "--id",
        "4242",
        "--rpc-url",
        &chain.ws_url,
        "--real",
        crate::common::voted_run::REAL,
        "--allow-unvoted",
    ];
    let o = cybergov(
        dir.path(),
        &args,
        &[("CYBERGOV_STORE__PATH", examples.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).ends_with("NOT VOTED\n"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("FAIL"), "{}", stdout(&o));

    // Copy the examples and change one byte of one juror's output.
    let copy = dir.path().join("store");
    copy_tree(&examples, &copy);
    let juror = copy.join("proposals/polkadot/4242/runs/2/jurors/melchior.json");
    let mut bytes = std::fs::read(&juror).unwrap();
    bytes[5] ^= 0x20;
    std::fs::write(&juror, bytes).unwrap();
    let o = cybergov(
        dir.path(),
        &args,
        &[("CYBERGOV_STORE__PATH", copy.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("FAIL artefact jurors/melchior.json"),
        "{}",
        stdout(&o)
    );
    // Run 1 was not touched and still verifies.
    let o = cybergov(
        dir.path(),
        &[&args[..], &["--run", "1"]].concat(),
        &[("CYBERGOV_STORE__PATH", copy.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn demo_runs_the_pipeline_offline_verifies_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    // Short rationales and answers keep this test quick; the real model still runs.
    let env = [
        ("CYBERGOV_MAGI__MAX_NEW_TOKENS", "6"),
        ("CYBERGOV_AUGMENT__ANSWER_MAX_TOKENS", "6"),
    ];
    let first = cybergov(dir.path(), &["demo"], &env);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let out = stdout(&first);
    for want in [
        "augment   completed",
        "infer     completed",
        "vote      completed  attempts 1",
        "receipt.json",
        "comment   completed",
        "PASS artefact content.md",
        // The vote as the chain took it, then found on the devnet from the account alone.
        "in block #",
        "remark cybergov:v1:paseo:0:1:",
        "verification against the devnet",
        "PASS vote on chain",
        "PASS remark on chain",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.trim_end().lines().rev().nth(1).unwrap().trim() == "PASS",
        "{out}"
    );
    let run = dir
        .path()
        .join("cybergov-demo/store/proposals/paseo/0/runs/1");
    let manifest = std::fs::read(run.join("manifest.json")).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("raw_subsquare.json")).unwrap()).unwrap();
    assert_eq!(v["referendumIndex"], 0);
    // The vote really landed (on the devnet) and the comment was posted (to the stand-in).
    assert!(run.join("receipt.json").exists());
    assert!(run.join("comment.json").exists());

    // Again: every stage finds its outputs and nothing is rewritten.
    let second = cybergov(dir.path(), &["demo"], &env);
    assert!(
        second.status.success(),
        "{}{}",
        stdout(&second),
        stderr(&second)
    );
    assert!(stdout(&second).contains("already"), "{}", stdout(&second));
    assert!(
        stdout(&second).contains("cast on the devnet of an earlier demo"),
        "{}",
        stdout(&second)
    );
    assert_eq!(std::fs::read(run.join("manifest.json")).unwrap(), manifest);
    let o = cybergov(
        dir.path(),
        &["status"],
        &[
            ("CYBERGOV_STORE__PATH", "cybergov-demo/store"),
            (
                "CYBERGOV_DATABASE__URL",
                "sqlite://cybergov-demo/cybergov.db?mode=rwc",
            ),
        ],
    );
    assert!(stdout(&o).contains("paseo #0"), "{}", stdout(&o));
    assert!(stdout(&o).contains("manifest.json"), "{}", stdout(&o));
}

/// Without node the demo cannot run the devnet: it says exactly what to install, leaves the
/// vote out (nothing is simulated) and still completes the other stages.
#[test]
fn the_demo_without_node_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CYBERGOV_MAGI__MAX_NEW_TOKENS", "4"),
        ("CYBERGOV_AUGMENT__ANSWER_MAX_TOKENS", "4"),
        // No node, npm or anything else on the PATH (the model is in the cache already).
        ("PATH", ""),
    ];
    let o = cybergov(dir.path(), &["demo"], &env);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("node and npm are not installed")
            && out.contains("sudo apt-get install nodejs npm"),
        "{out}"
    );
    assert!(!out.contains("vote      "), "no vote stage: {out}");
    assert!(out.contains("comment   completed"), "{out}");
    let run = dir
        .path()
        .join("cybergov-demo/store/proposals/paseo/0/runs/1");
    assert!(!run.join("receipt.json").exists());
    assert!(
        run.join("comment.preview.md").exists(),
        "the comment is a preview"
    );
    assert!(
        !run.join("comment.json").exists(),
        "no vote, so no public comment"
    );
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(dir.path(), &["--help"], &[]);
    insta::assert_snapshot!("help", stdout(&o));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// docs/OPERATING.md's commands are real: every `cybergov …` line of its `sh` blocks parses with
/// the command-line definitions, the offline ones run, its TOML example is a valid
/// configuration, and the systemd unit it installs runs a command that exists.
#[test]
fn every_command_of_the_operating_guide_parses() {
    use clap::Parser;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/OPERATING.md")).unwrap();
    let mut block: Option<String> = None;
    let (mut commands, mut toml) = (Vec::new(), Vec::new());
    for line in guide.lines() {
        match (&block, line.strip_prefix("```")) {
            (None, Some(lang)) => block = Some(lang.to_owned()),
            (Some(_), Some(_)) => block = None,
            (Some(lang), None) if lang == "sh" => {
                if let Some(args) = line.trim().strip_prefix("cybergov ") {
                    commands.push(args.to_owned());
                }
            }
            (Some(lang), None) if lang == "toml" => toml.push(line.to_owned()),
            _ => {}
        }
    }
    assert!(commands.len() >= 10, "{commands:?}");
    let dir = tempfile::tempdir().unwrap();
    for args in &commands {
        let words: Vec<&str> = std::iter::once("cybergov")
            .chain(args.split_whitespace())
            .collect();
        if let Err(e) = cybergov::cli::Cli::try_parse_from(&words) {
            panic!("docs/OPERATING.md: `cybergov {args}` does not parse:\n{e}");
        }
        // The ones that need neither the network nor a model run here.
        let offline = ["config", "models list", "status "];
        if offline.iter().any(|o| args.starts_with(o)) {
            let o = cybergov(dir.path(), &words[1..], &[]);
            assert!(o.status.success(), "`cybergov {args}`: {}", stderr(&o));
        }
    }

    let file = dir.path().join("cybergov.toml");
    std::fs::write(&file, toml.join("\n")).unwrap();
    let o = cybergov(
        dir.path(),
        &["config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "the guide's TOML: {}", stderr(&o));
    assert!(
        stdout(&o).contains("15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"),
        "{}",
        stdout(&o)
    );

    let unit = std::fs::read_to_string(root.join("scripts/cybergov.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/cybergov", "{exec}");
    let mut words = words;
    words[0] = "cybergov";
    cybergov::cli::Cli::try_parse_from(&words).expect("the unit's command parses");
    assert!(guide.contains("scripts/cybergov.service"));
}

/// A password in a configured URL is never printed: not by a refused database URL, not by a
/// Subsquare that cannot be reached (its retry warnings, text or JSON logs, the stage error in
/// the ledger and in `status`).
#[test]
fn passwords_in_configured_urls_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let o = cybergov(
        dir.path(),
        &["status"],
        &[(
            "CYBERGOV_DATABASE__URL",
            "mysql://cybergov:hunter2@db.example/cg",
        )],
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success());
    assert!(!all.contains("hunter2"), "{all}");

    // The ledger's URL as a secret (CYBERGOV_DATABASE_URL) wins over database.url and is never
    // printed either.
    let o = cybergov(
        dir.path(),
        &["status"],
        &[(
            "CYBERGOV_DATABASE_URL",
            "postgres://cg:hunter2@127.0.0.1:1/cg",
        )],
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
    let secret_db = dir.path().join("secret.db");
    let o = cybergov(
        dir.path(),
        &["status"],
        &[(
            "CYBERGOV_DATABASE_URL",
            &format!("sqlite://{}?mode=rwc", secret_db.display()),
        )],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(secret_db.exists(), "the secret URL was used");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://ops:hunter2@127.0.0.1:{port}/api?api_key=sekrit");
    for format in ["text", "json"] {
        let o = cybergov(
            dir.path(),
            &["run", "--network", "polkadot", "--id", "5"],
            &[
                (
                    "CYBERGOV_NETWORKS__POLKADOT__SUBSQUARE_API_URL",
                    url.as_str(),
                ),
                ("CYBERGOV_SUBSQUARE__MAX_RETRIES", "1"),
                ("CYBERGOV_LOG__FORMAT", format),
                ("CYBERGOV_LOG__FILTER", "info"),
            ],
        );
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!o.status.success(), "{all}");
        assert!(all.contains("Connection refused"), "{all}");
        assert!(
            !all.contains("hunter2") && !all.contains("sekrit"),
            "{format}: {all}"
        );
        let o = cybergov(dir.path(), &["status"], &[]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("[redacted]"), "{all}");
        assert!(!all.contains("hunter2") && !all.contains("sekrit"), "{all}");
    }
}
