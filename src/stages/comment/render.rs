//! The rationale comment as HTML.
//!
//! Everything that comes from outside cybergov's own code — juror rationales (which quote the
//! proposal), vote labels, links — is HTML-escaped, and links must be `http(s)`, so neither a
//! proposal nor a model can inject markup or script into the comment.
//!
//! The input formats belong to the jurors stage; we read only the fields documented in
//! docs/ARCHITECTURE.md ("Comment inputs") and tolerate everything else.

use crate::hash::Sha256Hash;
use crate::network::Network;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;

/// The fields of `vote.json` the comment shows.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VoteFile {
    /// `aye`, `nay` or `abstain`.
    pub decision: String,
    /// Conviction (a number, or a name such as `Locked1x`).
    pub conviction: Option<Value>,
    /// Id of the tally rule, e.g. `majority-2of3-v1`.
    pub rule: String,
    /// Why the vote was forced to ABSTAIN, if it was (vote.json's `forced_abstain`, set from
    /// the augmentation policy).
    #[serde(rename = "forced_abstain")]
    pub abstain_reason: Option<String>,
}

/// The fields of `jurors/{name}.json` the comment shows.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct JurorFile {
    /// Juror name.
    pub juror: String,
    /// `aye`, `nay` or `abstain`.
    pub vote: String,
    /// The juror's rationale.
    pub rationale: String,
}

/// Where the evidence lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommentLinks {
    /// manifest.json.
    pub manifest: Option<String>,
    /// content.md.
    pub content: Option<String>,
    /// The inference run (CI run page or its archived log).
    pub inference: Option<String>,
    /// The extrinsic: its hash (shown) and a URL (linked), each if known.
    pub extrinsic_hash: Option<String>,
    /// Where the extrinsic can be seen.
    pub extrinsic_url: Option<String>,
}

/// Everything the comment says.
#[derive(Clone, Debug, PartialEq)]
pub struct CommentContext {
    /// Network.
    pub network: Network,
    /// Referendum.
    pub referendum: u32,
    /// Run.
    pub run: u32,
    /// The manifest's SHA-256 (the on-chain remark).
    pub manifest_sha256: Sha256Hash,
    /// vote.json.
    pub vote: VoteFile,
    /// The jurors' files.
    pub jurors: Vec<JurorFile>,
    /// Links.
    pub links: CommentLinks,
}

/// HTML-escapes `s` for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn label(vote: &str) -> String {
    let v = vote.trim().to_ascii_uppercase();
    if v.is_empty() { "UNKNOWN".into() } else { v }
}

fn link(url: &Option<String>, text: &str) -> Option<String> {
    let url = url.as_deref()?;
    (url.starts_with("https://") || url.starts_with("http://"))
        .then(|| format!("<a href=\"{}\">{}</a>", escape(url), escape(text)))
}

/// The order the MAGI are presented in; other names follow alphabetically.
const MAGI: [&str; 3] = ["balthazar", "melchior", "caspar"];

/// Renders the comment.
pub fn render_comment(ctx: &CommentContext) -> String {
    let decision = label(&ctx.vote.decision);
    let mut jurors = ctx.jurors.clone();
    jurors.sort_by_key(|j| {
        (
            MAGI.iter()
                .position(|m| *m == j.juror)
                .unwrap_or(MAGI.len()),
            j.juror.clone(),
        )
    });
    let count = |v: &str| jurors.iter().filter(|j| label(&j.vote) == v).count();
    let mut s = String::new();
    let _ = write!(
        s,
        "<h3>cybergov votes {} on {} referendum #{}</h3>",
        escape(&decision),
        ctx.network,
        ctx.referendum
    );
    let conviction = match &ctx.vote.conviction {
        Some(Value::String(c)) => format!(", conviction {}", escape(c)),
        Some(Value::Null) | None => String::new(),
        Some(other) => format!(", conviction {}", escape(&other.to_string())),
    };
    let _ = write!(
        s,
        "<p>Three local, open-weight language models (the MAGI) read this proposal and voted. Tally: {} AYE, {} NAY, {} ABSTAIN → <b>{}</b> (rule <code>{}</code>{conviction}).</p>",
        count("AYE"),
        count("NAY"),
        count("ABSTAIN"),
        escape(&decision),
        escape(&ctx.vote.rule),
    );
    if let Some(reason) = &ctx.vote.abstain_reason {
        let _ = write!(s, "<p>ABSTAIN was forced: {}</p>", escape(reason));
    }
    s.push_str("<ul>");
    for j in &jurors {
        let paragraphs: Vec<String> = j
            .rationale
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| format!("<p>{}</p>", escape(p).replace('\n', "<br>")))
            .collect();
        let _ = write!(
            s,
            "<li><b>{}</b>: {}<blockquote>{}</blockquote></li>",
            escape(&j.juror),
            escape(&label(&j.vote)),
            paragraphs.concat()
        );
    }
    s.push_str("</ul>");
    let _ = write!(
        s,
        "<p>Manifest SHA-256 (the remark in the vote transaction): <code>{}</code> — run {}.</p>",
        ctx.manifest_sha256.to_hex(),
        ctx.run
    );
    let l = &ctx.links;
    let mut evidence: Vec<String> = [
        link(&l.manifest, "manifest.json"),
        link(&l.content, "content.md (what the jurors read)"),
        link(&l.inference, "inference run"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match (
        &l.extrinsic_hash,
        link(&l.extrinsic_url, "on-chain extrinsic"),
    ) {
        (Some(h), Some(a)) => evidence.push(format!("{a} <code>{}</code>", escape(h))),
        (Some(h), None) => evidence.push(format!("on-chain extrinsic <code>{}</code>", escape(h))),
        (None, Some(a)) => evidence.push(a),
        (None, None) => {}
    }
    if !evidence.is_empty() {
        let _ = write!(s, "<p>Verify it yourself: {}.</p>", evidence.join(" · "));
    }
    s
}
