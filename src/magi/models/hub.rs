//! Models from the Hugging Face Hub, named `hf:OWNER/REPO@REVISION/PATH#sha256=HEX`.
//!
//! Delegates bring the GGUFs people publish there. A Hub model must name its revision and pin
//! its SHA-256: a branch moves and a file can be replaced, but a juror's weights must be the ones
//! its record names, so the file is checked against the pin before it is used, on download and
//! on every later load from the cache.
//!
//! The Hub's file protocol is one request: `GET {endpoint}/{repo}/resolve/{revision}/{path}`,
//! answered with the file, usually through a redirect to a CDN. Files are cached in the layout
//! the Hub's own tools use (`{cache}/models--OWNER--REPO/snapshots/REVISION/PATH`), so a file
//! already fetched with `huggingface-cli` at that revision is found and checked, not fetched
//! again. The usual variables are honoured: `HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`,
//! `HF_TOKEN` (or `HF_TOKEN_FILE`, a secret) and `HF_HUB_OFFLINE`.

use super::FetchError;
use crate::env;
use crate::hash::Sha256Hash;
use crate::secret::Secret;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The prefix of a Hub model spec.
pub const PREFIX: &str = "hf:";

/// The public Hub, when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A parsed `hf:` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubModel {
    /// `OWNER/REPO`.
    pub repo: String,
    /// A branch, tag or commit.
    pub revision: String,
    /// The file's path inside the repository.
    pub file: String,
    /// The pinned SHA-256, lowercase hex.
    pub sha256: String,
}

impl HubModel {
    /// Parses `spec`; `Ok(None)` when it is not an `hf:` spec at all.
    pub fn parse(spec: &str) -> Result<Option<Self>, FetchError> {
        let Some(rest) = spec.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let bad = |message: &str| FetchError::BadSpec {
            spec: spec.to_owned(),
            message: message.to_owned(),
        };
        let (location, pin) = rest.split_once("#sha256=").ok_or_else(|| {
            bad("a Hub model must pin its file: end it with #sha256=<64 hex digits>")
        })?;
        let sha256 = pin.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the pin after #sha256= is not 64 hex digits"));
        }
        let (repo, at) = location
            .split_once('@')
            .ok_or_else(|| bad("name the revision: hf:OWNER/REPO@REVISION/FILE"))?;
        let (revision, file) = at
            .split_once('/')
            .ok_or_else(|| bad("name the file after the revision: hf:OWNER/REPO@REVISION/FILE"))?;
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        let repo_ok = repo.split('/').count() == 2 && repo.split('/').all(segment_ok);
        if !repo_ok {
            return Err(bad(
                "the repository must be OWNER/REPO (letters, digits, - _ .)",
            ));
        }
        if !segment_ok(revision) {
            return Err(bad(
                "the revision must be a branch, tag or commit (letters, digits, - _ .)",
            ));
        }
        if !file.split('/').all(segment_ok) {
            return Err(bad(
                "the file path may hold letters, digits, - _ . and /, and no .. segment",
            ));
        }
        Ok(Some(Self {
            repo: repo.to_owned(),
            revision: revision.to_owned(),
            file: file.to_owned(),
            sha256,
        }))
    }

    /// What juror records name: the spec without its pin (the record carries the hash).
    pub fn model_id(&self) -> String {
        format!("{PREFIX}{}@{}/{}", self.repo, self.revision, self.file)
    }

    /// Where the Hub's tools keep this file under `cache`.
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        cache
            .join(format!("models--{}", self.repo.replace('/', "--")))
            .join("snapshots")
            .join(&self.revision)
            .join(&self.file)
    }
}

/// Where and how the Hub is reached.
#[derive(Debug)]
pub struct HubEnv {
    /// Base URL (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The cache folder (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache: PathBuf,
    /// The access token for gated or private repositories (`HF_TOKEN`).
    pub token: Option<Secret>,
    /// `HF_HUB_OFFLINE`: use the cache only.
    pub offline: bool,
}

impl HubEnv {
    /// Reads the Hub's variables from the process environment.
    pub fn from_env() -> Result<Self, FetchError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = || {
            var("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/huggingface")
        };
        let cache = var(env::HF_HUB_CACHE_VAR)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                var(env::HF_HOME_VAR)
                    .map(PathBuf::from)
                    .unwrap_or_else(home)
                    .join("hub")
            });
        let token = crate::secret::from_env(env::HF_TOKEN_VAR).map_err(|e| FetchError::Hub {
            url: String::new(),
            message: e.to_string(),
        })?;
        let offline = var(env::HF_HUB_OFFLINE_VAR).is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Ok(Self {
            endpoint: var(env::HF_ENDPOINT_VAR).unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            cache,
            token,
            offline,
        })
    }
}

