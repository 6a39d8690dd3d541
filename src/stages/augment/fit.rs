//! Fitting a long proposal into the juror context: deliberately, visibly, and on the record.
//!
//! A model with a 4,096-token context must not read a silently cut proposal. The body is split
//! into paragraphs grouped by markdown section; when it is over budget, every heading is kept
//! first (so the juror sees the whole shape of the proposal), then each section's first paragraph,
//! then further paragraphs in document order while they fit. Each run of removed paragraphs
//! becomes one explicit marker in the text, and [`FitRecord::cuts`] lists every cut.

use crate::records::augment::{Cut, FitRecord};

/// Bytes of UTF-8 per token assumed when no model tokenizer is at hand. Three is conservative
/// for English (BPE tokenizers average about four) and close for non-Latin scripts.
pub const ESTIMATE_BYTES_PER_TOKEN: usize = 3;

/// Tokens reserved for each marker cybergov inserts.
const MARKER_TOKENS: usize = 40;

/// The token estimate used without a model: `ceil(UTF-8 bytes / 3)`.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(ESTIMATE_BYTES_PER_TOKEN)
}

/// One paragraph of the body, with the section it belongs to and its token count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The heading of the section it is in (`(preamble)` before the first heading).
    pub section: String,
    /// The paragraph's text.
    pub text: String,
    /// Its token count.
    pub tokens: usize,
}

/// Splits a cleaned markdown body into paragraphs tagged with their section.
pub fn paragraphs(body: &str) -> Vec<(String, String)> {
    let mut section = "(preamble)".to_owned();
    body.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.starts_with('#') {
                let heading = p.lines().next().unwrap_or(p);
                section = heading.trim_start_matches('#').trim().to_owned();
            }
            (section.clone(), p.to_owned())
        })
        .collect()
}

