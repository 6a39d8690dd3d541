//! Manifest v1: canonical bytes, schema, and verification against a store.

use crate::common::{SAMPLE, write_sample_run};
use cybergov::hash::Sha256Hash;
use cybergov::manifest::publish::PublishError;
use cybergov::manifest::verify::verify_run;
use cybergov::manifest::{Manifest, ManifestError};
use cybergov::store::layout::{Artefact, ReferendumLayout};
use cybergov::store::{FsStore, ObjectKey, ObjectStore};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo("manifests/manifest.v1.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("schema compiles")
}

async fn sample_store() -> (tempfile::TempDir, FsStore, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let m = write_sample_run(&store, 1, None).await;
    (dir, store, m)
}

#[tokio::test]
async fn canonical_bytes_are_stable_across_runs_and_key_orders() {
    let (_d1, _s1, m1) = sample_store().await;
    let (_d2, _s2, m2) = sample_store().await;
    let bytes = m1.to_canonical_bytes().unwrap();
    assert_eq!(bytes, m2.to_canonical_bytes().unwrap());

    // Re-parse from JSON with every object's keys reversed and pretty whitespace: same bytes.
    fn reverse(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut out = serde_json::Map::new();
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.reverse();
                for (k, v) in entries {
                    out.insert(k, reverse(v));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(reverse).collect())
            }
            other => other,
        }
    }
    let shuffled =
        serde_json::to_string_pretty(&reverse(serde_json::from_slice(&bytes).unwrap())).unwrap();
    assert_ne!(shuffled.as_bytes(), bytes.as_slice());
    let reparsed: Manifest = serde_json::from_str(&shuffled).unwrap();
    assert_eq!(reparsed.to_canonical_bytes().unwrap(), bytes);

    // Not canonical bytes are refused, even though they parse.
    assert!(matches!(
        Manifest::from_canonical_bytes(shuffled.as_bytes()),
        Err(ManifestError::NotCanonical)
    ));
    // The canonical text itself: sorted keys, no whitespace, raw UTF-8.
    insta::assert_snapshot!("sample_manifest_run1", String::from_utf8(bytes).unwrap());
}

#[tokio::test]
async fn non_ascii_text_hashes_the_same_in_every_run() {
    let (_d, store, m) = sample_store().await;
    let content = store
        .get(
            &ReferendumLayout::new(SAMPLE.0, SAMPLE.1)
                .run(1)
                .key(&Artefact::Content),
        )
        .await
        .unwrap();
    assert!(std::str::from_utf8(&content).unwrap().contains("日本語"));
    // Fixed values: a change in encoding (NFC/NFD, escaping, BOM) would change them.
    insta::assert_snapshot!(
        "non_ascii_content_sha256",
        Sha256Hash::of(&content).to_hex()
    );
    insta::assert_snapshot!("sample_manifest_sha256", m.sha256().unwrap().to_hex());
}

#[tokio::test]
async fn a_good_run_verifies_and_reports_every_artefact() {
    let (_d, store, m) = sample_store().await;
    let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.manifest_sha256, Some(m.sha256().unwrap()));
    for a in m.artefacts() {
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.name == format!("artefact {}", a.name) && c.passed)
        );
    }
}

