//! `cybergov serve`'s OpenAI-compatible endpoint over the jury's own tiny model: the key is
//! checked (401 in OpenAI's shape), a greedy answer is the juror's rationale byte for byte,
//! `logprobs` are the greedy choice's, the SSE chunks add up to the whole answer, a full
//! queue answers 429, and cybergov's own OpenAI juror backend judges through it.

use crate::common::serve_on_loopback;
use crate::common::tiny_gguf::write_tiny_llama;
use cybergov::config::Config;
use cybergov::magi::juror::{deliberate, rationale_messages};
use cybergov::magi::openai::{OpenAiModel, OpenAiSettings};
use cybergov::pipeline::ledger::{Db, Ledger};
use cybergov::secret::{Secret, Secrets};
use cybergov::store::fs::FsStore;
use cybergov::web::openai::OpenAiServer;
use cybergov::web::{ServerConfig, WebState, router};
use cybergov::wiring::Services;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "sk-cybergov-test";
const CONTENT: &str = "A proposal to fund a public dashboard for the treasury, 1000 DOT.";

struct Endpoint {
    base: String,
    server: OpenAiServer,
    services: Arc<Services>,
    _dir: tempfile::TempDir,
}

async fn endpoint(max_queue: usize) -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model, 7);
    let mut vars = BTreeMap::new();
    for j in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
        vars.insert(
            format!("CYBERGOV_MAGI__JURORS__{j}__MODEL"),
            model.display().to_string(),
        );
    }
    vars.insert("CYBERGOV_MAGI__MAX_NEW_TOKENS".into(), "12".into());
    vars.insert("CYBERGOV_MAGI__THREADS".into(), "1".into());
    let config = Config::load_from(None, &vars).unwrap();
    let secrets = Arc::new(Secrets {
        openai_server_key: Some(Secret::new(KEY)),
        ..Secrets::default()
    });
    let store: cybergov::store::SharedStore =
        Arc::new(FsStore::new(dir.path().join("store")).unwrap());
    let services = Arc::new(Services::new(config.clone(), secrets, store.clone()));
    let server = OpenAiServer::new(services.clone(), max_queue);
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let ledger = Ledger::open(Db::connect(&url).await.unwrap())
        .await
        .unwrap();
    let state = WebState {
        ledger,
        store,
        public_base_url: None,
        settings: ServerConfig::default(),
        networks: config.networks.clone(),
        dispatch: None,
        operator: None,
        openai: Some(server.clone()),
        arena: Default::default(),
    };
    Endpoint {
        base: serve_on_loopback(router(state)).await,
        server,
        services,
        _dir: dir,
    }
}

