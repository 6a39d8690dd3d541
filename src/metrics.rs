//! The process's Prometheus metrics (`/metrics` of `cybergov serve`), in one registry.
//!
//! Why it is shaped so:
//! - **One process-wide registry** ([`global`]): what moves them (a stage finishing, a vote
//!   landing, a comment posted, a request failing) happens deep in layers that must not know
//!   about the HTTP server, so they record into this base-layer module and the server only
//!   encodes it. Each `cybergov` process has its own; a `serve` reports what it did.
//! - **Named functions, not free-form names.** Every metric is declared here, once, with its
//!   help text; callers say what happened (`stage_finished`, `vote_cast`), so a typo cannot
//!   start a second series.
//! - **What the ledger knows is read from the ledger** when scraped (queue depth by state, the
//!   age of the oldest due stage: [`QueueSnapshot`]), so those are right even when another
//!   worker did the work.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

type Labels<const N: usize> = [(&'static str, String); N];

/// Every metric of the process.
struct Metrics {
    registry: Mutex<Registry>,
    stage_runs: Family<Labels<2>, Counter>,
    stage_seconds: Family<Labels<1>, Histogram, fn() -> Histogram>,
    votes: Family<Labels<2>, Counter>,
    comments: Family<Labels<1>, Counter>,
    juror_tokens: Family<Labels<2>, Counter>,
    juror_rate: Family<Labels<1>, Gauge<f64, AtomicU64>>,
    request_errors: Family<Labels<2>, Counter>,
    last_dispatch: Family<Labels<1>, Gauge>,
    queue: Family<Labels<1>, Gauge>,
    oldest_due: Gauge<f64, AtomicU64>,
}

/// Buckets from 10 ms to about 30 min: a Subsquare fetch to a slow GitHub inference run.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 3.0, 12))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        registry: Mutex::new(Registry::with_prefix("cybergov")),
        stage_runs: Family::default(),
        stage_seconds: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
        votes: Family::default(),
        comments: Family::default(),
        juror_tokens: Family::default(),
        juror_rate: Family::default(),
        request_errors: Family::default(),
        last_dispatch: Family::default(),
        queue: Family::default(),
        oldest_due: Gauge::default(),
    };
    {
        let mut r = m.registry.lock().expect("metrics registry");
        r.register(
            "stage_runs",
            "Stage attempts that ended, by stage and outcome (completed, retrying, failed)",
            m.stage_runs.clone(),
        );
        r.register(
            "stage_duration_seconds",
            "Wall time of stage attempts, by stage",
            m.stage_seconds.clone(),
        );
        r.register(
            "votes",
            "Votes cast and included on chain, by network and decision",
            m.votes.clone(),
        );
        r.register(
            "comments_posted",
            "Comments posted on Subsquare, by network",
            m.comments.clone(),
        );
        r.register(
            "juror_tokens",
            "Tokens the jurors read (prompt) and wrote (completion), by juror",
            m.juror_tokens.clone(),
        );
        r.register(
            "juror_tokens_per_second",
            "Completion tokens per second of each juror's last deliberation (jurors deliberating together share the batch's wall time)",
            m.juror_rate.clone(),
        );
        r.register(
            "request_errors",
            "Failed requests to outside services, by service (subsquare, rpc, sidecar, github) and kind",
            m.request_errors.clone(),
        );
        r.register(
            "last_dispatch_timestamp_seconds",
            "Unix time of the last successful dispatch, by network",
            m.last_dispatch.clone(),
        );
        r.register(
            "queue_stages",
            "Stages in the ledger by state, read when scraped",
            m.queue.clone(),
        );
        r.register(
            "oldest_due_stage_age_seconds",
            "How long the oldest stage that is due has waited, read when scraped (0: none)",
            m.oldest_due.clone(),
        );
    }
    m
});

/// A stage attempt ended with `outcome` (`completed`, `retrying`, `failed`) after `took`.
pub fn stage_finished(stage: &str, outcome: &'static str, took: Duration) {
    let m = &*METRICS;
    m.stage_runs
        .get_or_create(&[("stage", stage.to_owned()), ("outcome", outcome.to_owned())])
        .inc();
    m.stage_seconds
        .get_or_create(&[("stage", stage.to_owned())])
        .observe(took.as_secs_f64());
}

/// A vote on `network` with `decision` (`aye`, `nay`, `abstain`) was included on chain.
pub fn vote_cast(network: &str, decision: &str) {
    METRICS
        .votes
        .get_or_create(&[
            ("network", network.to_owned()),
            ("decision", decision.to_owned()),
        ])
        .inc();
}

/// A comment was posted on `network`'s Subsquare.
pub fn comment_posted(network: &str) {
    METRICS
        .comments
        .get_or_create(&[("network", network.to_owned())])
        .inc();
}

/// Juror `juror` read `prompt` tokens and wrote `completion` tokens in `took`.
pub fn juror_deliberated(juror: &str, prompt: u32, completion: u32, took: Duration) {
    let m = &*METRICS;
    for (kind, n) in [("prompt", prompt), ("completion", completion)] {
        m.juror_tokens
            .get_or_create(&[("juror", juror.to_owned()), ("kind", kind.to_owned())])
            .inc_by(u64::from(n));
    }
    if !took.is_zero() {
        m.juror_rate
            .get_or_create(&[("juror", juror.to_owned())])
            .set(f64::from(completion) / took.as_secs_f64());
    }
}

/// A request to `service` (`subsquare`, `rpc`, `sidecar`, `github`) failed with `kind` (`timeout`,
/// `connect`, `status_5xx`, …).
pub fn request_failed(service: &'static str, kind: &str) {
    METRICS
        .request_errors
        .get_or_create(&[("service", service.to_owned()), ("kind", kind.to_owned())])
        .inc();
}

/// `network`'s dispatch succeeded at `unix_seconds`.
pub fn dispatched(network: &str, unix_seconds: i64) {
    METRICS
        .last_dispatch
        .get_or_create(&[("network", network.to_owned())])
        .set(unix_seconds);
}

/// When `network` was last dispatched by this process (Unix seconds), if it was.
pub fn last_dispatch(network: &str) -> Option<i64> {
    METRICS
        .last_dispatch
        .get(&[("network", network.to_owned())])
        .map(|g| g.get())
}

/// What the ledger says when scraped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueSnapshot {
    /// Stages per state.
    pub by_state: Vec<(String, i64)>,
    /// Seconds the oldest due stage has waited (0 when none is due).
    pub oldest_due_secs: f64,
}

/// The text exposition of every metric, with the ledger's `queue` as of now.
pub fn render(queue: &QueueSnapshot) -> String {
    let m = &*METRICS;
    m.queue.clear();
    for (state, n) in &queue.by_state {
        m.queue.get_or_create(&[("state", state.clone())]).set(*n);
    }
    m.oldest_due.set(queue.oldest_due_secs);
    let mut out = String::new();
    let registry = m.registry.lock().expect("metrics registry");
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}
