package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Cards: each generation an agent was issued, never its number or CVV.

// Card is a card's public record: never its number or CVV.
type Card struct {
	ID              int64        `db:"id" json:"-"`
	AgentID         string       `db:"agent_id" json:"agent_id"`
	Generation      int          `db:"generation" json:"generation"`
	Issuer          string       `db:"issuer" json:"issuer"`
	IssuerCardID    string       `db:"issuer_card_id" json:"issuer_card_id"`
	Last4           string       `db:"last4" json:"last4"`
	ExpMonth        int          `db:"exp_month" json:"exp_month"`
	ExpYear         int          `db:"exp_year" json:"exp_year"`
	Status          string       `db:"status" json:"status"`
	DailyLimitMinor int64        `db:"daily_limit_minor" json:"daily_limit_minor"`
	CreatedAt       time.Time    `db:"created_at" json:"created_at"`
	ClosedAt        sql.NullTime `db:"closed_at" json:"-"`
}

// RecordCard stores a newly issued card. Recording the same issuer card again is a no-op, so
// a retried activity cannot create a second row; a different card for a generation the agent
// already has is an error, because that would mean two cards were issued for one step.
func (s *Store) RecordCard(ctx context.Context, c Card) error {
	_, err := s.RecordNewCard(ctx, c)
	return err
}

// RecordNewCard is RecordCard that also says whether this call recorded the card (false when
// a retried activity had recorded it already), so what follows a first record, like its audit
// entry, happens once.
func (s *Store) RecordNewCard(ctx context.Context, c Card) (bool, error) {
	created := c.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	res, err := s.exec(ctx, `
INSERT INTO cards (agent_id, generation, issuer, issuer_card_id, last4, exp_month, exp_year, status, daily_limit_minor, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_card_id) DO NOTHING`,
		c.AgentID, c.Generation, c.Issuer, c.IssuerCardID, c.Last4, c.ExpMonth, c.ExpYear, c.Status, c.DailyLimitMinor, utc(created))
	if err != nil {
		return false, fmt.Errorf("record card %s generation %d of agent %s: %w", c.IssuerCardID, c.Generation, c.AgentID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		existing, err := s.CardByIssuerID(ctx, c.Issuer, c.IssuerCardID)
		if err != nil {
			return false, err
		}
		if existing.AgentID != c.AgentID || existing.Generation != c.Generation {
			return false, fmt.Errorf("record card %s: already recorded for agent %s generation %d", c.IssuerCardID, existing.AgentID, existing.Generation)
		}
		return false, nil
	}
	return true, nil
}

// SetCardStatus records a card's new status; closing also stamps closed_at once.
func (s *Store) SetCardStatus(ctx context.Context, issuer, issuerCardID, status string, at time.Time) error {
	q := `UPDATE cards SET status = ? WHERE issuer = ? AND issuer_card_id = ?`
	args := []any{status, issuer, issuerCardID}
	if status == "closed" {
		q = `UPDATE cards SET status = ?, closed_at = COALESCE(closed_at, ?) WHERE issuer = ? AND issuer_card_id = ?`
		args = []any{status, utc(at), issuer, issuerCardID}
	}
	return s.updateOne(ctx, "set card status", q, args...)
}

// SetCardDailyLimit records the limit the card was last set to.
func (s *Store) SetCardDailyLimit(ctx context.Context, issuer, issuerCardID string, limitMinor int64) error {
	return s.updateOne(ctx, "set card limit", `UPDATE cards SET daily_limit_minor = ? WHERE issuer = ? AND issuer_card_id = ?`,
		limitMinor, issuer, issuerCardID)
}

// CardByIssuerID finds the card an issuer event refers to, and so its agent.
func (s *Store) CardByIssuerID(ctx context.Context, issuer, issuerCardID string) (Card, error) {
	return one[Card](ctx, s, fmt.Sprintf("card %s/%s", issuer, issuerCardID), `SELECT * FROM cards WHERE issuer = ? AND issuer_card_id = ?`, issuer, issuerCardID)
}

// CurrentCard is the agent's newest card that is not closed.
func (s *Store) CurrentCard(ctx context.Context, agentID string) (Card, error) {
	return one[Card](ctx, s, fmt.Sprintf("current card of agent %s", agentID),
		`SELECT * FROM cards WHERE agent_id = ? AND status <> 'closed' ORDER BY generation DESC LIMIT 1`, agentID)
}

// ListCards returns every card the agent ever had, oldest generation first.
func (s *Store) ListCards(ctx context.Context, agentID string) ([]Card, error) {
	return list[Card](ctx, s, fmt.Sprintf("list cards of agent %s", agentID), `SELECT * FROM cards WHERE agent_id = ? ORDER BY generation`, agentID)
}
