-- +goose Up
-- Recording an event reads the earlier events of its authorization (what a capture or reversal
-- changes depends on them); without this index each webhook scanned the issuer's whole ledger.
CREATE INDEX IF NOT EXISTS ledger_authorization ON ledger_events (issuer, authorization_id);

-- +goose Down
DROP INDEX IF EXISTS ledger_authorization;
