// Package e2e_test runs the operators' view against the whole system in one process: an
// embedded Temporal server with its Web UI (devstack), the worker running the real AgentCard
// workflow and activities, the issuer simulator sending signed webhooks, the HTTP API, the
// dashboard, /metrics and the alert notifier — wired the way `cardwarden serve`/`dev` wire them
// — and drives the dashboard in headless Chromium.
//
// It links the Temporal server, so it lives in its own package: `go test ./internal/dashboard`
// stays small and quick.
package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/browsertest"
	"github.com/cardwarden/cardwarden/internal/dashboard"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/logging"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

const (
	adminToken    = "e2e-admin-token-0123456789abcdef"
	webhookSecret = "whsec_ZTJlLXNpbS13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// system is everything `cardwarden dev` runs, in this process.
type system struct {
	url    string // cardwarden HTTP: API, dashboard, /metrics
	simURL string
	uiURL  string
	alerts *alertSink
}

// alertSink is the Slack-compatible receiver alerts are wired to.
type alertSink struct {
	mu   sync.Mutex
	msgs []string
}

func (a *alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Text string `json:"text"`
	}
	_ = json.NewDecoder(r.Body).Decode(&m)
	a.mu.Lock()
	a.msgs = append(a.msgs, m.Text)
	a.mu.Unlock()
}

func (a *alertSink) texts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.msgs...)
}

func startSystem(t *testing.T) *system {
	t.Helper()
	logger, err := logging.New(io.Discard, logging.Options{Format: logging.FormatText})
	require.NoError(t, err)
	if testing.Verbose() {
		logger, _ = logging.New(os.Stderr, logging.Options{Format: logging.FormatText, Level: slog.LevelWarn})
	}

	stack, err := devstack.Start(devstack.Config{Dir: t.TempDir(), Port: freePort(t), UIPort: freePort(t)})
	require.NoError(t, err)
	t.Cleanup(stack.Stop)

	st := testdb.Open(t, testdb.SQLiteURL(t))
	key := make([]byte, vault.KeySize)
	_, _ = rand.Read(key)
	vlt, err := vault.New(key)
	require.NoError(t, err)

	// The HTTP server's address must exist before the simulator, which posts webhooks to it.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + httpLn.Addr().String()
	sim, err := issuersim.NewServer(issuersim.Config{WebhookURL: base + "/v1/webhooks/sim", WebhookSecret: webhookSecret,
		WebhookRetryInitial: 100 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() { simSrv.Close(); sim.Close() })

	// Metrics: one registry; the issuer decorator feeds it and the issuer-unreachable watch.
	m := metrics.New(metrics.Options{Version: "e2e", AgentsByStatus: metrics.StoreAgentCounter(st)})
	rawReg, err := adapters.New(adapters.Config{Sim: adapters.SimConfig{BaseURL: simSrv.URL, WebhookSecret: webhookSecret}})
	require.NoError(t, err)

	sink := &alertSink{}
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)
	notifier, err := alerts.NewNotifier(alerts.Config{SlackURL: sinkSrv.URL + "/services/T/B/X", Link: dashboard.AgentLink(base),
		Outbound: outbound.Dev()}) // the receiver is on loopback, over http, as under `cardwarden dev`
	require.NoError(t, err)
	notifier.Observe, notifier.Logger = m.AlertDelivery, logger
	watch := &alerts.IssuerWatch{Dispatcher: &alerts.Dispatcher{Store: st, Notifier: notifier, Logger: logger}}
	reg, err := metrics.InstrumentRegistry(rawReg, m, watch.Observe)
	require.NoError(t, err)

	c, err := client.Dial(client.Options{HostPort: stack.Address(), Namespace: "default",
		Logger: logging.Temporal(logger), MetricsHandler: m.TemporalHandler()})
	require.NoError(t, err)
	t.Cleanup(c.Close)

	acts := &activities.Activities{Issuers: reg, Store: st, Vault: vlt, Logger: logger, Alerts: notifier}
	w := worker.New(c, acts, worker.Config{})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	dash, err := dashboard.New(dashboard.Config{Store: st, States: starter.New(c, starter.Options{}), AdminToken: adminToken,
		TemporalUIURL: stack.UIURL(), PollInterval: time.Second, Logger: logger})
	require.NoError(t, err)
	apiHandler := api.New(api.Deps{Store: st, Temporal: c, Logger: logger, AdminToken: adminToken, Issuers: reg, Vault: vlt})

	// The routes `serve` mounts (the wiring the lead adds to cmd/cardwarden).
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /{$}", dash)
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", apiHandler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(httpLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return &system{url: base, simURL: simSrv.URL, uiURL: stack.UIURL(), alerts: sink}
}

