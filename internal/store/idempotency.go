package store

import (
	"context"
	"fmt"
	"time"
)

// The management API's Idempotency-Key records, shared by every API replica.

// IdempotentRequest is the record of one Idempotency-Key: the request it was first used with
// (Fingerprint) and, once answered, that answer. Status 0 means the first request is still
// being answered.
type IdempotentRequest struct {
	Key         string    `db:"idem_key"`
	Fingerprint string    `db:"fingerprint"`
	Status      int       `db:"status"`
	Body        []byte    `db:"body"`
	Sealed      bool      `db:"sealed"`
	CreatedAt   time.Time `db:"created_at"`
}

// ClaimIdempotencyKey records key for the request fingerprint, unless it is recorded already.
// It returns claimed = true when this call recorded it (the caller answers the request and
// then calls FinishIdempotencyKey or ReleaseIdempotencyKey), else the existing record.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key, fingerprint string, now time.Time) (IdempotentRequest, bool, error) {
	res, err := s.exec(ctx, `INSERT INTO idempotency_keys (idem_key, fingerprint, status, created_at) VALUES (?, ?, 0, ?)
ON CONFLICT (idem_key) DO NOTHING`, key, fingerprint, utc(now))
	if err != nil {
		return IdempotentRequest{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return IdempotentRequest{Key: key, Fingerprint: fingerprint, CreatedAt: utc(now)}, true, nil
	}
	r, err := one[IdempotentRequest](ctx, s, "idempotency key", `SELECT * FROM idempotency_keys WHERE idem_key = ?`, key)
	if IsNotFound(err) {
		// Released between the insert and the read: try once more.
		return s.ClaimIdempotencyKey(ctx, key, fingerprint, now)
	}
	return r, false, err
}

// TakeOverIdempotencyKey claims a key whose first request was abandoned (still unanswered and
// started before staleBefore: its process died). True when this call took it over.
func (s *Store) TakeOverIdempotencyKey(ctx context.Context, key, fingerprint string, staleBefore, now time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE idempotency_keys SET created_at = ? WHERE idem_key = ? AND fingerprint = ? AND status = 0 AND created_at < ?`,
		utc(now), key, fingerprint, utc(staleBefore))
	if err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishIdempotencyKey stores the answer to the key's first request.
func (s *Store) FinishIdempotencyKey(ctx context.Context, key string, status int, body []byte, sealed bool) error {
	if _, err := s.exec(ctx, `UPDATE idempotency_keys SET status = ?, body = ?, sealed = ? WHERE idem_key = ?`, status, body, sealed, key); err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a key whose request failed in a way worth retrying (Temporal
// unreachable, an internal error), so the retry runs again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM idempotency_keys WHERE idem_key = ?`, key); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys forgets keys first used before before (they are kept 24 hours).
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, before time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, utc(before)); err != nil {
		return fmt.Errorf("purge idempotency keys: %w", err)
	}
	return nil
}
