//! The OpenAI-compatible juror backend against a local server speaking that API.

use crate::common::openai_server::{Mode, spawn_openai};
use cybergov::magi::juror::deliberate;
use cybergov::magi::model::{ChatMessage, FinishReason, GenerateParams, LanguageModel, ModelError};
use cybergov::magi::openai::{MISSING_LOGPROB, OpenAiModel, OpenAiSettings};
use cybergov::magi::prompts::Prompts;
use cybergov::manifest::{Decoding, VoteKind};
use cybergov::secret::Secret;
use std::time::Duration;

fn model(base_url: &str, timeout: Duration) -> OpenAiModel {
    OpenAiModel::new(
        OpenAiSettings {
            base_url: base_url.into(),
            model: "llama-3.1-8b-instruct".into(),
            timeout,
            context_length: 8192,
        },
        Some(&Secret::new("sk-test-not-logged")),
    )
    .unwrap()
}

#[tokio::test]
async fn a_juror_behind_the_api_deliberates_and_keeps_the_raw_responses() {
    let (url, state) = spawn_openai().await;
    let m = model(&url, Duration::from_secs(5));
    assert!(
        !m.info().deterministic,
        "a remote provider's determinism is not ours to promise"
    );
    let decoding = Decoding {
        strategy: "greedy".into(),
        max_new_tokens: 64,
        threads: 0,
        repeat_penalty: "1".into(),
        repeat_last_n: 0,
    };
    let r = deliberate(
        "balthazar",
        &m,
        &Prompts::embedded(),
        "# A proposal",
        &decoding,
    )
    .await
    .unwrap();
    assert_eq!(
        r.rationale,
        "The budget is not itemised; delivery cannot be checked. I lean NAY."
    );
    assert_eq!((r.prompt_tokens, r.completion_tokens), (321, 17));
    assert_eq!(r.vote, VoteKind::Nay);
    assert_eq!(r.model.backend, "openai");
    assert_eq!(
        r.raw_responses.len(),
        2,
        "generation and scoring responses are both kept"
    );
    assert_eq!(r.raw_responses[0]["id"], "chatcmpl-test");
    let score = |o: &str| r.scores.iter().find(|s| s.option == o).unwrap().logprob;
    assert_eq!(score("NAY"), -0.4);
    assert_eq!(
        score("AYE"),
        -1.6,
        "leading space ignored, token is a prefix of the option"
    );
    assert_eq!(score("ABSTAIN"), -2.9, "case-insensitive prefix");
    // What was asked: greedy, the system prompt, the quoted proposal.
    let reqs = state.requests.lock().unwrap().clone();
    assert_eq!(reqs[0]["temperature"], 0);
    assert_eq!(reqs[0]["max_tokens"], 64);
    assert_eq!(reqs[0]["messages"][0]["role"], "system");
    assert!(
        reqs[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .starts_with("<<<PROPOSAL\n")
    );
    assert_eq!(reqs[1]["logprobs"], true);
    assert_eq!(reqs[1]["messages"].as_array().unwrap().len(), 4);
    // The key went in a header, never into the stored record.
    let auth = state.authorization.lock().unwrap().clone();
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Bearer sk-test-not-logged")),
        "{auth:?}"
    );
    assert!(!format!("{m:?}").contains("sk-test"), "the client's Debug");
    assert!(!String::from_utf8(r.to_bytes()).unwrap().contains("sk-test"));
}

#[tokio::test]
async fn an_error_response_is_reported_with_status_and_message() {
    let (url, state) = spawn_openai().await;
    *state.mode.lock().unwrap() = Mode::Error(503, "model is loading");
    let e = model(&url, Duration::from_secs(5))
        .generate(&[ChatMessage::user("hi")], &GenerateParams::greedy(8))
        .await
        .unwrap_err();
    let ModelError::Remote { url: u, message } = e else {
        panic!("expected Remote")
    };
    assert!(u.ends_with("/v1/chat/completions"));
    assert!(
        message.contains("503") && message.contains("model is loading"),
        "{message}"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out_clearly() {
    let (url, state) = spawn_openai().await;
    *state.mode.lock().unwrap() = Mode::Slow(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let e = model(&url, Duration::from_millis(300))
        .generate(&[ChatMessage::user("hi")], &GenerateParams::greedy(8))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the client gave up at its timeout"
    );
}

#[tokio::test]
async fn options_the_provider_does_not_list_get_a_floor_score() {
    let (url, _state) = spawn_openai().await;
    let s = model(&url, Duration::from_secs(5))
        .score_options(&[ChatMessage::user("Vote.")], &["MAYBE", "NAY"])
        .await
        .unwrap();
    assert_eq!(s.scores[0].logprob, MISSING_LOGPROB);
    assert_eq!(s.scores[1].logprob, -0.4);
    let g = model(&url, Duration::from_secs(5))
        .generate(&[ChatMessage::user("hi")], &GenerateParams::greedy(8))
        .await
        .unwrap();
    assert_eq!(g.finish, FinishReason::Stop);
}
