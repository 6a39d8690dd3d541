//! Cleaning a proposal body into plain markdown a small model can read.
//!
//! Images, base64 data URIs, scripts, styles and embedded frames carry no argument a juror can
//! weigh, but they can fill the whole context window (a pasted screenshot is megabytes of base64)
//! or hide text from human readers. HTML bodies become markdown so that both formats reach the
//! jurors the same way. What was removed is counted, so augment.json shows it.

use crate::proposal::{ContentType, ProposalError};
use crate::records::augment::CleanReport;
use regex::Regex;
use std::sync::LazyLock;

/// Elements removed with everything inside them (an unclosed one runs to the end).
const SCRIPT_TAGS: [&str; 7] = [
    "script", "style", "iframe", "object", "embed", "svg", "noscript",
];

static SCRIPT_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = SCRIPT_TAGS
        .iter()
        .map(|t| format!(r"<{t}\b.*?(?:</{t}\s*>|\z)"))
        .collect();
    Regex::new(&format!("(?is){}", alternatives.join("|"))).expect("valid regex")
});
static HTML_IMG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<img\b[^>]*>").expect("valid regex"));
static MD_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"!\[([^\]]*)\]\(([^)]*)\)").expect("valid regex"));
static DATA_URI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"data:[A-Za-z0-9.+/-]+(?:;[A-Za-z0-9=.+-]+)*;base64,[A-Za-z0-9+/=]+")
        .expect("valid regex")
});
static MANY_BLANK_LINES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\n{3,}").expect("valid regex"));

/// Cleans `body` (of type `content_type`) to markdown. An empty result is an error naming
/// `field`: a juror must not vote on a proposal that says nothing.
pub fn clean(
    body: &str,
    content_type: ContentType,
    field: &str,
) -> Result<(String, CleanReport), ProposalError> {
    let mut report = CleanReport::default();
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    report.scripts = SCRIPT_LIKE.find_iter(&body).count();
    let body = SCRIPT_LIKE.replace_all(&body, "");
    report.images = HTML_IMG.find_iter(&body).count();
    let body = HTML_IMG.replace_all(&body, "");
    let body = match content_type {
        ContentType::Markdown => body.into_owned(),
        ContentType::Html => {
            report.converted_from_html = true;
            if html_depth(&body) > MAX_HTML_DEPTH {
                return Err(ProposalError::Invalid {
                    field: field.into(),
                    message: format!(
                        "HTML nested more than {MAX_HTML_DEPTH} elements deep: refused before conversion"
                    ),
                });
            }
            html_to_markdown(&body).map_err(|e| ProposalError::Invalid {
                field: field.into(),
                message: format!("cannot convert HTML: {e}"),
            })?
        }
    };
    report.images += MD_IMAGE.find_iter(&body).count();
    let body = MD_IMAGE.replace_all(&body, |c: &regex::Captures<'_>| {
        let alt = c[1].trim();
        if alt.is_empty() {
            String::new()
        } else {
            format!("[image: {alt}]")
        }
    });
    report.data_uris = DATA_URI.find_iter(&body).count();
    let body = DATA_URI.replace_all(&body, "[base64 data removed]");
    let body: String = body
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect();
    let body = body
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    let body = MANY_BLANK_LINES
        .replace_all(body.trim(), "\n\n")
        .into_owned();
    if body.trim().is_empty() {
        return Err(ProposalError::EmptyBody {
            field: field.into(),
        });
    }
    Ok((body, report))
}

/// The deepest HTML nesting a proposal may have. Real proposals nest a few levels; the HTML to
/// markdown conversion costs time quadratic in the depth (a 2 MB body of nested `<div>`s held a
/// worker for minutes), so deeper bodies are refused before it runs.
pub const MAX_HTML_DEPTH: usize = 256;

