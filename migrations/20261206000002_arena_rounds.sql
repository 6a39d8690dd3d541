-- The arena's prepared rounds (src/pipeline/ledger/battles.rs, issue #16): what a review session
-- will show, written before the reviewer sees anything, so that the terminal and the dashboard
-- show the same pairs and a session can be resumed. Which model wrote which text is kept here
-- and never shown; the battle of a round is in cybergov_battles once the reviewer has chosen.
CREATE TABLE IF NOT EXISTS cybergov_arena_rounds (
    session        TEXT    NOT NULL,
    round          BIGINT  NOT NULL,
    reviewer       TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    network        TEXT    NOT NULL,
    referendum     BIGINT  NOT NULL,
    run            BIGINT  NOT NULL,
    juror          TEXT    NOT NULL,
    candidate      TEXT    NOT NULL,
    incumbent      TEXT    NOT NULL,
    model_a        TEXT    NOT NULL,
    model_b        TEXT    NOT NULL,
    content_sha256 TEXT    NOT NULL,
    text_a         TEXT    NOT NULL,
    text_b         TEXT    NOT NULL,
    PRIMARY KEY (session, round)
);