#[tokio::test]
async fn one_flipped_byte_in_any_artefact_fails_and_names_it() {
    let (_d, store, m) = sample_store().await;
    for a in m.artefacts() {
        let path = store.root().join(&a.path);
        let original = std::fs::read(&path).unwrap();
        for pos in [0, original.len() / 2, original.len() - 1] {
            let mut flipped = original.clone();
            flipped[pos] ^= 0x01;
            std::fs::write(&path, &flipped).unwrap();
            let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
            assert!(!report.passed());
            let failed: Vec<_> = report.failures().map(|c| c.name.clone()).collect();
            assert_eq!(
                failed,
                vec![format!("artefact {}", a.name)],
                "byte {pos} of {}",
                a.path
            );
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(verify_run(&store, SAMPLE.0, SAMPLE.1, None).await.passed());
}

#[tokio::test]
async fn missing_artefact_and_edited_manifest_fail_by_name() {
    let (_d, store, m) = sample_store().await;
    let victim = &m.outputs[1];
    let path = store.root().join(&victim.path);
    let saved = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
    let fail = report.failures().next().unwrap();
    assert_eq!(fail.name, format!("artefact {}", victim.name));
    assert!(fail.detail.contains("missing"), "{}", fail.detail);
    std::fs::write(&path, saved).unwrap();

    // Re-pointing the manifest at a different decision changes its hash: latest.json catches it.
    let key = ReferendumLayout::new(SAMPLE.0, SAMPLE.1)
        .run(1)
        .key(&Artefact::Manifest);
    let mpath = store.root().join(key.as_str());
    let text = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace("\"aye\"", "\"nay\"");
    std::fs::write(&mpath, text).unwrap();
    let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
    assert_eq!(report.failures().next().unwrap().name, "manifest hash");
}

#[tokio::test]
async fn reruns_form_a_hash_chain() {
    let (_d, store, m1) = sample_store().await;
    let h1 = m1.sha256().unwrap();
    let m2 = write_sample_run(&store, 2, Some(h1)).await;
    let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.run, Some(2));
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "previous manifest" && c.passed)
    );
    // Run 1 is still there, untouched, and still verifies on its own.
    assert!(
        verify_run(&store, SAMPLE.0, SAMPLE.1, Some(1))
            .await
            .passed()
    );
    // A manifest listing another run's artefacts is invalid.
    let mut forged = m2.clone();
    forged.run = 3;
    forged.previous = Some(m2.sha256().unwrap());
    let err = cybergov::manifest::publish::publish(&store, &forged)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("outside this run's folder"),
        "{err}"
    );
    // A manifest that claims a wrong predecessor is refused before anything is written.
    let mut forged = m2.clone();
    forged.previous = Some(Sha256Hash::of(b"not run 1"));
    let err = cybergov::manifest::publish::publish(&store, &forged)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::BrokenChain {
                run: 2,
                prev: Some(1),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn publish_refuses_a_manifest_whose_artefacts_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let (_d, _s, m) = sample_store().await; // artefacts live in another store
    let err = cybergov::manifest::publish::publish(&store, &m)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("raw_subsquare.json"), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(
        store.list("").await.unwrap().is_empty(),
        "nothing half-published"
    );
}

#[tokio::test]
async fn schema_accepts_what_the_code_writes_and_rejects_a_missing_network() {
    let (_d, _s, m) = sample_store().await;
    let v = schema();
    let value: serde_json::Value =
        serde_json::from_slice(&m.to_canonical_bytes().unwrap()).unwrap();
    assert!(
        v.is_valid(&value),
        "{:?}",
        v.iter_errors(&value)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut missing = value.clone();
    missing.as_object_mut().unwrap().remove("network");
    let errors: Vec<String> = v.iter_errors(&missing).map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("network")), "{errors:?}");
    let mut bad_hash = value;
    bad_hash["inputs"][0]["sha256"] = "ABC".into();
    assert!(!v.is_valid(&bad_hash));
}

/// Every manifest in `manifests/examples/` validates against the schema, and the example tree
/// verifies as a store: the examples double as verifier test vectors.
#[tokio::test]
async fn examples_validate_and_verify() {
    let v = schema();
    let root = repo("manifests/examples");
    let store = FsStore::new(&root).unwrap();
    let keys = store.list("proposals/").await.unwrap();
    let manifests: Vec<&ObjectKey> = keys
        .iter()
        .filter(|k| k.as_str().ends_with("/manifest.json"))
        .collect();
    assert!(manifests.len() >= 2, "examples missing: {keys:?}");
    for k in &manifests {
        let bytes = store.get(k).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v.is_valid(&value), "{k} fails the schema");
        Manifest::from_canonical_bytes(&bytes).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    let report = verify_run(&store, SAMPLE.0, SAMPLE.1, None).await;
    assert!(report.passed(), "{report}");
}

/// The committed examples are exactly what the sample writer produces (regenerate with
/// `UPDATE_EXAMPLES=1 cargo test --test manifest examples_are_current`).
#[tokio::test]
async fn examples_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = FsStore::new(dir.path()).unwrap();
    let m1 = write_sample_run(&fresh, 1, None).await;
    write_sample_run(&fresh, 2, Some(m1.sha256().unwrap())).await;
    let root = repo("manifests/examples");
    if std::env::var_os("UPDATE_EXAMPLES").is_some() {
        let _ = std::fs::remove_dir_all(root.join("proposals"));
        let committed = FsStore::new(&root).unwrap();
        for k in fresh.list("").await.unwrap() {
            committed
                .put_pointer(&k, &fresh.get(&k).await.unwrap())
                .await
                .unwrap();
        }
    }
    let committed = FsStore::new(&root).unwrap();
    let want = fresh.list("").await.unwrap();
    assert_eq!(
        committed.list("proposals/").await.unwrap(),
        want,
        "run with UPDATE_EXAMPLES=1"
    );
    for k in want {
        assert_eq!(
            committed.get(&k).await.unwrap(),
            fresh.get(&k).await.unwrap(),
            "{k} is stale"
        );
    }
}
