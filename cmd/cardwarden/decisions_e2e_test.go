package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// Real-time decisions end to end: the simulator asks POST /v1/authorizations/sim before each
// purchase, the API asks the team's and the agent's workflows, and every money check reads the
// simulator's own records.

// settle waits until the simulator has delivered every event, so none is cut off (and
// answered 500) when the test's servers close.
func (e *e2eStack) settle() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		_, stats := e.simDo("GET", "/v1/sim/stats", nil)
		return stats["webhooks_pending"] == float64(0)
	}, 30*time.Second, 50*time.Millisecond, "the simulator's webhooks were never all delivered")
}

// enableDecisions points the simulator's decision hook at the API.
func (e *e2eStack) enableDecisions(fallback string) {
	e.t.Helper()
	status, m := e.simDo("POST", "/v1/sim/decisions", issuersim.DecisionHook{URL: e.apiURL + "/v1/authorizations/sim", Fallback: fallback})
	require.Equal(e.t, 200, status, "%v", m)
}

// createAgentJSON creates an agent through the API and waits for its card.
func (e *e2eStack) createAgentJSON(policy string) (cardID string) {
	e.t.Helper()
	status, m := e.httpDo("POST", "/v1/agents", e2eAdminToken, []byte(policy))
	require.Contains(e.t, []int{200, 201}, status, "%v", m)
	agent := m["agent"].(map[string]any)
	st := e.waitCard(agent["agent_id"].(string), 1)
	return st.Card.ID
}

// buy is a purchase at the simulator; it returns the simulator's answer.
func (e *e2eStack) buy(cardID string, amountMinor int64, merchant, mcc string) (approved bool, reason string) {
	e.t.Helper()
	body := map[string]any{"card_id": cardID, "amount_minor": amountMinor, "merchant": merchant}
	if mcc != "" {
		body["mcc"] = mcc
	}
	status, m := e.simDo("POST", "/v1/simulate/authorizations", body)
	require.Equal(e.t, 200, status, "%v", m)
	r, _ := m["reason"].(string)
	return m["approved"].(bool), r
}

// simApprovedMinor sums the approved authorizations the simulator recorded on the card.
func (e *e2eStack) simApprovedMinor(cardID string) (sum int64, approvals int) {
	e.t.Helper()
	status, m := e.simDo("GET", "/v1/cards/"+cardID+"/authorizations?limit=1000", nil)
	require.Equal(e.t, 200, status, "%v", m)
	require.Equal(e.t, false, m["has_more"])
	for _, raw := range m["data"].([]any) {
		ev := raw.(map[string]any)
		if ev["type"] != "authorization.created" {
			continue
		}
		data := ev["data"].(map[string]any)
		if data["approved"] == true {
			sum += int64(data["amount_minor"].(float64))
			approvals++
		}
	}
	return sum, approvals
}

// decision reads the recorded decision on an authorization.
func (e *e2eStack) decisionsOf(agentID string) []store.Decision {
	e.t.Helper()
	ds, err := e.store.ListDecisions(context.Background(), agentID, 1000)
	require.NoError(e.t, err)
	return ds
}

