//! The engine: claims a stage in the ledger, runs its handler with the stage's timeout, records
//! the outcome, and hands off to the successors.
//!
//! Hand-off does not wait for a poll: a successor that is due at once runs next in the same
//! task. Its ledger row (the durable record) is written already claimed by this worker, in the
//! same transaction as its predecessor's completion, so a hand-off costs one commit. Successors
//! with a delay, and retries, go to the queue with a run-at time. Should the worker die in
//! between, the [sweeper](Engine::sweep) of any live worker finds the expired claim or the
//! overdue row and queues it again.

use super::graph::{ENTRY, Graph, GraphError};
use super::handler::{Registry, StageError, hash_outputs};
use super::ledger::{
    Claim, Entry, Handoff, Ledger, LedgerError, NewRun, StageKey, StageState, now_ms,
};
use super::queue::{Queue, QueueError};
use super::settings::PipelineConfig;
use crate::network::Network;
use crate::store::SharedStore;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The ledger failed (boxed: sqlx's errors are large).
    #[error(transparent)]
    Ledger(Box<LedgerError>),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The graph does not fit the handlers or settings.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl From<LedgerError> for EngineError {
    fn from(e: LedgerError) -> Self {
        Self::Ledger(Box::new(e))
    }
}

/// Where work that is not due yet goes.
#[derive(Clone, Debug)]
pub enum Mode {
    /// To the queue (a service: `cybergov serve`); boxed, the storages are large.
    Queue(Box<Queue>),
    /// Nowhere: this task waits for it (`cybergov run`: one referendum, in the foreground).
    Foreground,
}

/// The engine of one worker process.
#[derive(Debug)]
pub struct Engine {
    /// The artefact store (the engine hashes each stage's outputs there).
    pub store: SharedStore,
    /// The `[pipeline]` settings: leases, concurrency, polling, the dispatch schedule.
    pub settings: PipelineConfig,
    /// The graph.
    pub graph: Graph,
    /// The handlers.
    pub registry: Registry,
    /// The ledger.
    pub ledger: Ledger,
    /// Where delayed work goes.
    pub mode: Mode,
    /// This worker's name in claims.
    pub owner: String,
    /// How long a claim lasts.
    pub lease: Duration,
    /// Run successors at once whatever their delay (`cybergov run`).
    pub ignore_delays: bool,
    fault_pause: Option<String>,
    stopping: AtomicBool,
}

/// A fresh worker name: host, process and a random suffix.
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[..8])
}

impl Engine {
    /// An engine; checks the graph against the registry and the dead-worker timeout.
    pub fn new(
        store: SharedStore,
        settings: PipelineConfig,
        graph: Graph,
        registry: Registry,
        ledger: Ledger,
        mode: Mode,
    ) -> Result<Self, EngineError> {
        graph.check_handlers(registry.names())?;
        Ok(Self {
            lease: Duration::from_secs(settings.dead_worker_timeout_secs),
            store,
            settings,
            graph,
            registry,
            ledger,
            mode,
            owner: worker_name(),
            ignore_delays: false,
            fault_pause: std::env::var(crate::env::FAULT_PAUSE_VAR)
                .ok()
                .filter(|v| !v.is_empty()),
            stopping: AtomicBool::new(false),
        })
    }

    /// Stops handing work on directly: the stage in flight finishes, its successors are queued.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Creates the next run of a referendum with its entry stage due now and, in queue mode,
    /// queued. `expect_last`: only while that is the last run (`Some(0)`: while there is none, as
    /// dispatch wants).
    pub async fn start_run(
        &self,
        network: Network,
        referendum: u32,
        expect_last: Option<u32>,
    ) -> Result<Option<StageKey>, EngineError> {
        let Some(key) = self
            .create_with_entry(network, referendum, expect_last, false)
            .await?
        else {
            return Ok(None);
        };
        if let Mode::Queue(q) = &self.mode {
            q.push(&key, now_ms()).await?;
        }
        Ok(Some(key))
    }

