//! `/referenda/{network}/{id}`: one referendum — its runs and stages as a timeline, and for the
//! run shown (`?run=N`; else the published one, else the latest) what each juror said and its
//! scores as bars, the tally and its rule, the manifest hash with a link to every artefact, the
//! vote's extrinsic and block, the comment, and what the store-side checks of `cybergov verify`
//! find. Everything shown is read from the ledger and the store through the records' own types.

use super::{PageError, render};
use crate::manifest::verify::verify_run;
use crate::network::Network;
use crate::proposal::Proposal;
use crate::records::comment::CommentRecord;
use crate::records::juror::{JurorRecord, OPTIONS};
use crate::records::receipt::Receipt;
use crate::records::vote::VoteRecord;
use crate::store::layout::{Artefact, ReferendumLayout, RunLayout};
use crate::verify::consistency::check_consistency;
use crate::web::WebState;
use crate::web::api::{RunView, network, referendum_view};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The referendum page's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// The run to show.
    pub run: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ReferendumPage {
    network: String,
    referendum: u32,
    /// The proposal's title as its proposer wrote it (untrusted, escaped like all text).
    title: Option<String>,
    subsquare_url: String,
    published_run: Option<u32>,
    shown_run: u32,
    runs: Vec<RunView>,
    jurors: Vec<JurorCard>,
    tally: Option<VoteRecord>,
    manifest_sha256: Option<String>,
    artefacts: Vec<ArtefactLink>,
    vote: Option<Landed>,
    dry_run: bool,
    comment: Option<CommentLink>,
    verification: Option<VerificationView>,
    /// The operators' forms, when the server offers actions.
    actions: Option<Actions>,
}

#[derive(Debug, Serialize)]
struct Actions {
    rerun: String,
    /// The latest run's failed stages, each with its retry form's target.
    retry: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct JurorCard {
    name: String,
    model: String,
    vote: String,
    rationale: String,
    bars: Vec<Bar>,
    /// The bars' text, for screen readers.
    summary: String,
}

/// One option's bar: its probability among the three, as a width in the SVG's units.
#[derive(Debug, Serialize)]
struct Bar {
    option: String,
    percent: String,
    width: f64,
    y: u32,
    chosen: bool,
}

#[derive(Debug, Serialize)]
struct ArtefactLink {
    name: String,
    sha256: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct Landed {
    extrinsic_hash: String,
    block_number: u64,
    finalized: bool,
    extrinsic_url: Option<String>,
    block_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct CommentLink {
    posted: bool,
    comment_id: Option<String>,
    skipped_reason: Option<String>,
    url: String,
}

#[derive(Debug, Serialize)]
struct VerificationView {
    passed: bool,
    checks: Vec<CheckLine>,
}

#[derive(Debug, Serialize)]
struct CheckLine {
    name: String,
    passed: bool,
    detail: String,
}

/// Width of a bar at 100 %, in the SVG's units.
const BAR_SPAN: f64 = 180.0;
/// Height of one bar plus its gap.
const BAR_PITCH: u32 = 22;

/// The three options' bars, from the probabilities the juror recorded (or, for records made
/// before those were, from the log-probabilities normalised over the options scored).
fn bars(juror: &JurorRecord) -> Vec<Bar> {
    let scored: Vec<_> = OPTIONS
        .iter()
        .filter_map(|(label, kind)| {
            juror
                .scores
                .iter()
                .find(|s| s.option == *label)
                .map(|s| (*label, *kind, s))
        })
        .collect();
    let best = scored
        .iter()
        .map(|(_, _, s)| s.logprob)
        .fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scored
        .iter()
        .map(|(_, _, s)| (s.logprob - best).exp())
        .sum();
    scored
        .iter()
        .zip(0u32..)
        .map(|((label, kind, s), i)| {
            let p = s
                .probability
                .unwrap_or_else(|| (s.logprob - best).exp() / total);
            let p = if p.is_finite() {
                p.clamp(0.0, 1.0)
            } else {
                0.0
            };
            Bar {
                option: (*label).to_owned(),
                percent: format!("{:.0} %", p * 100.0),
                width: (p * BAR_SPAN * 10.0).round() / 10.0,
                y: i * BAR_PITCH,
                chosen: *kind == juror.vote,
            }
        })
        .collect()
}

fn juror_card(juror: JurorRecord) -> JurorCard {
    let bars = bars(&juror);
    let summary = bars
        .iter()
        .map(|b| format!("{} {}", b.option, b.percent))
        .collect::<Vec<_>>()
        .join(", ");
    JurorCard {
        model: juror.model.model_id.clone(),
        vote: juror.vote.label().to_owned(),
        name: juror.juror,
        rationale: juror.rationale,
        bars,
        summary,
    }
}

/// Reads `artefact` of `run` as `T`; a missing or unreadable one is shown as absent (and logged),
/// since the page must still show the rest of a run a verifier would flag.
async fn record<T: for<'de> Deserialize<'de>>(
    s: &WebState,
    run: &RunLayout,
    artefact: &Artefact,
) -> Option<T> {
    let key = run.key(artefact);
    match s.store.get_optional(&key).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes)
            .inspect_err(|e| tracing::warn!("dashboard: {key} does not parse: {e}"))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("dashboard: reading {key}: {e}");
            None
        }
    }
}