/// Makes sure `model` is in the cache, checked against its pin, and returns its path. A
/// download that does not match the pin is deleted: nothing unpinned is ever cached.
pub fn ensure(model: &HubModel, env: &HubEnv) -> Result<PathBuf, FetchError> {
    let path = model.cached_path(&env.cache);
    if path.is_file() {
        super::check_pin(&path, &model.sha256)?;
        return Ok(path);
    }
    if env.offline {
        return Err(FetchError::Offline {
            model: model.model_id(),
            path,
        });
    }
    let dir = path.parent().expect("a cached path has a folder");
    std::fs::create_dir_all(dir).map_err(super::io(dir))?;
    let partial = dir.join(format!(
        ".{}.partial-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let got = download(model, env, &partial);
    match got {
        Ok(actual) if actual.to_hex() == model.sha256 => {
            std::fs::rename(&partial, &path).map_err(super::io(&path))?;
            Ok(path)
        }
        Ok(actual) => {
            let _ = std::fs::remove_file(&partial);
            Err(FetchError::HashMismatch {
                path: PathBuf::from(model.model_id()),
                actual: actual.to_hex(),
                expected: model.sha256.clone(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Streams the file into `partial`, hashing it as it arrives.
fn download(model: &HubModel, env: &HubEnv, partial: &Path) -> Result<Sha256Hash, FetchError> {
    let url = format!(
        "{}/{}/resolve/{}/{}",
        env.endpoint.trim_end_matches('/'),
        model.repo,
        model.revision,
        model.file
    );
    let shown = crate::secret::redact_urls(&url);
    let fail = |message: String| FetchError::Hub {
        url: shown.clone(),
        message,
    };
    tracing::info!(model = %model.model_id(), "downloading model from the Hub");
    let fetch = async {
        use sha2::Digest;
        let client = crate::http::client_builder()
            .user_agent(concat!("cybergov/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut request = client.get(&url);
        // reqwest drops the header when a redirect leaves the endpoint's host (the CDN).
        if let Some(token) = &env.token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| fail(crate::retry::with_causes(&e)))?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                return Err(fail(
                    "not found (HTTP 404): check the repository, revision and file".into(),
                ));
            }
            401 | 403 => {
                return Err(fail(format!(
                    "HTTP {}: the repository is gated or private; set HF_TOKEN",
                    response.status().as_u16()
                )));
            }
            s => return Err(fail(format!("HTTP {s}"))),
        }
        let mut file = std::fs::File::create(partial).map_err(super::io(partial))?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(crate::retry::with_causes(&e)))?
        {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(super::io(partial))?;
        }
        file.sync_all().map_err(super::io(partial))?;
        Ok(Sha256Hash(hasher.finalize().into()))
    };
    // Resolving a model is synchronous (it runs on a blocking thread, or in `models fetch`
    // before any runtime): a blocking thread inside a runtime borrows its handle.
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(fetch),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(super::io(partial))?
            .block_on(fetch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_wrong() {
        let m = HubModel::parse(&format!(
            "hf:unsloth/gemma-3-270m-it-GGUF@main/gemma-3-270m-it-Q4_K_M.gguf#sha256={PIN}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(m.repo, "unsloth/gemma-3-270m-it-GGUF");
        assert_eq!(m.revision, "main");
        assert_eq!(m.file, "gemma-3-270m-it-Q4_K_M.gguf");
        assert_eq!(
            m.model_id(),
            "hf:unsloth/gemma-3-270m-it-GGUF@main/gemma-3-270m-it-Q4_K_M.gguf"
        );
        assert_eq!(
            m.cached_path(Path::new("/c")),
            Path::new(
                "/c/models--unsloth--gemma-3-270m-it-GGUF/snapshots/main/gemma-3-270m-it-Q4_K_M.gguf"
            )
        );
        assert!(HubModel::parse("smollm2-135m-instruct").unwrap().is_none());
        for (spec, says) in [
            ("hf:a/b@main/f.gguf", "#sha256="),
            (
                &format!("hf:a/b@main/f.gguf#sha256={}", &PIN[1..]) as &str,
                "64 hex",
            ),
            (&format!("hf:a/b/f.gguf#sha256={PIN}"), "revision"),
            (&format!("hf:a/b@main#sha256={PIN}"), "file"),
            (&format!("hf:ab@main/f.gguf#sha256={PIN}"), "OWNER/REPO"),
            (
                &format!("hf:a/b@main/../f.gguf#sha256={PIN}"),
                "no .. segment",
            ),
        ] {
            let e = HubModel::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }
}
