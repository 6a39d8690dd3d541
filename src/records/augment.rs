//! `augment.json`: what augmentation did to a proposal, as one typed record. The augment stage
//! writes it; the infer stage reads its forced ABSTAIN from it; nothing parses it another way.

use super::model::ModelInfo;
use crate::hash::Sha256Hash;
use crate::network::{Network, format_units};
use crate::proposal::{ContentType, Spend};
use serde::{Deserialize, Serialize};

/// The schema id of augment.json.
pub const SCHEMA: &str = "cybergov.augment/v1";

/// Length facts about the cleaned body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LengthFlag {
    /// Characters of the cleaned body.
    pub chars: usize,
    /// Tokens of the cleaned body (see `fit.token_count` for how they were counted).
    pub tokens: usize,
    /// Whether it is over `long_proposal_chars`.
    pub long: bool,
    /// The threshold used.
    pub long_threshold_chars: usize,
}

/// The questions section of augment.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionsRecord {
    /// SHA-256 of `prompts/augment.md` as used.
    pub prompt_sha256: Sha256Hash,
    /// The questions.
    pub questions: Vec<String>,
    /// The answers, once a model has given them.
    pub answers: Option<Answers>,
}

/// augment.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentRecord {
    /// [`SCHEMA`].
    pub schema: String,
    /// Network.
    pub network: Network,
    /// Referendum index.
    pub referendum: u32,
    /// Track id (`null` when Subsquare's could not be read: see `unread_fields`).
    pub track: Option<u16>,
    /// State name at scrape time (`null` when it could not be read).
    pub state: Option<String>,
    /// Proposer address (`null` when it could not be read).
    pub proposer: Option<String>,
    /// Fields of Subsquare's response the jurors do not need that could not be read, each with
    /// why; they were left out rather than failing the referendum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread_fields: Vec<String>,
    /// Block the referendum was submitted at.
    pub proposed_height: u64,
    /// Format of the original body.
    pub content_type: ContentType,
    /// What cleaning removed.
    pub clean: CleanReport,
    /// Length of the cleaned body.
    pub length: LengthFlag,
    /// Requested spends.
    pub spends: Vec<SpendSummary>,
    /// External links, with their kinds.
    pub links: Vec<Link>,
    /// Characters of the proposer's own text, links and markup removed.
    pub own_text_chars: usize,
    /// What fitting cut.
    pub fit: FitRecord,
    /// A forced ABSTAIN, if the policy fired.
    pub abstain: Option<AbstainDecision>,
    /// Neutral questions and answers.
    pub questions: QuestionsRecord,
}

/// What cleaning removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Images removed (their alt text, if any, is kept as `[image: …]`).
    pub images: usize,
    /// Base64 data URIs removed.
    pub data_uris: usize,
    /// Scripts, styles, frames and embedded objects removed.
    pub scripts: usize,
    /// Whether the body was HTML converted to markdown.
    pub converted_from_html: bool,
}

/// One run of removed text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// The section the cut starts in.
    pub section: String,
    /// Paragraphs removed (a partly kept paragraph counts as one).
    pub paragraphs: usize,
    /// Characters removed.
    pub chars: usize,
    /// Tokens removed.
    pub tokens: usize,
    /// Whether a paragraph was cut in the middle (its start is kept).
    pub partial: bool,
}

/// What fitting did, for augment.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitRecord {
    /// Token budget of the body.
    pub budget_tokens: usize,
    /// Tokens of the cleaned body.
    pub original_tokens: usize,
    /// Tokens of the kept text (markers excluded).
    pub kept_tokens: usize,
    /// How tokens were counted: `model:<id>` or `estimate:utf8_bytes/3`.
    pub token_count: String,
    /// Whether anything was cut.
    pub truncated: bool,
    /// Every cut, in document order.
    pub cuts: Vec<Cut>,
}

/// Where a link points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Google Docs / Drive / Sheets / Slides: editable after the vote.
    GoogleDocs,
    /// IPFS: content-addressed, immutable.
    Ipfs,
    /// Governance forums and discussion sites (Polkadot forum, Polkassembly, Subsquare).
    Forum,
    /// Anything else.
    Other,
}

impl LinkKind {
    /// Whether the target can change after the vote.
    pub fn mutable(self) -> bool {
        self != LinkKind::Ipfs
    }
}

/// One external link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The URL as written.
    pub url: String,
    /// Its kind.
    pub kind: LinkKind,
}

/// A forced ABSTAIN and its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbstainDecision {
    /// Which rule fired.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
}

/// One answered question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The question.
    pub question: String,
    /// The model's answer, trimmed.
    pub answer: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Whether the answer hit the token limit.
    pub truncated: bool,
}

/// The answers and who gave them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answers {
    /// The model that answered.
    pub model: ModelInfo,
    /// One answer per question, in order.
    pub items: Vec<Answer>,
}

/// One spend as augmentation reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendSummary {
    /// Asset symbol.
    pub symbol: String,
    /// Amount in the smallest unit, as decimal text (it can exceed 2^53).
    pub amount_raw: String,
    /// Decimals used, if known.
    pub decimals: Option<u8>,
    /// Human amount, e.g. `48000 USDC`, or `123 (raw units, decimals unknown) XYZ`.
    pub formatted: String,
    /// Beneficiary, if given.
    pub beneficiary: Option<String>,
    /// `allSpends` or `onchainData`.
    pub source: String,
}

/// Summarizes each spend.
pub fn summarize(spends: &[Spend]) -> Vec<SpendSummary> {
    spends
        .iter()
        .map(|s| SpendSummary {
            symbol: s.symbol.clone(),
            amount_raw: s.amount.to_string(),
            decimals: s.decimals,
            formatted: match s.decimals {
                Some(d) => format!("{} {}", format_units(s.amount, d), s.symbol),
                None => format!("{} (raw units, decimals unknown) {}", s.amount, s.symbol),
            },
            beneficiary: s.beneficiary.clone(),
            source: s.source.clone(),
        })
        .collect()
}