// call makes an HTTP request and decodes a JSON answer.
func call(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(raw, out), "%s %s: %s", method, url, raw)
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, res.StatusCode, raw)
	}
	return res.StatusCode
}

// eventually polls cond until it holds; the bound is generous, the check is not about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *system) state(t *testing.T, id string) workflows.StateView {
	var sv workflows.StateView
	call(t, http.MethodGet, s.url+"/v1/agents/"+id, adminToken, nil, &sv)
	return sv
}

// purchase asks the simulator to authorize a purchase on a card; the simulator decides, and
// reports it to cardwarden by signed webhook.
func (s *system) purchase(t *testing.T, cardID string, amountMinor int64, merchant string) (bool, string) {
	var r struct {
		Approved bool   `json:"approved"`
		Reason   string `json:"reason"`
	}
	code := call(t, http.MethodPost, s.simURL+"/v1/simulate/authorizations", issuersim.DefaultAPIKey,
		map[string]any{"card_id": cardID, "amount_minor": amountMinor, "merchant": merchant, "mcc": "5734"}, &r)
	require.Equal(t, http.StatusOK, code)
	return r.Approved, r.Reason
}

func TestDashboardEndToEnd(t *testing.T) {
	b := browsertest.New(t) // skips (or fails in CI) before the expensive start when there is no browser
	sys := startSystem(t)

	// Three agents through the management API, as an operator would.
	agents := map[string]string{
		"support-bot":  `{"agent_id":"support-bot","label":"Customer support","daily_limit_usd":50}`,
		"research-bot": `{"agent_id":"research-bot","label":"Research","daily_limit_usd":"20.00","alerts":{"thresholds_pct":[50,80,100]}}`,
		"burst-bot":    `{"agent_id":"burst-bot","label":"Scraper","daily_limit_usd":5,"anomaly":{"max_declines":3,"window":"10m"}}`,
	}
	for id, p := range agents {
		code := call(t, http.MethodPost, sys.url+"/v1/agents", adminToken, json.RawMessage(p), nil)
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, code, "create %s", id)
	}
	cards := map[string]string{}
	for id := range agents {
		eventually(t, id+" has a card", func() bool {
			sv := sys.state(t, id)
			if sv.Card != nil && sv.Status == workflows.StatusActive {
				cards[id] = sv.Card.ID
				return true
			}
			return false
		})
	}

	// Some spend, so the bars have something to show: approved by the simulator, reported by
	// webhook, counted by the workflow.
	approved, _ := sys.purchase(t, cards["support-bot"], 1250, "OpenAI")
	require.True(t, approved)
	approved, _ = sys.purchase(t, cards["research-bot"], 1700, "arXiv Data")
	require.True(t, approved)
	eventually(t, "spend counted", func() bool {
		return sys.state(t, "support-bot").Budget.SpentTodayUSD.String() == "12.50" &&
			sys.state(t, "research-bot").Budget.SpentTodayUSD.String() == "17.00"
	})

	// The dashboard: token once, then the fleet.
	b.Do("open the dashboard", 30*time.Second, chromedp.Navigate(sys.url+"/"))
	b.WaitFor("the token dialog", `document.getElementById("token-dialog").open`, 30*time.Second)
	b.Do("enter the token", 20*time.Second, chromedp.SendKeys(chromedp.ID("token-input"), adminToken), chromedp.Click(chromedp.ID("token-save")))
	b.WaitFor("three agents", `document.querySelectorAll("#fleet tbody tr[data-agent]").length === 3`, 60*time.Second)
	b.WaitFor("live rows with spend", `[...document.querySelectorAll("#fleet tbody tr")].some(r => r.innerText.includes("$12.50 of $50.00"))`, 60*time.Second)
	table := browsertest.Eval[string](b, `document.getElementById("fleet").innerText`)
	for id := range agents {
		assert.Contains(t, table, id)
	}
	assert.Equal(t, 0, browsertest.Eval[int](b, `document.querySelectorAll("#fleet .stale-note").length`), "every row comes from its live workflow")
	browsertest.Eval[bool](b, `window.__sameDocument = true`)

	// A decline burst at the simulator: burst-bot's card has a $5 limit, so each $9 purchase
	// is declined; the third decline within the window freezes the card at the issuer.
	for i := range 3 {
		ok, reason := sys.purchase(t, cards["burst-bot"], 900, fmt.Sprintf("GPU Cloud #%d", i))
		require.False(t, ok)
		require.Equal(t, "spending_limit", reason)
	}
	b.WaitFor("burst-bot frozen on the page", `(document.querySelector('tr[data-agent="burst-bot"]')||{dataset:{}}).dataset.status === "frozen"`, 90*time.Second)
	assert.True(t, browsertest.Eval[bool](b, `window.__sameDocument === true`), "the freeze appeared without a reload")
	assert.Contains(t, browsertest.Eval[string](b, `document.querySelector('tr[data-agent="burst-bot"]').innerText`), "spending_limit")
	assert.Equal(t, workflows.StatusFrozen, sys.state(t, "burst-bot").Status)

	shotDir := t.ArtifactDir()
	fleetShot := b.Screenshot(shotDir, "e2e-fleet-frozen.png")

	// The agent page of the frozen agent: the declines and the freeze on the timeline.
	b.Do("open burst-bot", 20*time.Second, chromedp.Click(chromedp.CSS(`tr[data-agent="burst-bot"] td.agent a`)))
	b.WaitFor("the agent page", `document.getElementById("agent-title") && document.getElementById("timeline")`, 30*time.Second)
	b.WaitFor("three declines on the timeline", `document.querySelectorAll("#timeline circle.decline").length === 3`, 30*time.Second)
	b.WaitFor("the freeze on the timeline", `document.querySelectorAll("#timeline g.mark-freeze").length === 1`, 30*time.Second)
	assert.Equal(t, 1, browsertest.Eval[int](b, `document.querySelectorAll("#cards tbody tr").length`))
	b.Screenshot(shotDir, "e2e-agent-frozen.png")

	// Unfreeze with the page's button: through the management API, with the token.
	b.Do("click unfreeze", 20*time.Second, chromedp.Click(chromedp.CSS(`.agent-head button[data-action="unfreeze"]`)))
	b.WaitFor("the confirm dialog", `document.getElementById("action-dialog").open`, 10*time.Second)
	b.Do("confirm", 10*time.Second, chromedp.Click(chromedp.ID("action-confirm")))
	b.WaitFor("burst-bot active again", `document.querySelector(".agent-head .badge").dataset.status === "active"`, 60*time.Second)
	b.WaitFor("the unfreeze on the timeline", `document.querySelectorAll("#timeline g.mark-unfreeze").length === 1`, 30*time.Second)

	// The Temporal Web UI link opens the agent's workflow.
	href := browsertest.Eval[string](b, `document.querySelector(".agent-head a.ext").href`)
	assert.Equal(t, sys.uiURL+"/namespaces/default/workflows/agent%2Fburst-bot", href)
	res, err := http.Get(href)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	assert.Empty(t, b.PageErrors(), "the page threw or logged errors")

	// /metrics after the scenario, with the real worker's SDK metrics.
	resp, err := http.Get(sys.url + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`cardwarden_agents{status="active"} 3`,
		`cardwarden_cards_issued_total{issuer="sim"} 3`,
		`cardwarden_issuer_request_duration_seconds_count{issuer="sim",operation="pause_card",outcome="ok"}`,
		`cardwarden_issuer_request_duration_seconds_count{issuer="sim",operation="resume_card",outcome="ok"}`,
		`cardwarden_alerts_total{kind="frozen",outcome="delivered",sink="slack"} 1`,
		`temporal_workflow_task_execution_latency_seconds_bucket{`,
		`temporal_request_total{`,
		`temporal_activity_execution_latency_seconds_bucket{`,
		`activity_type="PauseCard"`,
	} {
		assert.Contains(t, text, want)
	}

	// The frozen alert went to the Slack-compatible sink, with a link back to the dashboard.
	var frozenMsg string
	eventually(t, "the frozen alert", func() bool {
		for _, m := range sys.alerts.texts() {
			if strings.Contains(m, "frozen: burst-bot") {
				frozenMsg = m
				return true
			}
		}
		return false
	})
	assert.Contains(t, frozenMsg, "[warning]")
	assert.NotEmpty(t, fleetShot)
	t.Logf("screenshots in %s", shotDir)
}

