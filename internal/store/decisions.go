package store

import (
	"context"
	"fmt"
	"time"
)

// Decisions: cardwarden's answer to each real-time authorization request, first answer wins.

// Decision is one answered authorization request. Fallback marks an answer given without the
// agent's workflow (it could not answer in time).
type Decision struct {
	Issuer          string    `db:"issuer" json:"issuer"`
	AuthorizationID string    `db:"authorization_id" json:"authorization_id"`
	AgentID         string    `db:"agent_id" json:"agent_id"`
	TeamID          string    `db:"team_id" json:"team_id,omitempty"`
	IssuerCardID    string    `db:"issuer_card_id" json:"issuer_card_id"`
	AmountMinor     int64     `db:"amount_minor" json:"amount_minor"`
	Currency        string    `db:"currency" json:"currency"`
	Merchant        string    `db:"merchant" json:"merchant,omitempty"`
	MCC             string    `db:"mcc" json:"mcc,omitempty"`
	Approved        bool      `db:"approved" json:"approved"`
	Reason          string    `db:"reason" json:"reason"`
	Fallback        bool      `db:"fallback" json:"fallback"`
	LatencyMS       int       `db:"latency_ms" json:"latency_ms"`
	DecidedAt       time.Time `db:"decided_at" json:"decided_at"`
}

// RecordDecision stores d unless a decision for the same issuer and authorization exists, and
// returns the stored one with first = true when it is d. Two deliveries of one request that
// race are answered alike: whichever is stored first.
func (s *Store) RecordDecision(ctx context.Context, d Decision) (Decision, bool, error) {
	res, err := s.exec(ctx, `
INSERT INTO decisions (issuer, authorization_id, agent_id, team_id, issuer_card_id, amount_minor, currency, merchant, mcc,
  approved, reason, fallback, latency_ms, decided_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, authorization_id) DO NOTHING`,
		d.Issuer, d.AuthorizationID, d.AgentID, d.TeamID, d.IssuerCardID, d.AmountMinor, d.Currency, d.Merchant, d.MCC,
		d.Approved, d.Reason, d.Fallback, d.LatencyMS, utc(d.DecidedAt))
	if err != nil {
		return Decision{}, false, fmt.Errorf("record decision %s/%s: %w", d.Issuer, d.AuthorizationID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		d.DecidedAt = utc(d.DecidedAt)
		return d, true, nil
	}
	got, err := s.GetDecision(ctx, d.Issuer, d.AuthorizationID)
	return got, false, err
}

// GetDecision returns the decision on one authorization or ErrNotFound.
func (s *Store) GetDecision(ctx context.Context, issuer, authorizationID string) (Decision, error) {
	return one[Decision](ctx, s, fmt.Sprintf("get decision %s/%s", issuer, authorizationID),
		`SELECT * FROM decisions WHERE issuer = ? AND authorization_id = ?`, issuer, authorizationID)
}

// ListDecisions returns the agent's decisions (all agents' when agentID is empty), newest first.
func (s *Store) ListDecisions(ctx context.Context, agentID string, limit int) ([]Decision, error) {
	if agentID == "" {
		return list[Decision](ctx, s, "list decisions", `SELECT * FROM decisions ORDER BY decided_at DESC LIMIT ?`, limit)
	}
	return list[Decision](ctx, s, "list decisions", `SELECT * FROM decisions WHERE agent_id = ? ORDER BY decided_at DESC LIMIT ?`, agentID, limit)
}
