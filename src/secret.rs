//! Secrets: values that must never reach a log, an artefact, a manifest or the database.
//!
//! A [`Secret`] only gives its value through [`Secret::expose`], so every place that reads one is
//! greppable, and its `Debug`/`Display` print `[redacted]`. It deliberately implements neither
//! `Serialize` nor `Clone`-into-string conversions, so it cannot be written out by accident.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string (seed phrase, token, key). Not `Clone`: each secret is held once, and
/// whatever needs it borrows it, so that no copy outlives the zeroing on drop unnoticed.
#[derive(PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where it is handed to the thing that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the buffer so the secret does not linger in freed memory. `zeroize` writes
        // through volatile stores, which the optimiser may not remove as a plain `fill(0)` on
        // memory about to be freed can be.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// `text` with the credentials of every URL in it replaced by `[redacted]`: the password of
/// `scheme://user:password@host`, and the value of query parameters that carry keys or tokens
/// (`?api_key=…`, `&token=…`). For what is printed, logged or stored that may hold a URL from
/// configuration (`database.url`, `rpc_url`, `sidecar_url`) or an error quoting one.
pub fn redact_urls(text: &str) -> String {
    use std::sync::LazyLock;
    static USERINFO: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(://[^/\s:@]*):[^@\s/]+@").expect("valid pattern"));
    static QUERY: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|auth|password|secret)=)[^&\s\x22']+",
        )
        .expect("valid pattern")
    });
    let text = USERINFO.replace_all(text, "$1:[redacted]@");
    QUERY.replace_all(&text, "${1}[redacted]").into_owned()
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both `NAME` and `NAME_FILE` were set; which one wins would be a guess.
    #[error("both {name} and {name}_FILE are set; set only one")]
    Ambiguous {
        /// The variable name.
        name: String,
    },
    /// `NAME_FILE` names a file that cannot be read.
    #[error("{name}_FILE points at {path}, which cannot be read")]
    File {
        /// The variable name.
        name: String,
        /// The file named.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The value (or the file) is empty.
    #[error("{name} is set but empty")]
    Empty {
        /// The variable name.
        name: String,
    },
}

/// Reads secret `name` from the environment: either `name` itself or the file named by
/// `name_FILE` (the Docker/Kubernetes secrets convention). Trailing newlines of a file are
/// dropped because editors add them. `Ok(None)` when neither is set.
pub fn from_env(name: &str) -> Result<Option<Secret>, SecretError> {
    from_lookup(name, |k| std::env::var(k).ok())
}

/// [`from_env`] with an injectable lookup, so tests need not mutate the process environment.
pub fn from_lookup(
    name: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, SecretError> {
    let file_var = format!("{name}_FILE");
    let value = match (lookup(name), lookup(&file_var)) {
        (Some(_), Some(_)) => {
            return Err(SecretError::Ambiguous {
                name: name.to_owned(),
            });
        }
        (Some(v), None) => v,
        (None, Some(path)) => read_file(name, Path::new(&path))?,
        (None, None) => return Ok(None),
    };
    if value.trim().is_empty() {
        return Err(SecretError::Empty {
            name: name.to_owned(),
        });
    }
    Ok(Some(Secret::new(value)))
}

fn read_file(name: &str, path: &Path) -> Result<String, SecretError> {
    let mut s = std::fs::read_to_string(path).map_err(|source| SecretError::File {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s =
            Secret::new("bottom drive obey lake curtain smoke basket hold race lonely fit walk");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{:?}", Some(&s)).contains("bottom"));
    }

    #[test]
    fn file_variant_and_ambiguity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seed");
        std::fs::write(&p, "//Alice\n").unwrap();
        let path = p.to_str().unwrap().to_owned();
        let got = from_lookup("X", |k| (k == "X_FILE").then(|| path.clone())).unwrap();
        assert_eq!(got.unwrap().expose(), "//Alice");
        let err = from_lookup("X", |_| Some("v".into())).unwrap_err();
        assert!(err.to_string().contains("both X and X_FILE"));
        assert!(from_lookup("X", |_| None).unwrap().is_none());
        let err = from_lookup("X", |k| (k == "X").then(|| " ".into())).unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }));
    }
}

/// The secrets, read from the environment (or `*_FILE` files). Absent ones are `None`; the
/// capability that needs one reports its absence when it runs. Shared as `Arc<Secrets>`, never
/// cloned.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The proxy account's seed phrase or secret URI, for networks without their own.
    pub proxy_seed: Option<Secret>,
    /// A network's own proxy key (`CYBERGOV_PROXY_SEED_<NETWORK>`), preferred over
    /// [`Self::proxy_seed`].
    pub proxy_seeds: std::collections::BTreeMap<crate::network::Network, Secret>,
    /// GitHub token for dispatching inference workflows.
    pub github_token: Option<Secret>,
    /// S3 access key id.
    pub s3_access_key_id: Option<Secret>,
    /// S3 secret access key.
    pub s3_secret_access_key: Option<Secret>,
    /// API key of an OpenAI-compatible juror backend.
    pub openai_api_key: Option<Secret>,
    /// The ledger's database URL, password included (`CYBERGOV_DATABASE_URL`); wins over
    /// `database.url`, so that the password need not sit in a file.
    pub database_url: Option<Secret>,
    /// The operators' token of the dashboard's actions (`CYBERGOV_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// The key clients of the OpenAI-compatible endpoint send (`CYBERGOV_OPENAI_SERVER_KEY`).
    pub openai_server_key: Option<Secret>,
}

impl Secrets {
    /// The proxy key that signs for `network`: its own, else the shared one.
    pub fn proxy_seed_for(&self, network: crate::network::Network) -> Option<&Secret> {
        self.proxy_seeds.get(&network).or(self.proxy_seed.as_ref())
    }

    /// Reads every secret from the process environment.
    pub fn from_env() -> Result<Self, SecretError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads every secret through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let get = |name: &str| from_lookup(name, &lookup);
        let mut proxy_seeds = std::collections::BTreeMap::new();
        for network in crate::network::Network::ALL {
            if let Some(seed) = get(crate::env::proxy_seed_var(network))? {
                proxy_seeds.insert(network, seed);
            }
        }
        Ok(Self {
            proxy_seeds,
            proxy_seed: get(crate::env::SECRET_VARS[0])?,
            github_token: get(crate::env::SECRET_VARS[1])?,
            s3_access_key_id: get(crate::env::SECRET_VARS[2])?,
            s3_secret_access_key: get(crate::env::SECRET_VARS[3])?,
            openai_api_key: get(crate::env::SECRET_VARS[4])?,
            database_url: get(crate::env::DATABASE_URL_VAR)?,
            admin_token: get(crate::env::ADMIN_TOKEN_VAR)?,
            openai_server_key: get(crate::env::OPENAI_SERVER_KEY_VAR)?,
        })
    }
}
