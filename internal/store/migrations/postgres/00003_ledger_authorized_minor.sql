-- +goose Up
-- What a capture's authorization approved, as the issuer said (0 when it did not), so the
-- ledger counts an over-capture whichever webhook arrives first, as the workflow does.
ALTER TABLE ledger_events ADD COLUMN authorized_minor BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE ledger_events DROP COLUMN authorized_minor;
