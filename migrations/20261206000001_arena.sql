-- The arena's battles (src/pipeline/ledger/battles.rs, issue #16): one row per round of a review
-- session, the same SQL for SQLite and PostgreSQL. Times are Unix milliseconds, UTC.
CREATE TABLE IF NOT EXISTS cybergov_battles (
    session    TEXT    NOT NULL,
    round      BIGINT  NOT NULL,
    reviewer   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    network    TEXT    NOT NULL,
    referendum BIGINT  NOT NULL,
    run        BIGINT  NOT NULL,
    model_a    TEXT    NOT NULL,
    model_b    TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    PRIMARY KEY (session, round)
);
