//! A local server speaking the GitHub REST shapes the runner uses:
//! `POST …/actions/workflows/{file}/dispatches` → 204 (no body, no run id);
//! `GET …/actions/workflows/{file}/runs` → `{total_count, workflow_runs: [{id, display_title,
//! status, conclusion, …}]}` (the display title is the workflow's run-name with its inputs);
//! `GET …/actions/runs/{id}` with status moving queued → in_progress → completed;
//! `GET …/actions/runs/{id}/logs` → 302 to a zip of log files; 403 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset` when told to; 404 for unknown
//! workflows and runs.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// One dispatched run.
#[derive(Clone, Debug)]
pub struct FakeRun {
    /// Run id.
    pub id: u64,
    /// The run-name with inputs filled in.
    pub display_title: String,
    /// Status GETs so far.
    pub polls: u32,
    /// The inputs it was dispatched with.
    pub inputs: Value,
}

/// What the server does and what it saw.
#[derive(Debug)]
pub struct Script {
    /// The workflow file that exists.
    pub workflow: String,
    /// The manifest hash the runs' logs print (`None`: no hash line).
    pub log_hash: Option<String>,
    /// Conclusion of completed runs.
    pub conclusion: String,
    /// Runs never leave `in_progress`.
    pub never_complete: bool,
    /// This many listing calls answer 403 rate-limited first.
    pub rate_limited_lists: u32,
    /// Seconds from now to the advertised rate-limit reset.
    pub rate_limit_reset_in: i64,
    /// This many listing calls answer 403 with `retry-after: 1` (a secondary rate limit).
    pub secondary_limited_lists: u32,
    /// A run shows in listings only after this many listing calls.
    pub list_delay: u32,
    /// Runs dispatched so far.
    pub runs: Vec<FakeRun>,
    /// Dispatch bodies as received.
    pub dispatches: Vec<Value>,
    /// `Authorization` header of every request.
    pub auth: Vec<Option<String>>,
    /// Method and path of every request.
    pub hits: Vec<String>,
    /// Listing calls so far.
    pub lists: u32,
    /// Text of one more step's log file in the zip (empty: none), to make the zip large or a
    /// bomb.
    pub extra_log: String,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            workflow: "inference.yml".into(),
            log_hash: None,
            conclusion: "success".into(),
            never_complete: false,
            rate_limited_lists: 0,
            rate_limit_reset_in: 1,
            secondary_limited_lists: 0,
            list_delay: 1,
            runs: Vec::new(),
            dispatches: Vec::new(),
            auth: Vec::new(),
            hits: Vec::new(),
            lists: 0,
            extra_log: String::new(),
        }
    }
}

type Shared = Arc<(String, Mutex<Script>)>;

/// A running server.
pub struct GithubServer {
    /// Base URL (give it as `runner.github.api_url`).
    pub url: String,
    state: Shared,
}

impl GithubServer {
    /// Changes the script.
    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.state.1.lock().unwrap());
    }

    /// Reads what the server saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Script) -> T) -> T {
        f(&self.state.1.lock().unwrap())
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})),
    )
        .into_response()
}