    /// Creates the next run of a referendum and runs it here and now, through every stage that
    /// is due at once (`cybergov run`). The entry stage is written already claimed by this
    /// worker, so starting costs no claim of its own. Returns the run, or `None` when
    /// `expect_last` was not the last run any more (another creator was first).
    pub async fn run_new(
        &self,
        network: Network,
        referendum: u32,
        expect_last: Option<u32>,
    ) -> Result<Option<StageKey>, EngineError> {
        let Some(key) = self
            .create_with_entry(network, referendum, expect_last, true)
            .await?
        else {
            return Ok(None);
        };
        self.work_through(VecDeque::from([(key.clone(), Some(1))]))
            .await?;
        Ok(Some(key))
    }

    /// Creates the next run with its entry stage due now: scheduled, or already claimed by this
    /// worker when `claim`.
    async fn create_with_entry(
        &self,
        network: Network,
        referendum: u32,
        expect_last: Option<u32>,
        claim: bool,
    ) -> Result<Option<StageKey>, EngineError> {
        let entry = Entry {
            stage: ENTRY,
            due_at: now_ms(),
            claimed_by: claim.then_some((self.owner.as_str(), self.lease)),
        };
        self.create_run(network, referendum, None, None, expect_last, Some(entry))
            .await
    }

    /// Schedules `key` due now (and queues it in queue mode).
    pub async fn schedule_now(&self, key: &StageKey) -> Result<(), EngineError> {
        let now = now_ms();
        self.ledger.schedule(key, now).await?;
        if let Mode::Queue(q) = &self.mode {
            q.push(key, now).await?;
        }
        Ok(())
    }

