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