/// How deep `html`'s elements nest as the HTML parser builds them, by a linear scan of its
/// tags with a stack of open elements: an upper bound on the tree html5ever makes, so that no
/// shape of input gets past it. Void elements do not nest; everything else does, the way the
/// parser treats it: `<div/>` opens a `div` (the slash means nothing on a non-void HTML
/// element), and an end tag that matches no open element (`</x>`) closes nothing. An end tag
/// closes its element and whatever was left open inside it; a new `p`, `li`, `dt`, `dd`, `tr`,
/// `td`, `th` or `option` first closes an open one of its kind, as the parser does.
fn html_depth(html: &str) -> usize {
    const VOID: [&str; 14] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr",
    ];
    const SELF_CLOSING_SIBLINGS: [&str; 8] = ["p", "li", "dt", "dd", "tr", "td", "th", "option"];
    let name_of = |tag: &str| -> String {
        tag.chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let mut open: Vec<String> = Vec::new();
    let mut deepest = 0usize;
    let bytes = html.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| b == b'<') {
        let start = i + at + 1;
        let Some(len) = bytes[start..].iter().position(|&b| b == b'>') else {
            break;
        };
        let tag = &html[start..start + len];
        i = start + len + 1;
        if let Some(closing) = tag.strip_prefix('/') {
            let name = name_of(closing);
            if let Some(at) = open.iter().rposition(|o| *o == name) {
                open.truncate(at);
            }
        } else if tag.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let name = name_of(tag);
            if VOID.contains(&name.as_str()) {
                continue;
            }
            if SELF_CLOSING_SIBLINGS.contains(&name.as_str()) && open.last() == Some(&name) {
                open.pop();
            }
            open.push(name);
            deepest = deepest.max(open.len());
            // Deep enough to refuse: stop, so that the scan stays linear in the input.
            if deepest > MAX_HTML_DEPTH {
                break;
            }
        }
    }
    deepest
}

fn html_to_markdown(html: &str) -> std::io::Result<String> {
    htmd::HtmlToMarkdown::builder()
        .skip_tags(SCRIPT_TAGS.iter().copied().chain(["img", "head"]).collect())
        .build()
        .convert(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_html_is_refused_at_once() {
        let body = "<div>".repeat(200_000) + "x" + &"</div>".repeat(200_000);
        let started = std::time::Instant::now();
        let e = clean(&body, ContentType::Html, "content").unwrap_err();
        assert!(
            e.to_string().contains("nested more than 256 elements deep"),
            "{e}"
        );
        // A linear scan: far below the minutes the conversion would take.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Ordinary nesting still converts.
        let (md, _) = clean(
            "<div><p>a<br>b <b>c</b></p><img src=x><hr/></div>",
            ContentType::Html,
            "content",
        )
        .unwrap();
        assert!(md.contains('c'), "{md}");
        assert_eq!(
            html_depth("<div><p>a<br>b <b>c</b></p><img src=x><hr/></div>"),
            3
        );
        // Paragraphs and list items left open close one another, as the parser closes them.
        assert_eq!(html_depth(&"<p>para".repeat(1000)), 1);
        assert_eq!(
            html_depth(&format!("<ul>{}</ul>", "<li>item".repeat(1000))),
            2
        );
    }

    /// The two shapes that got past a count of start and end tags: self-closing non-void tags,
    /// which html5ever nests, and end tags that close nothing. 2 MB of either is refused at
    /// once, before the conversion that would take minutes and overflow the stack.
    #[test]
    fn nesting_that_hides_from_a_tag_count_is_refused_at_once() {
        for (shape, unit) in [
            ("self-closing", "<div/>"),
            ("unmatched end tags", "<div></x>"),
        ] {
            let body = unit.repeat(2_000_000 / unit.len());
            let started = std::time::Instant::now();
            let e = clean(&body, ContentType::Html, "content").unwrap_err();
            assert!(e.to_string().contains("elements deep"), "{shape}: {e}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{shape}: a linear scan"
            );
        }
    }

    #[test]
    fn strips_images_data_uris_and_scripts() {
        let md = "# Plan\n\n![diagram](https://x.org/a.png) text ![](data:image/png;base64,AAAA)\n<script>alert(1)</script>\n\n\n\nlink [pdf](data:application/pdf;base64,JVBERi0=)";
        let (out, r) = clean(md, ContentType::Markdown, "content").unwrap();
        assert_eq!(
            out,
            "# Plan\n\n[image: diagram] text\n\nlink [pdf]([base64 data removed])"
        );
        assert_eq!((r.images, r.data_uris, r.scripts), (2, 1, 1));
    }

    #[test]
    fn html_becomes_markdown() {
        let html = "<h2>Budget</h2><p>We ask <b>10 DOT</b>.<img src=\"data:image/png;base64,AAAA\"></p><style>p{}</style>";
        let (out, r) = clean(html, ContentType::Html, "content").unwrap();
        assert_eq!(out, "## Budget\n\nWe ask **10 DOT**.");
        assert!(r.converted_from_html);
        assert_eq!(r.images, 1);
    }

    #[test]
    fn empty_after_cleaning_is_an_error() {
        let e = clean(
            "<p><img src=x></p><script>x</script>",
            ContentType::Html,
            "content",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "field \"content\": the proposal body is empty after cleaning"
        );
    }
}