    /// Creates the next run of a referendum (numbered after every run in the ledger and the
    /// store) and returns its entry stage's key: written with the run when `entry` is given,
    /// else left for the caller to write.
    pub async fn create_run(
        &self,
        network: Network,
        referendum: u32,
        previous_run: Option<u32>,
        from_stage: Option<&str>,
        expect_last: Option<u32>,
        entry: Option<Entry<'_>>,
    ) -> Result<Option<StageKey>, EngineError> {
        // Runs the store already holds (e.g. made by `cybergov infer` by hand) are not reused.
        let layout = crate::store::layout::ReferendumLayout::new(network, referendum);
        let store_next = layout
            .runs(self.store.as_ref())
            .await
            .map_err(|e| LedgerError::Invalid(format!("listing runs in the store: {e}")))?
            .last()
            .map_or(1, |r| r + 1);
        let Some(run) = self
            .ledger
            .create_run(&NewRun {
                network,
                referendum,
                min_run: store_next,
                previous_run,
                from_stage,
                expect_last,
                entry,
            })
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(StageKey {
            network,
            referendum,
            run,
            stage: ENTRY.to_owned(),
        }))
    }

    /// Processes a delivered job, and then every successor that is due at once.
    pub async fn process(&self, job: StageKey) -> Result<(), EngineError> {
        self.work_through(VecDeque::from([(job, None)])).await
    }

    /// Runs the stages of `work` and then their successors that are due at once. Each item: a
    /// stage, and the attempt number when this worker already holds its claim.
    async fn work_through(
        &self,
        mut work: VecDeque<(StageKey, Option<u32>)>,
    ) -> Result<(), EngineError> {
        while let Some((key, claimed)) = work.pop_front() {
            let Some(spec) = self.graph.stage(&key.stage).cloned() else {
                tracing::error!(%key, "job for a stage the graph does not have; dropped");
                continue;
            };
            let claim = match claimed {
                Some(attempt) => Claim::Claimed { attempt },
                None => self.ledger.claim(&key, &self.owner, self.lease).await?,
            };
            let attempt = match claim {
                Claim::Claimed { attempt } => attempt,
                Claim::NotDue { at } => {
                    // In queue mode the queued job (or the sweeper) brings it back when due.
                    if matches!(self.mode, Mode::Foreground) {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait + 10)).await;
                        work.push_front((key, None));
                    }
                    continue;
                }
                Claim::Busy { until } => {
                    // Another live worker runs it. In the foreground, look again every second:
                    // its completion ends the wait at once, its death within a lease.
                    if matches!(self.mode, Mode::Foreground) {
                        let left = u64::try_from(until - now_ms()).unwrap_or(0);
                        tracing::info!(
                            %key,
                            lease_left_ms = left,
                            "another worker holds this stage; waiting for it to finish or for its lease to lapse"
                        );
                        tokio::time::sleep(Duration::from_millis(left.clamp(10, 1000))).await;
                        work.push_front((key, None));
                    }
                    continue;
                }
                Claim::Final(state) => {
                    tracing::debug!(%key, %state, "duplicate delivery: stage already final");
                    continue;
                }
                Claim::Missing => {
                    tracing::warn!(%key, "job without a ledger row; dropped");
                    continue;
                }
            };
            tracing::info!(%key, attempt, "stage started");
            let started = std::time::Instant::now();
            let handler = self
                .registry
                .get(&key.stage)
                .expect("graph checked against the registry")
                .clone();
            // The handler can ask whether the claim is still this worker's before a side effect.
            let check: super::claim::Check = {
                let (ledger, key, owner, lease) = (
                    self.ledger.clone(),
                    key.clone(),
                    self.owner.clone(),
                    self.lease,
                );
                std::sync::Arc::new(move || {
                    let (ledger, key, owner) = (ledger.clone(), key.clone(), owner.clone());
                    Box::pin(async move {
                        // A ledger that cannot answer does not vouch for the claim.
                        ledger.renew(&key, &owner, lease).await.unwrap_or(false)
                    })
                })
            };
            let run = tokio::time::timeout(
                spec.timeout(),
                super::claim::scope(check, handler.run(&key)),
            );
            let result = match self.with_heartbeat(&key, run).await {
                Ok(r) => r,
                Err(_) => Err(StageError::Transient(format!(
                    "timed out after {} s",
                    spec.timeout_secs
                ))),
            };
            let result = match result {
                Ok(done) => hash_outputs(self.store.as_ref(), &key, &done.outputs)
                    .await
                    .map(|h| (done, h)),
                Err(e) => Err(e),
            };
            if self.fault_pause.as_deref() == Some(key.stage.as_str()) {
                // Test-only: the worker is to be killed here (docs/CONFIGURATION.md).
                eprintln!("FAULT-PAUSE {key}");
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            match result {
                Ok((done, hashes)) => {
                    let now = now_ms();
                    let stopping = self.stopping.load(Ordering::SeqCst);
                    let next: Vec<Handoff> = spec
                        .next
                        .iter()
                        .map(|next| {
                            let delay = if self.ignore_delays {
                                0
                            } else {
                                let spec = self.graph.stage(next).expect("graph checked");
                                i64::try_from(spec.delay().as_millis()).unwrap_or(i64::MAX / 4)
                            };
                            Handoff {
                                key: key.with_stage(next),
                                due_at: now + delay,
                                claim: delay == 0 && !stopping,
                            }
                        })
                        .collect();
                    let completed = self
                        .ledger
                        .complete(
                            &key,
                            &self.owner,
                            &hashes,
                            done.note.as_deref(),
                            &next,
                            self.lease,
                        )
                        .await;
                    let Some(completion) = self.hand_back_on_error(&key, completed).await? else {
                        tracing::warn!(%key, "claim lost before completion was recorded");
                        continue;
                    };
                    tracing::info!(%key, "stage completed");
                    crate::metrics::stage_finished(&key.stage, "completed", started.elapsed());
                    if completion.run_completed {
                        tracing::info!(%key, "run completed");
                    }
                    for (h, claimed) in next.into_iter().zip(completion.claimed) {
                        match &self.mode {
                            // A crash before this push leaves the row overdue: the sweeper
                            // queues it.
                            Mode::Queue(q) if !h.claim => q.push(&h.key, h.due_at).await?,
                            _ => work.push_back((h.key, claimed.then_some(1))),
                        }
                    }
                }
                Err(err) if attempt < spec.attempts && self.retries(&err) => {
                    let e = err.to_string();
                    let due = now_ms()
                        + i64::try_from(spec.backoff(attempt).as_millis()).unwrap_or(i64::MAX / 4);
                    tracing::warn!(%key, attempt, error = %e, "stage failed; will retry");
                    crate::metrics::stage_finished(&key.stage, "retrying", started.elapsed());
                    if matches!(self.mode, Mode::Foreground) {
                        // The operator sees what the foreground waits for, and until when.
                        eprintln!(
                            "{key}: attempt {attempt} of {} failed ({e}); trying again at {}",
                            spec.attempts,
                            crate::pipeline::report::utc(due)
                        );
                    }
                    let later = self.ledger.retry_later(&key, &self.owner, &e, due).await;
                    if self.hand_back_on_error(&key, later).await? {
                        match &self.mode {
                            Mode::Queue(q) => q.push(&key, due).await?,
                            Mode::Foreground => work.push_front((key, None)),
                        }
                    }
                }
                Err(e) => {
                    let text = match &e {
                        StageError::Transient(t) => {
                            format!("gave up after {attempt} attempt(s): {t}")
                        }
                        StageError::Unreachable(t) if matches!(self.mode, Mode::Foreground) => {
                            format!(
                                "{t} (unreachable: a foreground run stops here instead of waiting; `cybergov serve` keeps retrying)"
                            )
                        }
                        StageError::Unreachable(t) => {
                            format!("gave up after {attempt} attempt(s): {t}")
                        }
                        StageError::Permanent(t) => t.clone(),
                    };
                    let failed = self.ledger.fail(&key, &self.owner, &text).await;
                    if self.hand_back_on_error(&key, failed).await? {
                        tracing::error!(%key, attempt, error = %text, "stage failed; the run fails");
                        crate::metrics::stage_finished(&key.stage, "failed", started.elapsed());
                    } else {
                        // Another worker holds the stage now (this one's lease lapsed): its
                        // outcome is that worker's to record, not this failure.
                        tracing::warn!(%key, error = %text, "stage abandoned; another worker holds it");
                    }
                }
            }
        }
        Ok(())
    }

    /// A ledger write after the stage ran failed: the claim is handed back (the stage retrying,
    /// due now; best effort) instead of staying `running` under this worker's lease until the
    /// lease lapses, and the error is returned. Stages are idempotent, so running it again is
    /// safe; waiting out a lease is not needed.
    async fn hand_back_on_error<T>(
        &self,
        key: &StageKey,
        written: Result<T, LedgerError>,
    ) -> Result<T, EngineError> {
        let e = match written {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let note = format!("the ledger failed after the stage ran: {e}");
        if let Err(again) = self
            .ledger
            .retry_later(key, &self.owner, &note, now_ms())
            .await
        {
            tracing::warn!(%key, error = %again, "could not hand the claim back; it lapses with its lease");
        }
        Err(e.into())
    }

    /// Whether a failed attempt is tried again: a transient error always, an unreachable
    /// service only by a service (a foreground run fails fast), a permanent error never.
    fn retries(&self, err: &StageError) -> bool {
        match err {
            StageError::Transient(_) => true,
            StageError::Unreachable(_) => !matches!(self.mode, Mode::Foreground),
            StageError::Permanent(_) => false,
        }
    }

    /// Runs `work` while renewing this worker's claim on `key` every heartbeat, so the claim
    /// outlives a long stage but expires within a dead-worker timeout of this worker dying.
    async fn with_heartbeat<T>(&self, key: &StageKey, work: impl Future<Output = T>) -> T {
        let every = Duration::from_secs(self.settings.heartbeat_secs);
        let beat = async {
            loop {
                tokio::time::sleep(every).await;
                match self.ledger.renew(key, &self.owner, self.lease).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(%key, "claim lost while the stage ran"),
                    // A missed heartbeat is not fatal: the next one may succeed, and the lease
                    // lasts two of them.
                    Err(e) => tracing::warn!(%key, error = %e, "heartbeat failed"),
                }
            }
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => out,
            _ = beat => unreachable!("the heartbeat loop never ends"),
        }
    }

    /// Finds stages whose worker died (claim expired) or whose queue job was lost (overdue by
    /// more than the dead-worker timeout) and queues them again. Returns how many.
    pub async fn sweep(&self) -> Result<usize, EngineError> {
        let Mode::Queue(queue) = &self.mode else {
            return Ok(0);
        };
        let now = now_ms();
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let mut n = 0;
        for row in self.ledger.stale(now, now - lease).await? {
            let won = if row.state()? == StageState::Running {
                self.ledger.reclaim_expired(&row).await?
            } else {
                self.ledger.touch_overdue(&row).await?
            };
            if won {
                let key = row.key()?;
                tracing::warn!(%key, state = %row.state, "re-queueing a stalled stage");
                queue.push(&key, now).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
