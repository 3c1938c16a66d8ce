-- +goose Up
-- Real-time decisions: one row per issuer authorization cardwarden was asked about, written
-- before the answer leaves, so a redelivered request gets the same answer (the primary key)
-- and every fallback is on record.
CREATE TABLE decisions (
    issuer            TEXT NOT NULL,
    authorization_id  TEXT NOT NULL,
    agent_id          TEXT NOT NULL,
    team_id           TEXT NOT NULL DEFAULT '',
    issuer_card_id    TEXT NOT NULL,
    amount_minor      BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    merchant          TEXT NOT NULL DEFAULT '',
    mcc               TEXT NOT NULL DEFAULT '',
    approved          BOOLEAN NOT NULL,
    reason            TEXT NOT NULL,
    fallback          BOOLEAN NOT NULL DEFAULT FALSE,
    latency_ms        INTEGER NOT NULL,
    decided_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, authorization_id)
);
CREATE INDEX decisions_agent ON decisions (agent_id, decided_at);

-- +goose Down
DROP TABLE decisions;