async fn post(base: &str, key: Option<&str>, body: &Value) -> (u16, String) {
    let client = cybergov::http::client_builder().build().unwrap();
    let mut r = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The request the juror `balthazar` makes of its model for `CONTENT`, with `extra` fields.
async fn juror_request(e: &Endpoint, extra: Value) -> Value {
    let jury = e.services.jury().await.unwrap();
    let d = &jury.decoding;
    let mut body = json!({
        "model": "balthazar",
        "messages": rationale_messages(&jury.prompts, "balthazar", CONTENT),
        "max_tokens": d.max_new_tokens,
        "temperature": 0,
        "repeat_penalty": d.repeat_penalty.parse::<f32>().unwrap(),
        "repeat_last_n": d.repeat_last_n,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_answers_as_the_juror_streams_and_checks_its_key() {
    let e = endpoint(4).await;
    // The key: missing, then wrong, each 401 in OpenAI's shape.
    let body = juror_request(&e, json!({})).await;
    for (key, code) in [
        (None, "missing_api_key"),
        (Some("sk-wrong"), "invalid_api_key"),
    ] {
        let (status, text) = post(&e.base, key, &body).await;
        assert_eq!(status, 401, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    // The models: each juror's name and the model's id.
    let client = cybergov::http::client_builder().build().unwrap();
    let models: Value = client
        .get(format!("{}/v1/models", e.base))
        .header("authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.starts_with(&["balthazar", "melchior", "caspar"]),
        "{ids:?}"
    );

    // A greedy answer is the juror's rationale, byte for byte.
    let jury = e.services.jury().await.unwrap();
    let model = jury.members[0].1.clone();
    let record = deliberate(
        "balthazar",
        model.as_ref(),
        &jury.prompts,
        CONTENT,
        &jury.decoding,
    )
    .await
    .unwrap();
    let (status, text) = post(&e.base, Some(KEY), &body).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.trim(), record.rationale);
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["usage"]["completion_tokens"],
        json!(record.completion_tokens)
    );

    // With logprobs: the same answer; each token is its position's most probable one.
    let with = juror_request(&e, json!({"logprobs": true, "top_logprobs": 5})).await;
    let (status, text) = post(&e.base, Some(KEY), &with).await;
    assert_eq!(status, 200, "{text}");
    let detailed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detailed["choices"][0]["message"]["content"], content);
    let tokens = detailed["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(tokens.len() as u32, record.completion_tokens);
    for t in tokens {
        let top = t["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 5, "{t}");
        assert_eq!(top[0]["logprob"], t["logprob"], "{t}");
        let lps: Vec<f64> = top.iter().map(|x| x["logprob"].as_f64().unwrap()).collect();
        assert!(lps.windows(2).all(|w| w[0] >= w[1]), "{lps:?}");
    }

    // Streamed: the chunks add up to the whole answer, then [DONE].
    let streamed = juror_request(&e, json!({"stream": true, "logprobs": true})).await;
    let (status, text) = post(&e.base, Some(KEY), &streamed).await;
    assert_eq!(status, 200, "{text}");
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "{text}");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, content);
    let last = chunks.last().unwrap();
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(
        last["choices"][0]["finish_reason"],
        answer["choices"][0]["finish_reason"]
    );

    // Sampling the engine does not do is refused, naming the parameter.
    let hot = juror_request(&e, json!({"temperature": 0.7})).await;
    let (status, text) = post(&e.base, Some(KEY), &hot).await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["param"], "temperature", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_answered_429_at_once() {
    let e = endpoint(2).await;
    let body = juror_request(&e, json!({})).await;
    let held: Vec<_> = (0..2)
        .map(|_| e.server.occupy().expect("a place"))
        .collect();
    let (status, text) = post(&e.base, Some(KEY), &body).await;
    assert_eq!(status, 429, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(v["error"]["code"], "queue_full", "{v}");
    drop(held);
    let (status, text) = post(&e.base, Some(KEY), &body).await;
    assert_eq!(status, 200, "{text}");
}

/// Two cybergovs: one serving its jury's model, the other judging through it with its OpenAI
/// juror backend. The judge's rationale is the server's greedy answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cybergov_judges_through_the_endpoint() {
    let e = endpoint(4).await;
    let remote = OpenAiModel::new(
        OpenAiSettings {
            base_url: format!("{}/v1", e.base),
            model: "melchior".into(),
            timeout: Duration::from_secs(60),
            context_length: 8192,
        },
        Some(&Secret::new(KEY)),
    )
    .unwrap();
    let jury = e.services.jury().await.unwrap();
    // The client sends no repetition penalty (not part of OpenAI's API): judge without one.
    let mut decoding = jury.decoding.clone();
    decoding.repeat_penalty = "1.0".into();
    let judged = deliberate("melchior", &remote, &jury.prompts, CONTENT, &decoding)
        .await
        .unwrap();
    assert_eq!(judged.model.backend, "openai");
    assert_eq!(
        judged.raw_responses.len(),
        2,
        "the rationale's and the scoring's"
    );
    assert_eq!(judged.scores.len(), 3);
    let local = deliberate(
        "melchior",
        jury.members[1].1.as_ref(),
        &jury.prompts,
        CONTENT,
        &decoding,
    )
    .await
    .unwrap();
    assert_eq!(judged.rationale, local.rationale);
    assert_eq!(judged.completion_tokens, local.completion_tokens);
}
