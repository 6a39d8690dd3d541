//! The rationale comment as HTML.
//!
//! Everything that comes from outside cybergov's own code — juror rationales (which quote the
//! proposal), vote labels, links — is HTML-escaped, and links must be `http(s)`, so neither a
//! proposal nor a model can inject markup or script into the comment.
//!
//! The inputs are the jurors stage's own records ([`VoteRecord`], [`JurorRecord`]), so the
//! comment cannot disagree with vote.json about a field's name or meaning.

use crate::hash::Sha256Hash;
use crate::records::juror::JurorRecord;
use crate::records::run_id::RunId;
use crate::records::vote::VoteRecord;
use std::fmt::Write as _;

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
    /// The run commented on.
    pub id: RunId,
    /// The manifest's SHA-256 (the on-chain remark).
    pub manifest_sha256: Sha256Hash,
    /// vote.json.
    pub vote: VoteRecord,
    /// The jurors' records.
    pub jurors: Vec<JurorRecord>,
    /// Links.
    pub links: CommentLinks,
    /// The earlier run this one votes again after, and whether the proposal's text changed
    /// since (the jurors' input, content.md, differs).
    pub previous: Option<PreviousRun>,
}

/// The run a re-vote follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviousRun {
    /// Its number.
    pub run: u32,
    /// Whether the proposal's text (content.md) differs from that run's.
    pub text_changed: bool,
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

fn link(url: &Option<String>, text: &str) -> Option<String> {
    let url = url.as_deref()?;
    (url.starts_with("https://") || url.starts_with("http://"))
        .then(|| format!("<a href=\"{}\">{}</a>", escape(url), escape(text)))
}

/// The order the MAGI are presented in; other names follow alphabetically.
const MAGI: [&str; 3] = ["balthazar", "melchior", "caspar"];

/// Renders the comment.
pub fn render_comment(ctx: &CommentContext) -> String {
    let decision = ctx.vote.decision.label();
    let mut jurors: Vec<&JurorRecord> = ctx.jurors.iter().collect();
    jurors.sort_by_key(|j| {
        (
            MAGI.iter()
                .position(|m| *m == j.juror)
                .unwrap_or(MAGI.len()),
            j.juror.clone(),
        )
    });
    let counts = &ctx.vote.counts;
    let mut s = String::new();
    let _ = write!(
        s,
        "<h3>{}</h3>",
        crate::records::comment::headline(ctx.id.network, ctx.id.referendum, ctx.vote.decision)
    );
    // ABSTAIN carries no conviction (vote.json records 0 for it), so none is shown.
    let conviction = match ctx.vote.decision {
        crate::manifest::VoteKind::Abstain => String::new(),
        _ => format!(", conviction {}", ctx.vote.conviction),
    };
    let _ = write!(
        s,
        "<p>Three local, open-weight language models (the MAGI) read this proposal and voted. Tally: {} AYE, {} NAY, {} ABSTAIN → <b>{}</b> (rule <code>{}</code>{conviction}).</p>",
        counts.aye,
        counts.nay,
        counts.abstain,
        decision,
        escape(&ctx.vote.rule),
    );
    if let Some(p) = ctx.previous {
        let _ = if p.text_changed {
            write!(
                s,
                "<p>This is run {}: the proposal's text changed since run {}, so the MAGI read it again and voted anew.</p>",
                ctx.id.run, p.run
            )
        } else {
            write!(
                s,
                "<p>This is run {}, a new vote after run {} on the same text.</p>",
                ctx.id.run, p.run
            )
        };
    }
    if let Some(reason) = &ctx.vote.forced_abstain {
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
            j.vote.label(),
            paragraphs.concat()
        );
    }
    s.push_str("</ul>");
    let _ = write!(
        s,
        "<p>Manifest SHA-256 (the remark in the vote transaction): <code>{}</code> — run {}.</p>",
        ctx.manifest_sha256.to_hex(),
        ctx.id.run
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
