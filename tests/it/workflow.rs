//! `.github/workflows/inference.yml` declares exactly the inputs the orchestrator sends, names
//! its runs with the correlation id (how the orchestrator finds them), serialises runs of the
//! same referendum and run, and prints the manifest hash line the runner checks.

use cybergov::github::{DISPATCH_INPUTS, DispatchInputs};
use cybergov::network::Network;
use serde_yaml::Value;

fn workflow() -> (String, Value) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/inference.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let yaml = serde_yaml::from_str(&text).unwrap();
    (text, yaml)
}

#[test]
fn declared_inputs_are_the_ones_the_orchestrator_sends() {
    let (_, w) = workflow();
    let inputs = w["on"]["workflow_dispatch"]["inputs"]
        .as_mapping()
        .expect("workflow_dispatch inputs");
    let mut declared: Vec<&str> = inputs.keys().map(|k| k.as_str().unwrap()).collect();
    declared.sort();
    let sent =
        DispatchInputs::new(cybergov::records::run_id::RunId::new(Network::Kusama, 7, 2)).to_json();
    let mut sent: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    sent.sort();
    assert_eq!(declared, sent);
    let mut names = DISPATCH_INPUTS.to_vec();
    names.sort();
    assert_eq!(declared, names);
    for (k, v) in inputs {
        assert_eq!(
            v["required"],
            Value::Bool(true),
            "input {k:?} must be required"
        );
    }
    // Every network cybergov knows can be dispatched.
    let options: Vec<&str> = w["on"]["workflow_dispatch"]["inputs"]["network"]["options"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(options, Network::ALL.map(|n| n.as_str()));
}

#[test]
fn runs_are_named_findable_and_serialised() {
    let (_, w) = workflow();
    let run_name = w["run-name"].as_str().unwrap();
    for input in DISPATCH_INPUTS {
        assert!(run_name.contains(&format!("inputs.{input}")), "{run_name}");
    }
    let group = w["concurrency"]["group"].as_str().unwrap();
    for input in ["network", "referendum", "run"] {
        assert!(group.contains(&format!("inputs.{input}")), "{group}");
    }
    assert_eq!(w["concurrency"]["cancel-in-progress"], Value::Bool(false));
}

#[test]
fn the_workflow_fetches_checked_models_infers_and_prints_the_anchor_line() {
    let (text, w) = workflow();
    let steps = w["jobs"]["infer"]["steps"].as_sequence().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    let pos = |needle: &str| {
        runs.iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no step runs {needle:?}"))
    };
    assert!(pos("cargo build --release --locked") < pos("cybergov models fetch"));
    assert!(pos("cybergov models fetch") < pos("cybergov infer"));
    assert!(pos("cybergov infer") < pos("grep"));
    assert!(text.contains(cybergov::github::log::MANIFEST_LINE_MARKER));
    assert!(text.contains("rust-cache"), "the build is cached");
    // Secrets reach the job only through its environment.
    assert!(!text.contains("CYBERGOV_GITHUB_TOKEN"));
}

/// Every third-party action in `.github/workflows/` is pinned by commit SHA with its tag in a
/// comment (a tag can be moved to other code; a commit cannot), and the store's credentials
/// reach only the step that needs them, never the whole job.
#[test]
fn actions_are_pinned_and_credentials_are_scoped_to_one_step() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(used) = line.trim().trim_start_matches("- ").strip_prefix("uses:") else {
                continue;
            };
            let (action, comment) = used.trim().split_once(" #").unwrap_or((used.trim(), ""));
            let (_, rev) = action
                .split_once('@')
                .unwrap_or_else(|| panic!("{}: {action} has no @ref", path.display()));
            assert!(
                rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: {action} is not pinned by commit SHA",
                path.display()
            );
            assert!(
                !comment.trim().is_empty(),
                "{}: {action} does not say which tag it is",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} actions checked");
    let (text, w) = workflow();
    assert!(w["jobs"]["infer"]["env"]["CYBERGOV_S3_SECRET_ACCESS_KEY"].is_null());
    let holders: Vec<&str> = w["jobs"]["infer"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| !s["env"]["CYBERGOV_S3_SECRET_ACCESS_KEY"].is_null())
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(holders, ["Infer"], "{text}");
}
