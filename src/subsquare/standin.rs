//! A local stand-in for Subsquare: an HTTP server that speaks its formats (detail, list,
//! comments, SIMA posts) and can be told to fail (429 with Retry-After, 5xx, slow responses,
//! truncated JSON).
//!
//! `cybergov demo` serves its bundled sample through it, so the demo exercises the same client
//! code as production; the tests script its failures. It lives in the library rather than in the
//! tests for that reason.
//!
//! Posted SIMA comments are checked the way Subsquare would (sr25519 signature over the entity
//! bytes by the address's key) and become listed comments, so idempotency can be tested end to
//! end.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crate::account::AccountId;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A scripted response, used once, before the referendum's normal answer.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer with this status and a small JSON error body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooMany { retry_after: u64 },
    /// Sleep this long, then answer normally.
    Slow(Duration),
    /// 200 with a JSON body cut in the middle.
    Truncated,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Method and path with query.
    pub path: String,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

/// The server's state.
#[derive(Default)]
pub struct ServerState {
    /// Detail bodies by referendum index, served byte for byte.
    pub referenda: Mutex<BTreeMap<u32, Vec<u8>>>,
    /// Scripted behaviours for the detail of a referendum.
    pub script: Mutex<HashMap<u32, VecDeque<Behaviour>>>,
    /// Listed comments by referendum.
    pub comments: Mutex<HashMap<u32, Vec<Value>>>,
    /// Raw bodies of accepted SIMA posts.
    pub posts: Mutex<Vec<(u32, String)>>,
    /// Every request.
    pub hits: Mutex<Vec<Hit>>,
}

/// A running server.
pub struct SubsquareServer {
    /// Base URL, e.g. `http://127.0.0.1:4321`.
    pub url: String,
    /// Its state.
    pub state: Arc<ServerState>,
}

impl SubsquareServer {
    /// Serves `body` as the detail of referendum `index`.
    pub fn add_referendum(&self, index: u32, body: impl Into<Vec<u8>>) {
        self.state
            .referenda
            .lock()
            .unwrap()
            .insert(index, body.into());
    }
    /// Queues behaviours for the detail of `index`.
    pub fn script(&self, index: u32, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.state
            .script
            .lock()
            .unwrap()
            .entry(index)
            .or_default()
            .extend(behaviours);
    }
    /// Requests whose path starts with `prefix`.
    pub fn hits(&self, prefix: &str) -> Vec<Hit> {
        let hits = self.state.hits.lock().unwrap();
        hits.iter()
            .filter(|h| h.path.starts_with(prefix))
            .cloned()
            .collect()
    }
    /// Raw bodies of accepted posts.
    pub fn posts(&self) -> Vec<(u32, String)> {
        self.state.posts.lock().unwrap().clone()
    }
    /// Adds a listed comment by `address` with `content`.
    pub fn add_comment(&self, index: u32, address: &str, content: &str) {
        let mut c = self.state.comments.lock().unwrap();
        let list = c.entry(index).or_default();
        let id = format!("cmt-{index}-{}", list.len() + 1);
        list.push(
            json!({"_id": id, "content": content, "author": {"address": address}, "replies": []}),
        );
    }
}

fn record(state: &ServerState, path: String, headers: &HeaderMap) {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.hits.lock().unwrap().push(Hit { path, user_agent });
}

fn error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    (
        code,
        axum::Json(json!({"status": status, "message": "scripted failure"})),
    )
        .into_response()
}

async fn detail(
    State(state): State<Arc<ServerState>>,
    Path(index): Path<u32>,
    headers: HeaderMap,
) -> Response {
    record(&state, format!("GET /gov2/referendums/{index}"), &headers);
    let next = state
        .script
        .lock()
        .unwrap()
        .get_mut(&index)
        .and_then(VecDeque::pop_front);
    match next {
        Some(Behaviour::Status(s)) => return error(s),
        Some(Behaviour::TooMany { retry_after }) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.to_string())],
                "slow down",
            )
                .into_response();
        }
        Some(Behaviour::Slow(d)) => tokio::time::sleep(d).await,
        Some(Behaviour::Truncated) => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"referendumIndex": 1, "title": "Cut off in the mid"#,
            )
                .into_response();
        }
        None => {}
    }
    let body = state.referenda.lock().unwrap().get(&index).cloned();
    match body {
        Some(b) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            Bytes::from(b),
        )
            .into_response(),
        None => error(404),
    }
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    page_size: Option<usize>,
}

