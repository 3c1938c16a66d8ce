package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// now is the dashboard's clock in these tests: Saturday 28 November 2026, 15:00 UTC.
var now = time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC)

const today = "2026-11-28"

// fakeStates answers the state query from a map; agents in block never answer.
type fakeStates struct {
	mu    sync.Mutex
	views map[string]workflows.StateView
	block map[string]bool
	calls map[string]int
}

func newFakeStates() *fakeStates {
	return &fakeStates{views: map[string]workflows.StateView{}, block: map[string]bool{}, calls: map[string]int{}}
}

func (f *fakeStates) State(ctx context.Context, id string) (workflows.StateView, error) {
	f.mu.Lock()
	f.calls[id]++
	v, ok := f.views[id]
	blocked := f.block[id]
	f.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return workflows.StateView{}, ctx.Err()
	}
	if !ok {
		return workflows.StateView{}, errors.New("workflow not found")
	}
	return v, nil
}

func (f *fakeStates) set(id string, fn func(*workflows.StateView)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.views[id]
	fn(&v)
	f.views[id] = v
}

func policy(id string, daily string, tz string) string {
	b, _ := json.Marshal(map[string]any{"agent_id": id, "label": "label of " + id, "daily_limit_usd": daily, "currency": "USD", "timezone": tz})
	return string(b)
}

