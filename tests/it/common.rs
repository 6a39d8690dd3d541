//! Helpers shared by the integration tests: a real S3 server on loopback, and a sample run.

#![allow(dead_code)] // each test crate uses a different subset

pub mod chopsticks;
pub mod github_server;
pub mod http_store;
pub mod metadata;
pub mod openai_server;
pub mod pipeline;
pub mod sidecar_server;
pub mod subsquare_server;
pub mod tamper;
pub mod tiny_gguf;
pub mod vote_run;
pub mod voted_run;
pub mod workers;

use cybergov::hash::Sha256Hash;
use cybergov::manifest::{
    ArtefactRef, Decision, Decoding, Manifest, ModelRecord, Provenance, SCHEMA_V1, VoteKind,
};
use cybergov::network::Network;
use cybergov::secret::Secret;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{ObjectStore, S3Connection, S3Store};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::path::Path;

pub const S3_ACCESS_KEY: &str = "cybergov-test-access";
pub const S3_SECRET_KEY: &str = "cybergov-test-secret";
pub const S3_BUCKET: &str = "cybergov-artefacts";

/// The provenance of the tests' hand-made runs: a local runner at a fixed commit and time.
pub fn sample_provenance(finished_at: &str) -> Provenance {
    Provenance {
        repository: "https://github.com/cybergov/cybergov".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        cybergov_version: "0.1.0".into(),
        runner: "local".into(),
        runner_run_id: None,
        runner_attempt: None,
        started_at: "2026-11-22T10:00:00Z".into(),
        finished_at: finished_at.into(),
    }
}

