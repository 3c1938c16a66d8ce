package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Alerts: each sent at most once per agent, kind and period.

// Alert statuses.
const (
	AlertPending = "pending"
	AlertSent    = "sent"
)

// Alert is one alert for an agent, kind and period (e.g. threshold-80 on 2026-11-28).
type Alert struct {
	AgentID   string       `db:"agent_id" json:"agent_id"`
	Kind      string       `db:"kind" json:"kind"`
	Period    string       `db:"period" json:"period"`
	Message   string       `db:"message" json:"message"`
	Status    string       `db:"status" json:"status"`
	Attempts  int          `db:"attempts" json:"attempts"`
	CreatedAt time.Time    `db:"created_at" json:"created_at"`
	SentAt    sql.NullTime `db:"sent_at" json:"-"`
}

// ClaimAlert records the alert as pending unless it exists and returns the stored row, so a
// caller sends only what is not yet sent and an alert fires once per agent, kind and period.
func (s *Store) ClaimAlert(ctx context.Context, a Alert) (Alert, error) {
	_, err := s.exec(ctx, `
INSERT INTO alerts_sent (agent_id, kind, period, message, status, attempts, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)
ON CONFLICT (agent_id, kind, period) DO NOTHING`, a.AgentID, a.Kind, a.Period, a.Message, AlertPending, utc(time.Now()))
	if err != nil {
		return Alert{}, fmt.Errorf("claim alert %s/%s/%s: %w", a.AgentID, a.Kind, a.Period, err)
	}
	var got Alert
	if err := s.get(ctx, &got, `SELECT * FROM alerts_sent WHERE agent_id = ? AND kind = ? AND period = ?`, a.AgentID, a.Kind, a.Period); err != nil {
		return Alert{}, fmt.Errorf("claim alert %s/%s/%s: %w", a.AgentID, a.Kind, a.Period, err)
	}
	return got, nil
}

// MarkAlertAttempt records a delivery attempt; sent marks it delivered.
func (s *Store) MarkAlertAttempt(ctx context.Context, agentID, kind, period string, sent bool) error {
	q := `UPDATE alerts_sent SET attempts = attempts + 1 WHERE agent_id = ? AND kind = ? AND period = ?`
	args := []any{agentID, kind, period}
	if sent {
		q = `UPDATE alerts_sent SET attempts = attempts + 1, status = ?, sent_at = ? WHERE agent_id = ? AND kind = ? AND period = ?`
		args = []any{AlertSent, utc(time.Now()), agentID, kind, period}
	}
	return s.updateOne(ctx, "mark alert attempt", q, args...)
}

// ListAlerts returns the agent's alerts (all agents when agentID is empty), newest first.
func (s *Store) ListAlerts(ctx context.Context, agentID string, limit int) ([]Alert, error) {
	if agentID == "" {
		return list[Alert](ctx, s, "list alerts", `SELECT * FROM alerts_sent ORDER BY created_at DESC LIMIT ?`, limit)
	}
	return list[Alert](ctx, s, "list alerts", `SELECT * FROM alerts_sent WHERE agent_id = ? ORDER BY created_at DESC LIMIT ?`, agentID, limit)
}
