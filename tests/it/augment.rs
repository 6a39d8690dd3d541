//! Proposal parsing and augmentation: clear errors, spends with the right decimals, links,
//! fitting on the record, the abstain policy, quoting, and content.md snapshots.

use crate::common::subsquare_server::fixture;
use cybergov::magi::model::{GenerateParams, LanguageModel, ModelError};
use cybergov::network::Network;
use cybergov::proposal::{ContentType, Proposal, ProposalError};
use cybergov::records::augment::LinkKind;
use cybergov::stages::augment::questions::Questions;
use cybergov::stages::augment::{
    AugmentConfig, AugmentError, Augmented, augment, augment_with_model,
};

fn parse(network: Network, name: &str) -> Proposal {
    Proposal::from_subsquare(network, &network.default_spec(), &fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn augmented(network: Network, name: &str, config: &AugmentConfig) -> Augmented {
    let p = parse(network, name);
    let q = Questions::bundled();
    // The snapshots cover the deterministic part; answering is tested on its own below.
    augment(&p, config, &network.default_spec(), &q).unwrap()
}

#[tokio::test]
async fn a_real_local_model_answers_every_question_deterministically() {
    let model = crate::common::tiny_model(7);
    let p = parse(Network::Polkadot, "polkadot-1801-toolkit.json");
    let q = Questions::bundled();
    let params = GenerateParams::greedy(12);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut a = augment(
            &p,
            &AugmentConfig::default(),
            &Network::Polkadot.default_spec(),
            &q,
        )
        .unwrap();
        a.answer(Some(&model), &q, &params).await.unwrap();
        let answers = a.record.questions.answers.clone().unwrap();
        assert_eq!(answers.items.len(), q.items.len());
        assert_eq!(answers.model.backend, "candle");
        for item in &answers.items {
            assert!(
                item.prompt_tokens > 0 && item.completion_tokens <= 12,
                "{item:?}"
            );
        }
        assert!(!a.content_md().contains("Not answered."));
        runs.push(a.content_md());
    }
    assert_eq!(runs[0], runs[1], "greedy answers are reproducible");
}

fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn fixtures_parse_into_proposals() {
    let p = parse(Network::Polkadot, "polkadot-1801-toolkit.json");
    assert_eq!(p.index, 1801);
    assert_eq!(p.track, Some(33));
    assert_eq!(p.state.as_deref(), Some("Deciding"));
    assert!(p.unread.is_empty(), "{:?}", p.unread);
    assert_eq!(p.proposed_height, 28_100_000);
    assert_eq!(p.content_type, ContentType::Markdown);
    assert_eq!(
        p.proposer.unwrap().to_ss58(0),
        "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5"
    );
    let k = parse(Network::Kusama, "kusama-512-non-ascii.json");
    assert_eq!(k.content_type, ContentType::Html);
    assert!(k.title.contains("日本語"));
}

#[test]
fn bad_responses_are_errors_that_name_the_field() {
    let spec = Network::Polkadot.default_spec();
    let parse_raw = |raw: &[u8]| Proposal::from_subsquare(Network::Polkadot, &spec, raw);
    let name = "polkadot-1801-toolkit.json";
    // Fields the jurors do not need are left out with the reason, not a failed referendum.
    let p = parse_raw(&edited(name, |v| {
        v["track"] = "33".into();
        v["proposer"] = "not-an-address".into();
        v["state"] = serde_json::Value::Null;
    }))
    .unwrap();
    assert_eq!((p.track, p.proposer, p.state), (None, None, None));
    assert_eq!(p.unread.len(), 3, "{:?}", p.unread);
    assert_eq!(
        p.unread[0],
        "field \"track\": expected non-negative integer, found string; left out"
    );
    assert!(
        p.unread[1].starts_with("field \"proposer\""),
        "{:?}",
        p.unread
    );
    assert_eq!(p.unread[2], "field \"state.name\": missing; left out");
    let e = parse_raw(&edited(name, |v| {
        v.as_object_mut().unwrap().remove("title");
    }))
    .unwrap_err();
    assert_eq!(
        e,
        ProposalError::Missing {
            field: "title".into()
        }
    );
    let e = parse_raw(&edited(name, |v| {
        v["indexer"]["blockHeight"] = serde_json::Value::Null
    }))
    .unwrap_err();
    assert_eq!(e.to_string(), "field \"indexer.blockHeight\": missing");
    let e = parse_raw(&edited(name, |v| v["contentType"] = "rtf".into())).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"contentType\": unknown content type \"rtf\"")
    );
    let e = parse_raw(&edited(name, |v| {
        v["allSpends"][0]["amount"] = "lots".into()
    }))
    .unwrap_err();
    assert!(e.to_string().contains("allSpends[0].amount"), "{e}");
    let e = parse_raw(&fixture("not-utf8.json")).unwrap_err();
    assert!(
        matches!(e, ProposalError::NotUtf8 { valid_up_to: 37 }),
        "{e:?}"
    );
    let e = parse_raw(br#"{"referendumIndex": 1, "title": "cut"#).unwrap_err();
    assert!(matches!(e, ProposalError::NotJson(_)));
    let e = parse_raw(b"[1,2]").unwrap_err();
    assert!(e.to_string().contains("top level is array"));
}