// seed writes a small fleet with real rows: three agents, card generations, spend, ledger
// events (an approved authorization, an over-capture, a burst of declines), audit entries and
// an alert.
func seed(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, a := range []store.Agent{
		{AgentID: "support-bot", Label: "Support", Issuer: "sim", Status: "active", Policy: policy("support-bot", "50", "UTC")},
		{AgentID: "research-bot", Issuer: "sim", Status: "frozen", Policy: policy("research-bot", "20", "UTC")},
		{AgentID: "old-bot", Issuer: "sim", Status: "retired", Policy: policy("old-bot", "10", "UTC")},
	} {
		require.NoError(t, st.UpsertAgent(ctx, a))
	}
	cards := []store.Card{
		{AgentID: "support-bot", Generation: 1, Issuer: "sim", IssuerCardID: "card_s1", Last4: "1111", Status: "active", DailyLimitMinor: 5000, CreatedAt: now.Add(-10 * 24 * time.Hour)},
		{AgentID: "support-bot", Generation: 2, Issuer: "sim", IssuerCardID: "card_s2", Last4: "4242", Status: "active", DailyLimitMinor: 5000, CreatedAt: now.Add(-3 * 24 * time.Hour)},
		{AgentID: "research-bot", Generation: 1, Issuer: "sim", IssuerCardID: "card_r1", Last4: "9999", Status: "paused", DailyLimitMinor: 2000, CreatedAt: now.Add(-24 * time.Hour)},
		{AgentID: "old-bot", Generation: 1, Issuer: "sim", IssuerCardID: "card_o1", Last4: "0005", Status: "active", DailyLimitMinor: 1000, CreatedAt: now.Add(-40 * 24 * time.Hour)},
	}
	for _, c := range cards {
		require.NoError(t, st.RecordCard(ctx, c))
	}
	require.NoError(t, st.SetCardStatus(ctx, "sim", "card_s1", "closed", now.Add(-3*24*time.Hour+time.Hour)))
	require.NoError(t, st.SetCardStatus(ctx, "sim", "card_o1", "closed", now.Add(-20*24*time.Hour)))

	ev := func(id, agent, card, kind string, approved bool, reason, auth string, amount int64, at time.Time, spend ...store.SpendDelta) {
		testdb.InsertEvent(t, st, store.LedgerEvent{Issuer: "sim", IssuerEventID: id, AgentID: agent, IssuerCardID: card, Kind: kind,
			Approved: approved, DeclineReason: reason, AuthorizationID: auth, AmountMinor: amount, Currency: "USD", Merchant: "GPU Cloud",
			Source: store.SourceWebhook, OccurredAt: at}, spend...)
	}
	// The daily spend rows, recorded with the first event of each agent (the ledger's rules
	// are package ledger's to test; the dashboard shows what the rows say).
	supportSpend := []store.SpendDelta{
		{AgentID: "support-bot", Day: today, SpentMinor: 1050, OverspendMinor: 250, Declines: 3},
		{AgentID: "support-bot", Day: "2026-11-27", SpentMinor: 4000},
		{AgentID: "support-bot", Day: "2026-10-01", SpentMinor: 999}, // outside 30 days
	}
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	ev("e_y1", "support-bot", "card_s2", "authorization", true, "", "auth_y", 4000, day.Add(-2*time.Hour), supportSpend...) // yesterday
	ev("e1", "support-bot", "card_s2", "authorization", true, "", "auth_1", 1000, day.Add(9*time.Hour+10*time.Minute))
	ev("e2", "support-bot", "card_s2", "capture", true, "", "auth_1", 1250, day.Add(11*time.Hour+5*time.Minute)) // 2.50 over
	ev("e3", "support-bot", "card_s2", "authorization", false, "spending_limit", "", 9900, day.Add(12*time.Hour))
	ev("e4", "support-bot", "card_s2", "authorization", false, "spending_limit", "", 9900, day.Add(12*time.Hour+time.Second))
	ev("e5", "support-bot", "card_s2", "authorization", false, "suspected_fraud", "", 500, day.Add(12*time.Hour+2*time.Second))
	ev("e6", "support-bot", "card_s2", "refund", true, "", "", 200, day.Add(14*time.Hour))
	ev("e_old", "support-bot", "card_s1", "authorization", false, "card_expired", "", 100, now.Add(-9*24*time.Hour)) // outside the timeline
	ev("r1", "research-bot", "card_r1", "authorization", false, "merchant_blocked", "", 300, now.Add(-time.Hour),
		store.SpendDelta{AgentID: "research-bot", Day: today, SpentMinor: 1900})
	for _, a := range []store.AuditEntry{
		{At: day.Add(12*time.Hour + 3*time.Second), Actor: "workflow", Action: "auto-freeze", AgentID: "support-bot", Detail: "3 declines in 5m"},
		{At: day.Add(13 * time.Hour), Actor: "dashboard", Action: "unfreeze", AgentID: "support-bot", Detail: "reviewed"},
		{At: now.Add(-3 * 24 * time.Hour), Actor: "workflow", Action: "card-issued", AgentID: "support-bot", Detail: "generation 2"},
		{At: now.Add(-2 * time.Hour), Actor: "workflow", Action: "set-budget", AgentID: "support-bot", Detail: "not a timeline mark"},
	} {
		require.NoError(t, st.Audit(ctx, a))
	}
	// A revocation the audit log missed: its alert marks it.
	_, err := st.ClaimAlert(ctx, store.Alert{AgentID: "support-bot", Kind: workflows.AlertRevoked, Period: "gen2", Message: "revoked: fraud"})
	require.NoError(t, err)
	require.NoError(t, st.MarkAlertAttempt(ctx, "support-bot", workflows.AlertRevoked, "gen2", true))
}

func liveView(id string) workflows.StateView {
	return workflows.StateView{AgentID: id, Label: "Live " + id, Issuer: "sim", Status: workflows.StatusActive,
		Card:      &workflows.CardView{ID: "card_live", Last4: "7777", Status: "active", Generation: 3},
		Budget:    workflows.BudgetView{Currency: "USD", Day: today, DailyLimitUSD: money.MustParse("50"), SpentTodayUSD: money.MustParse("45.5")},
		Rotations: 2, Freezes: 1, Timezone: "UTC",
		RecentDeclines: []workflows.DeclineView{
			{At: now.Add(-2 * time.Hour), Reason: "spending_limit", AmountUSD: money.MustParse("99")},
			{At: now.Add(-time.Hour), Reason: "merchant_blocked", AmountUSD: money.MustParse("3"), Merchant: "Shop"},
		}}
}