fn record(s: &mut Script, headers: &HeaderMap, what: String) {
    s.auth.push(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    s.hits.push(what);
}

fn run_json(base: &str, r: &FakeRun, s: &Script) -> Value {
    let (status, conclusion) = match r.polls {
        0 => ("queued", Value::Null),
        1 => ("in_progress", Value::Null),
        _ if s.never_complete => ("in_progress", Value::Null),
        _ => ("completed", json!(s.conclusion)),
    };
    json!({
        "id": r.id, "name": "inference", "display_title": r.display_title,
        "event": "workflow_dispatch", "status": status, "conclusion": conclusion,
        "run_attempt": 1, "html_url": format!("{base}/cybergov/cybergov/actions/runs/{}", r.id),
        "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:05Z",
    })
}

async fn dispatch(
    State(st): State<Shared>,
    Path((o, r, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.1.lock().unwrap();
    record(
        &mut s,
        &headers,
        format!("POST /repos/{o}/{r}/actions/workflows/{file}/dispatches"),
    );
    if file != s.workflow {
        return not_found();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "not JSON").into_response();
    };
    let i = &body["inputs"];
    let field = |k: &str| i[k].as_str().unwrap_or("?").to_owned();
    // The workflow's run-name: "infer <network> #<referendum> run <run> [<correlation id>]".
    let display_title = format!(
        "infer {} #{} run {} [{}]",
        field("network"),
        field("referendum"),
        field("run"),
        field("correlation_id")
    );
    let id = 9_000_000 + s.runs.len() as u64;
    s.runs.push(FakeRun {
        id,
        display_title,
        polls: 0,
        inputs: i.clone(),
    });
    s.dispatches.push(body);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_runs(
    State(st): State<Shared>,
    Path((o, r, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.1.lock().unwrap();
    record(
        &mut s,
        &headers,
        format!("GET /repos/{o}/{r}/actions/workflows/{file}/runs"),
    );
    if file != s.workflow {
        return not_found();
    }
    if s.rate_limited_lists > 0 {
        s.rate_limited_lists -= 1;
        let reset = chrono::Utc::now().timestamp() + s.rate_limit_reset_in;
        return (
            StatusCode::FORBIDDEN,
            [
                ("x-ratelimit-limit", "5000".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
            axum::Json(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})),
        )
            .into_response();
    }
    if s.secondary_limited_lists > 0 {
        s.secondary_limited_lists -= 1;
        return (
            StatusCode::FORBIDDEN,
            [("retry-after", "1")],
            axum::Json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
            .into_response();
    }
    s.lists += 1;
    let visible: Vec<Value> = if s.lists > s.list_delay {
        s.runs
            .iter()
            .rev()
            .map(|r| run_json(&st.0, r, &s))
            .collect()
    } else {
        Vec::new()
    };
    axum::Json(json!({"total_count": visible.len(), "workflow_runs": visible})).into_response()
}

async fn get_run(
    State(st): State<Shared>,
    Path((o, r, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.1.lock().unwrap();
    record(
        &mut s,
        &headers,
        format!("GET /repos/{o}/{r}/actions/runs/{id}"),
    );
    let Some(i) = s.runs.iter().position(|x| x.id == id) else {
        return not_found();
    };
    s.runs[i].polls += 1;
    let run = s.runs[i].clone();
    axum::Json(run_json(&st.0, &run, &s)).into_response()
}

async fn logs(
    State(st): State<Shared>,
    Path((o, r, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = st.1.lock().unwrap();
    record(
        &mut s,
        &headers,
        format!("GET /repos/{o}/{r}/actions/runs/{id}/logs"),
    );
    if !s.runs.iter().any(|x| x.id == id) {
        return not_found();
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{}/_blobs/logs-{id}.zip", st.0))],
    )
        .into_response()
}

/// The zip GitHub serves for a run's logs: one text file per step, lines timestamped.
pub fn log_zip(hash: Option<&str>, extra: &str) -> Vec<u8> {
    let ts = "2026-11-22T10:01:02.3456789Z";
    let mut infer = format!(
        "{ts} ##[group]Run target/release/cybergov infer --network \"$NETWORK\" --id \"$REFERENDUM\" --run \"$RUN\"\n{ts} ##[endgroup]\n{ts}   balthazar  tiny\n"
    );
    if let Some(h) = hash {
        infer.push_str(&format!(
            "{ts} manifest sha256: {h}\n{ts} cybergov-manifest-sha256: {h}\n"
        ));
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        (
            "infer/1_Set up job.txt",
            format!("{ts} Current runner version: '2.330.0'\n"),
        ),
        ("infer/5_Infer.txt", infer),
        ("infer/6_Extra.txt", extra.to_owned()),
    ] {
        if text.is_empty() {
            continue;
        }
        w.start_file(name, opts).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn blob(State(st): State<Shared>, Path(name): Path<String>) -> Response {
    let s = st.1.lock().unwrap();
    let ok = name
        .strip_prefix("logs-")
        .and_then(|n| n.strip_suffix(".zip"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|id| s.runs.iter().any(|x| x.id == id));
    if !ok {
        return not_found();
    }
    (
        [(header::CONTENT_TYPE, "application/zip")],
        log_zip(s.log_hash.as_deref(), &s.extra_log),
    )
        .into_response()
}

/// Starts the server on an ephemeral loopback port.
pub async fn spawn_github() -> GithubServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let state: Shared = Arc::new((url.clone(), Mutex::new(Script::default())));
    let app = Router::new()
        .route(
            "/repos/{o}/{r}/actions/workflows/{file}/dispatches",
            post(dispatch),
        )
        .route(
            "/repos/{o}/{r}/actions/workflows/{file}/runs",
            get(list_runs),
        )
        .route("/repos/{o}/{r}/actions/runs/{id}", get(get_run))
        .route("/repos/{o}/{r}/actions/runs/{id}/logs", get(logs))
        .route("/_blobs/{name}", get(blob))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    GithubServer { url, state }
}
