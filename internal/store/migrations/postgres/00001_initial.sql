-- +goose Up
CREATE TABLE agents (
    agent_id    TEXT PRIMARY KEY,
    label       TEXT NOT NULL DEFAULT '',
    issuer      TEXT NOT NULL,
    status      TEXT NOT NULL,
    policy      TEXT NOT NULL DEFAULT '{}',
    token_hash  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Never a card number or CVV here: those live only encrypted in card_vault.
CREATE TABLE cards (
    id                 BIGSERIAL PRIMARY KEY,
    agent_id           TEXT NOT NULL REFERENCES agents(agent_id),
    generation         INTEGER NOT NULL,
    issuer             TEXT NOT NULL,
    issuer_card_id     TEXT NOT NULL,
    last4              TEXT NOT NULL,
    exp_month          INTEGER NOT NULL,
    exp_year           INTEGER NOT NULL,
    status             TEXT NOT NULL,
    daily_limit_minor  BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    closed_at          TIMESTAMPTZ,
    UNIQUE (issuer, issuer_card_id),
    UNIQUE (agent_id, generation)
);
CREATE INDEX cards_agent ON cards (agent_id, generation);

CREATE TABLE card_vault (
    issuer          TEXT NOT NULL,
    issuer_card_id  TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    nonce           BYTEA NOT NULL,
    ciphertext      BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, issuer_card_id)
);

CREATE TABLE ledger_events (
    id               BIGSERIAL PRIMARY KEY,
    issuer           TEXT NOT NULL,
    issuer_event_id  TEXT NOT NULL,
    agent_id         TEXT NOT NULL DEFAULT '',
    issuer_card_id   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    approved         BOOLEAN NOT NULL,
    decline_reason   TEXT NOT NULL DEFAULT '',
    raw_reason       TEXT NOT NULL DEFAULT '',
    authorization_id TEXT NOT NULL DEFAULT '',
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    merchant         TEXT NOT NULL DEFAULT '',
    mcc              TEXT NOT NULL DEFAULT '',
    source           TEXT NOT NULL,
    orphaned         BOOLEAN NOT NULL DEFAULT FALSE,
    occurred_at      TIMESTAMPTZ NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    signalled_at     TIMESTAMPTZ,
    UNIQUE (issuer, issuer_event_id)
);
CREATE INDEX ledger_agent_time ON ledger_events (agent_id, occurred_at);
CREATE INDEX ledger_card_time ON ledger_events (issuer, issuer_card_id, occurred_at);
CREATE INDEX ledger_unsignalled ON ledger_events (received_at) WHERE signalled_at IS NULL AND orphaned = FALSE;

CREATE TABLE daily_spend (
    agent_id         TEXT NOT NULL,
    day              TEXT NOT NULL,
    spent_minor      BIGINT NOT NULL DEFAULT 0,
    overspend_minor  BIGINT NOT NULL DEFAULT 0,
    declines         INTEGER NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, day)
);

CREATE TABLE alerts_sent (
    agent_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    period      TEXT NOT NULL,
    message     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    PRIMARY KEY (agent_id, kind, period)
);

CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    agent_id  TEXT NOT NULL DEFAULT '',
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_agent ON audit_log (agent_id, at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE alerts_sent;
DROP TABLE daily_spend;
DROP TABLE ledger_events;
DROP TABLE card_vault;
DROP TABLE cards;
DROP TABLE agents;
