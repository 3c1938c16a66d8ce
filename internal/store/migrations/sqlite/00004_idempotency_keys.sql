-- +goose Up
-- The management API's Idempotency-Key records (see the Postgres migration).
CREATE TABLE idempotency_keys (
    idem_key     TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    sealed       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   DATETIME NOT NULL
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