/// Serves `app` on an ephemeral loopback port for as long as the runtime lives; returns its base
/// URL (`http://127.0.0.1:<port>`). Every stand-in for an internet service starts here.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Starts an s3s-fs server (real S3 protocol, SigV4 checked) on an ephemeral loopback port,
/// storing under `root`. Returns its endpoint URL. The server lives as long as the runtime.
pub async fn spawn_s3(root: &Path) -> String {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let conn = http
                .serve_connection(TokioIo::new(sock), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    format!("http://{addr}")
}

/// A GGUF file's weights, loaded by the engine as the jurors load them.
pub fn engine_weights(
    path: &std::path::Path,
) -> std::sync::Arc<cybergov::magi::candle::transformer::Weights> {
    use cybergov::magi::candle::transformer::{Config, Weights};
    let mut f = std::fs::File::open(path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let cfg = Config::from_gguf(&ct, cybergov::magi::candle::MAX_CONTEXT).unwrap();
    std::sync::Arc::new(Weights::load(&ct, &mut f, cfg).unwrap())
}

/// A rayon pool of `threads` threads (the engine's results must not depend on the count).
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// What a child process printed: its stdout, then its stderr.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An [`S3Store`] against `endpoint` with the given secret key and key prefix.
pub fn s3_store(endpoint: &str, secret: &str, prefix: &str) -> S3Store {
    s3_store_capped(endpoint, secret, prefix, 256 << 20)
}

/// [`s3_store`] reading objects of at most `max_object_bytes`.
pub fn s3_store_capped(
    endpoint: &str,
    secret: &str,
    prefix: &str,
    max_object_bytes: u64,
) -> S3Store {
    S3Store::new(&S3Connection {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        bucket: S3_BUCKET.into(),
        prefix: prefix.into(),
        path_style: true,
        connect_timeout: std::time::Duration::from_secs(10),
        operation_timeout: std::time::Duration::from_secs(60),
        max_object_bytes,
        access_key_id: &Secret::new(S3_ACCESS_KEY),
        secret_access_key: &Secret::new(secret),
    })
}

/// Creates the test bucket (s3s-fs: a folder under the root).
pub async fn create_bucket(store: &S3Store) {
    store
        .client()
        .create_bucket()
        .bucket(S3_BUCKET)
        .send()
        .await
        .expect("create bucket");
}

/// The network and referendum of the sample run.
pub const SAMPLE: (Network, u32) = (Network::Polkadot, 4242);

/// The decoding parameters the sample jurors record.
pub fn sample_decoding() -> Decoding {
    greedy_decoding(256)
}

/// The juror decoding (greedy, repetition penalty 1.1 over 64 tokens, one thread) with at most
/// `max_new_tokens` tokens of rationale.
pub fn greedy_decoding(max_new_tokens: u32) -> Decoding {
    Decoding {
        strategy: "greedy".into(),
        max_new_tokens,
        threads: 1,
        repeat_penalty: "1.1".into(),
        repeat_last_n: 64,
    }
}

/// A juror record in the real shape whose vote follows from its scores (the verifiers check
/// that), for a run over content hashing to `content_sha256`.
pub fn sample_juror(
    name: &str,
    vote: VoteKind,
    rationale: &str,
    content_sha256: Sha256Hash,
) -> cybergov::magi::juror::JurorRecord {
    let score = |option: VoteKind| match option {
        _ if option == vote => -0.5,
        VoteKind::Abstain => -3.0,
        _ => -2.0,
    };
    serde_json::from_value(serde_json::json!({
        "schema": cybergov::magi::juror::JUROR_SCHEMA,
        "juror": name,
        "model": {
            "backend": "candle",
            "model_id": "SmolLM2-135M-Instruct",
            "file_sha256": Sha256Hash::of(b"model"),
            "quantization": "Q8_0",
            "context_length": 8192,
            "deterministic": true,
            "engine": cybergov::magi::candle::engine_id(),
        },
        "decoding": sample_decoding(),
        "prompts": {
            "system": Sha256Hash::of(b"system"),
            "persona": Sha256Hash::of(name.as_bytes()),
            "rationale": Sha256Hash::of(b"rationale"),
            "vote": Sha256Hash::of(b"vote"),
        },
        "content_sha256": content_sha256,
        "prompt_layout": cybergov::magi::juror::PROMPT_LAYOUT,
        "prompt_sha256": Sha256Hash::of(name.as_bytes()),
        "rationale": rationale,
        "rationale_finish": "stop",
        "vote": vote,
        "scoring": cybergov::magi::juror::SCORING,
        "scores": [
            {"option": "AYE", "logprob": score(VoteKind::Aye), "tokens": 1},
            {"option": "NAY", "logprob": score(VoteKind::Nay), "tokens": 1},
            {"option": "ABSTAIN", "logprob": score(VoteKind::Abstain), "tokens": 1},
        ],
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "raw_responses": [],
    }))
    .map(|mut r: cybergov::magi::juror::JurorRecord| {
        cybergov::magi::juror::normalise(&mut r.scores);
        r
    })
    .expect("the sample juror file is a juror record")
}

/// Writes a complete sample run `run` (artefacts, manifest, latest.json) and returns its
/// manifest. Deterministic: the same `run` always produces the same bytes. The artefacts carry
/// non-ASCII text on purpose.
pub async fn write_sample_run(
    store: &dyn ObjectStore,
    run: u32,
    previous: Option<Sha256Hash>,
) -> Manifest {
    let raw = br##"{"referendumIndex":4242,"title":"Toolkit maintenance \u2014 six months","content":"# Summary\n\nWe request 48,000 USDC.","contentType":"markdown","track":33,"state":{"name":"Deciding"}}"##;
    write_sample_run_with_raw(store, run, previous, raw).await
}

/// [`write_sample_run`] with other `raw_subsquare.json` bytes.
pub async fn write_sample_run_with_raw(
    store: &dyn ObjectStore,
    run: u32,
    previous: Option<Sha256Hash>,
    raw: &[u8],
) -> Manifest {
    let (network, referendum) = SAMPLE;
    let layout = ReferendumLayout::new(network, referendum).run(run);
    let raw = raw.to_vec();
    let content = "# Toolkit maintenance — six months\n\nWe request 48,000 USDC (≈ €44 000) for the Asset Hub light-client toolkit. Ünïcödé: 日本語 ✓\n".as_bytes().to_vec();
    let jurors = ["balthazar", "melchior", "caspar"];
    let mut inputs = Vec::new();
    for (artefact, bytes) in [
        (Artefact::RawSubsquare, &raw),
        (Artefact::Content, &content),
    ] {
        let key = layout.key(&artefact);
        store.put(&key, bytes).await.expect("put input");
        inputs.push(ArtefactRef::describe(
            artefact.file_name(),
            key.as_str(),
            bytes,
        ));
    }
    let mut outputs = Vec::new();
    let mut models = Vec::new();
    let mut votes = Vec::new();
    let decoding = sample_decoding();
    for (i, name) in jurors.iter().enumerate() {
        let artefact = Artefact::Juror((*name).to_owned());
        // A juror record in the real shape, whose vote follows from its scores (the verifiers
        // check that): two AYE, one NAY.
        let vote = if i == 2 { VoteKind::Nay } else { VoteKind::Aye };
        let record = sample_juror(
            name,
            vote,
            &format!("Clear deliverables — run {run}."),
            Sha256Hash::of(&content),
        );
        let bytes = record.to_bytes();
        let key = layout.key(&artefact);
        store.put(&key, &bytes).await.expect("put juror");
        outputs.push(ArtefactRef::describe(
            artefact.file_name(),
            key.as_str(),
            &bytes,
        ));
        models.push(ModelRecord {
            juror: (*name).to_owned(),
            backend: "candle".into(),
            model_id: "SmolLM2-135M-Instruct".into(),
            file_sha256: Some(Sha256Hash::of(b"model")),
            quantization: Some("Q8_0".into()),
            prompt_sha256: Sha256Hash::of(name.as_bytes()),
            decoding: decoding.clone(),
            deterministic: true,
            arena_decision: None,
        });
        votes.push(cybergov::magi::tally::JurorVote {
            juror: (*name).to_owned(),
            vote,
        });
    }
    let mut tally_config = cybergov::magi::settings::MagiConfig::default().tally;
    tally_config.rule = cybergov::magi::tally::TallyRule::SimpleMajority;
    tally_config.conviction_majority = 1;
    tally_config
        .balance
        .insert(network, "100000000000000".into());
    let vote = cybergov::magi::tally::tally(&tally_config, network, referendum, run, votes, None);
    assert_eq!(
        vote.decision,
        VoteKind::Aye,
        "two of three AYE under simple majority"
    );
    let vote = vote.to_bytes();
    let key = layout.key(&Artefact::Vote);
    store.put(&key, &vote).await.expect("put vote");
    outputs.push(ArtefactRef::describe(
        Artefact::Vote.file_name(),
        key.as_str(),
        &vote,
    ));
    let manifest = Manifest {
        schema: SCHEMA_V1.into(),
        network,
        referendum,
        run,
        provenance: sample_provenance("2026-11-22T10:03:07Z"),
        models,
        inputs,
        outputs,
        decision: Decision {
            vote: VoteKind::Aye,
            conviction: 1,
            balance: "100000000000000".into(),
        },
        previous,
    };
    cybergov::manifest::publish::publish(store, &manifest)
        .await
        .expect("publish manifest");
    manifest
}

/// The tiny random GGUF for `seed`, written once per test process into a temp folder.
pub fn tiny_model_path(seed: u64) -> std::path::PathBuf {
    use std::sync::{Mutex, OnceLock};
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let path = dir.path().join(format!("tiny-{seed}.gguf"));
    let _guard = LOCK.lock().unwrap();
    if !path.exists() {
        tiny_gguf::write_tiny_llama(&path, seed);
    }
    path
}

/// The tiny random model, loaded with candle (real loading, tokenizer and inference code).
pub fn tiny_model(seed: u64) -> cybergov::magi::candle::CandleModel {
    cybergov::magi::candle::CandleModel::load(&tiny_model_path(seed), &Default::default())
        .expect("tiny model loads")
}

/// [`tiny_model`] on its own pool of `threads` workers.
pub fn tiny_model_threads(seed: u64, threads: usize) -> cybergov::magi::candle::CandleModel {
    let opts = cybergov::magi::candle::LoadOptions {
        threads: Some(threads),
        ..Default::default()
    };
    cybergov::magi::candle::CandleModel::load(&tiny_model_path(seed), &opts)
        .expect("tiny model loads")
}