type apiClient struct {
	t   *testing.T
	url string
	tok string
}

func (c apiClient) get(path string, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		require.NoError(c.t, json.Unmarshal(b, out), string(b))
	}
	return res.StatusCode
}

func serve(t *testing.T, cfg Config) apiClient {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = "test-admin-token-0123456789abcdef"
	}
	h, err := New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return apiClient{t: t, url: srv.URL, tok: cfg.AdminToken}
}

func TestPageAndAssets(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	c := serve(t, Config{Store: st})
	for path, ctype := range map[string]string{
		"/":                          "text/html",
		"/index.html":                "text/html",
		"/dashboard/assets/app.js":   "text/javascript",
		"/dashboard/assets/app.css":  "text/css",
		"/dashboard/assets/logo.svg": "image/svg+xml",
	} {
		res, err := http.Get(c.url + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, path)
		assert.Contains(t, res.Header.Get("Content-Type"), ctype, path)
		assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
		assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
		assert.NotEmpty(t, body)
	}
	res, err := http.Get(c.url + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, string(body), `<script src="/dashboard/assets/app.js" defer></script>`)
	assert.NotContains(t, string(body), "<script>", "no inline script: the CSP forbids it")

	for _, path := range []string{"/dashboard/nope", "/dashboard/assets/missing.js", "/other"} {
		res, err := http.Get(c.url + path)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}
}

// Issue 12, item 4: under `serve` without an admin token the dashboard's JSON skipped the
// check, and the whole fleet, policies, push URLs and spend answered 200. No token configured
// now means no access at all.
func TestDashboardWithoutAdminTokenIsClosed(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seed(t, st)
	h, err := New(Config{Store: st, Now: func() time.Time { return now }})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, path := range []string{PathFleet, PathAgent + "support-bot"} {
		for _, tok := range []string{"", "anything"} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode, path)
			assert.NotContains(t, string(body), "support-bot")
		}
	}
}

func TestAdminTokenGuardsTheJSON(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	c := serve(t, Config{Store: st, AdminToken: "s3cret-admin-token-0123456789"})
	assert.Equal(t, http.StatusOK, c.get(PathFleet, nil))
	anon := c
	anon.tok = ""
	assert.Equal(t, http.StatusUnauthorized, anon.get(PathFleet, nil))
	anon.tok = "wrong"
	assert.Equal(t, http.StatusUnauthorized, anon.get(PathAgent+"x", nil))
	anon.tok = ""
	res, err := http.Get(c.url + "/")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode, "the page itself holds no data")
}

