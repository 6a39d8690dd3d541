//! Every environment variable cybergov reads, in one place (`docs/CONFIGURATION.md` documents
//! each; a test keeps that page complete).
//!
//! Configuration keys are variables too (`CYBERGOV_A__B__C` is the key `a.b.c`, see
//! `config`); the names here are the ones that are *not* configuration keys.

/// Prefix of every configuration variable.
pub const ENV_PREFIX: &str = "CYBERGOV_";

/// The environment variable naming the config file.
pub const CONFIG_PATH_VAR: &str = "CYBERGOV_CONFIG";

/// Test-only fault injection: a stage name makes the engine sleep inside that stage, so a test
/// can kill a worker there (see `pipeline::engine`); `claim` pauses a worker right before it
/// checks its claim ahead of a side effect (see `pipeline::claim`).
pub const FAULT_PAUSE_VAR: &str = "CYBERGOV_FAULT_PAUSE";

/// The commit cybergov was built from, set by `build.rs` at compile time. Cargo also sets it in
/// the environment of `cargo run` and `cargo test`, so it is not a configuration key.
pub const BUILD_COMMIT_VAR: &str = "CYBERGOV_BUILD_COMMIT";

/// The proxy account's seed phrase or secret URI.
pub const PROXY_SEED_VAR: &str = "CYBERGOV_PROXY_SEED";
/// GitHub token for dispatching inference workflows.
pub const GITHUB_TOKEN_VAR: &str = "CYBERGOV_GITHUB_TOKEN";
/// S3 access key id.
pub const S3_ACCESS_KEY_ID_VAR: &str = "CYBERGOV_S3_ACCESS_KEY_ID";
/// S3 secret access key.
pub const S3_SECRET_ACCESS_KEY_VAR: &str = "CYBERGOV_S3_SECRET_ACCESS_KEY";
/// API key of an OpenAI-compatible juror backend.
pub const OPENAI_API_KEY_VAR: &str = "CYBERGOV_OPENAI_API_KEY";
/// The operators' token of the dashboard's actions (rerun, retry a failed stage); unset: the
/// actions are not offered.
pub const ADMIN_TOKEN_VAR: &str = "CYBERGOV_ADMIN_TOKEN";
/// The bearer key clients of `serve`'s OpenAI-compatible endpoint must send
/// (`server.openai.enabled`).
pub const OPENAI_SERVER_KEY_VAR: &str = "CYBERGOV_OPENAI_SERVER_KEY";
/// The ledger's database URL with its password (`postgres://user:password@host/db`), kept out
/// of the configuration file; it wins over `database.url`.
pub const DATABASE_URL_VAR: &str = "CYBERGOV_DATABASE_URL";

/// The Hugging Face Hub's own variables, read for `hf:` juror models under the names the Hub's
/// tools use, so that a machine set up for them needs nothing more: the Hub's base URL,
pub const HF_ENDPOINT_VAR: &str = "HF_ENDPOINT";
/// the Hub's home (its cache is `hub/` inside it),
pub const HF_HOME_VAR: &str = "HF_HOME";
/// the cache itself (wins over [`HF_HOME_VAR`]),
pub const HF_HUB_CACHE_VAR: &str = "HF_HUB_CACHE";
/// the access token for gated and private repositories (a secret; `HF_TOKEN_FILE` works too),
pub const HF_TOKEN_VAR: &str = "HF_TOKEN";
/// and the offline switch (`1`: the cache only).
pub const HF_HUB_OFFLINE_VAR: &str = "HF_HUB_OFFLINE";

/// Polkadot's own proxy key (preferred over [`PROXY_SEED_VAR`]).
pub const PROXY_SEED_POLKADOT_VAR: &str = "CYBERGOV_PROXY_SEED_POLKADOT";
/// Kusama's own proxy key.
pub const PROXY_SEED_KUSAMA_VAR: &str = "CYBERGOV_PROXY_SEED_KUSAMA";
/// Paseo's own proxy key.
pub const PROXY_SEED_PASEO_VAR: &str = "CYBERGOV_PROXY_SEED_PASEO";

/// The variable of `network`'s own proxy key. One key per network keeps a leak to one
/// network; [`PROXY_SEED_VAR`] is the fallback for networks without their own.
pub fn proxy_seed_var(network: crate::network::Network) -> &'static str {
    use crate::network::Network;
    match network {
        Network::Polkadot => PROXY_SEED_POLKADOT_VAR,
        Network::Kusama => PROXY_SEED_KUSAMA_VAR,
        Network::Paseo => PROXY_SEED_PASEO_VAR,
    }
}

/// Secret variables: each may also be given as `NAME_FILE`, a path to a file holding it.
pub const SECRET_VARS: [&str; 11] = [
    PROXY_SEED_VAR,
    GITHUB_TOKEN_VAR,
    S3_ACCESS_KEY_ID_VAR,
    S3_SECRET_ACCESS_KEY_VAR,
    OPENAI_API_KEY_VAR,
    PROXY_SEED_POLKADOT_VAR,
    PROXY_SEED_KUSAMA_VAR,
    PROXY_SEED_PASEO_VAR,
    DATABASE_URL_VAR,
    ADMIN_TOKEN_VAR,
    OPENAI_SERVER_KEY_VAR,
];