async fn title(s: &WebState, net: Network, run: &RunLayout) -> Option<String> {
    let raw = s
        .store
        .get_optional(&run.key(&Artefact::RawSubsquare))
        .await
        .ok()??;
    let spec = s
        .networks
        .get(&net)
        .cloned()
        .unwrap_or_else(|| net.default_spec());
    Proposal::from_subsquare(net, &spec, &raw)
        .ok()
        .map(|p| p.title)
}

async fn verification(s: &WebState, net: Network, id: u32, run: u32) -> Option<VerificationView> {
    let mut report = verify_run(s.store.as_ref(), net, id, Some(run)).await;
    let (Some(manifest), Some(hash)) = (report.manifest.clone(), report.manifest_sha256) else {
        return None;
    };
    report
        .checks
        .extend(check_consistency(s.store.as_ref(), &manifest, hash).await);
    Some(VerificationView {
        passed: report.passed(),
        checks: report
            .checks
            .into_iter()
            .map(|c| CheckLine {
                name: c.name,
                passed: c.passed,
                detail: c.detail,
            })
            .collect(),
    })
}

/// `GET /referenda/{network}/{id}`.
pub async fn page(
    State(s): State<Arc<WebState>>,
    Path((net, id)): Path<(String, u32)>,
    Query(q): Query<RunQuery>,
) -> Result<Response, PageError> {
    let net = network(&net)?;
    let view = referendum_view(&s, net, id).await?;
    let latest = view.runs.last().map_or(1, |r| r.run.run);
    let shown = q
        .run
        .or(view.published_run)
        .unwrap_or(u32::try_from(latest).unwrap_or(1));
    let Some(shown_view) = view.runs.iter().find(|r| r.run.run == i64::from(shown)) else {
        return Err(PageError::not_found(format!(
            "{net} #{id} has no run {shown}"
        )));
    };
    let run = ReferendumLayout::new(net, id).run(shown);
    let artefacts: Vec<ArtefactLink> = shown_view
        .stages
        .iter()
        .flat_map(|st| &st.artefacts)
        .map(|a| ArtefactLink {
            name: a.name.clone(),
            sha256: a.sha256.clone(),
            href: a.url.clone().unwrap_or_else(|| format!("/store/{}", a.key)),
        })
        .collect();
    let mut jurors = Vec::new();
    for a in &artefacts {
        if let Some(name) = a
            .name
            .strip_prefix("jurors/")
            .and_then(|n| n.strip_suffix(".json"))
            && let Some(j) = record::<JurorRecord>(&s, &run, &Artefact::Juror(name.into())).await
        {
            jurors.push(juror_card(j));
        }
    }
    let spec = s.networks.get(&net);
    let explorer = spec.and_then(|n| n.explorer_url.as_deref());
    let vote = Receipt::read(s.store.as_ref(), &run)
        .await
        .ok()
        .flatten()
        .map(|r| Landed {
            extrinsic_url: explorer.map(|e| format!("{e}/extrinsic/{}", r.extrinsic_hash)),
            block_url: explorer.map(|e| format!("{e}/block/{}", r.block_number)),
            extrinsic_hash: r.extrinsic_hash,
            block_number: r.block_number,
            finalized: r.finalized,
        });
    let dry_run_key = run.key(&Artefact::DryRun);
    let dry_run = matches!(s.store.get_optional(&dry_run_key).await, Ok(Some(_)));
    let subsquare_url = format!(
        "{}/referenda/{id}",
        spec.map_or_else(
            || net.default_spec().subsquare_web_url,
            |n| n.subsquare_web_url.clone()
        )
        .trim_end_matches('/')
    );
    let comment = record::<CommentRecord>(&s, &run, &Artefact::Comment)
        .await
        .map(|c| CommentLink {
            posted: c.posted,
            comment_id: c.comment_id,
            skipped_reason: c.skipped_reason,
            url: subsquare_url.clone(),
        });
    let actions = s.operator.as_ref().map(|_| Actions {
        rerun: format!("/referenda/{net}/{id}/rerun"),
        retry: view
            .runs
            .last()
            .map(|r| {
                r.stages
                    .iter()
                    .filter(|st| st.state == "failed")
                    .map(|st| {
                        let href = format!(
                            "/referenda/{net}/{id}/runs/{}/stages/{}/retry",
                            r.run.run, st.stage
                        );
                        (st.stage.clone(), href)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    });
    let page = ReferendumPage {
        network: net.as_str().to_owned(),
        referendum: id,
        title: title(&s, net, &run).await,
        subsquare_url,
        published_run: view.published_run,
        shown_run: shown,
        manifest_sha256: artefacts
            .iter()
            .find(|a| a.name == Artefact::Manifest.file_name())
            .map(|a| a.sha256.clone()),
        tally: record::<VoteRecord>(&s, &run, &Artefact::Vote).await,
        verification: verification(&s, net, id, shown).await,
        actions,
        runs: view.runs,
        jurors,
        artefacts,
        vote,
        dry_run,
        comment,
    };
    Ok(render("referendum.html", &page))
}