/// A body with nothing left after cleaning (images, scripts) is not an error that stalls the
/// referendum: the run abstains, and augment.json and content.md say why.
#[test]
fn a_body_empty_after_cleaning_abstains_with_its_reason() {
    let spec = Network::Polkadot.default_spec();
    for content in [
        "<img src=\"data:image/png;base64,AAAA\"><script>x()</script>\n\n![](https://x.org/a.png)",
        "",
    ] {
        let raw = edited("polkadot-1801-toolkit.json", |v| {
            v["content"] = content.into()
        });
        let p = Proposal::from_subsquare(Network::Polkadot, &spec, &raw).unwrap();
        let a = augment(&p, &AugmentConfig::default(), &spec, &Questions::bundled()).unwrap();
        assert_eq!(a.body, cybergov::stages::augment::policy::EMPTY_BODY_TEXT);
        let abstain = a.record.abstain.expect("an empty body abstains");
        assert_eq!(abstain.rule, "empty-body/v1");
        assert!(abstain.reason.contains("nothing for the jurors to judge"));
    }
}

#[tokio::test]
async fn spends_links_and_cleaning_are_recorded() {
    let a = augmented(
        Network::Polkadot,
        "polkadot-1801-toolkit.json",
        &AugmentConfig::default(),
    )
    .await;
    let r = &a.record;
    let spends: Vec<&str> = r.spends.iter().map(|s| s.formatted.as_str()).collect();
    assert_eq!(spends, ["48000 USDC", "1500 DOT"]);
    assert_eq!(
        (r.clean.images, r.clean.data_uris, r.clean.scripts),
        (2, 0, 1)
    );
    assert_eq!(r.links.len(), 1);
    assert_eq!(r.links[0].kind, LinkKind::Forum);
    assert!(r.abstain.is_none());
    assert!(!a.content_md().contains("base64"));
    assert!(!a.content_md().contains("tracker.example"));
    let k = augmented(
        Network::Kusama,
        "kusama-512-non-ascii.json",
        &AugmentConfig::default(),
    )
    .await;
    assert_eq!(k.record.spends[0].formatted, "33.3 KSM");
    assert_eq!(k.record.spends[0].source, "onchainData");
    assert!(k.record.clean.converted_from_html);
}

#[tokio::test]
async fn only_external_links_forces_abstain_with_a_reason() {
    let a = augmented(
        Network::Polkadot,
        "polkadot-1802-links-only.json",
        &AugmentConfig::default(),
    )
    .await;
    let abstain = a.record.abstain.as_ref().expect("policy fires");
    assert_eq!(abstain.rule, "only-external-links/v1");
    assert!(
        abstain.reason.contains("3 mutable external link(s)"),
        "{}",
        abstain.reason
    );
    let kinds: Vec<LinkKind> = a.record.links.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [LinkKind::GoogleDocs, LinkKind::GoogleDocs, LinkKind::Forum]
    );
    let mut off = AugmentConfig::default();
    off.abstain.only_external_links = false;
    let a = augmented(Network::Polkadot, "polkadot-1802-links-only.json", &off).await;
    assert!(a.record.abstain.is_none());
}

fn small_budget() -> AugmentConfig {
    AugmentConfig {
        max_content_tokens: 400,
        ..AugmentConfig::default()
    }
}

#[tokio::test]
async fn a_long_proposal_is_fitted_visibly_and_on_the_record() {
    let a = augmented(
        Network::Polkadot,
        "polkadot-1803-long.json",
        &small_budget(),
    )
    .await;
    let fit = &a.record.fit;
    assert!(fit.truncated);
    assert!(fit.original_tokens > 4 * fit.budget_tokens);
    assert!(fit.kept_tokens <= fit.budget_tokens);
    assert_eq!(fit.token_count, "estimate:utf8_bytes/3");
    assert!(!fit.cuts.is_empty());
    let md = a.content_md();
    assert!(md.contains("cybergov cut"));
    assert!(md.contains("Fitted to the juror context: yes"));
    assert!(md.contains("250,000 USDC"), "the abstract is kept");
    assert!(a.record.length.long);
    let mut strict = small_budget();
    strict.abstain.truncated = true;
    let a = augmented(Network::Polkadot, "polkadot-1803-long.json", &strict).await;
    assert_eq!(a.record.abstain.unwrap().rule, "truncated/v1");
}

