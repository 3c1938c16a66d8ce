package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

// TestMetricsEndpointAfterAScenario runs a short life of one agent — the real AgentCard
// workflow and the real activities, in Temporal's test environment, against the issuer
// simulator and a SQLite store: a card is issued, a burst of declines freezes it, the frozen
// alert goes to a webhook, and retire_at closes the card. It then scrapes /metrics and checks
// every series the operators' view relies on is there with the expected labels.
func TestMetricsEndpointAfterAScenario(t *testing.T) {
	ctx := context.Background()
	st := testdb.Open(t, testdb.SQLiteURL(t))
	require.NoError(t, st.UpsertAgent(ctx, store.Agent{AgentID: "other-active", Issuer: "sim", Status: "active", Policy: "{}"}))
	require.NoError(t, st.UpsertAgent(ctx, store.Agent{AgentID: "other-revoked", Issuer: "sim", Status: "revoked", Policy: "{}"}))

	m := metrics.New(metrics.Options{Version: "test", AgentsByStatus: metrics.StoreAgentCounter(st)})
	watch := &alerts.IssuerWatch{}
	reg, err := metrics.InstrumentRegistry(issuer.NewRegistry(simAdapter(t, startSim(t))), m, watch.Observe)
	require.NoError(t, err)

	var hookMu sync.Mutex
	var hooked []alerts.WebhookPayload
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alerts.WebhookPayload
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &p)
		hookMu.Lock()
		hooked = append(hooked, p)
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)
	notifier, err := alerts.NewNotifier(alerts.Config{WebhookURL: hook.URL, Outbound: outbound.Dev()}) // the receiver is plain http on loopback
	require.NoError(t, err)
	notifier.Observe = m.AlertDelivery

	vlt, err := vault.New([]byte(strings.Repeat("k", vault.KeySize)))
	require.NoError(t, err)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	acts := &activities.Activities{Issuers: reg, Store: st, Vault: vlt, Alerts: notifier, Logger: quiet}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(quiet))
	suite.SetMetricsHandler(m.TemporalHandler())
	env := suite.NewTestWorkflowEnvironment()
	worker.Register(env, acts)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID("demo"), TaskQueue: workflows.TaskQueue})
	start := time.Now().UTC().Truncate(time.Second)
	env.SetStartTime(start)

	var frozen workflows.StateView
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryState)
		require.NoError(t, err)
		var sv workflows.StateView
		require.NoError(t, v.Get(&sv))
		require.NotNil(t, sv.Card, "a card was issued")
		burstStart := start.Add(time.Minute)
		for i := range 3 {
			ev := cardwarden.Event{ID: fmt.Sprintf("evt_decline_%d", i), Issuer: "sim", Kind: cardwarden.KindAuthorization,
				CardID: sv.Card.ID, DeclineReason: cardwarden.ReasonSpendingLimit, AmountMinor: 9900, Currency: "USD",
				MerchantName: "GPU Cloud", OccurredAt: burstStart.Add(time.Duration(i) * time.Second), Recorded: true}
			env.SignalWorkflow(workflows.SignalCardEvent, ev)
			m.ObserveEvent(ev) // what the webhook receiver does for each new event
		}
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&frozen))
		// The PauseCard activity's hook, given the burst's first event time.
		m.ObserveFreeze("sim", start.Add(time.Minute), start.Add(time.Minute+1500*time.Millisecond))
	}, 2*time.Minute)

	policy := fmt.Sprintf(`{"agent_id":"demo","daily_limit_usd":50,"anomaly":{"max_declines":3},"rotate_cron":"off","retire_at":%q}`,
		start.Add(time.Hour).Format(time.RFC3339))
	env.ExecuteWorkflow(workflows.WorkflowType, json.RawMessage(policy))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, workflows.StatusFrozen, frozen.Status, "the burst froze the card: %+v", frozen)

	fams := scrape(t, m)

	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_cards_issued_total"))
	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_cards_closed_total"))
	dur := series(t, fams, "cardwarden_issuer_request_duration_seconds")
	for _, op := range []string{metrics.OpCreateCard, metrics.OpRevealCard, metrics.OpPauseCard, metrics.OpCloseCard} {
		assert.GreaterOrEqual(t, dur["issuer=sim,operation="+op+",outcome=ok"], 1.0, "issuer call %s timed", op)
	}
	assert.Contains(t, fams, "cardwarden_issuer_last_success_timestamp_seconds")
	assert.Equal(t, map[string]float64{"decline_reason=spending_limit,issuer=sim,kind=authorization,outcome=declined": 3},
		series(t, fams, "cardwarden_issuer_events_total"))
	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_freeze_latency_seconds"))
	assert.Equal(t, 1.0, series(t, fams, "cardwarden_alerts_total")["kind=frozen,outcome=delivered,sink=webhook"])
	assert.Equal(t, map[string]float64{"status=active": 1, "status=frozen": 0, "status=revoked": 1, "status=retired": 1},
		series(t, fams, "cardwarden_agents"), "demo retired at retire_at")
	assert.Equal(t, map[string]float64{"version=test": 1}, series(t, fams, "cardwarden_build_info"))

	// The Temporal SDK's own metrics, through the adapter, with the SDK's tags as labels. (The
	// test environment emits the local-activity ones; a real worker adds the workflow-task,
	// poller and request series the same way.)
	assert.Contains(t, fams, "temporal_local_activity_total", "have %v", names(fams))
	latency := series(t, fams, "temporal_local_activity_execution_latency_seconds")
	var sawUpsert bool
	for labels := range latency {
		if strings.Contains(labels, "activity_type="+workflows.ActivityUpsertAgent) {
			sawUpsert = true
			assert.Contains(t, labels, "workflow_type="+workflows.WorkflowType)
		}
	}
	assert.True(t, sawUpsert, "local activity latency by activity_type: %v", latency)

	hookMu.Lock()
	defer hookMu.Unlock()
	var kinds []string
	for _, p := range hooked {
		kinds = append(kinds, p.Kind)
	}
	assert.Contains(t, kinds, workflows.AlertFrozen)
	assert.Empty(t, watch.Down(), "the issuer answered every call")
}

