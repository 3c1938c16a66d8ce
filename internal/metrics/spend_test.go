package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/store"
)

// spendRows is a SpendSource with fixed rows.
type spendRows struct {
	agents []store.Agent
	rows   []store.DailySpend
}

func (s spendRows) ListAgents(context.Context) ([]store.Agent, error) { return s.agents, nil }
func (s spendRows) SpendSince(_ context.Context, from string) ([]store.DailySpend, error) {
	var out []store.DailySpend
	for _, r := range s.rows {
		if r.Day >= from {
			out = append(out, r)
		}
	}
	return out, nil
}

// Issue 14, item 10: Prometheus had no money in it, so Grafana could not show spend. Today's
// spend, overspend and the daily limits are gauges now, each agent counted on its own day.
func TestFleetSpendInPrometheus(t *testing.T) {
	// 02:00 UTC on 3 March: still 2 March in New York, already 3 March in Tokyo.
	now := time.Date(2027, 3, 3, 2, 0, 0, 0, time.UTC)
	src := spendRows{
		agents: []store.Agent{
			{AgentID: "ny", Status: "active", Policy: `{"agent_id":"ny","daily_limit_usd":"50.00","timezone":"America/New_York"}`},
			{AgentID: "tokyo", Status: "frozen", Policy: `{"agent_id":"tokyo","daily_limit_usd":"20.00","timezone":"Asia/Tokyo"}`},
			{AgentID: "gone", Status: "retired", Policy: `{"agent_id":"gone","daily_limit_usd":"99.00"}`},
		},
		rows: []store.DailySpend{
			{AgentID: "ny", Day: "2027-03-02", SpentMinor: 1250, OverspendMinor: 300},
			{AgentID: "ny", Day: "2027-03-03", SpentMinor: 999_99}, // not yet New York's day
			{AgentID: "tokyo", Day: "2027-03-02", SpentMinor: 777}, // Tokyo's yesterday
			{AgentID: "tokyo", Day: "2027-03-03", SpentMinor: 500},
			{AgentID: "gone", Day: "2027-03-03", SpentMinor: 4000},
		},
	}
	m := metrics.New(metrics.Options{FleetSpend: metrics.StoreFleetSpend(src, func() time.Time { return now })})
	fams := scrape(t, m)
	require.Equal(t, map[string]float64{"currency=USD": 17.50}, series(t, fams, "cardwarden_spend_today_usd"))
	require.Equal(t, map[string]float64{"currency=USD": 3}, series(t, fams, "cardwarden_overspend_today_usd"))
	require.Equal(t, map[string]float64{"currency=USD": 70}, series(t, fams, "cardwarden_daily_limit_usd"))
}

// Issue 14, item 10: four counters were absent until their first event, so rate() and the
// alerting rules saw nothing. Preset makes them exist at 0 from the start.
func TestCountersExistFromTheStart(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Preset([]string{"sim"}, []string{"slack"})
	fams := scrape(t, m)
	for _, name := range []string{"cardwarden_cards_issued_total", "cardwarden_cards_closed_total", "cardwarden_issuer_events_total",
		"cardwarden_webhook_verification_failures_total", "cardwarden_issuer_errors_total", "cardwarden_alerts_total",
		"cardwarden_webhook_events_deferred_total"} {
		s := series(t, fams, name)
		require.NotEmpty(t, s, "%s is exported before any event", name)
		for labels, v := range s {
			require.Zero(t, v, "%s{%s}", name, labels)
		}
	}
}