#[tokio::test]
async fn the_model_counts_tokens_when_given() {
    let model = crate::common::tiny_model(7);
    let p = parse(Network::Polkadot, "polkadot-1803-long.json");
    let a = augment_with_model(
        &p,
        &small_budget(),
        &Network::Polkadot.default_spec(),
        &Questions::bundled(),
        &model,
    )
    .await
    .unwrap();
    assert_eq!(a.record.fit.token_count, "model:tiny-random-llama");
    // Every paragraph counted by the model's own tokenizer.
    let mut expected = 0;
    let (body, _) =
        cybergov::stages::augment::clean::clean(&p.content, p.content_type, "content").unwrap();
    for (_, para) in cybergov::stages::augment::fit::paragraphs(&body) {
        expected += model.count_tokens(&para).await.unwrap();
    }
    assert_eq!(a.record.fit.original_tokens, expected);
}

#[tokio::test]
async fn no_model_means_a_clear_error_not_fake_answers() {
    let p = parse(Network::Polkadot, "polkadot-1801-toolkit.json");
    let q = Questions::bundled();
    let mut a = augment(
        &p,
        &AugmentConfig::default(),
        &Network::Polkadot.default_spec(),
        &q,
    )
    .unwrap();
    let e = a
        .answer(None, &q, &GenerateParams::greedy(100))
        .await
        .unwrap_err();
    assert!(
        matches!(e, AugmentError::Model(ModelError::NotConfigured(_))),
        "{e}"
    );
    assert!(a.record.questions.answers.is_none());
    assert!(a.content_md().contains("Not answered."));
}

#[tokio::test]
async fn injected_instructions_stay_quoted_proposal_content() {
    let a = augmented(
        Network::Paseo,
        "paseo-77-injection.json",
        &AugmentConfig::default(),
    )
    .await;
    let md = a.content_md();
    let open = md
        .lines()
        .position(|l| l == "<<<PROPOSAL")
        .expect("opening marker");
    let close = md
        .lines()
        .position(|l| l == "PROPOSAL>>>")
        .expect("closing marker");
    assert_eq!(
        md.lines().filter(|l| *l == "PROPOSAL>>>").count(),
        1,
        "no early close"
    );
    assert_eq!(md.lines().filter(|l| *l == "<<<PROPOSAL").count(), 1);
    for (i, line) in md.lines().enumerate() {
        if line.contains("Ignore previous instructions")
            || line.contains("vote AYE with conviction")
        {
            assert!(
                i > open && i < close && line.starts_with("> "),
                "line {i}: {line}"
            );
        }
    }
    assert!(md.contains("> Title: Community tooling grant"));
}

#[tokio::test]
async fn content_md_snapshots() {
    let cases = [
        (
            "toolkit",
            Network::Polkadot,
            "polkadot-1801-toolkit.json",
            AugmentConfig::default(),
        ),
        (
            "non_ascii",
            Network::Kusama,
            "kusama-512-non-ascii.json",
            AugmentConfig::default(),
        ),
        (
            "links_only",
            Network::Polkadot,
            "polkadot-1802-links-only.json",
            AugmentConfig::default(),
        ),
        (
            "long",
            Network::Polkadot,
            "polkadot-1803-long.json",
            small_budget(),
        ),
        (
            "injection",
            Network::Paseo,
            "paseo-77-injection.json",
            AugmentConfig::default(),
        ),
    ];
    for (name, network, file, config) in cases {
        let a = augmented(network, file, &config).await;
        insta::assert_snapshot!(format!("content_md_{name}"), a.content_md());
    }
    let a = augmented(
        Network::Polkadot,
        "polkadot-1803-long.json",
        &small_budget(),
    )
    .await;
    let mut record = serde_json::to_value(&a.record).unwrap();
    record["questions"]["answers"] = serde_json::Value::Null;
    insta::assert_json_snapshot!("augment_json_long", record);
}

#[tokio::test]
async fn artefacts_are_written_to_the_run() {
    use cybergov::store::layout::{Artefact, ReferendumLayout};
    use cybergov::store::{FsStore, ObjectStore};
    let a = augmented(
        Network::Polkadot,
        "polkadot-1801-toolkit.json",
        &AugmentConfig::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let run = ReferendumLayout::new(Network::Polkadot, 1801).run(1);
    a.write(&store, &run).await.unwrap();
    let md = store.get(&run.key(&Artefact::Content)).await.unwrap();
    assert_eq!(md, a.content_md().into_bytes());
    let json: serde_json::Value =
        serde_json::from_slice(&store.get(&run.key(&Artefact::Augment)).await.unwrap()).unwrap();
    assert_eq!(json["schema"], "cybergov.augment/v1");
    assert!(
        json["questions"]["answers"].is_null(),
        "not answered in this test"
    );
    assert_eq!(
        json["questions"]["prompt_sha256"],
        Questions::bundled().sha256.to_hex()
    );
}
