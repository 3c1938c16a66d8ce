-- +goose NO TRANSACTION
-- +goose Up
-- Recording an event reads the earlier events of its authorization (what a capture or reversal
-- changes depends on them); without this index each webhook scanned the issuer's whole ledger.
-- CONCURRENTLY: a large ledger keeps taking webhooks while the index builds. If the build is
-- interrupted, drop the INVALID index it leaves (DROP INDEX CONCURRENTLY ledger_authorization)
-- and run `cardwarden migrate` again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS ledger_authorization ON ledger_events (issuer, authorization_id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS ledger_authorization;
