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
