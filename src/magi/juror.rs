//! One juror's deliberation: a rationale, then a vote chosen by scoring the options.
//!
//! The vote is not parsed from free text. After the rationale, the model is asked for its vote
//! and the log-probability of each option (`AYE`, `NAY`, `ABSTAIN`) as its reply is computed;
//! the most probable option is the vote. So a rambling or malformed reply cannot produce an
//! unintended vote, and the scores show how sure the juror was.

use super::model::{ChatMessage, GenerateParams, LanguageModel, ModelError, OptionScore};
use super::prompts::{Prompts, quote};
use crate::hash::Sha256Hash;
use crate::manifest::Decoding;

// The record a juror writes, its constants and how its vote follows from its scores are the
// record's (src/records/juror.rs): the verifiers read them without this layer.
pub use crate::records::juror::{
    JUROR_SCHEMA, JurorRecord, OPTIONS, PROMPT_LAYOUT, PROMPT_LAYOUT_V1, SCORING, choose,
};

/// The conversation that asks `juror` for a rationale on `content` ([`PROMPT_LAYOUT`]): the
/// shared system text, then a user turn with the quoted proposal, the juror's persona and the
/// request. Everything before the persona is the same for every juror.
pub fn rationale_messages(prompts: &Prompts, juror: &str, content: &str) -> Vec<ChatMessage> {
    let persona = prompts.personas.get(juror).map_or("", String::as_str);
    vec![
        ChatMessage::system(prompts.system.trim_end()),
        ChatMessage::user(format!(
            "{}\n\n{}\n\n{}",
            quote(content),
            persona.trim_end(),
            prompts.rationale.trim_end()
        )),
    ]
}

/// Sets each score's probability: `exp(logprob)` normalised over `scores` (max-shifted, so
/// long options do not underflow to zero together).
pub fn normalise(scores: &mut [OptionScore]) {
    let max = scores
        .iter()
        .map(|s| s.logprob)
        .fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return;
    }
    let total: f64 = scores.iter().map(|s| (s.logprob - max).exp()).sum();
    for s in scores {
        s.probability = Some((s.logprob - max).exp() / total);
    }
}

/// Runs one juror on `content`.
pub async fn deliberate(
    juror: &str,
    model: &dyn LanguageModel,
    prompts: &Prompts,
    content: &str,
    decoding: &Decoding,
) -> Result<JurorRecord, ModelError> {
    let mut records = deliberate_together(&[juror], model, prompts, content, decoding).await?;
    Ok(records.pop().expect("one juror, one record"))
}

/// Runs `jurors`, who share `model`, on `content` together: their rationales are generated as
/// one batch and their votes scored as one (a backend that cannot batch runs them one after
/// the other). Each record is byte for byte the one [`deliberate`] makes for that juror alone,
/// which is what lets `verify --reexecute` check a batched run juror by juror.
pub async fn deliberate_together(
    jurors: &[&str],
    model: &dyn LanguageModel,
    prompts: &Prompts,
    content: &str,
    decoding: &Decoding,
) -> Result<Vec<JurorRecord>, ModelError> {
    let mut conversations: Vec<Vec<ChatMessage>> = jurors
        .iter()
        .map(|juror| rationale_messages(prompts, juror, content))
        .collect();
    let prompt_hashes: Vec<Sha256Hash> = conversations
        .iter()
        .map(|messages| {
            Sha256Hash::of(
                &crate::manifest::canonical::to_vec(messages).expect("messages are plain strings"),
            )
        })
        .collect();
    let params = GenerateParams {
        max_new_tokens: decoding.max_new_tokens,
        repeat_penalty: decoding.repeat_penalty.parse().map_err(|_| {
            ModelError::Inference(format!(
                "repeat_penalty {:?} is not a number",
                decoding.repeat_penalty
            ))
        })?,
        repeat_last_n: decoding.repeat_last_n as usize,
    };
    let generations = model.generate_batch(&conversations, &params).await?;
    for (messages, generation) in conversations.iter_mut().zip(&generations) {
        messages.push(ChatMessage::assistant(generation.text.trim()));
        messages.push(ChatMessage::user(prompts.vote.trim_end()));
    }
    let labels: Vec<&str> = OPTIONS.iter().map(|(l, _)| *l).collect();
    let scorings = model.score_batch(&conversations, &labels).await?;
    let records = jurors
        .iter()
        .zip(prompt_hashes)
        .zip(generations.into_iter().zip(scorings))
        .map(|((juror, prompt_sha256), (generation, scoring))| {
            let mut scores = scoring.scores;
            normalise(&mut scores);
            let vote = choose(&scores);
            let raw_responses: Vec<serde_json::Value> = generation
                .raw_response
                .clone()
                .into_iter()
                .chain(scoring.raw_response)
                .collect();
            JurorRecord {
                schema: JUROR_SCHEMA.into(),
                juror: (*juror).into(),
                model: model.info().clone(),
                decoding: decoding.clone(),
                prompts: prompts.hashes(juror),
                prompt_layout: PROMPT_LAYOUT.into(),
                content_sha256: Sha256Hash::of(content.as_bytes()),
                prompt_sha256,
                rationale: generation.text.trim().to_owned(),
                rationale_finish: generation.finish,
                vote,
                scoring: SCORING.into(),
                scores,
                prompt_tokens: generation.prompt_tokens,
                completion_tokens: generation.completion_tokens,
                raw_responses,
            }
        })
        .collect();
    Ok(records)
}
