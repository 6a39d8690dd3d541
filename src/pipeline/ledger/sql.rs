//! The statement text of the ledger, and the arguments each statement binds.

use super::db::Arg;
use super::rows::{RunState, StageKey, StageState, now_ms};
use std::time::Duration;

pub(super) const KEY_WHERE: &str = "network = $1 AND referendum = $2 AND run = $3 AND stage = $4";

pub(super) fn key_args(key: &StageKey) -> [Arg<'_>; 4] {
    [
        Arg::T(key.network.as_str()),
        Arg::I(i64::from(key.referendum)),
        Arg::I(i64::from(key.run)),
        Arg::T(&key.stage),
    ]
}

/// `$first, $first+1, …`: `n` placeholders.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts the next run of `$1` (network) #`$2` (referendum): one after its last run, or `$3`
/// if that is higher; state `$4`, previous run `$5`, from stage `$6`, created at `$7`. With
/// `$8` = 1, only if it has no run at all. Inserts nothing on a conflict (a concurrent creator
/// took the number). Returns the run.
pub(super) const INSERT_RUN: &str = "INSERT INTO cybergov_runs \
     (network, referendum, run, state, previous_run, from_stage, created_at) \
     SELECT $1, $2, CASE WHEN COALESCE(last, 0) + 1 < $3 THEN $3 ELSE COALESCE(last, 0) + 1 END, \
     $4, $5, $6, $7 \
     FROM (SELECT MAX(run) AS last, COUNT(*) AS n FROM cybergov_runs \
     WHERE network = $1 AND referendum = $2) AS prev \
     WHERE $8 < 0 OR COALESCE(last, 0) = $8 \
     ON CONFLICT DO NOTHING RETURNING run";

/// The columns of a new stage row after its key ([`new_stage_args`] gives their values).
pub(super) const NEW_STAGE_COLUMNS: &str =
    "state, attempts, due_at, created_at, started_at, lease_owner, lease_expires_at";

/// How many [`NEW_STAGE_COLUMNS`] there are.
pub(super) const NEW_STAGE_ARGS: usize = 7;

/// The values of [`NEW_STAGE_COLUMNS`] for a stage due at `due_at`: scheduled, or already
/// running as attempt 1 with a claim by `claimed_by`'s owner for its lease.
pub(super) fn new_stage_args(
    due_at: i64,
    claimed_by: Option<(&str, Duration)>,
) -> [Arg<'_>; NEW_STAGE_ARGS] {
    let now = now_ms();
    match claimed_by {
        None => [
            Arg::T(StageState::Scheduled.as_str()),
            Arg::I(0),
            Arg::I(due_at),
            Arg::I(now),
            Arg::OptI(None),
            Arg::OptT(None),
            Arg::OptI(None),
        ],
        Some((owner, lease)) => {
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
            [
                Arg::T(StageState::Running.as_str()),
                Arg::I(1),
                Arg::I(due_at),
                Arg::I(now),
                Arg::OptI(Some(now)),
                Arg::OptT(Some(owner)),
                Arg::OptI(Some(now.saturating_add(lease_ms))),
            ]
        }
    }
}

/// The statement that ends `owner`'s claim on running stage `key`, setting `set` (SQL
/// assignments whose placeholders start at `$5`, bound to `values`), and its arguments. It
/// changes nothing when `owner` no longer holds the claim (it expired and another worker took
/// the stage over), so the caller records nothing.
pub(super) fn release_statement<'a>(
    key: &'a StageKey,
    owner: &'a str,
    set: &str,
    values: &[Arg<'a>],
) -> (String, Vec<Arg<'a>>) {
    let state_at = 5 + values.len();
    let sql = format!(
        "UPDATE cybergov_stages SET {set}, lease_owner = NULL, lease_expires_at = NULL \
         WHERE {KEY_WHERE} AND state = ${state_at} AND lease_owner = ${}",
        state_at + 1
    );
    let mut args = key_args(key).to_vec();
    args.extend(values.iter().copied());
    args.push(Arg::T(StageState::Running.as_str()));
    args.push(Arg::T(owner));
    (sql, args)
}

/// Ends the run of `$1` (network) #`$2` (referendum) run `$3` in state `$first` at time
/// `$first+1`, if it is still active (`$first+2`) and `condition` holds ([`end_run_values`]).
pub(super) fn end_run_sql(first: usize, condition: &str) -> String {
    format!(
        "UPDATE cybergov_runs SET state = ${first}, finished_at = ${} \
         WHERE network = $1 AND referendum = $2 AND run = $3 AND state = ${}{condition}",
        first + 1,
        first + 2
    )
}

/// The values of [`end_run_sql`]'s own placeholders, ending it in `state`.
pub(super) fn end_run_values(state: RunState) -> [Arg<'static>; 3] {
    [
        Arg::T(state.as_str()),
        Arg::I(now_ms()),
        Arg::T(RunState::Active.as_str()),
    ]
}

/// Completes the run of `$1`–`$3` ([`end_run_sql`]) if every stage of it (but `$4`, the one
/// being completed, when `but_this_stage`) is completed or skipped. Its own placeholders start
/// at `$first` ([`finish_if_done_values`]).
pub(super) fn finish_if_done_sql(first: usize, but_this_stage: bool) -> String {
    end_run_sql(
        first,
        &format!(
            " AND NOT EXISTS (SELECT 1 FROM cybergov_stages s \
             WHERE s.network = $1 AND s.referendum = $2 AND s.run = $3{} \
             AND s.state NOT IN (${}, ${}))",
            if but_this_stage {
                " AND s.stage <> $4"
            } else {
                ""
            },
            first + 3,
            first + 4
        ),
    )
}

/// The values of [`finish_if_done_sql`]'s own placeholders.
pub(super) fn finish_if_done_values() -> Vec<Arg<'static>> {
    let mut values = end_run_values(RunState::Completed).to_vec();
    values.push(Arg::T(StageState::Completed.as_str()));
    values.push(Arg::T(StageState::Skipped.as_str()));
    values
}

/// `key`'s run (`$1`–`$3`), then `values`: the arguments of a statement on the run.
pub(super) fn run_args<'a>(key: &'a StageKey, values: &[Arg<'a>]) -> Vec<Arg<'a>> {
    let mut args = key_args(key)[..3].to_vec();
    args.extend_from_slice(values);
    args
}

/// The arguments of `finish_if_done_sql(4, false)` for `key`'s run.
pub(super) fn finish_if_done_args(key: &StageKey) -> Vec<Arg<'_>> {
    run_args(key, &finish_if_done_values())
}