// TestDeployFilesUseExistingSeries: every series the Grafana dashboard and the Prometheus
// rules in deploy/ query is one this package exports (cardwarden_*) or the Temporal SDK
// emits through TemporalHandler (temporal_*), so a renamed series cannot silently blank a
// panel.
func TestDeployFilesUseExistingSeries(t *testing.T) {
	m := metrics.New(metrics.Options{AgentsByStatus: func(context.Context) (map[string]int, error) { return nil, nil }})
	// Touch every labelled series once so the registry lists them.
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindAuthorization})
	m.ObserveFreeze("sim", time.Unix(0, 0), time.Unix(1, 0))
	m.WebhookRejected("sim", metrics.WebhookTooLarge)
	m.AlertDelivery("slack", "frozen", nil)
	iss := metrics.InstrumentIssuer(simAdapter(t, startSim(t)), m)
	c, err := iss.CreateCard(context.Background(), issuer.CreateCardRequest{IdempotencyKey: "k", Label: "x", Currency: "USD",
		Limits: []issuer.SpendLimit{{AmountMinor: 100, Interval: issuer.Daily}}})
	require.NoError(t, err)
	_, err = iss.CloseCard(context.Background(), c.ID)
	require.NoError(t, err)
	_, err = iss.CloseCard(context.Background(), c.ID)
	require.Error(t, err)
	fams := scrape(t, m)
	known := map[string]bool{}
	for name := range fams {
		known[name] = true
	}
	// The SDK names used in deploy/ (go.temporal.io/sdk/internal/common/metrics), as the adapter
	// exports them.
	for _, n := range []string{"temporal_workflow_task_execution_latency_seconds", "temporal_workflow_task_schedule_to_start_latency_seconds",
		"temporal_activity_schedule_to_start_latency_seconds", "temporal_activity_execution_latency_seconds",
		"temporal_activity_execution_failed_total", "temporal_local_activity_execution_failed_total",
		"temporal_worker_task_slots_available", "temporal_request_total", "temporal_request_failure_total"} {
		known[n] = true
	}
	series := regexp.MustCompile(`\b(?:cardwarden|temporal)_[a-z0-9_]+`)
	for _, file := range []string{"../../deploy/grafana-cardwarden.json", "../../deploy/prometheus-cardwarden-rules.yml"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		used := series.FindAllString(string(b), -1)
		require.NotEmpty(t, used, file)
		for _, name := range used {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && known[trimmed] {
					base = trimmed
				}
			}
			assert.True(t, known[base], "%s uses %s, which nothing exports", file, name)
		}
	}
}