fn page_of(items: Vec<Value>, p: &Paging) -> Value {
    let (page, size) = (p.page.unwrap_or(1).max(1), p.page_size.unwrap_or(10).max(1));
    let total = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    json!({"items": items, "total": total, "page": page, "pageSize": size})
}

async fn list(
    State(state): State<Arc<ServerState>>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        format!("GET /gov2/referendums?page={}", p.page.unwrap_or(1)),
        &headers,
    );
    let items: Vec<Value> = state
        .referenda
        .lock()
        .unwrap()
        .values()
        .rev()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .map(|v| json!({"referendumIndex": v["referendumIndex"], "title": v["title"], "track": v["track"], "state": v["state"]}))
        .collect();
    axum::Json(page_of(items, &p)).into_response()
}

async fn comments(
    State(state): State<Arc<ServerState>>,
    Path(index): Path<u32>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        format!(
            "GET /gov2/referendums/{index}/comments?page={}",
            p.page.unwrap_or(1)
        ),
        &headers,
    );
    let items = state
        .comments
        .lock()
        .unwrap()
        .get(&index)
        .cloned()
        .unwrap_or_default();
    axum::Json(page_of(items, &p)).into_response()
}

/// Checks a SIMA body the way Subsquare would; returns the entity on success.
pub fn check_sima(body: &str) -> Result<Value, String> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        entity: &'a serde_json::value::RawValue,
        address: String,
        signature: String,
        #[serde(rename = "signerWallet")]
        signer_wallet: String,
    }
    let b: Body<'_> = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
    if b.signer_wallet.is_empty() {
        return Err("no signerWallet".into());
    }
    let (account, _) = AccountId::from_ss58(&b.address).map_err(|e| format!("address: {e}"))?;
    let sig: [u8; 64] = hex::decode(b.signature.trim_start_matches("0x"))
        .map_err(|e| format!("signature: {e}"))?
        .try_into()
        .map_err(|_| "signature: not 64 bytes".to_owned())?;
    let ok = subxt_signer::sr25519::verify(
        &subxt_signer::sr25519::Signature(sig),
        b.entity.get().as_bytes(),
        &subxt_signer::sr25519::PublicKey(account.0),
    );
    if !ok {
        return Err("bad signature".into());
    }
    serde_json::from_str(b.entity.get()).map_err(|e| format!("entity: {e}"))
}

async fn post_comment(
    State(state): State<Arc<ServerState>>,
    Path(index): Path<u32>,
    headers: HeaderMap,
    body: String,
) -> Response {
    record(
        &state,
        format!("POST /sima/referenda/{index}/comments"),
        &headers,
    );
    let entity = match check_sima(&body) {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if entity["indexer"]["id"] != json!(index) {
        return (StatusCode::BAD_REQUEST, "indexer.id does not match the URL").into_response();
    }
    let address = serde_json::from_str::<Value>(&body).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_owned();
    state.posts.lock().unwrap().push((index, body));
    let mut c = state.comments.lock().unwrap();
    let list = c.entry(index).or_default();
    let id = format!("cmt-{index}-{}", list.len() + 1);
    list.push(json!({"_id": id, "content": entity["content"], "author": {"address": address}, "replies": []}));
    axum::Json(json!({"_id": id})).into_response()
}

/// Starts a stand-in on an ephemeral loopback port; it serves for as long as the tokio runtime
/// lives.
pub async fn spawn() -> std::io::Result<SubsquareServer> {
    let state = Arc::new(ServerState::default());
    let app = Router::new()
        .route("/gov2/referendums", get(list))
        .route("/gov2/referendums/{index}", get(detail))
        .route("/gov2/referendums/{index}/comments", get(comments))
        .route("/sima/referenda/{index}/comments", post(post_comment))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SubsquareServer { url, state })
}
