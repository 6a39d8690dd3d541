//! Configuration: file + environment, errors that name their key, secrets kept apart.

use cybergov::config::{Config, ConfigError};
use cybergov::env::SECRET_VARS;
use cybergov::network::Network;
use cybergov::secret::Secrets;
use cybergov::store::settings::StoreBackend;
use std::collections::BTreeMap;
use std::path::Path;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("cybergov.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn defaults_are_the_embedded_setup() {
    let c = Config::load_from(None, &vars(&[])).unwrap();
    assert_eq!(c.store.backend, StoreBackend::Fs);
    assert!(c.database.url.starts_with("sqlite:"));
    assert_eq!(c.network(Network::Kusama).token_decimals, 12);
    assert!(!c.network(Network::Paseo).enabled);
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        &dir,
        "[store]\npath = \"/srv/a\"\n[networks.polkadot]\nrpc_url = \"ws://file:9944\"\nallowed_tracks = [33]\n",
    );
    let c = Config::load_from(Some(&path), &vars(&[])).unwrap();
    assert_eq!(c.store.path, Path::new("/srv/a"));
    assert_eq!(c.network(Network::Polkadot).rpc_url, "ws://file:9944");
    assert_eq!(c.network(Network::Polkadot).allowed_tracks, vec![33]);
    assert_eq!(
        c.network(Network::Polkadot).token_symbol,
        "DOT",
        "untouched fields keep defaults"
    );

    let c = Config::load_from(
        Some(&path),
        &vars(&[
            ("CYBERGOV_STORE__PATH", "/srv/b"),
            ("CYBERGOV_NETWORKS__POLKADOT__RPC_URL", "ws://env:9944"),
            ("CYBERGOV_NETWORKS__POLKADOT__ALLOWED_TRACKS", "[30, 31]"),
            ("CYBERGOV_NETWORKS__PASEO__ENABLED", "true"),
            ("CYBERGOV_PROXY_SEED", "//Alice"), // a secret: not configuration, ignored here
            ("CYBERGOV_CONFIG", "/elsewhere.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(c.store.path, Path::new("/srv/b"));
    assert_eq!(c.network(Network::Polkadot).rpc_url, "ws://env:9944");
    assert_eq!(c.network(Network::Polkadot).allowed_tracks, vec![30, 31]);
    assert!(c.network(Network::Paseo).enabled);
}

fn invalid(file_text: Option<&str>, env: &[(&str, &str)]) -> ConfigError {
    let dir = tempfile::tempdir().unwrap();
    let path = file_text.map(|t| file(&dir, t));
    Config::load_from(path.as_deref(), &vars(env)).unwrap_err()
}

#[test]
fn a_bad_value_names_its_key_and_origin() {
    let e = invalid(None, &[("CYBERGOV_NETWORKS__KUSAMA__SS58_PREFIX", "two")]);
    assert_eq!(e.key(), Some("networks.kusama.ss58_prefix"));
    assert!(
        e.to_string()
            .contains("CYBERGOV_NETWORKS__KUSAMA__SS58_PREFIX"),
        "{e}"
    );

    let e = invalid(Some("[store]\nbackend = \"gcs\"\n"), &[]);
    assert_eq!(e.key(), Some("store.backend"));
    assert!(e.to_string().contains("cybergov.toml"), "{e}");

    let e = invalid(Some("[store]\nbakend = \"fs\"\n"), &[]);
    assert_eq!(
        e.key(),
        Some("store.bakend"),
        "unknown keys are errors: {e}"
    );

    let e = invalid(None, &[("CYBERGOV_STORE__BACKEND", "s3")]);
    assert_eq!(e.key(), Some("store.s3.bucket"));

    let e = invalid(
        None,
        &[("CYBERGOV_NETWORKS__POLKADOT__RPC_URL", "localhost:9944")],
    );
    assert_eq!(e.key(), Some("networks.polkadot.rpc_url"));

    let e = invalid(None, &[("CYBERGOV_DATABASE__URL", "mysql://x")]);
    assert_eq!(e.key(), Some("database.url"));

    let e = invalid(None, &[("CYBERGOV_NETWORKS__WESTEND__RPC_URL", "ws://x")]);
    assert!(e.to_string().contains("westend"), "{e}");
}

#[test]
fn numbers_too_large_for_toml_or_for_a_deadline_are_refused_naming_the_key() {
    let e = invalid(
        None,
        &[("CYBERGOV_MAGI__MAX_NEW_TOKENS", "9223372036854775808")],
    );
    // Too large for the u32 field itself: serde names the key already.
    assert!(e.to_string().contains("max_new_tokens"), "{e}");
    let e = invalid(
        None,
        &[(
            "CYBERGOV_PIPELINE__DEAD_WORKER_TIMEOUT_SECS",
            "9223372036854775808",
        )],
    );
    assert_eq!(e.key(), Some("pipeline.dead_worker_timeout_secs"), "{e}");
    assert!(e.to_string().contains("largest value allowed"), "{e}");
    let e = invalid(
        None,
        &[(
            "CYBERGOV_NETWORKS__POLKADOT__VOTE__INCLUSION_TIMEOUT_S",
            "18446744073709551615",
        )],
    );
    assert_eq!(
        e.key(),
        Some("networks.polkadot.vote.inclusion_timeout_s"),
        "{e}"
    );
    let e = invalid(
        None,
        &[("CYBERGOV_RUNNER__GITHUB__RUN_TIMEOUT_SECS", "999999999999")],
    );
    assert_eq!(e.key(), Some("runner.github.run_timeout_secs"), "{e}");
    assert!(e.to_string().contains("ten years"), "{e}");
    let e = invalid(
        None,
        &[("CYBERGOV_NETWORKS__KUSAMA__VOTE__MORTALITY_BLOCKS", "8192")],
    );
    assert_eq!(
        e.key(),
        Some("networks.kusama.vote.mortality_blocks"),
        "{e}"
    );
    assert!(e.to_string().contains("at most 4096"), "{e}");
    // The largest sane value still loads and prints.
    let c = Config::load_from(
        None,
        &vars(&[("CYBERGOV_RUNNER__GITHUB__RUN_TIMEOUT_SECS", "315360000")]),
    )
    .unwrap();
    assert!(c.to_toml().contains("run_timeout_secs = 315360000"));
}

#[test]
fn a_missing_named_file_is_an_error() {
    let e =
        Config::load_from(Some(Path::new("/nonexistent/cybergov.toml")), &vars(&[])).unwrap_err();
    assert!(matches!(e, ConfigError::File { .. }), "{e}");
}

#[test]
fn secrets_are_refused_in_the_file() {
    let e = invalid(
        Some("[chain]\nproxy_seed = \"bottom drive obey lake\"\n"),
        &[],
    );
    let msg = e.to_string();
    assert!(msg.contains("CYBERGOV_PROXY_SEED"), "{msg}");
    assert!(
        !msg.contains("bottom drive"),
        "the secret must not be echoed: {msg}"
    );
}

#[test]
fn secrets_come_from_env_or_files_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ghp_supersecret\n").unwrap();
    let env = vars(&[
        ("CYBERGOV_PROXY_SEED", "//Alice"),
        ("CYBERGOV_GITHUB_TOKEN_FILE", token_file.to_str().unwrap()),
    ]);
    let s = Secrets::from_lookup(|k| env.get(k).cloned()).unwrap();
    assert_eq!(s.proxy_seed.as_ref().unwrap().expose(), "//Alice");
    assert_eq!(s.github_token.as_ref().unwrap().expose(), "ghp_supersecret");
    let printed = format!("{s:?}");
    assert!(
        !printed.contains("Alice") && !printed.contains("supersecret"),
        "{printed}"
    );

    // Secrets never become configuration, so `cybergov config` cannot print them.
    let c = Config::load_from(None, &env).unwrap();
    assert!(!c.to_toml().contains("Alice"));
}

/// docs/CONFIGURATION.md is the one place every key and variable is documented: keep it whole.
#[test]
fn every_key_and_variable_is_documented() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIGURATION.md"),
    )
    .unwrap();
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let k = match prefix {
                        "networks" | "magi.tally.balance" => "<network>",
                        "magi.jurors" => "<juror>",
                        _ => k.as_str(),
                    };
                    let p = if prefix.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    keys(&p, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut all = Vec::new();
    keys(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut all,
    );
    all.dedup();
    assert!(all.len() > 15);
    for k in all {
        assert!(
            doc.contains(&format!("`{k}`")),
            "docs/CONFIGURATION.md does not document `{k}`"
        );
    }
    for v in SECRET_VARS {
        assert!(
            doc.contains(&format!("`{v}`")),
            "docs/CONFIGURATION.md does not document {v}"
        );
    }
}

#[test]
fn url_credentials_never_print() {
    let c = Config::load_from(
        None,
        &vars(&[
            (
                "CYBERGOV_DATABASE__URL",
                "postgres://cyber:hunter2@db.example:5432/gov",
            ),
            (
                "CYBERGOV_NETWORKS__POLKADOT__RPC_URL",
                "wss://rpc.example/ws?apikey=s3cr3tkey&x=1",
            ),
        ]),
    )
    .unwrap();
    let printed = c.to_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("s3cr3tkey"), "{printed}");
    assert!(
        printed.contains("postgres://cyber:[redacted]@db.example:5432/gov"),
        "{printed}"
    );
    assert!(printed.contains("apikey=[redacted]&x=1"), "{printed}");
    // A validation error quoting the URL does not echo the password either.
    let e = invalid(
        None,
        &[("CYBERGOV_STORE__S3__ENDPOINT", "ftp://u:hunter2@host")],
    );
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // Nor does a stage error on its way to the ledger.
    let stage = cybergov::pipeline::handler::StageError::from_error(
        cybergov::store::StoreError::Config("cannot reach https://u:hunter2@s3.example/b".into()),
    );
    assert!(!stage.to_string().contains("hunter2"), "{stage}");
}

