//! The OpenAI-compatible endpoint's benchmark (issue #14): `cybergov serve`'s
//! `/v1/chat/completions` against llama.cpp's server (`python -m llama_cpp.server`), the same
//! GGUF file, the same thread count, the same requests from the same client.
//!
//! ```text
//! cargo bench --bench endpoint -- [--threads 2] [--tokens 128] [--rounds 5]
//!                                 [--peer | --no-peer] [--python python3] [--model FILE]
//! ```
//!
//! Each round asks each server, alternating, for one whole answer (`max_tokens` = `--tokens`,
//! `temperature: 0`) and one streamed answer to the same conversation, and times them at the
//! client: completion tokens per second of the whole answer (the usage the server reports over
//! the wall time), and the streamed answer's time to its first token. Both servers keep the
//! conversation's prompt in their cache between requests, as a server does. The peer needs
//! `pip install "llama-cpp-python[server]==0.3.36"`.
//!
//! A benchmark, not a test: `cargo test --all-targets` builds it and starts it without the
//! `--bench` flag that `cargo bench` passes, and then it returns at once.

use anyhow::{Context, Result, bail};
use clap::Parser;
use cybergov::config::Config;
use cybergov::magi::models;
use cybergov::pipeline::ledger::{Db, Ledger};
use cybergov::secret::{Secret, Secrets};
use cybergov::web::openai::OpenAiServer;
use cybergov::web::{ServerConfig, WebState};
use cybergov::wiring::Services;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Shared with the other benchmarks; this one uses a part of each.
#[allow(dead_code)]
#[path = "support/db.rs"]
mod db;
#[allow(dead_code)]
#[path = "support/peer.rs"]
mod peer;
use peer::{Peer, PeerArgs};

const KEY: &str = "bench";

/// llama.cpp's OpenAI-compatible server, from llama-cpp-python.
const LLAMA_SERVER: Peer<'static> = Peer {
    name: "llama.cpp server",
    script: "",
    module: "llama_cpp.server",
    install: "pip install \"llama-cpp-python[server]==0.3.36\"",
};

#[derive(Parser, Debug)]
#[command(about = "cybergov serve's OpenAI-compatible endpoint against llama.cpp's server")]
struct Args {
    /// Threads of each server's model.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Tokens to generate per request.
    #[arg(long, default_value_t = 128)]
    tokens: u32,
    /// Alternating rounds.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// The GGUF file (default: SmolLM2-135M-Instruct Q8_0, fetched into the models cache).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    peer: PeerArgs,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A conversation like a juror's: instructions, then a proposal of a few hundred tokens.
fn conversation() -> Value {
    let proposal = "The treasury would fund twelve months of work on an open dashboard that \
                    shows every referendum, its votes and the delegates' rationales, with an \
                    audit of the spending published each quarter. "
        .repeat(8);
    json!([
        {"role": "system", "content": "You are a careful analyst of on-chain governance proposals."},
        {"role": "user", "content": format!("Proposal:\n{proposal}\nGive your assessment in one paragraph.")},
    ])
}

struct Sample {
    tokens_per_second: f64,
    first_token_ms: f64,
}

/// One whole and one streamed answer from the server at `base`.
async fn sample(client: &reqwest::Client, base: &str, model: &str, tokens: u32) -> Result<Sample> {
    let body = |stream: bool| {
        json!({
            "model": model, "messages": conversation(), "max_tokens": tokens,
            "temperature": 0, "stream": stream,
        })
    };
    let started = Instant::now();
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body(false))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{base}: HTTP {status}: {v}");
    }
    let took = started.elapsed().as_secs_f64();
    let completion = v["usage"]["completion_tokens"]
        .as_f64()
        .context("usage.completion_tokens")?;
    let started = Instant::now();
    let mut r = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body(true))
        .send()
        .await?;
    let mut first = None;
    let mut pending = String::new();
    while let Some(chunk) = r.chunk().await? {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Whole lines only: an event may arrive split across chunks.
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            let has_text = serde_json::from_str::<Value>(data).ok().is_some_and(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            });
            if has_text && first.is_none() {
                first = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    Ok(Sample {
        tokens_per_second: completion / took,
        first_token_ms: first.context("the stream had no token")?,
    })
}