// TestTeamAndDecisionsEndToEnd: the simulator asks cardwarden to decide each purchase (its
// real-time hook at POST /v1/authorizations/sim), a team workflow (team/research) shares its
// budget with its agent, and the dashboard's team page and agent page show the real team
// state and the decisions the endpoint recorded, with a merchant name carrying markup shown
// as text.
func TestTeamAndDecisionsEndToEnd(t *testing.T) {
	b := browsertest.New(t)
	sys := startSystem(t)
	require.Equal(t, http.StatusOK, call(t, http.MethodPost, sys.simURL+"/v1/sim/decisions", issuersim.DefaultAPIKey,
		map[string]any{"url": sys.url + "/v1/authorizations/sim", "timeout_ms": 2000}, nil))
	code := call(t, http.MethodPost, sys.url+"/v1/teams", adminToken,
		map[string]any{"team_id": "research", "label": "Research", "daily_limit_usd": "30", "monthly_limit_usd": "300"}, nil)
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, code)
	code = call(t, http.MethodPost, sys.url+"/v1/agents", adminToken,
		json.RawMessage(`{"agent_id":"researcher-1","daily_limit_usd":"100","team_id":"research"}`), nil)
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, code)
	var card string
	eventually(t, "researcher-1 has a card", func() bool {
		sv := sys.state(t, "researcher-1")
		if sv.Card != nil && sv.Status == workflows.StatusActive {
			card = sv.Card.ID
			return true
		}
		return false
	})

	const xss = `<script>window.__xss=1</script><img src=x onerror="window.__xss=1">`
	ok, reason := sys.purchase(t, card, 1000, "Anthropic")
	require.True(t, ok, reason)
	ok, reason = sys.purchase(t, card, 2500, xss)
	require.False(t, ok)
	require.Equal(t, "decision_declined", reason)

	var d dashboard.TeamDetail
	eventually(t, "the team's spend on its dashboard page", func() bool {
		d = dashboard.TeamDetail{}
		return call(t, http.MethodGet, sys.url+dashboard.PathTeam+"research", adminToken, nil, &d) == http.StatusOK &&
			d.Team.Live && d.Team.SpentTodayUSD.String() == "10.00" && len(d.Decisions) == 2
	})
	assert.Equal(t, "30.00", d.Team.DailyLimitUSD.String())
	assert.Equal(t, "0.00", d.Team.ReservedUSD.String(), "the authorization arrived: the reservation became spend")
	assert.Equal(t, "20.00", d.Team.RemainingTodayUSD.String())
	assert.Equal(t, []string{"researcher-1"}, d.Team.Members)
	require.Len(t, d.Agents, 1)
	assert.True(t, d.Agents[0].Live)
	assert.Equal(t, xss, d.Decisions[0].Merchant)
	assert.Equal(t, "team_budget", d.Decisions[0].Reason, "$10 + $25 is over the team's $30: the team says no first")
	assert.True(t, d.Decisions[1].Approved)
	assert.True(t, d.Decisions[1].Recorded)
	var l dashboard.TeamList
	require.Equal(t, http.StatusOK, call(t, http.MethodGet, sys.url+dashboard.PathTeams, adminToken, nil, &l))
	require.Len(t, l.Teams, 1)
	assert.Equal(t, "research", l.Teams[0].TeamID)

	b.Do("open the team page", 30*time.Second, chromedp.Navigate(sys.url+"/#/teams/research"))
	b.WaitFor("the token dialog", `document.getElementById("token-dialog").open`, 30*time.Second)
	b.Do("enter the token", 20*time.Second, chromedp.SendKeys(chromedp.ID("token-input"), adminToken), chromedp.Click(chromedp.ID("token-save")))
	b.WaitFor("the team's decisions", `document.querySelectorAll("#decisions tbody tr").length === 2`, 60*time.Second)
	assert.Contains(t, browsertest.Eval[string](b, `document.getElementById("team-budget").innerText`), "$10.00 of $30.00")
	assert.Contains(t, browsertest.Eval[string](b, `document.getElementById("decisions").innerText`), xss)
	b.Do("open researcher-1", 20*time.Second, chromedp.Click(chromedp.CSS(`#members tr[data-agent="researcher-1"] td.agent a`)))
	b.WaitFor("its decisions", `document.getElementById("agent-title") && document.querySelectorAll("#decisions tbody tr").length === 2`, 60*time.Second)
	assert.Contains(t, browsertest.Eval[string](b, `document.getElementById("decisions").innerText`), "team_budget")
	b.Screenshot(t.ArtifactDir(), "e2e-agent-decisions.png")
	assert.False(t, browsertest.Eval[bool](b, `window.__xss === 1`), "the merchant's script ran")
	assert.Empty(t, b.PageErrors(), "the page threw or logged errors")
}
