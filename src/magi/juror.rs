//! One juror's deliberation: a rationale, then a vote chosen by scoring the options.
//!
//! The vote is not parsed from free text. After the rationale, the model is asked for its vote
//! and the log-probability of each option (`AYE`, `NAY`, `ABSTAIN`) as its reply is computed;
//! the most probable option is the vote. So a rambling or malformed reply cannot produce an
//! unintended vote, and the scores show how sure the juror was.

use super::model::{
    ChatMessage, FinishReason, GenerateParams, LanguageModel, ModelError, ModelInfo, OptionScore,
};
use super::prompts::{PromptHashes, Prompts, quote};
use crate::hash::Sha256Hash;
use crate::manifest::{Decoding, VoteKind};
use serde::{Deserialize, Serialize};

/// The `schema` of juror records.
pub const JUROR_SCHEMA: &str = "cybergov.juror/v1";
/// How the vote is chosen (recorded so a future method gets a new id): the sum of every
/// option token's log-probability; the best sum wins. Each score also records its probability
/// normalised over the three options.
pub const SCORING: &str = "option-logprob-sum-after-rationale-v1";
/// How the conversation is laid out (recorded so a future layout gets a new id): the shared
/// system text and the quoted proposal first, the juror's persona after them, so that jurors
/// on one model share the longest possible prefix (computed once, see
/// [`crate::magi::candle::transformer`]).
pub const PROMPT_LAYOUT: &str = "shared-proposal-then-persona-v2";
/// The layout of records that do not name one: the persona in the system turn.
pub const PROMPT_LAYOUT_V1: &str = "persona-in-system-v1";
/// The options, as scored.
pub const OPTIONS: [(&str, VoteKind); 3] = [
    ("AYE", VoteKind::Aye),
    ("NAY", VoteKind::Nay),
    ("ABSTAIN", VoteKind::Abstain),
];

/// `jurors/{name}.json`. Contains no timing and nothing else that varies between identical
/// runs: with a deterministic backend, the same inputs give the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JurorRecord {
    /// [`JUROR_SCHEMA`].
    pub schema: String,
    /// The juror's name.
    pub juror: String,
    /// The model that deliberated.
    pub model: ModelInfo,
    /// Decoding parameters.
    pub decoding: Decoding,
    /// Hashes of the prompt files used.
    pub prompts: PromptHashes,
    /// [`PROMPT_LAYOUT`].
    #[serde(default = "layout_v1")]
    pub prompt_layout: String,
    /// SHA-256 of the content (content.md) deliberated on.
    pub content_sha256: Sha256Hash,
    /// SHA-256 of the exact conversation given to the model for the rationale (canonical JSON
    /// of the messages), so a verifier can tell a prompt change from a model change.
    pub prompt_sha256: Sha256Hash,
    /// The rationale, as generated (trimmed).
    pub rationale: String,
    /// Why the rationale ended.
    pub rationale_finish: FinishReason,
    /// The vote: the best-scored option.
    pub vote: VoteKind,
    /// [`SCORING`].
    pub scoring: String,
    /// Every option's score.
    pub scores: Vec<OptionScore>,
    /// Tokens in the rationale prompt.
    pub prompt_tokens: u32,
    /// Tokens in the rationale.
    pub completion_tokens: u32,
    /// Raw provider responses (remote backends only; empty for local ones).
    pub raw_responses: Vec<serde_json::Value>,
}

fn layout_v1() -> String {
    PROMPT_LAYOUT_V1.into()
}

impl JurorRecord {
    /// The stored bytes: pretty JSON with a trailing newline (stable for identical records).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("juror records always serialize");
        v.push(b'\n');
        v
    }
}

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
    let mut messages = rationale_messages(prompts, juror, content);
    let prompt_sha256 = Sha256Hash::of(
        &crate::manifest::canonical::to_vec(&messages).expect("messages are plain strings"),
    );
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
    let generation = model.generate(&messages, &params).await?;
    let rationale = generation.text.trim().to_owned();
    messages.push(ChatMessage::assistant(rationale.clone()));
    messages.push(ChatMessage::user(prompts.vote.trim_end()));
    let labels: Vec<&str> = OPTIONS.iter().map(|(l, _)| *l).collect();
    let scoring = model.score_options(&messages, &labels).await?;
    let mut scores = scoring.scores;
    normalise(&mut scores);
    let vote = choose(&scores);
    let raw_responses: Vec<serde_json::Value> = generation
        .raw_response
        .clone()
        .into_iter()
        .chain(scoring.raw_response)
        .collect();
    Ok(JurorRecord {
        schema: JUROR_SCHEMA.into(),
        juror: juror.into(),
        model: model.info().clone(),
        decoding: decoding.clone(),
        prompts: prompts.hashes(juror),
        prompt_layout: PROMPT_LAYOUT.into(),
        content_sha256: Sha256Hash::of(content.as_bytes()),
        prompt_sha256,
        rationale,
        rationale_finish: generation.finish,
        vote,
        scoring: SCORING.into(),
        scores,
        prompt_tokens: generation.prompt_tokens,
        completion_tokens: generation.completion_tokens,
        raw_responses,
    })
}

/// The best-scored option; an exact tie (or no score) is ABSTAIN. The verifiers recompute each
/// juror's vote with it from the scores the juror file records.
pub fn choose(scores: &[OptionScore]) -> VoteKind {
    let mut best: Option<(&OptionScore, VoteKind)> = None;
    let mut tie = false;
    for s in scores {
        let Some((_, kind)) = OPTIONS.iter().find(|(l, _)| *l == s.option) else {
            continue;
        };
        match best {
            Some((b, _)) if s.logprob < b.logprob => {}
            Some((b, _)) if s.logprob == b.logprob => tie = true,
            _ => {
                best = Some((s, *kind));
                tie = false;
            }
        }
    }
    match best {
        Some((_, kind)) if !tie => kind,
        _ => VoteKind::Abstain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(option: &str, logprob: f64) -> OptionScore {
        OptionScore {
            option: option.into(),
            logprob,
            tokens: 1,
            probability: None,
        }
    }

    #[test]
    fn highest_score_wins_and_ties_abstain() {
        assert_eq!(
            choose(&[s("AYE", -1.0), s("NAY", -0.5), s("ABSTAIN", -3.0)]),
            VoteKind::Nay
        );
        assert_eq!(
            choose(&[s("AYE", -1.0), s("NAY", -1.0), s("ABSTAIN", -3.0)]),
            VoteKind::Abstain
        );
        assert_eq!(choose(&[]), VoteKind::Abstain);
    }
}
