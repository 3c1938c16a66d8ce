-- +goose Up
-- The management API's Idempotency-Key records: the first answer to a key is replayed to a
-- retry with the same request, and a retry with another request is refused. In the database,
-- not in memory, so a retry that reaches another API replica gets the same answer. Answers
-- that carry a secret (an agent's token) are kept sealed by the vault key.
CREATE TABLE idempotency_keys (
    idem_key     TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    body         BYTEA,
    sealed       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