#[test]
fn the_two_families_preset_seats_gemma_unless_a_juror_names_its_own_model() {
    let models =
        |c: &Config| ["balthazar", "melchior", "caspar"].map(|j| c.magi.jurors[j].model.clone());
    let smol = cybergov::magi::models::DEFAULT_MODEL;
    let gemma = cybergov::magi::models::GEMMA_MODEL;
    let c = Config::load_from(None, &vars(&[])).unwrap();
    assert_eq!(models(&c), [smol, smol, smol]);

    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, "[magi]\njury = \"two-families\"\n");
    let c = Config::load_from(Some(&path), &vars(&[])).unwrap();
    assert_eq!(models(&c), [smol, gemma, smol]);

    // A juror's own model wins over the preset, from the file or from the environment.
    let path = file(
        &dir,
        "[magi]\njury = \"two-families\"\n[magi.jurors.melchior]\nmodel = \"/models/mine.gguf\"\n",
    );
    let c = Config::load_from(Some(&path), &vars(&[])).unwrap();
    assert_eq!(models(&c), [smol, "/models/mine.gguf", smol]);
    let c = Config::load_from(
        None,
        &vars(&[
            ("CYBERGOV_MAGI__JURY", "two-families"),
            ("CYBERGOV_MAGI__JURORS__CASPAR__MODEL", "/models/other.gguf"),
        ]),
    )
    .unwrap();
    assert_eq!(models(&c), [smol, gemma, "/models/other.gguf"]);

    // An unknown preset is refused, naming the key.
    let e = Config::load_from(None, &vars(&[("CYBERGOV_MAGI__JURY", "three-families")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("jury") && e.contains("three-families"), "{e}");
}