func TestFleetFromStoreAndLiveState(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		seed(t, st)
		states := newFakeStates()
		states.views["support-bot"] = liveView("support-bot")
		states.block["research-bot"] = true // its worker is down: the query times out
		c := serve(t, Config{Store: st, States: states, StateTimeout: 50 * time.Millisecond,
			TemporalUIURL: "http://127.0.0.1:8233/", Namespace: "default"})

		var f Fleet
		require.Equal(t, http.StatusOK, c.get(PathFleet, &f))
		require.Len(t, f.Agents, 3)
		byID := map[string]AgentRow{}
		for _, r := range f.Agents {
			byID[r.AgentID] = r
		}
		assert.Equal(t, int64(2000), f.PollMS)
		assert.Equal(t, Totals{Agents: 3, ByStatus: map[string]int{"active": 1, "frozen": 1, "retired": 1}, Live: 1,
			SpentTodayUSD: money.MustParse("64.50")}, f.Totals)

		live := byID["support-bot"]
		assert.True(t, live.Live)
		assert.Equal(t, "Live support-bot", live.Label)
		assert.Equal(t, &CardBrief{Last4: "7777", Status: "active", Generation: 3}, live.Card)
		assert.Equal(t, "45.50", live.SpentTodayUSD.String())
		assert.Equal(t, int64(91), live.SpentPct)
		assert.Equal(t, 2, live.Rotations)
		assert.Equal(t, &Decline{At: now.Add(-time.Hour), Reason: "merchant_blocked", AmountUSD: money.MustParse("3"), Merchant: "Shop"}, live.LastDecline)
		assert.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/agent%2Fsupport-bot", live.WorkflowURL)

		stored := byID["research-bot"]
		assert.False(t, stored.Live, "a workflow that does not answer in time is shown from the store")
		assert.Equal(t, "frozen", stored.Status)
		assert.Equal(t, &CardBrief{Last4: "9999", Status: "paused", Generation: 1}, stored.Card)
		assert.Equal(t, today, stored.Day)
		assert.Equal(t, "19.00", stored.SpentTodayUSD.String())
		assert.Equal(t, "20.00", stored.DailyLimitUSD.String())
		assert.Equal(t, int64(95), stored.SpentPct)
		require.NotNil(t, stored.LastDecline)
		assert.Equal(t, "merchant_blocked", stored.LastDecline.Reason)
		assert.Equal(t, "label of research-bot", stored.Label, "the policy's label when the row has none")

		retired := byID["old-bot"]
		assert.False(t, retired.Live)
		assert.Nil(t, retired.Card, "every card closed")
		states.mu.Lock()
		assert.Zero(t, states.calls["old-bot"], "a retired agent's ended workflow is not queried")
		states.mu.Unlock()
	})
}

func TestFleetIsSharedBetweenPollers(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seed(t, st)
	states := newFakeStates()
	states.views["support-bot"] = liveView("support-bot")
	clock := now
	var mu sync.Mutex
	h, err := New(Config{Store: st, States: states, PollInterval: 2 * time.Second, Now: func() time.Time { return now }, AdminToken: "poll-token"})
	require.NoError(t, err)
	h.(*handler).cacheClock = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := apiClient{t: t, url: srv.URL, tok: "poll-token"}
	for range 3 {
		require.Equal(t, http.StatusOK, c.get(PathFleet, nil))
	}
	states.mu.Lock()
	assert.Equal(t, 1, states.calls["support-bot"], "three polls within a second share one refresh")
	states.mu.Unlock()
	mu.Lock()
	clock = clock.Add(1500 * time.Millisecond)
	mu.Unlock()
	require.Equal(t, http.StatusOK, c.get(PathFleet, nil))
	states.mu.Lock()
	assert.Equal(t, 2, states.calls["support-bot"])
	states.mu.Unlock()
}

