//! When augmentation forces an ABSTAIN, and why (recorded in augment.json).
//!
//! The jury must judge what will be enacted. When the proposal's substance lives only behind
//! links that can change after the vote (a Google Doc, a web page), the jurors cannot read it and
//! nobody could later check what they voted on, so cybergov abstains and says so.

use crate::records::augment::{AbstainDecision, FitRecord, Link};
use serde::{Deserialize, Serialize};

/// Rule id: the body's own text is short and it points at mutable external documents.
pub const RULE_ONLY_EXTERNAL_LINKS: &str = "only-external-links/v1";
/// Rule id: nothing is left of the body once images, scripts and markup are removed.
pub const RULE_EMPTY_BODY: &str = "empty-body/v1";
/// What content.md says in place of an empty body: the jurors are still asked, and the record
/// shows what they saw.
pub const EMPTY_BODY_TEXT: &str = "(The proposal has no text of its own: nothing is left once images, scripts and markup are removed.)";

/// The decision for a proposal with no text: there is nothing to judge, and a vote on it would
/// be a vote on a title.
pub fn empty_body() -> AbstainDecision {
    AbstainDecision {
        rule: RULE_EMPTY_BODY.into(),
        reason: "the proposal's body is empty once images, scripts and markup are removed: there is nothing for the jurors to judge".into(),
    }
}

/// Rule id: the body had to be cut to fit the juror context.
pub const RULE_TRUNCATED: &str = "truncated/v1";

/// The abstain policy, as configuration data (`[augment.abstain]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbstainPolicy {
    /// Abstain when the body's own text is shorter than `min_own_text_chars` and it links to at
    /// least one mutable external document (anything but IPFS).
    pub only_external_links: bool,
    /// Characters of the proposer's own text (links and markup removed) below which the
    /// substance is taken to live behind the links.
    pub min_own_text_chars: usize,
    /// Abstain whenever the body had to be cut to fit the juror context.
    pub truncated: bool,
}

impl AbstainPolicy {
    /// Applies the policy; `None` lets the jurors decide.
    pub fn decide(
        &self,
        own_text_chars: usize,
        links: &[Link],
        fit: &FitRecord,
    ) -> Option<AbstainDecision> {
        let mutable: Vec<&Link> = links.iter().filter(|l| l.kind.mutable()).collect();
        if self.only_external_links
            && !mutable.is_empty()
            && own_text_chars < self.min_own_text_chars
        {
            return Some(AbstainDecision {
                rule: RULE_ONLY_EXTERNAL_LINKS.into(),
                reason: format!(
                    "the proposal has only {own_text_chars} characters of its own text (threshold {}) and points at {} mutable external link(s); its substance lives behind documents that can change after the vote",
                    self.min_own_text_chars,
                    mutable.len()
                ),
            });
        }
        if self.truncated && fit.truncated {
            return Some(AbstainDecision {
                rule: RULE_TRUNCATED.into(),
                reason: format!(
                    "the proposal ({} tokens) had to be cut to {} tokens to fit the juror context",
                    fit.original_tokens, fit.kept_tokens
                ),
            });
        }
        None
    }
}
