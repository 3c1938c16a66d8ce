package store

import (
	"context"
	"fmt"
	"time"
)

// Daily spend: what the ledger's events add up to per agent and local day.

// SpendDelta is a change to an agent's daily spend that belongs to one ledger event.
type SpendDelta struct {
	AgentID        string
	Day            string // YYYY-MM-DD in the agent's time zone
	SpentMinor     int64
	OverspendMinor int64
	Declines       int
}

// DailySpend is an agent's spend on one day of its own time zone.
type DailySpend struct {
	AgentID        string    `db:"agent_id" json:"agent_id"`
	Day            string    `db:"day" json:"day"`
	SpentMinor     int64     `db:"spent_minor" json:"spent_minor"`
	OverspendMinor int64     `db:"overspend_minor" json:"overspend_minor"`
	Declines       int       `db:"declines" json:"declines"`
	UpdatedAt      time.Time `db:"updated_at" json:"updated_at"`
}

// addSpendQuery adds a SpendDelta to its agent's day (agent, day, spent, overspend, declines,
// updated at).
const addSpendQuery = `
INSERT INTO daily_spend (agent_id, day, spent_minor, overspend_minor, declines, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id, day) DO UPDATE SET
  spent_minor = daily_spend.spent_minor + excluded.spent_minor,
  overspend_minor = daily_spend.overspend_minor + excluded.overspend_minor,
  declines = daily_spend.declines + excluded.declines,
  updated_at = excluded.updated_at`

// SpendSeries returns the agent's daily spend rows with fromDay <= day <= toDay, by day.
func (s *Store) SpendSeries(ctx context.Context, agentID, fromDay, toDay string) ([]DailySpend, error) {
	return list[DailySpend](ctx, s, fmt.Sprintf("spend series of agent %s", agentID), `SELECT * FROM daily_spend WHERE agent_id = ? AND day >= ? AND day <= ? ORDER BY day`, agentID, fromDay, toDay)
}

// SpendSince returns every agent's daily spend rows with day >= fromDay (for the fleet's
// spend today, each agent on its own day).
func (s *Store) SpendSince(ctx context.Context, fromDay string) ([]DailySpend, error) {
	return list[DailySpend](ctx, s, "spend since "+fromDay, `SELECT * FROM daily_spend WHERE day >= ? ORDER BY agent_id, day`, fromDay)
}