func TestDecisionRulesEndToEnd(t *testing.T) {
	e := newE2E(t)
	e.enableDecisions(issuersim.FallbackDecline)
	card := e.createAgentJSON(`{"agent_id": "rules-agent", "daily_limit_usd": "50",
		"merchant_rules": {"presets": ["ai-providers"], "block_merchants": ["*openai*sora*"]},
		"max_per_purchase_usd": "20", "velocity": {"window": "1h", "max_count": 4}}`)

	cases := []struct {
		amountMinor    int64
		merchant, mcc  string
		approved       bool
		workflowReason string
	}{
		{500, "Anthropic", "", true, workflows.DecideApproved},
		{500, "Lucky Casino", "7995", false, "merchant_not_allowed"},
		{500, "OpenAI Sora credits", "", false, "merchant_blocked"},
		{2500, "OpenAI", "", false, workflows.DecideMaxPerPurchase},
		{100, "Cohere", "", true, workflows.DecideApproved},
		{100, "OpenAI", "", true, workflows.DecideApproved},
		{100, "Mistral AI", "", true, workflows.DecideApproved},
		{100, "Groq", "", false, workflows.DecideVelocityCount}, // the fifth approval in the hour
	}
	for i, c := range cases {
		approved, reason := e.buy(card, c.amountMinor, c.merchant, c.mcc)
		require.Equal(t, c.approved, approved, "purchase %d (%s %d): simulator said %s", i, c.merchant, c.amountMinor, reason)
		if !approved {
			require.Equal(t, "decision_declined", reason, "purchase %d: declined by cardwarden's decision, not the card's limit", i)
		}
	}
	ds := e.decisionsOf("rules-agent")
	require.Len(t, ds, len(cases))
	for i, c := range cases {
		d := ds[len(ds)-1-i] // newest first
		require.Equal(t, c.workflowReason, d.Reason, "purchase %d (%s)", i, c.merchant)
		require.False(t, d.Fallback)
	}
	sum, n := e.simApprovedMinor(card)
	require.Equal(t, int64(800), sum, "the simulator approved exactly what cardwarden approved")
	require.Equal(t, 4, n)

	// The decisions show in the agent's state, and the approvals became spend.
	st := e.waitState("rules-agent", "spend of the approvals", func(s workflows.StateView) bool { return s.Budget.SpentTodayUSD.Minor() == 800 })
	require.NotEmpty(t, st.Decisions)
	require.Zero(t, st.Budget.ReservedUSD.Minor(), "every reservation settled by its authorization's event")
	e.settle()
}

// Three agents with $100 a day each share a $30 team budget; 60 parallel $1 purchases across
// them: the simulator approves exactly $30.
func TestTeamBudgetHoldsUnderConcurrency(t *testing.T) {
	e := newE2E(t)
	e.enableDecisions(issuersim.FallbackDecline)
	status, m := e.httpDo("POST", "/v1/teams", e2eAdminToken, []byte(`{"team_id": "research", "daily_limit_usd": "30"}`))
	require.Equal(t, 201, status, "%v", m)

	// A high decline threshold: this test is about the team's arithmetic, not the freeze that a
	// burst of declined purchases would otherwise (rightly) bring.
	var cards []string
	for i := range 3 {
		cards = append(cards, e.createAgentJSON(fmt.Sprintf(`{"agent_id": "researcher-%d", "daily_limit_usd": "100", "team_id": "research",
			"anomaly": {"max_declines": 1000}}`, i)))
	}
	simTotal := func() int64 {
		var total int64
		for _, c := range cards {
			sum, _ := e.simApprovedMinor(c)
			total += sum
		}
		return total
	}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"card_id": cards[i%3], "amount_minor": 100, "merchant": "Anthropic"})
			req, _ := http.NewRequest("POST", e.simURL+"/v1/simulate/authorizations", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e2eSimKey)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, simTotal(), int64(3000), "60 parallel $1 purchases never overshoot the team's $30")
	// Let the round settle at the team: a purchase the simulator declined on a slow machine (its
	// decision fell back) holds a team reservation until its declined authorization's event
	// releases it. Bought into before that, the team rightly says no early (CI once saw $21.00).
	e.settle()
	teamSettled := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := e.ctl.TeamState(ctx, "research")
		return err == nil && v.ReservedUSD.Minor() == 0 && v.SpentTodayUSD.Minor() == simTotal()
	}
	require.Eventually(t, teamSettled, time.Minute, 100*time.Millisecond, "the team's reservations settle into what the simulator approved")
	// Purchases that fell back (a slow machine) left room: buy one at a time until the team says
	// no; then the simulator has approved exactly $30.
	for i := 0; ; i++ {
		require.Less(t, i, 40, "the team never declined")
		if approved, _ := e.buy(cards[i%3], 100, "Anthropic", ""); approved {
			continue
		}
		if d := e.decisionsOf(fmt.Sprintf("researcher-%d", i%3))[0]; d.Reason == workflows.DecideTeamBudget {
			break
		}
	}
	require.Equal(t, int64(3000), simTotal(), "the simulator approved exactly the team's $30 across its agents")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Eventually(t, func() bool {
		v, err := e.ctl.TeamState(ctx, "research")
		return err == nil && v.SpentTodayUSD.Minor() == 3000 && v.ReservedUSD.Minor() == 0
	}, 30*time.Second, 100*time.Millisecond, "the team counts the $30 as spent, with nothing left reserved")
	status, m = e.httpDo("GET", "/v1/teams/research", e2eAdminToken, nil)
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "0.00", m["remaining_today_usd"])
	require.Len(t, m["members"], 3)

	// Raising the team's budget lets the next purchase through.
	status, m = e.httpDo("POST", "/v1/teams/research/budget", e2eAdminToken, []byte(`{"daily_limit_usd": "31"}`))
	require.Equal(t, 200, status, "%v", m)
	approved, reason := e.buy(cards[0], 100, "Anthropic", "")
	require.True(t, approved, "declined: %s; decisions %+v", reason, e.decisionsOf("researcher-0")[:1])
	approved, _ = e.buy(cards[1], 100, "Anthropic", "")
	require.False(t, approved, "the new $31 is used up")
	e.settle()
}

