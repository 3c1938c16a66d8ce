package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/dashboard"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// An event reported by hand reaches the ledger as well as the workflow, so the workflow, the
// ledger, the dashboard's fleet table and the agent's page all show the same spend, whether it
// was reported with POST /v1/events or as a card-event signal sent straight to the workflow the
// way `temporal workflow signal` sends it (which once changed only the workflow's spend: $5.00
// in the fleet table, $0.00 on the agent's page). Reported twice either way, it counts once.
func TestHandReportedEventReachesLedgerAndDashboard(t *testing.T) {
	e := newE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := e.ctl.StartAgent(ctx, workflows.Policy{AgentID: "by-hand", DailyLimitUSD: money.MustParse("50")})
	require.NoError(t, err)
	st := e.waitCard(a.AgentID, 1)

	ev := map[string]any{"id": "evt_by_hand_1", "issuer": "sim", "kind": "authorization", "card_id": st.Card.ID,
		"authorization_id": "auth_by_hand_1", "approved": true, "amount_minor": 500, "currency": "usd",
		"merchant_name": "reported by hand", "occurred_at": time.Now().UTC().Format(time.RFC3339)}
	body, _ := json.Marshal(ev)
	for range 2 {
		code, res := e.httpDo(http.MethodPost, "/v1/events", e2eAdminToken, body)
		require.Equal(t, http.StatusOK, code, "%v", res)
		require.Equal(t, a.AgentID, res["agent_id"])
	}

	// The Temporal CLI's signal: the raw event JSON, no "recorded" mark, no issuer.
	signalled := json.RawMessage(`{"id":"evt_signal_1","kind":"authorization","card_id":"` + st.Card.ID +
		`","authorization_id":"auth_signal_1","approved":true,"amount_minor":300,"currency":"usd","merchant_name":"signalled by hand"}`)
	for range 2 {
		require.NoError(t, e.tc.SignalWorkflow(ctx, workflows.WorkflowID(a.AgentID), "", workflows.SignalCardEvent, signalled))
	}

	view := e.waitState(a.AgentID, "spend of the reported events", func(v workflows.StateView) bool {
		return v.Budget.SpentTodayUSD.String() == "8.00"
	})
	ledgerSpent := func() (n int64) {
		require.NoError(t, e.store.DB().GetContext(ctx, &n, e.store.DB().Rebind(
			`SELECT COALESCE(SUM(spent_minor), 0) FROM daily_spend WHERE agent_id = ? AND day = ?`), a.AgentID, view.Budget.Day))
		return n
	}
	require.Eventually(t, func() bool { return ledgerSpent() == 800 }, 30*time.Second, 100*time.Millisecond,
		"the ledger's spend today: %d, want 800", ledgerSpent())
	le, err := e.store.GetEvent(ctx, "sim", "evt_signal_1")
	require.NoError(t, err)
	require.Equal(t, store.SourceSignal, le.Source)
	require.Equal(t, a.AgentID, le.AgentID)
	require.True(t, le.SignalledAt.Valid, "recorded by the workflow that has it: never redelivered")

	dash, err := dashboard.New(dashboard.Config{Store: e.store, States: e.ctl, AdminToken: e2eAdminToken})
	require.NoError(t, err)
	srv := httptest.NewServer(dash)
	defer srv.Close()
	get := func(path string, out any) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	var fleet struct {
		Agents []struct {
			AgentID string `json:"agent_id"`
			Spent   string `json:"spent_today_usd"`
		} `json:"agents"`
	}
	get(dashboard.PathFleet, &fleet)
	require.Len(t, fleet.Agents, 1)
	require.Equal(t, "8.00", fleet.Agents[0].Spent, "fleet table")
	var page struct {
		Agent struct {
			Spent string `json:"spent_today_usd"`
		} `json:"agent"`
		Daily []struct {
			Day   string `json:"day"`
			Spent string `json:"spent_usd"`
		} `json:"daily"`
	}
	get(dashboard.PathAgent+a.AgentID, &page)
	require.Equal(t, "8.00", page.Agent.Spent, "agent page")
	require.NotEmpty(t, page.Daily)
	require.Equal(t, "8.00", page.Daily[len(page.Daily)-1].Spent, "agent page's chart of days: today")
}
