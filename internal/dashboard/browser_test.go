package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/browsertest"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

const browserToken = "dashboard-browser-test-admin-token"

// fakeManagement stands in for the management API's update endpoints: it checks the admin
// token like the real one and applies the change to the fake workflow states.
type fakeManagement struct {
	states *fakeStates
	mu     sync.Mutex
	calls  []string // "freeze billing-bot by dashboard: reason"
}

func (m *fakeManagement) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+browserToken {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(errBody("unauthorized", "missing or wrong admin token"))
		return
	}
	var req workflows.ReasonRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	id, action := r.PathValue("id"), r.PathValue("action")
	to := map[string]workflows.Status{"freeze": workflows.StatusFrozen, "unfreeze": workflows.StatusActive, "rotate": ""}[action]
	m.states.set(id, func(v *workflows.StateView) {
		if to != "" {
			v.Status, v.StatusReason = to, req.Reason
		} else {
			v.Rotations++
		}
	})
	m.mu.Lock()
	m.calls = append(m.calls, action+" "+id+" by "+req.Actor+": "+req.Reason)
	m.mu.Unlock()
	m.states.mu.Lock()
	defer m.states.mu.Unlock()
	writeJSON(w, http.StatusOK, m.states.views[id])
}

// TestDashboardInABrowser drives the page in headless Chromium against the dashboard handler
// fed by a real store (SQLite, with real rows) and fake workflow states: it enters the admin
// token, sees the fleet, sees a freeze that happens elsewhere appear without a reload,
// freezes an agent with the button, opens an agent page with its charts, and saves
// screenshots. The end-to-end variant against the whole system is in ./e2e.
func TestDashboardInABrowser(t *testing.T) {
	b := browsertest.New(t)
	ctx := context.Background()
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seed(t, st)
	require.NoError(t, st.UpsertAgent(ctx, store.Agent{AgentID: "billing-bot", Label: "Billing", Issuer: "sim", Status: "active",
		Policy: policy("billing-bot", "30", "UTC")}))

	states := newFakeStates()
	states.views["support-bot"] = liveView("support-bot")
	research := liveView("research-bot")
	research.Status, research.StatusReason = workflows.StatusFrozen, "5 declines (merchant_blocked) in 5m"
	research.Budget.DailyLimitUSD, research.Budget.SpentTodayUSD = money.MustParse("20"), money.MustParse("19")
	states.views["research-bot"] = research
	billing := liveView("billing-bot")
	billing.Card.Last4, billing.Budget.DailyLimitUSD, billing.Budget.SpentTodayUSD = "3141", money.MustParse("30"), money.MustParse("6")
	states.views["billing-bot"] = billing

	dash, err := New(Config{Store: st, States: states, AdminToken: browserToken, PollInterval: 500 * time.Millisecond,
		TemporalUIURL: "http://127.0.0.1:8233", Now: func() time.Time { return now }})
	require.NoError(t, err)
	mgmt := &fakeManagement{states: states}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/agents/{id}/{action}", mgmt)
	mux.Handle("/", dash)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// The page asks for the token, then shows the fleet.
	b.Do("open the dashboard", 30*time.Second, chromedp.Navigate(srv.URL+"/"))
	b.WaitFor("the token dialog", `document.getElementById("token-dialog").open`, 20*time.Second)
	b.Do("enter the token", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("token-input"), browserToken),
		chromedp.Click(chromedp.ID("token-save")))
	b.WaitFor("four agents in the table", `document.querySelectorAll("#fleet tbody tr[data-agent]").length === 4`, 20*time.Second)
	table := browsertest.Eval[string](b, `document.getElementById("fleet").innerText`)
	for _, want := range []string{"support-bot", "research-bot", "billing-bot", "old-bot", "•••• 7777", "$45.50 of $50.00", "merchant_blocked"} {
		assert.Contains(t, table, want)
	}
	assert.Equal(t, "frozen", browsertest.Eval[string](b, `document.querySelector('tr[data-agent="research-bot"]').dataset.status`))
	assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/agent%2Fsupport-bot",
		browsertest.Eval[string](b, `document.querySelector('tr[data-agent="support-bot"] a.ext').href`))

	// A freeze made elsewhere (a decline burst) shows up without a reload.
	browsertest.Eval[bool](b, `window.__sameDocument = true`)
	states.set("support-bot", func(v *workflows.StateView) {
		v.Status, v.StatusReason = workflows.StatusFrozen, "6 declines (spending_limit) in 5m"
		v.Freezes++
	})
	b.WaitFor("support-bot frozen", `document.querySelector('tr[data-agent="support-bot"]').dataset.status === "frozen"`, 20*time.Second)
	assert.True(t, browsertest.Eval[bool](b, `window.__sameDocument === true`), "updated in place, not reloaded")

	// Freeze billing-bot with its button: the page calls the management API with the token.
	b.Do("click freeze", 20*time.Second, chromedp.Click(chromedp.CSS(`tr[data-agent="billing-bot"] button[data-action="freeze"]`)))
	b.WaitFor("the confirm dialog", `document.getElementById("action-dialog").open`, 10*time.Second)
	b.Do("confirm", 10*time.Second, chromedp.Click(chromedp.ID("action-confirm")))
	b.WaitFor("billing-bot frozen", `document.querySelector('tr[data-agent="billing-bot"]').dataset.status === "frozen"`, 20*time.Second)
	mgmt.mu.Lock()
	assert.Equal(t, []string{"freeze billing-bot by dashboard: frozen from the dashboard"}, mgmt.calls)
	mgmt.mu.Unlock()
	b.WaitFor("the summary counts the freezes", `(document.querySelector('.chip.frozen b')||{}).textContent === "3"`, 20*time.Second)
	shot := b.Screenshot(t.ArtifactDir(), "dashboard-fleet.png")

	// The agent page: spend chart, timeline with the freeze and the declines, generations.
	b.Do("open support-bot", 20*time.Second, chromedp.Click(chromedp.CSS(`tr[data-agent="support-bot"] td.agent a`)))
	b.WaitFor("the agent page", `document.getElementById("agent-title") && document.getElementById("chart-daily")`, 20*time.Second)
	b.WaitFor("declines on the timeline", `document.querySelectorAll("#timeline circle.decline").length >= 1`, 20*time.Second)
	assert.True(t, browsertest.Eval[bool](b, `document.querySelectorAll("#timeline g.mark-freeze").length >= 1`), "the freeze is marked")
	assert.Equal(t, 2, browsertest.Eval[int](b, `document.querySelectorAll("#cards tbody tr").length`))
	b.Do("show today by hour", 10*time.Second, chromedp.Click(chromedp.CSS(`#spend-panel .tabs button:nth-child(2)`)))
	b.WaitFor("the hourly chart", `document.getElementById("chart-hourly") !== null`, 10*time.Second)
	b.Screenshot(t.ArtifactDir(), "dashboard-agent.png")

	// An agent without alerts (or events): its page renders too (it used to throw on
	// "alerts": null).
	b.Do("open billing-bot", 20*time.Second, chromedp.Navigate(srv.URL+"/#/agents/billing-bot"))
	b.WaitFor("billing-bot's page", `(document.getElementById("agent-title")||{}).textContent === "billing-bot"`, 20*time.Second)
	b.WaitFor("no alerts, said so", `document.body.innerText.includes("No alerts.")`, 20*time.Second)
	assert.False(t, browsertest.Eval[bool](b, `document.body.innerText.includes("Cannot refresh")`), "the page refreshes without an error")
	b.Screenshot(t.ArtifactDir(), "dashboard-agent-no-alerts.png")

	assert.Empty(t, b.PageErrors(), "the page threw or logged errors")
	assert.True(t, strings.HasSuffix(shot, ".png"))
}