// A redelivered request gets the first answer, even when the agent's state would now decide
// otherwise; a request with a bad signature changes nothing.
func TestDecisionRedeliveryIsIdempotent(t *testing.T) {
	e := newE2E(t)
	card := e.createAgentJSON(`{"agent_id": "redelivery-agent", "daily_limit_usd": "10"}`)
	key, err := stdwebhooks.DecodeSecret(e2eWebhookSecret)
	require.NoError(t, err)
	send := func(id string, amountMinor int64, signKey []byte) (int, map[string]any) {
		body, _ := json.Marshal(issuersim.DecisionRequestJSON{ID: id, Object: "authorization_request", CardID: card,
			AmountMinor: amountMinor, Currency: "usd", Merchant: "Anthropic", CreatedAt: time.Now().UTC()})
		req, _ := http.NewRequest("POST", e.apiURL+"/v1/authorizations/sim", bytes.NewReader(body))
		stdwebhooks.Sign(req.Header, signKey, id, time.Now(), body)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}

	status, m := send("auth_redeliver_1", 600, key)
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, true, m["approved"])
	// $6 of $10 reserved: a second $6 is declined...
	status, m = send("auth_redeliver_2", 600, key)
	require.Equal(t, 200, status)
	require.Equal(t, false, m["approved"])
	require.Equal(t, workflows.DecideBudget, m["reason"])
	// ...and the first, redelivered, is still approved (not counted twice).
	for range 3 {
		status, m = send("auth_redeliver_1", 600, key)
		require.Equal(t, 200, status)
		require.Equal(t, true, m["approved"])
	}
	// The same id with another amount is not a redelivery: declined, the record unchanged.
	status, m = send("auth_redeliver_1", 60000, key)
	require.Equal(t, 200, status)
	require.Equal(t, false, m["approved"])
	require.Equal(t, "request_mismatch", m["reason"])
	d, err := e.store.GetDecision(context.Background(), "sim", "auth_redeliver_1")
	require.NoError(t, err)
	require.True(t, d.Approved)
	require.Equal(t, int64(600), d.AmountMinor)
	e.waitState("redelivery-agent", "one reservation of $6", func(s workflows.StateView) bool { return s.Budget.ReservedUSD.Minor() == 600 })

	// An agent whose team_id names no team: declined as team_not_checked, not a fallback.
	ghostCard := e.createAgentJSON(`{"agent_id": "ghost-member", "daily_limit_usd": "10", "team_id": "ghost"}`)
	card = ghostCard
	status, m = send("auth_ghost", 100, key)
	require.Equal(t, 200, status)
	require.Equal(t, false, m["approved"])
	require.Equal(t, workflows.DecideTeamUnchecked, m["reason"])
	require.False(t, e.decisionsOf("ghost-member")[0].Fallback)

	// A forged request: 401 and no decision recorded.
	status, _ = send("auth_forged", 100, []byte("not-the-secret-not-the-secret!!"))
	require.Equal(t, 401, status)
	_, err = e.store.GetDecision(context.Background(), "sim", "auth_forged")
	require.True(t, store.IsNotFound(err))
	require.Len(t, e.decisionsOf("redelivery-agent"), 2)
	e.settle()
}

