package store

import (
	"context"
	"fmt"
	"time"
)

// Agents and their credential-pull tokens. Token hashes are SHA-256 hex digests; the tokens
// themselves are never stored.

// Agent is an agent cardwarden manages. Policy is the agent's policy as JSON.
type Agent struct {
	AgentID   string    `db:"agent_id" json:"agent_id"`
	Label     string    `db:"label" json:"label"`
	Issuer    string    `db:"issuer" json:"issuer"`
	Status    string    `db:"status" json:"status"`
	Policy    string    `db:"policy" json:"policy"`
	TokenHash string    `db:"token_hash" json:"-"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// UpsertAgent creates the agent or updates its label, issuer, status and policy. The token
// hash is kept unless a new one is given.
func (s *Store) UpsertAgent(ctx context.Context, a Agent) error {
	now := utc(time.Now())
	_, err := s.exec(ctx, `
INSERT INTO agents (agent_id, label, issuer, status, policy, token_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET
  label = excluded.label, issuer = excluded.issuer, status = excluded.status, policy = excluded.policy,
  token_hash = CASE WHEN excluded.token_hash = '' THEN agents.token_hash ELSE excluded.token_hash END,
  updated_at = excluded.updated_at`,
		a.AgentID, a.Label, a.Issuer, a.Status, a.Policy, a.TokenHash, now, now)
	if err != nil {
		return fmt.Errorf("upsert agent %s: %w", a.AgentID, err)
	}
	return nil
}

// GetAgent returns one agent or ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, agentID string) (Agent, error) {
	return one[Agent](ctx, s, fmt.Sprintf("get agent %s", agentID), `SELECT * FROM agents WHERE agent_id = ?`, agentID)
}

// ListAgents returns every agent, ordered by id.
func (s *Store) ListAgents(ctx context.Context) ([]Agent, error) {
	return list[Agent](ctx, s, "list agents", `SELECT * FROM agents ORDER BY agent_id`)
}

// SetAgentStatus records the agent's lifecycle status (active, frozen, revoked, retired).
func (s *Store) SetAgentStatus(ctx context.Context, agentID, status string) error {
	return s.updateOne(ctx, "set agent status", `UPDATE agents SET status = ?, updated_at = ? WHERE agent_id = ?`,
		status, utc(time.Now()), agentID)
}

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

func orEmptyObject(s string) string {
	if s == "" {
		return "{}"
	}
	return s
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
