package store

import (
	"context"
	"fmt"
	"time"
)

// The audit log: human actions and credential reveals.

// AuditEntry is one human action or credential reveal.
type AuditEntry struct {
	ID      int64     `db:"id" json:"id"`
	At      time.Time `db:"at" json:"at"`
	Actor   string    `db:"actor" json:"actor"`
	Action  string    `db:"action" json:"action"`
	AgentID string    `db:"agent_id" json:"agent_id"`
	Detail  string    `db:"detail" json:"detail"`
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := s.exec(ctx, `INSERT INTO audit_log (at, actor, action, agent_id, detail) VALUES (?, ?, ?, ?, ?)`,
		utc(at), e.Actor, e.Action, e.AgentID, e.Detail); err != nil {
		return fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// ListAudit returns the agent's audit entries (all when agentID is empty), newest first.
func (s *Store) ListAudit(ctx context.Context, agentID string, limit int) ([]AuditEntry, error) {
	if agentID == "" {
		return list[AuditEntry](ctx, s, "list audit", `SELECT * FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	}
	return list[AuditEntry](ctx, s, "list audit", `SELECT * FROM audit_log WHERE agent_id = ? ORDER BY id DESC LIMIT ?`, agentID, limit)
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
