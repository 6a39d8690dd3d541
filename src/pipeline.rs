//! The job graph as a framework: stages a run goes through, run idempotently by apalis workers
//! over a ledger. It knows no stage and no `Config`: the six built-in stages are handlers that
//! `crate::wiring` registers, and the hourly dispatch is a [`service::Tick`] it passes in.
//!
//! - [`graph`]: `jobs/pipeline.toml` — stages, successors, retries, timeouts, delays; checked.
//! - [`settings`]: the `[pipeline]` configuration.
//! - [`ledger`]: runs and stages keyed by (network, referendum, run, stage), atomic claims.
//! - [`queue`]: apalis on SQLite (default) or PostgreSQL.
//! - [`handler`]: stage name → code, through the [`handler::StageHandler`] trait.
//! - [`engine`]: claim, run, record, hand off; the sweeper for dead workers.
//! - [`service`]: `cybergov serve` — cron dispatch, workers, graceful shutdown.
//! - [`rerun`]: run + 1, reusing the stages before `--from`.
//! - [`report`]: `cybergov status`'s rendering.

pub mod claim;
pub mod engine;
pub mod graph;
pub mod handler;
pub mod ledger;
pub mod queue;
pub mod report;
pub mod rerun;
pub mod service;
pub mod settings;