// TestTeamsAndDecisionsInABrowser opens the team list, a team page (budget, members,
// decisions) and a member's agent page with its real-time decisions, in headless Chromium,
// against a real store and fake agent and team workflows. A merchant name with markup in it
// (the issuer's request carries whatever the merchant says) shows as text and runs nothing.
func TestTeamsAndDecisionsInABrowser(t *testing.T) {
	b := browsertest.New(t)
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seed(t, st)
	seedTeams(t, st)
	states := newFakeStates()
	r1 := liveView("researcher-1")
	r1.Policy = workflows.Policy{AgentID: "researcher-1", TeamID: "research"}
	r1.Budget.ReservedUSD, r1.Budget.RemainingTodayUSD = money.MustParse("4.50"), money.MustParse("0")
	r1.Decisions = []workflows.DecisionView{{AuthorizationID: "auth_new", At: now.Add(-time.Minute), AmountUSD: money.MustParse("4.50"),
		Merchant: "Mistral", Approved: true, Reason: "approved"}}
	states.views["researcher-1"] = r1
	teams := &fakeTeams{views: map[string]workflows.TeamView{"research": researchTeamView()}, block: map[string]bool{}}
	dash, err := New(Config{Store: st, States: liveStates{states, teams}, AdminToken: browserToken, PollInterval: 500 * time.Millisecond,
		Now: func() time.Time { return now }})
	require.NoError(t, err)
	srv := httptest.NewServer(dash)
	t.Cleanup(srv.Close)

	b.Do("open the teams", 30*time.Second, chromedp.Navigate(srv.URL+"/#/teams"))
	b.WaitFor("the token dialog", `document.getElementById("token-dialog").open`, 20*time.Second)
	b.Do("enter the token", 20*time.Second, chromedp.SendKeys(chromedp.ID("token-input"), browserToken), chromedp.Click(chromedp.ID("token-save")))
	b.WaitFor("two teams", `document.querySelectorAll("#teams tbody tr[data-team]").length === 2`, 20*time.Second)
	list := browsertest.Eval[string](b, `document.getElementById("teams").innerText`)
	for _, want := range []string{"research", "analytics", "$150.00 of $200.00", "$12.50", "$37.50", "$1234.56 of $3000.00"} {
		assert.Contains(t, list, want)
	}

	// The team page: its budget, its agents (links to their pages), its decisions.
	b.Do("open research", 20*time.Second, chromedp.Click(chromedp.CSS(`tr[data-team="research"] td.agent a`)))
	b.WaitFor("the team page", `(document.getElementById("team-title")||{}).textContent === "research"`, 20*time.Second)
	b.WaitFor("four decisions", `document.querySelectorAll("#decisions tbody tr").length === 4`, 20*time.Second)
	budget := browsertest.Eval[string](b, `document.getElementById("team-budget").innerText`)
	for _, want := range []string{"$150.00 of $200.00", "RESERVED", "$12.50", "REMAINING TODAY", "$37.50", "$1234.56", "of $3000.00"} {
		assert.Contains(t, strings.ToUpper(budget), strings.ToUpper(want))
	}
	assert.Equal(t, []string{"#/agents/ghost-bot", "#/agents/researcher-1", "#/agents/researcher-2"},
		browsertest.Eval[[]string](b, `[...document.querySelectorAll("#members tbody td.agent a")].map((a) => a.getAttribute("href"))`))
	assert.Equal(t, "unknown", browsertest.Eval[string](b, `document.querySelector('#members tr[data-agent="ghost-bot"]').dataset.status`))
	decisions := browsertest.Eval[string](b, `document.getElementById("decisions").innerText`)
	for _, want := range []string{"merchant_category_blocked", "decision_timeout", "fallback", "$99.00", "Anthropic", "researcher-2", xssMerchant} {
		assert.Contains(t, decisions, want)
	}
	assert.Equal(t, "true", browsertest.Eval[string](b, `document.querySelector('#decisions tr[data-authorization="auth_t3"]').dataset.fallback`))
	assert.Equal(t, 0, browsertest.Eval[int](b, `document.querySelectorAll("#decisions script, #decisions img, main script, main img").length`),
		"the merchant's markup is text, not elements")
	b.Screenshot(t.ArtifactDir(), "dashboard-team.png")

	// A member's agent page: reserved next to spent and remaining, its decisions, a link back
	// to its team.
	b.Do("open researcher-1", 20*time.Second, chromedp.Click(chromedp.CSS(`#members tr[data-agent="researcher-1"] td.agent a`)))
	b.WaitFor("the agent page", `(document.getElementById("agent-title")||{}).textContent === "researcher-1"`, 20*time.Second)
	b.WaitFor("its decisions", `document.querySelectorAll("#decisions tbody tr").length === 3`, 20*time.Second)
	agent := browsertest.Eval[string](b, `document.querySelector("main").innerText`)
	for _, want := range []string{"$4.50", "remaining today $0.00", "Mistral", "workflow (pending)", "merchant_category_blocked", xssMerchant} {
		assert.Contains(t, agent, want)
	}
	assert.Equal(t, "#/teams/research", browsertest.Eval[string](b, `document.querySelector("a.team-link").getAttribute("href")`))
	assert.Equal(t, "approved", browsertest.Eval[string](b, `document.querySelector('#decisions tr[data-authorization="auth_new"] .badge').textContent`))
	assert.Equal(t, "declined", browsertest.Eval[string](b, `document.querySelector('#decisions tr[data-authorization="auth_t2"] .badge').textContent`))
	assert.NotContains(t, agent, "null", "no null rendered as text")
	b.Screenshot(t.ArtifactDir(), "dashboard-agent-decisions.png")

	// Polling keeps the pages quiet: wait for a few refreshes, then check nothing threw and
	// the merchant's script never ran.
	time.Sleep(1200 * time.Millisecond)
	assert.False(t, browsertest.Eval[bool](b, `window.__xss === 1`), "the merchant's script ran")
	assert.False(t, browsertest.Eval[bool](b, `document.body.innerText.includes("Cannot refresh")`))
	assert.Empty(t, b.PageErrors(), "the page threw or logged errors")
}
