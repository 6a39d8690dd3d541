//! `jurors/{name}.json`: what one juror read, said and voted, and how its vote follows from its
//! scores. The jury writes it; the infer stage, the comment stage, re-execution and the
//! verifiers read it, through this one type.

use crate::hash::Sha256Hash;
use crate::manifest::{Decoding, VoteKind};
use crate::records::model::ModelInfo;
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
        super::pretty_json(self)
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// The log-probability a model gives one option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionScore {
    /// The option's label as scored, e.g. `AYE`.
    pub option: String,
    /// Natural-log probability of the option's tokens as the assistant's next words.
    pub logprob: f64,
    /// How many tokens the option took.
    pub tokens: u32,
    /// `exp(logprob)` normalised over the options scored together (set by the juror; absent in
    /// records made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// Hashes of the prompt files a juror used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptHashes {
    /// `system.md`.
    pub system: Sha256Hash,
    /// The juror's persona file.
    pub persona: Sha256Hash,
    /// `rationale.md`.
    pub rationale: Sha256Hash,
    /// `vote.md`.
    pub vote: Sha256Hash,
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
