-- +goose Up
-- Each agent's credential-push signing key (HMAC-SHA256 of its token, see starter.PushKey),
-- sealed with the vault key: read access to the database is not enough to sign a push.
CREATE TABLE agent_push_keys (
    agent_id    TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  DATETIME NOT NULL
);
-- Agents retired before retirement revoked tokens lose theirs now.
UPDATE agents SET token_hash = '' WHERE status = 'retired';

-- +goose Down
DROP TABLE agent_push_keys;