/// cybergov's endpoint over `model`, on loopback.
async fn ours(model: &std::path::Path, threads: u32, dir: &std::path::Path) -> Result<String> {
    let mut vars = BTreeMap::new();
    for j in ["BALTHAZAR", "MELCHIOR", "CASPAR"] {
        vars.insert(
            format!("CYBERGOV_MAGI__JURORS__{j}__MODEL"),
            model.display().to_string(),
        );
    }
    vars.insert("CYBERGOV_MAGI__THREADS".into(), threads.to_string());
    let config = Config::load_from(None, &vars)?;
    let secrets = Arc::new(Secrets {
        openai_server_key: Some(Secret::new(KEY)),
        ..Secrets::default()
    });
    let store: cybergov::store::SharedStore =
        Arc::new(cybergov::store::fs::FsStore::new(dir.join("store"))?);
    let services = Arc::new(Services::new(config.clone(), secrets, store.clone()));
    let url = format!("sqlite://{}?mode=rwc", dir.join("l.db").display());
    let state = WebState {
        ledger: Ledger::open(Db::connect(&url).await?).await?,
        store,
        public_base_url: None,
        settings: ServerConfig {
            request_timeout_s: 600,
            ..ServerConfig::default()
        },
        networks: config.networks.clone(),
        dispatch: None,
        operator: None,
        openai: Some(OpenAiServer::new(services, 4)),
        arena: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    // What `serve` runs, TCP_NODELAY included.
    tokio::spawn(cybergov::web::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Ok(base)
}

/// llama.cpp's server over `model`, killed on drop.
struct LlamaServer(Child);

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn theirs(
    python: &str,
    model: &std::path::Path,
    threads: u32,
) -> Result<(LlamaServer, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(model)
        .args(["--n_threads", &threads.to_string(), "--n_threads_batch"])
        .arg(threads.to_string())
        .args(["--n_ctx", "2048", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--api_key", KEY])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting llama_cpp.server")?;
    let server = LlamaServer(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = cybergov::http::client_builder().build()?;
    let started = Instant::now();
    while client
        .get(format!("{base}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .is_err()
    {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("llama_cpp.server did not answer in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((server, base))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    db::percentile(&v, 0.5)
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("endpoint: a benchmark, not run as a test; run `cargo bench --bench endpoint`");
        return Ok(());
    }
    let args = Args::parse();
    let model = match &args.model {
        Some(p) => p.clone(),
        None => models::ensure(
            models::named("smollm2-135m-instruct-q8_0").context("named model missing")?,
            &models::default_models_dir(),
            &cybergov::progress::Quiet,
        )?,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "endpoint: {} ({} threads), {} tokens per answer, {} alternating rounds; load {}",
        model.display(),
        args.threads,
        args.tokens,
        args.rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let with_peer = LLAMA_SERVER.decide(&args.peer)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let client = cybergov::http::client_builder()
            .timeout(Duration::from_secs(600))
            .build()?;
        let base = ours(&model, args.threads, dir.path()).await?;
        let peer = if with_peer {
            Some(theirs(&args.peer.python, &model, args.threads).await?)
        } else {
            None
        };
        // One answer each first, not counted: the models load and the prompts are cached.
        sample(&client, &base, "balthazar", args.tokens).await?;
        if let Some((_, b)) = &peer {
            sample(&client, b, "model", args.tokens).await?;
        }
        let (mut our, mut their) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            our.push(sample(&client, &base, "balthazar", args.tokens).await?);
            if let Some((_, b)) = &peer {
                their.push(sample(&client, b, "model", args.tokens).await?);
            }
        }
        let summary = |s: &[Sample]| {
            (
                median(s.iter().map(|x| x.tokens_per_second).collect()),
                median(s.iter().map(|x| x.first_token_ms).collect()),
            )
        };
        let (tps, ttft) = summary(&our);
        println!(
            "{:<18} {:>18} {:>22}",
            "server", "completion tok/s", "first streamed token ms"
        );
        println!("{:<18} {tps:>18.1} {ttft:>22.1}", "cybergov serve");
        if !their.is_empty() {
            let (ptps, pttft) = summary(&their);
            println!("{:<18} {ptps:>18.1} {pttft:>22.1}", "llama.cpp server");
            println!(
                "ours / theirs: tokens/s {:.2}×, time to first token {:.2}× (lower is better)",
                tps / ptps,
                ttft / pttft
            );
        }
        anyhow::Ok(())
    })
}
