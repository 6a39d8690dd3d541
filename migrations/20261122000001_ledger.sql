-- The job ledger (src/pipeline/ledger.rs), the same SQL for SQLite and PostgreSQL. Times are Unix
-- milliseconds, UTC.
CREATE TABLE IF NOT EXISTS cybergov_runs (
    network      TEXT    NOT NULL,
    referendum   BIGINT  NOT NULL,
    run          BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    previous_run BIGINT,
    from_stage   TEXT,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    PRIMARY KEY (network, referendum, run)
);

CREATE TABLE IF NOT EXISTS cybergov_stages (
    network          TEXT    NOT NULL,
    referendum       BIGINT  NOT NULL,
    run              BIGINT  NOT NULL,
    stage            TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    error            TEXT,
    outputs          TEXT,
    note             TEXT,
    due_at           BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    PRIMARY KEY (network, referendum, run, stage)
);

CREATE INDEX IF NOT EXISTS cybergov_stages_state_due ON cybergov_stages (state, due_at);
