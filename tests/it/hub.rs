//! Juror models from the Hugging Face Hub (`hf:OWNER/REPO@REVISION/FILE#sha256=HEX`), fetched by
//! `cybergov models fetch` from a local server that speaks the Hub's file-resolve protocol: a
//! redirect to the file's blob, a 404, a gated repository, a file that does not match its pin.

use crate::common::output_text as text;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::process::Output;
use std::sync::{Arc, Mutex};

const REPO: &str = "cybergov/tiny-GGUF";
const TOKEN: &str = "hf_test_token_not_printed";

/// A file the stand-in serves: `(repo, revision, path)` and its bytes.
type HubFile = ((String, String, String), Vec<u8>);

/// The stand-in's files and what it saw.
#[derive(Default)]
struct Hub {
    /// `(repo, revision, file)` → bytes.
    files: Mutex<Vec<HubFile>>,
    /// Repositories that need the token.
    gated: Mutex<Vec<String>>,
    /// Every request: path and `Authorization` header.
    seen: Mutex<Vec<(String, Option<String>)>>,
}

async fn resolve(
    State(hub): State<Arc<Hub>>,
    Path((owner, repo, revision, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let repo = format!("{owner}/{repo}");
    hub.seen
        .lock()
        .unwrap()
        .push((format!("/{repo}/resolve/{revision}/{file}"), auth.clone()));
    if hub.gated.lock().unwrap().contains(&repo) && auth != Some(format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "Access to model is restricted").into_response();
    }
    let found = hub
        .files
        .lock()
        .unwrap()
        .iter()
        .position(|(k, _)| *k == (repo.clone(), revision.clone(), file.clone()));
    match found {
        // The Hub answers large files with a redirect to their blob on a CDN.
        Some(i) => Redirect::to(&format!("/blobs/{i}")).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [("x-error-code", "EntryNotFound")],
            "Entry not found",
        )
            .into_response(),
    }
}

async fn blob(State(hub): State<Arc<Hub>>, Path(i): Path<usize>) -> Response {
    hub.seen.lock().unwrap().push((format!("/blobs/{i}"), None));
    match hub.files.lock().unwrap().get(i) {
        Some((_, bytes)) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn spawn_hub() -> (String, Arc<Hub>) {
    let hub = Arc::new(Hub::default());
    let app = Router::new()
        .route("/{owner}/{repo}/resolve/{revision}/{*file}", get(resolve))
        .route("/blobs/{i}", get(blob))
        .with_state(hub.clone());
    (crate::common::serve_on_loopback(app).await, hub)
}

fn fetch(dir: &std::path::Path, spec: &str, env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cybergov"))
        .args(["models", "fetch", spec])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Every file under `root`.
fn files(root: &std::path::Path) -> Vec<String> {
    crate::common::pipeline::files_under(root)
        .into_keys()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hf_model_is_fetched_cached_and_checked_against_its_pin() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    crate::common::tiny_gguf::write_tiny_llama(&model, 7);
    let bytes = std::fs::read(&model).unwrap();
    let pin = cybergov::hash::Sha256Hash::of(&bytes).to_hex();
    let (url, hub) = spawn_hub().await;
    hub.files.lock().unwrap().push((
        (REPO.into(), "v1".into(), "q8/tiny.gguf".into()),
        bytes.clone(),
    ));
    hub.gated.lock().unwrap().push(REPO.into());
    let cache = dir.path().join("hf-cache");
    let cache_s = cache.display().to_string();
    let spec = format!("hf:{REPO}@v1/q8/tiny.gguf#sha256={pin}");
    let env = [
        ("HF_ENDPOINT", url.as_str()),
        ("HF_HUB_CACHE", cache_s.as_str()),
        ("HF_TOKEN", TOKEN),
    ];

    // Fetched through the redirect, with the token, into the Hub's cache layout.
    let o = fetch(dir.path(), &spec, &env);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    let cached = cache.join("models--cybergov--tiny-GGUF/snapshots/v1/q8/tiny.gguf");
    assert_eq!(std::fs::read(&cached).unwrap(), bytes);
    assert!(all.contains(&pin), "{all}");
    assert!(!all.contains(TOKEN), "{all}");
    let seen = hub.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, format!("/{REPO}/resolve/v1/q8/tiny.gguf"));
    assert_eq!(
        seen[0].1.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen[1].0, "/blobs/0");

    // Cached: offline works, and nothing is asked of the Hub.
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let o = fetch(dir.path(), &spec, &offline);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(hub.seen.lock().unwrap().len(), 2);

    // A cached file that no longer matches its pin is refused, not used.
    std::fs::write(&cached, b"replaced").unwrap();
    let o = fetch(dir.path(), &spec, &offline);
    assert!(!o.status.success());
    assert!(text(&o).contains("expected the pinned"), "{}", text(&o));
    std::fs::remove_file(&cached).unwrap();

    // Offline and not cached: says so.
    let o = fetch(dir.path(), &spec, &offline);
    assert!(!o.status.success());
    assert!(text(&o).contains("HF_HUB_OFFLINE"), "{}", text(&o));

    // A download that does not match the pin is refused and nothing is cached.
    let wrong = format!("hf:{REPO}@v1/q8/tiny.gguf#sha256={}", "0".repeat(64));
    let o = fetch(dir.path(), &wrong, &env);
    let all = text(&o);
    assert!(!o.status.success());
    assert!(
        all.contains(&format!("sha256 {pin}, expected the pinned")),
        "{all}"
    );
    assert_eq!(files(&cache), Vec::<String>::new(), "nothing cached");

    // A missing file is a 404 naming the URL; a gated repository without the token says so.
    let missing = format!("hf:{REPO}@v2/q8/tiny.gguf#sha256={pin}");
    let o = fetch(dir.path(), &missing, &env);
    let all = text(&o);
    assert!(!o.status.success());
    assert!(
        all.contains("HTTP 404") && all.contains("/resolve/v2/q8/tiny.gguf"),
        "{all}"
    );
    let o = fetch(dir.path(), &spec, &env[..2]);
    let all = text(&o);
    assert!(!o.status.success());
    assert!(all.contains("gated or private; set HF_TOKEN"), "{all}");

    // Without a pin, an hf: model is refused before anything is fetched.
    let before = hub.seen.lock().unwrap().len();
    let o = fetch(dir.path(), &format!("hf:{REPO}@v1/q8/tiny.gguf"), &env);
    assert!(!o.status.success());
    assert!(text(&o).contains("#sha256="), "{}", text(&o));
    assert_eq!(hub.seen.lock().unwrap().len(), before);
}
