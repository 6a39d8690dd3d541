//! Configuration: `cybergov.toml` merged with `CYBERGOV_*` environment variables.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, the environment. A nested key
//! `a.b.c` is the variable `CYBERGOV_A__B__C` (double underscore between levels). Every key and
//! variable is documented in `docs/CONFIGURATION.md`; a test keeps that page complete.
//!
//! Secrets are *not* configuration: they never appear in [`Config`] (which is printable and may
//! be logged) and the file may not contain them. See [`Secrets`].

use crate::env::{
    BUILD_COMMIT_VAR, CONFIG_PATH_VAR, ENV_PREFIX, FAULT_PAUSE_VAR, GITHUB_TOKEN_VAR,
    OPENAI_API_KEY_VAR, PROXY_SEED_VAR, S3_ACCESS_KEY_ID_VAR, S3_SECRET_ACCESS_KEY_VAR,
    SECRET_VARS,
};
use crate::network::{Network, NetworkSpec};
use crate::secret::SecretError;
use crate::stages::provenance::ProvenanceConfig;
use crate::store::settings::{S3Config, StoreBackend, StoreConfig};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The config file read from the working folder when no path is given.
pub const DEFAULT_CONFIG_FILE: &str = "cybergov.toml";

/// The whole configuration. Printable: it holds no secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where artefacts go.
    pub store: StoreConfig,
    /// The job ledger and queue database.
    pub database: DatabaseConfig,
    /// Per-network data; every field overrides the built-in default.
    pub networks: BTreeMap<Network, NetworkSpec>,
    /// What each manifest records about the code that produced it.
    pub provenance: ProvenanceConfig,
    /// Public base URL under which the store's keys are served (for links in comments and for
    /// `scripts/verify.sh`), e.g. `https://bucket.example.org`. Unset: no links.
    pub public_base_url: Option<String>,
    /// Largest artefact `cybergov verify --base-url` reads from the public store, in bytes:
    /// artefacts are a proposal (at most `subsquare.max_body_bytes`), texts and small records.
    pub public_max_body_bytes: u64,
    /// Logging.
    pub log: LogConfig,
    /// The jurors and the tally.
    pub magi: crate::magi::settings::MagiConfig,
    /// The Subsquare client: User-Agent, timeouts, retries, paging.
    pub subsquare: crate::subsquare::SubsquareConfig,
    /// Augmentation: context budget, long-proposal flag, abstain policy.
    pub augment: crate::stages::augment::AugmentConfig,
    /// The job graph and its workers: graph file, concurrency, dead-worker timeout, dispatch.
    pub pipeline: crate::pipeline::settings::PipelineConfig,
    /// Where the infer stage runs the jurors: in-process or on GitHub Actions.
    pub runner: crate::stages::infer::runner::settings::RunnerSettings,
    /// The HTTP server of `cybergov serve`: address, limits.
    pub server: crate::web::ServerConfig,
    /// When the arena's candidate replaces an incumbent juror (issue #16).
    pub arena: crate::arena::decision::UpgradeRule,
}