func TestAgentDetail(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		seed(t, st)
		c := serve(t, Config{Store: st})
		var d AgentDetail
		require.Equal(t, http.StatusOK, c.get(PathAgent+"support-bot", &d))

		assert.Equal(t, "support-bot", d.Agent.AgentID)
		assert.False(t, d.Agent.Live)
		assert.Nil(t, d.State)
		assert.Equal(t, "UTC", d.Timezone)
		assert.Equal(t, &CardBrief{Last4: "4242", Status: "active", Generation: 2}, d.Agent.Card)
		assert.Equal(t, 1, d.Agent.Rotations)
		assert.Equal(t, "10.50", d.Agent.SpentTodayUSD.String())
		assert.Equal(t, "2.50", d.Agent.OverspendTodayUSD.String())
		assert.Equal(t, "suspected_fraud", d.Agent.LastDecline.Reason)

		require.Len(t, d.Daily, 30)
		assert.Equal(t, "2026-10-30", d.Daily[0].Day)
		assert.Equal(t, DayPoint{Day: "2026-11-27", SpentUSD: money.MustParse("40")}, d.Daily[28])
		assert.Equal(t, DayPoint{Day: today, SpentUSD: money.MustParse("10.50"), OverspendUSD: money.MustParse("2.50"), Declines: 3}, d.Daily[29])

		// By the workflow's own budget rules: the 10.00 authorization at 09h, its capture of
		// 12.50 at 11h adds 2.50, three declines at 12h, a 2.00 refund at 14h.
		require.Len(t, d.Hourly, 24)
		assert.Equal(t, 15, d.NowHour)
		assert.Equal(t, HourPoint{Hour: 9, SpentUSD: money.MustParse("10")}, d.Hourly[9])
		assert.Equal(t, HourPoint{Hour: 11, SpentUSD: money.MustParse("2.50")}, d.Hourly[11])
		assert.Equal(t, HourPoint{Hour: 12, Declines: 3}, d.Hourly[12])
		assert.Equal(t, HourPoint{Hour: 14}, d.Hourly[14], "a refund gives no allowance back: it is no negative spend")
		assert.Equal(t, HourPoint{Hour: 22}, d.Hourly[22], "yesterday's authorization is not today's spend")

		var types []string
		for _, m := range d.Timeline {
			types = append(types, m.Type)
		}
		assert.Equal(t, []string{MarkIssue, MarkDecline, MarkDecline, MarkDecline, MarkFreeze, MarkUnfreeze, MarkRevoke}, types)
		assert.Equal(t, "spending_limit", d.Timeline[1].Reason)
		assert.Equal(t, "99.00", d.Timeline[1].AmountUSD.String())
		assert.Equal(t, "3 declines in 5m", d.Timeline[4].Reason)
		assert.Equal(t, "dashboard", d.Timeline[5].Actor)
		assert.Equal(t, "revoked: fraud", d.Timeline[6].Reason, "the alert marks a revocation the audit log missed")
		assert.Equal(t, now.Add(-7*24*time.Hour), d.TimelineFrom)
		assert.Equal(t, now, d.TimelineTo)

		require.Len(t, d.Cards, 2)
		assert.Equal(t, "closed", d.Cards[0].Status)
		require.NotNil(t, d.Cards[0].ClosedAt)
		assert.Equal(t, now.Add(-3*24*time.Hour+time.Hour), *d.Cards[0].ClosedAt)
		assert.Nil(t, d.Cards[1].ClosedAt)
		assert.Equal(t, "50.00", d.Cards[1].DailyLimitUSD.String())

		require.Len(t, d.Alerts, 1)
		assert.Equal(t, store.AlertSent, d.Alerts[0].Status)
		assert.NotNil(t, d.Alerts[0].SentAt)

		require.Len(t, d.Events, 7, "the ledger read spans the timeline's 7 days, not the 9-day-old decline")
		assert.Equal(t, "refund", d.Events[0].Kind, "newest first")

		assert.Equal(t, http.StatusNotFound, c.get(PathAgent+"ghost", nil))
	})
}

func TestAgentDetailCarriesLiveState(t *testing.T) {
	st := testdb.Open(t, testdb.SQLiteURL(t))
	seed(t, st)
	states := newFakeStates()
	states.views["support-bot"] = liveView("support-bot")
	c := serve(t, Config{Store: st, States: states})
	var d AgentDetail
	require.Equal(t, http.StatusOK, c.get(PathAgent+"support-bot", &d))
	require.NotNil(t, d.State)
	assert.Equal(t, "7777", d.State.Card.Last4)
	assert.True(t, d.Agent.Live)
}

func TestLinks(t *testing.T) {
	assert.Equal(t, "https://cw.example.com/#/agents/support%20bot", AgentLink("https://cw.example.com/")("support bot"))
	assert.Equal(t, alerts.AgentPage("https://cw.example.com", "a/b c"), AgentLink("https://cw.example.com")("a/b c"),
		"alert links and the dashboard's route agree")
	assert.Equal(t, "", WorkflowURL("", "default", "x"))
	assert.Equal(t, "http://ui/namespaces/prod/workflows/agent%2Fa.b", WorkflowURL("http://ui", "prod", "a.b"))
	assert.Equal(t, "http://ui/namespaces/default/workflows/agent%2Fa", WorkflowURL("http://ui", "", "a"))
}

func TestNewNeedsAStore(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "Store"))
}
