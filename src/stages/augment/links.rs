//! External links in a proposal, and what kind of place each points at.
//!
//! The kind matters to the abstain policy: a Google Doc can be edited after the vote, an IPFS
//! object cannot, and a forum thread is discussion rather than the proposal itself.

use crate::records::augment::{Link, LinkKind};
use regex::Regex;
use std::sync::LazyLock;

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:https?|ipfs)://[^\s<>()\[\]"'`]+"#).expect("valid regex")
});

/// Classifies `url`.
pub fn classify(url: &str) -> LinkKind {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("ipfs://") {
        return LinkKind::Ipfs;
    }
    let host = lower
        .split_once("://")
        .map_or(lower.as_str(), |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if is("docs.google.com") || is("drive.google.com") {
        LinkKind::GoogleDocs
    } else if lower.contains("/ipfs/")
        || host.contains(".ipfs.")
        || is("ipfs.io")
        || is("dweb.link")
    {
        LinkKind::Ipfs
    } else if host.starts_with("forum.")
        || is("polkassembly.io")
        || is("subsquare.io")
        || is("discord.com")
        || is("t.me")
    {
        LinkKind::Forum
    } else {
        LinkKind::Other
    }
}

/// Every distinct link in `text`, in order of first appearance.
pub fn find_links(text: &str) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    for m in URL.find_iter(text) {
        let url = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_']);
        if !out.iter().any(|l| l.url == url) {
            out.push(Link {
                url: url.to_owned(),
                kind: classify(url),
            });
        }
    }
    out
}

/// `text` without its links and markdown link punctuation: what the proposer wrote themselves.
pub fn own_text(text: &str) -> String {
    let without = URL.replace_all(text, "");
    without
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '(' | ')' | '#' | '*' | '_' | '>' | '-' | '|'))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let text = "See https://docs.google.com/document/d/abc/edit, the [forum](https://forum.polkadot.network/t/x/1) and ipfs://bafyabc plus https://ipfs.io/ipfs/bafy and https://example.org/a.pdf. Again https://example.org/a.pdf";
        let links = find_links(text);
        let kinds: Vec<_> = links.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LinkKind::GoogleDocs,
                LinkKind::Forum,
                LinkKind::Ipfs,
                LinkKind::Ipfs,
                LinkKind::Other
            ]
        );
        assert_eq!(links[0].url, "https://docs.google.com/document/d/abc/edit");
        assert_eq!(links[4].url, "https://example.org/a.pdf");
        assert_eq!(
            own_text("Details: [here](https://x.org/y)"),
            "Details: here"
        );
        assert!(!LinkKind::Ipfs.mutable() && LinkKind::GoogleDocs.mutable());
    }
}