/// Database settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` (embedded default) or `postgres://…`.
    pub url: String,
    /// Adopt an existing SQLite database that is not a ledger yet (`--init`); never from a
    /// file or the environment, only from the command line.
    #[serde(skip)]
    pub init: bool,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `cybergov=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig {
                backend: StoreBackend::Fs,
                path: PathBuf::from("cybergov-data/store"),
                s3: S3Config {
                    endpoint: None,
                    region: "us-east-1".into(),
                    bucket: None,
                    prefix: String::new(),
                    path_style: true,
                    connect_timeout_ms: 10_000,
                    operation_timeout_ms: 120_000,
                    max_object_bytes: 256 << 20,
                },
            },
            database: DatabaseConfig {
                url: "sqlite://cybergov-data/cybergov.db?mode=rwc".into(),
                init: false,
            },
            networks: Network::ALL
                .iter()
                .map(|n| (*n, n.default_spec()))
                .collect(),
            provenance: ProvenanceConfig {
                repository: env!("CARGO_PKG_REPOSITORY").into(),
                commit: None,
            },
            public_base_url: None,
            public_max_body_bytes: 64 << 20,
            log: LogConfig {
                filter: "info".into(),
                format: LogFormat::Text,
            },
            magi: crate::magi::settings::MagiConfig::default(),
            subsquare: crate::subsquare::SubsquareConfig::default(),
            augment: crate::stages::augment::AugmentConfig::default(),
            pipeline: crate::pipeline::settings::PipelineConfig::default(),
            runner: crate::stages::infer::runner::settings::RunnerSettings::default(),
            server: crate::web::ServerConfig::default(),
            arena: crate::arena::decision::UpgradeRule::default(),
        }
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file is missing or unreadable.
    #[error("cannot read config file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value is wrong; `key` is the dotted key, `source` where it came from.
    #[error("invalid configuration key `{key}`{origin}: {message}")]
    Invalid {
        /// Dotted key, e.g. `store.backend`.
        key: String,
        /// ` (from …)`, or empty.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A secret was put in the config file.
    #[error(
        "config file {path} contains the secret `{key}`; secrets are read only from the environment: set {var} or {var}_FILE"
    )]
    SecretInFile {
        /// The file.
        path: PathBuf,
        /// The key found.
        key: String,
        /// The variable to use instead.
        var: String,
    },
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            origin: String::new(),
            message: message.into(),
        }
    }

    /// The offending key, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } | Self::SecretInFile { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        let key = if e.path.is_empty() {
            "(top level)".to_owned()
        } else {
            e.path.join(".")
        };
        let origin = e
            .metadata
            .as_ref()
            .map(|m| match &m.source {
                Some(src) => format!(" (from {src})"),
                // Our environment provider names the exact variable through its interpolater.
                None => format!(
                    " (from {})",
                    m.interpolate(&e.profile.clone().unwrap_or_default(), &e.path)
                ),
            })
            .unwrap_or_default();
        Self::Invalid {
            key,
            origin,
            message: e.kind.to_string(),
        }
    }
}

impl Config {
    /// Loads configuration the way the binary does: file from `path`, else `$CYBERGOV_CONFIG`,
    /// else `./cybergov.toml` if it exists; then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        // `vars_os`: a variable that is not UTF-8 (anyone's, not only ours) must not crash every
        // command, as `std::env::vars` would. Ours must be UTF-8, and one that is not is named.
        let mut vars = BTreeMap::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::invalid(name, format!("{name} is not valid UTF-8")))?;
            vars.insert(name.to_owned(), value);
        }
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| vars.get(CONFIG_PATH_VAR).map(PathBuf::from));
        Self::load_from(path.as_deref(), &vars)
    }

    /// Loads from an explicit file (required to exist when given) and an explicit set of
    /// variables, without touching the process environment.
    pub fn load_from(
        path: Option<&Path>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        if let Some(file) = &file {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::File {
                path: file.clone(),
                source,
            })?;
            reject_secrets_in_file(file, &text)?;
        }
        let env_vars: Vec<(&String, &String)> =
            vars.iter().filter(|(k, _)| is_config_var(k)).collect();
        // Defaults, then a jury preset's models, then the file, then the environment: the
        // preset (named in the file or the environment, so read in a first pass) applies only
        // where neither sets a juror's model.
        let layers = |preset: &[(&str, &str)]| {
            let mut fig = Figment::from(Serialized::defaults(Config::default()));
            for (juror, model) in preset {
                fig = fig.merge(Serialized::default(
                    &format!("magi.jurors.{juror}.model"),
                    model,
                ));
            }
            if let Some(file) = &file {
                fig = fig.merge(Toml::file_exact(file));
            }
            fig.merge(EnvProvider::new(&env_vars))
        };
        let mut config: Config = layers(&[]).extract()?;
        let preset = config.magi.jury.models();
        if !preset.is_empty() {
            config = layers(preset).extract()?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks rules serde cannot express; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ranges(
            &serde_json::to_value(self).expect("config always serializes"),
            "",
        )?;
        for (network, spec) in &self.networks {
            let m = spec.vote.mortality_blocks;
            if m > crate::chain::tx::MAX_MORTALITY_BLOCKS {
                return Err(ConfigError::invalid(
                    format!("networks.{network}.vote.mortality_blocks"),
                    format!(
                        "{m} blocks: at most {} (a longer era is quantised and its signature would not verify)",
                        crate::chain::tx::MAX_MORTALITY_BLOCKS
                    ),
                ));
            }
        }
        if self.arena.rounds == 0 {
            return Err(ConfigError::invalid("arena.rounds", "must be at least 1"));
        }
        if !(self.arena.k.is_finite() && self.arena.k > 0.0) {
            return Err(ConfigError::invalid("arena.k", "must be a number above 0"));
        }
        if self.store.backend == StoreBackend::S3 && self.store.s3.bucket.is_none() {
            return Err(ConfigError::invalid(
                "store.s3.bucket",
                "required when store.backend = \"s3\"",
            ));
        }
        if let Some(e) = &self.store.s3.endpoint {
            check_url("store.s3.endpoint", e, &["http", "https"])?;
        }
        if let Some(u) = &self.public_base_url {
            check_url("public_base_url", u, &["http", "https"])?;
            check_published("public_base_url", u)?;
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(ConfigError::invalid(
                "database.url",
                format!(
                    "{:?} is neither sqlite:… nor postgres://…",
                    crate::secret::redact_urls(&self.database.url)
                ),
            ));
        }
        for (net, spec) in &self.networks {
            let key = |field: &str| format!("networks.{net}.{field}");
            check_url(
                &key("rpc_url"),
                &spec.rpc_url,
                &["ws", "wss", "http", "https"],
            )?;
            if let Some(s) = &spec.sidecar_url {
                check_url(&key("sidecar_url"), s, &["http", "https"])?;
            }
            check_url(
                &key("subsquare_api_url"),
                &spec.subsquare_api_url,
                &["http", "https"],
            )?;
            check_url(
                &key("subsquare_web_url"),
                &spec.subsquare_web_url,
                &["http", "https"],
            )?;
            check_published(&key("subsquare_web_url"), &spec.subsquare_web_url)?;
            if let Some(u) = &spec.explorer_url {
                check_url(&key("explorer_url"), u, &["http", "https"])?;
                check_published(&key("explorer_url"), u)?;
            }
            if spec.ss58_prefix > 16383 {
                return Err(ConfigError::invalid(
                    key("ss58_prefix"),
                    "must be at most 16383",
                ));
            }
            if spec.token_decimals > 30 {
                return Err(ConfigError::invalid(
                    key("token_decimals"),
                    "must be at most 30",
                ));
            }
            if let Some(real) = &spec.real_account {
                spec.parse_address(real)
                    .map_err(|e| ConfigError::invalid(key("real_account"), e.to_string()))?;
            }
            if spec.token_symbol.is_empty() {
                return Err(ConfigError::invalid(
                    key("token_symbol"),
                    "must not be empty",
                ));
            }
        }
        self.magi
            .validate()
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        self.pipeline
            .validate()
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        self.runner
            .validate()
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        if self.subsquare.user_agent.trim().is_empty() {
            return Err(ConfigError::invalid(
                "subsquare.user_agent",
                "must not be empty",
            ));
        }
        if self.subsquare.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "subsquare.timeout_ms",
                "must be above 0",
            ));
        }
        if self.subsquare.page_size == 0 || self.subsquare.page_size > 100 {
            return Err(ConfigError::invalid(
                "subsquare.page_size",
                "must be between 1 and 100",
            ));
        }
        if self.augment.max_content_tokens < 200 {
            return Err(ConfigError::invalid(
                "augment.max_content_tokens",
                "must be at least 200",
            ));
        }
        match self.log.filter.parse::<tracing_subscriber::EnvFilter>() {
            Ok(_) => Ok(()),
            Err(e) => Err(ConfigError::invalid("log.filter", e.to_string())),
        }
    }

    /// The spec of `network`.
    pub fn network(&self, network: Network) -> &NetworkSpec {
        self.networks
            .get(&network)
            .expect("defaults define every network and config cannot remove one")
    }

    /// The infer stage's settings.
    pub fn infer_settings(&self) -> crate::stages::infer::InferSettings {
        crate::stages::infer::InferSettings {
            tally: self.magi.tally.clone(),
            provenance: self.provenance.clone(),
            arena_decisions: self
                .magi
                .jurors
                .iter()
                .filter_map(|(j, c)| Some((j.clone(), c.arena_decision.clone()?)))
                .collect(),
        }
    }

    /// The augment stage's settings for `network`.
    pub fn augment_settings(&self, network: Network) -> crate::stages::augment::AugmentSettings {
        crate::stages::augment::AugmentSettings {
            spec: self.network(network).clone(),
            augment: self.augment.clone(),
            // Validated when the configuration was loaded.
            repeat_penalty: self.magi.repeat_penalty.parse().unwrap_or(1.0),
            repeat_last_n: self.magi.repeat_last_n as usize,
            content_budget_tokens: None,
        }
    }

    /// The configuration as TOML, for `cybergov config`.
    /// URL credentials (a PostgreSQL password in `database.url`, an API key in `rpc_url`) are
    /// redacted: the output is for people and logs.
    pub fn to_toml(&self) -> String {
        crate::secret::redact_urls(&toml_string(self))
    }
}

fn toml_string(c: &Config) -> String {
    // Unset optional keys are left out, as TOML has no null.
    toml::to_string_pretty(c).expect("config always serializes to TOML")
}

/// Whether `var` is a configuration variable (not a secret, not the config path, not the
/// test-only fault injection).
fn is_config_var(var: &str) -> bool {
    var.starts_with(ENV_PREFIX)
        && var != CONFIG_PATH_VAR
        && var != FAULT_PAUSE_VAR
        && var != BUILD_COMMIT_VAR
        && !SECRET_VARS
            .iter()
            .any(|s| var == *s || var.strip_suffix("_FILE") == Some(s))
}

/// `CYBERGOV_A__B=v` variables as a nested figment provider. Values are parsed like TOML
/// scalars and arrays (`42`, `true`, `[2, 11]`), falling back to plain strings.
///
/// Built from an explicit list rather than figment's `Env`, which reads the process
/// environment, so that loading is a pure function of its inputs (and testable in parallel).
struct EnvProvider {
    root: figment::value::Dict,
}

impl EnvProvider {
    fn new(vars: &[(&String, &String)]) -> Self {
        use figment::value::{Dict, Value};
        let mut root = Dict::new();
        for (name, raw) in vars {
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            let (last, parents) = path.split_last().expect("split yields at least one part");
            let mut dict = &mut root;
            for part in parents {
                let entry = dict
                    .entry(part.clone())
                    .or_insert_with(|| Value::from(Dict::new()));
                if !matches!(entry, Value::Dict(..)) {
                    *entry = Value::from(Dict::new());
                }
                let Value::Dict(_, inner) = entry else {
                    unreachable!("made a dict just above")
                };
                dict = inner;
            }
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from((*raw).clone()));
            dict.insert(last.clone(), value);
        }
        Self { root }
    }
}

impl figment::Provider for EnvProvider {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable").interpolater(|_, path| {
            format!(
                "environment variable {ENV_PREFIX}{}",
                path.join("__").to_uppercase()
            )
        })
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.root.clone()))
    }
}

/// The longest duration any setting may name: ten years. Longer ones are typos, and they would
/// overflow a deadline (`Instant + Duration`) where a timeout is computed.
const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;

/// Every number must fit TOML's integers (i64: `cybergov config` prints them), and every
/// duration (`*_secs`, `*_s`, `*_ms`) must be at most [`MAX_DURATION_SECS`].
fn check_ranges(v: &serde_json::Value, key: &str) -> Result<(), ConfigError> {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let dotted = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                check_ranges(v, &dotted)?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_ranges(v, &format!("{key}[{i}]"))?;
            }
        }
        serde_json::Value::Number(n) => {
            let Some(n) = n.as_u64() else {
                return Ok(());
            };
            if i64::try_from(n).is_err() {
                return Err(ConfigError::invalid(
                    key,
                    format!("{n} is above the largest value allowed ({})", i64::MAX),
                ));
            }
            let limit = if key.ends_with("_ms") {
                Some(MAX_DURATION_SECS * 1000)
            } else if key.ends_with("_secs") || key.ends_with("_s") {
                Some(MAX_DURATION_SECS)
            } else {
                None
            };
            if let Some(limit) = limit
                && n > limit
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("{n} is longer than ten years ({limit}); it would overflow a deadline"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_url(key: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme) && !rest.is_empty() && !rest.contains(char::is_whitespace)
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!(
                "{:?} is not a URL with scheme {}",
                crate::secret::redact_urls(url),
                schemes.join(" or ")
            ),
        ))
    }
}

/// A URL that cybergov publishes (in comments, links and status pages) may carry no
/// credentials: redacting them there would publish a broken link, keeping them would publish
/// the password.
fn check_published(key: &str, url: &str) -> Result<(), ConfigError> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split('/').next().unwrap_or(rest));
    if crate::secret::redact_urls(url) == url && !authority.contains('@') {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            "this URL is published in comments and links, so it may not carry a user, password or key",
        ))
    }
}

/// Keys a config file may not contain, with the variable to use instead.
const SECRET_KEYS: [(&str, &str); 8] = [
    ("proxy_seed", PROXY_SEED_VAR),
    ("seed", PROXY_SEED_VAR),
    ("mnemonic", PROXY_SEED_VAR),
    ("github_token", GITHUB_TOKEN_VAR),
    ("token", GITHUB_TOKEN_VAR),
    ("access_key_id", S3_ACCESS_KEY_ID_VAR),
    ("secret_access_key", S3_SECRET_ACCESS_KEY_VAR),
    ("api_key", OPENAI_API_KEY_VAR),
];

fn reject_secrets_in_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(()); // syntax errors are reported by figment, with their position
    };
    fn walk(t: &toml::Table, prefix: &str, found: &mut Option<(String, &'static str)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let Some((_, var)) = SECRET_KEYS.iter().find(|(s, _)| s == k) {
                found.get_or_insert((key.clone(), var));
            }
            if let toml::Value::Table(inner) = v {
                walk(inner, &key, found);
            }
        }
    }
    let mut found = None;
    walk(&table, "", &mut found);
    match found {
        Some((key, var)) => Err(ConfigError::SecretInFile {
            path: path.to_owned(),
            key,
            var: var.to_owned(),
        }),
        None => Ok(()),
    }
}
