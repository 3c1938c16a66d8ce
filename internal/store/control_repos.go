package store

import (
	"context"
	"fmt"
	"time"
)

// Repositories for the control surfaces (starter, internal/api, the CLI): agents'
// credential-pull tokens and the reveal rate limit. Token hashes are SHA-256 hex digests; the
// tokens themselves are never stored.

// ClaimAgentToken stores tokenHash as the agent's token unless the agent already has one, and
// creates the agent row (with a's label, issuer, status and policy) when it does not exist yet:
// the workflow records the agent asynchronously, and the token must not wait for it. It reports
// whether the hash was stored, so a repeated "create" never silently replaces a token someone
// already holds.
func (s *Store) ClaimAgentToken(ctx context.Context, a Agent, tokenHash string) (bool, error) {
	if tokenHash == "" {
		return false, fmt.Errorf("claim token of agent %s: empty hash", a.AgentID)
	}
	now := utc(time.Now())
	res, err := s.exec(ctx, `
INSERT INTO agents (agent_id, label, issuer, status, policy, token_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET token_hash = excluded.token_hash, updated_at = excluded.updated_at
WHERE agents.token_hash = ''`,
		a.AgentID, a.Label, a.Issuer, a.Status, orEmptyObject(a.Policy), tokenHash, now, now)
	if err != nil {
		return false, fmt.Errorf("claim token of agent %s: %w", a.AgentID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim token of agent %s: %w", a.AgentID, err)
	}
	return n > 0, nil
}

// ReplaceAgentToken stores tokenHash as the agent's token whether or not it had one (token
// rotation), creating the row like ClaimAgentToken when needed. The old token stops working at
// once.
func (s *Store) ReplaceAgentToken(ctx context.Context, a Agent, tokenHash string) error {
	if tokenHash == "" {
		return fmt.Errorf("replace token of agent %s: empty hash", a.AgentID)
	}
	now := utc(time.Now())
	_, err := s.exec(ctx, `
INSERT INTO agents (agent_id, label, issuer, status, policy, token_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET token_hash = excluded.token_hash, updated_at = excluded.updated_at`,
		a.AgentID, a.Label, a.Issuer, a.Status, orEmptyObject(a.Policy), tokenHash, now, now)
	if err != nil {
		return fmt.Errorf("replace token of agent %s: %w", a.AgentID, err)
	}
	return nil
}

// CountAudit counts the agent's audit entries with action at or after since. The credential
// pull's rate limit counts reveals here, so it holds across every API replica.
func (s *Store) CountAudit(ctx context.Context, agentID, action string, since time.Time) (int, error) {
	var n int
	err := s.get(ctx, &n, `SELECT COUNT(*) FROM audit_log WHERE agent_id = ? AND action = ? AND at >= ?`, agentID, action, utc(since))
	if err != nil {
		return 0, fmt.Errorf("count %s audit entries of agent %s: %w", action, agentID, err)
	}
	return n, nil
}

func orEmptyObject(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

// ClaimReveal appends e (a credential reveal) to the audit log only when the agent has had
// fewer than limit entries with e's action since since, and reports whether it did. Count and
// insert happen in one transaction that first locks the agent's row (Postgres; SQLite runs
// one writer at a time), so concurrent pulls, on any number of API replicas, cannot all see
// room under the limit: exactly limit reveals succeed per window.
func (s *Store) ClaimReveal(ctx context.Context, e AuditEntry, limit int, since time.Time) (bool, error) {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("claim reveal of agent %s: %w", e.AgentID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if s.dialect == Postgres {
		// The agent's row exists (its token was just verified against it); locking it
		// serializes reveals per agent and nothing else.
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM agents WHERE agent_id = $1 FOR UPDATE`, e.AgentID); err != nil {
			return false, fmt.Errorf("claim reveal of agent %s: %w", e.AgentID, err)
		}
	} else {
		// Take SQLite's write lock before counting.
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET agent_id = agent_id WHERE agent_id = ?`, e.AgentID); err != nil {
			return false, fmt.Errorf("claim reveal of agent %s: %w", e.AgentID, err)
		}
	}
	var n int
	if err := tx.GetContext(ctx, &n, s.rebind(`SELECT COUNT(*) FROM audit_log WHERE agent_id = ? AND action = ? AND at >= ?`),
		e.AgentID, e.Action, utc(since)); err != nil {
		return false, fmt.Errorf("claim reveal of agent %s: %w", e.AgentID, err)
	}
	if n >= limit {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO audit_log (at, actor, action, agent_id, detail) VALUES (?, ?, ?, ?, ?)`),
		utc(at), e.Actor, e.Action, e.AgentID, e.Detail); err != nil {
		return false, fmt.Errorf("claim reveal of agent %s: %w", e.AgentID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("claim reveal of agent %s: commit: %w", e.AgentID, err)
	}
	return true, nil
}

// RevokeAgentToken removes the agent's credential-pull token and its push key: the token stops
// working at once, and a later ClaimAgentToken (a new agent with the same id) issues a new one.
// Retiring an agent calls it.
func (s *Store) RevokeAgentToken(ctx context.Context, agentID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke token of agent %s: %w", agentID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE agents SET token_hash = '', updated_at = ? WHERE agent_id = ?`), utc(time.Now()), agentID); err != nil {
		return fmt.Errorf("revoke token of agent %s: %w", agentID, err)
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM agent_push_keys WHERE agent_id = ?`), agentID); err != nil {
		return fmt.Errorf("revoke token of agent %s: %w", agentID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke token of agent %s: commit: %w", agentID, err)
	}
	return nil
}

// PushKey is an agent's credential-push signing key, sealed by the vault (never plaintext).
type PushKey struct {
	AgentID    string    `db:"agent_id"`
	KeyID      string    `db:"key_id"`
	Nonce      []byte    `db:"nonce"`
	Ciphertext []byte    `db:"ciphertext"`
	CreatedAt  time.Time `db:"created_at"`
}

// PutPushKey stores (or replaces) the agent's sealed push key.
func (s *Store) PutPushKey(ctx context.Context, k PushKey) error {
	_, err := s.exec(ctx, `
INSERT INTO agent_push_keys (agent_id, key_id, nonce, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext,
  created_at = excluded.created_at`, k.AgentID, k.KeyID, k.Nonce, k.Ciphertext, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("store push key of agent %s: %w", k.AgentID, err)
	}
	return nil
}

// GetPushKey returns the agent's sealed push key or ErrNotFound.
func (s *Store) GetPushKey(ctx context.Context, agentID string) (PushKey, error) {
	var k PushKey
	if err := s.get(ctx, &k, `SELECT * FROM agent_push_keys WHERE agent_id = ?`, agentID); err != nil {
		return PushKey{}, fmt.Errorf("push key of agent %s: %w", agentID, err)
	}
	return k, nil
}

// DeletePushKey removes the agent's push key (its token was replaced by a process without the
// vault key, so the old key no longer matches any token).
func (s *Store) DeletePushKey(ctx context.Context, agentID string) error {
	if _, err := s.exec(ctx, `DELETE FROM agent_push_keys WHERE agent_id = ?`, agentID); err != nil {
		return fmt.Errorf("delete push key of agent %s: %w", agentID, err)
	}
	return nil
}