// With no worker, the API answers by the agent's fallback before the simulator's deadline,
// records it and alerts; the simulator never had to fall back on its own.
func TestDecisionFallbackWhenNoWorker(t *testing.T) {
	e := newE2E(t)
	e.enableDecisions(issuersim.FallbackApprove) // the simulator's own fallback would approve: cardwarden's must answer first
	declineCard := e.createAgentJSON(`{"agent_id": "fallback-decline", "daily_limit_usd": "10"}`)
	approveCard := e.createAgentJSON(`{"agent_id": "fallback-approve", "daily_limit_usd": "10", "on_decision_timeout": "approve"}`)
	approved, _ := e.buy(declineCard, 100, "Anthropic", "")
	require.True(t, approved, "with its worker running, the agent decides")

	e.stopWorkers()
	approved, reason := e.buy(declineCard, 100, "Anthropic", "")
	require.False(t, approved)
	require.Equal(t, "decision_declined", reason, "cardwarden answered (a simulator timeout would say decision_timeout)")
	approved, _ = e.buy(approveCard, 100, "Anthropic", "")
	require.True(t, approved, "this agent's fallback approves; the card's limit stays the backstop")

	_, stats := e.simDo("GET", "/v1/sim/stats", nil)
	require.Equal(t, float64(0), stats["decisions_fallback"], "the simulator never waited out its deadline")
	for _, agent := range []string{"fallback-decline", "fallback-approve"} {
		ds := e.decisionsOf(agent)
		require.True(t, ds[0].Fallback, "%s: the newest decision was a fallback", agent)
		require.Equal(t, workflows.DecideTimeoutFallback, ds[0].Reason)
		require.Eventually(t, func() bool {
			alerts, err := e.store.ListAlerts(context.Background(), agent, 10)
			for _, a := range alerts {
				if err == nil && a.Kind == api.AlertDecisionFallback {
					return true
				}
			}
			return false
		}, 10*time.Second, 20*time.Millisecond, "%s: a decision-fallback alert", agent)
	}
	e.settle()
}

// The team commands go through the API like the agent commands: create (twice: the second is a
// no-op), an agent joining with --team, show, set-budget; usage errors and a missing team have
// their exit codes.
func TestTeamCLI(t *testing.T) {
	e := newE2E(t)
	var team struct {
		TeamID  string `json:"team_id"`
		Created bool   `json:"created"`
	}
	e.cliJSON(&team, "team", "create", "ops", "--daily-limit", "75.50", "--timezone", "Europe/Berlin")
	require.True(t, team.Created)
	e.cliJSON(&team, "team", "create", "ops", "--daily-limit", "75.50", "--timezone", "Europe/Berlin")
	require.False(t, team.Created, "the running team is found, not started again")

	var created struct {
		Agent struct {
			Policy workflows.Policy `json:"policy"`
		} `json:"agent"`
	}
	e.cliJSON(&created, "agent", "create", "--id", "ops-bot", "--daily-limit", "20", "--team", "ops")
	require.Equal(t, "ops", created.Agent.Policy.TeamID)

	var v workflows.TeamView
	e.cliJSON(&v, "team", "set-budget", "ops", "--daily-limit", "80")
	require.Equal(t, "80.00", v.Policy.DailyLimitUSD.String())
	out, errOut, code := e.cli("team", "show", "ops")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "daily limit")
	require.Contains(t, out, "80.00 USD")

	_, errOut, code = e.cli("team", "show", "nobody")
	require.Equal(t, exitNotFound, code, errOut)
	require.Contains(t, errOut, "no such team")
	_, errOut, code = e.cli("team", "create", "bad", "--daily-limit", "-3")
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "--daily-limit")
	_, errOut, code = e.cli("team", "create", "nolimit")
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "--daily-limit is required")
}