/// Chooses what to keep of `units` within `budget` tokens; returns the fitted text and record.
pub fn fit(units: &[Unit], budget: usize, token_count: &str) -> (String, FitRecord) {
    let original: usize = units.iter().map(|u| u.tokens).sum();
    let mut record = FitRecord {
        budget_tokens: budget,
        original_tokens: original,
        kept_tokens: original,
        token_count: token_count.to_owned(),
        truncated: false,
        cuts: Vec::new(),
    };
    if original <= budget {
        let text = units.iter().map(|u| u.text.as_str()).collect::<Vec<_>>();
        return (text.join("\n\n"), record);
    }
    let sections = units
        .windows(2)
        .filter(|w| w[0].section != w[1].section)
        .count()
        + 1;
    let limit = budget.saturating_sub((MARKER_TOKENS * (sections + 1)).min(budget / 4));
    // keep[i]: None dropped, Some(None) whole, Some(Some(chars)) its first `chars` characters.
    let mut keep: Vec<Option<Option<usize>>> = vec![None; units.len()];
    let mut used = 0;
    // 0: headings (cheap, and they show the proposal's whole shape); 1: the first paragraph of
    // each section; 2: everything else, in document order.
    let priority = |i: usize| {
        if i == 0 || units[i].text.starts_with('#') {
            0
        } else if units[i].section != units[i - 1].section || units[i - 1].text.starts_with('#') {
            1
        } else {
            2
        }
    };
    for pass in 0..3 {
        for (i, u) in units.iter().enumerate() {
            if keep[i].is_some() || priority(i) != pass {
                continue;
            }
            if used + u.tokens <= limit {
                keep[i] = Some(None);
                used += u.tokens;
            } else if limit.saturating_sub(used) >= MARKER_TOKENS {
                // Keep the start of a paragraph that does not fit whole, cut at a word boundary.
                let room = limit - used;
                let chars = u.text.chars().count();
                let take = chars * room / u.tokens.max(1);
                let prefix: String = u.text.chars().take(take).collect();
                let take = prefix
                    .rfind(char::is_whitespace)
                    .map_or(prefix.len(), |b| b)
                    .min(prefix.len());
                let prefix_chars = prefix[..take].chars().count();
                if prefix_chars > 0 {
                    keep[i] = Some(Some(prefix_chars));
                    used += room;
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut open: Option<Cut> = None;
    let mut kept_tokens = 0;
    let close = |open: &mut Option<Cut>, out: &mut Vec<String>, cuts: &mut Vec<Cut>| {
        if let Some(c) = open.take() {
            if !c.partial {
                out.push(format!(
                    "[… cybergov cut {} paragraph(s), {} characters, starting in section \"{}\", to fit the juror context; augment.json lists every cut …]",
                    c.paragraphs, c.chars, c.section
                ));
            }
            cuts.push(c);
        }
    };
    for (u, k) in units.iter().zip(&keep) {
        match k {
            Some(None) => {
                close(&mut open, &mut out, &mut record.cuts);
                out.push(u.text.clone());
                kept_tokens += u.tokens;
            }
            Some(Some(chars)) => {
                close(&mut open, &mut out, &mut record.cuts);
                let kept: String = u.text.chars().take(*chars).collect();
                let cut_chars = u.text.chars().count() - chars;
                let kept_part = u.tokens * chars / u.text.chars().count().max(1);
                kept_tokens += kept_part;
                out.push(format!(
                    "{} [… cybergov cut the rest of this paragraph, {cut_chars} characters, to fit the juror context …]",
                    kept.trim_end()
                ));
                record.cuts.push(Cut {
                    section: u.section.clone(),
                    paragraphs: 1,
                    chars: cut_chars,
                    tokens: u.tokens - kept_part,
                    partial: true,
                });
            }
            None => {
                let c = open.get_or_insert_with(|| Cut {
                    section: u.section.clone(),
                    paragraphs: 0,
                    chars: 0,
                    tokens: 0,
                    partial: false,
                });
                c.paragraphs += 1;
                c.chars += u.text.chars().count();
                c.tokens += u.tokens;
            }
        }
    }
    close(&mut open, &mut out, &mut record.cuts);
    record.truncated = true;
    record.kept_tokens = kept_tokens;
    (out.join("\n\n"), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(body: &str) -> Vec<Unit> {
        paragraphs(body)
            .into_iter()
            .map(|(section, text)| Unit {
                tokens: estimate_tokens(&text),
                section,
                text,
            })
            .collect()
    }

    #[test]
    fn short_bodies_are_untouched() {
        let body = "# A\n\none\n\n# B\n\ntwo";
        let (text, rec) = fit(&units(body), 1000, "estimate");
        assert_eq!(text, body);
        assert!(!rec.truncated && rec.cuts.is_empty());
    }

    #[test]
    fn every_section_keeps_its_head_and_cuts_are_recorded() {
        let long = "word ".repeat(300);
        let body = format!("# Intro\n\nhello\n\n{long}\n\n{long}\n\n# Budget\n\n10 DOT\n\n{long}");
        let u = units(&body);
        let (text, rec) = fit(&u, 600, "estimate");
        assert!(text.contains("# Intro") && text.contains("hello"));
        assert!(
            text.contains("# Budget") && text.contains("10 DOT"),
            "{text}"
        );
        assert!(text.contains("cybergov cut"));
        assert!(rec.truncated);
        let cut: usize = rec.cuts.iter().map(|c| c.chars).sum();
        let kept_chars = text.len();
        assert!(cut > 2000 && kept_chars < body.len());
        assert!(rec.kept_tokens <= 600);
    }

    #[test]
    fn one_huge_paragraph_is_cut_in_the_middle() {
        let body = "x ".repeat(5000);
        let (text, rec) = fit(&units(&body), 500, "estimate");
        assert!(text.ends_with("to fit the juror context …]"));
        assert_eq!(rec.cuts.len(), 1);
        assert!(rec.cuts[0].partial);
        assert!(estimate_tokens(&text) <= 500);
    }
}
