package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

// flakyReceiver answers 500 to the first `failures` deliveries, then 200, and keeps every
// delivery it accepted.
type flakyReceiver struct {
	mu        sync.Mutex
	failures  int
	attempts  int
	delivered []alerts.WebhookPayload
	headers   []http.Header
	bodies    [][]byte
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.attempts <= f.failures {
		http.Error(w, "receiver down", http.StatusInternalServerError)
		return
	}
	var p alerts.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.delivered = append(f.delivered, p)
	f.headers = append(f.headers, r.Header.Clone())
	f.bodies = append(f.bodies, body)
}

func (f *flakyReceiver) snapshot() (attempts int, delivered []alerts.WebhookPayload) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts, append([]alerts.WebhookPayload(nil), f.delivered...)
}

// sendAlerts stands in for the AgentCard workflow's alert path (workflows/effects.go): each
// input goes to the SendAlert activity with the same activity options and retry policy.
func sendAlerts(ctx workflow.Context, ins []workflows.AlertInput) ([]workflows.AlertResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              workflows.TaskQueue,
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    2 * time.Minute,
		},
	})
	var out []workflows.AlertResult
	for _, in := range ins {
		var res workflows.AlertResult
		if err := workflow.ExecuteActivity(actx, workflows.ActivitySendAlert, in).Get(ctx, &res); err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func runSendAlerts(t *testing.T, acts *activities.Activities, ins ...workflows.AlertInput) []workflows.AlertResult {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(sendAlerts)
	env.RegisterActivityWithOptions(acts.SendAlert, activityOpts(workflows.ActivitySendAlert))
	env.ExecuteWorkflow(sendAlerts, ins)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var out []workflows.AlertResult
	require.NoError(t, env.GetWorkflowResult(&out))
	return out
}

// TestThresholdAlertOncePerCrossingPerDayWithRetries: the receiving endpoint fails twice, the
// SendAlert activity's retries deliver the alert on the third attempt, and the same threshold
// crossing reported again the same day — by a replayed or continued workflow, or a second
// worker — is not sent again; the next day's crossing is.
func TestThresholdAlertOncePerCrossingPerDayWithRetries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rcv := &flakyReceiver{failures: 2}
		srv := httptest.NewServer(rcv)
		t.Cleanup(srv.Close)

		const secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
		n, err := alerts.NewNotifier(alerts.Config{WebhookURL: srv.URL + "/hooks/cardwarden", WebhookSecret: secret, Outbound: outbound.Dev()})
		require.NoError(t, err)
		acts := &activities.Activities{Store: st, Alerts: n}

		day1 := time.Date(2026, 11, 28, 15, 4, 0, 0, time.UTC)
		crossing := workflows.AlertInput{AgentID: "support-bot", Kind: workflows.AlertThreshold + "-80", Period: "2026-11-28",
			Message: "support-bot spent 40.00 of 50.00 USD today (80%)", At: day1}

		// First crossing: 500, 500, then 200.
		res := runSendAlerts(t, acts, crossing)
		assert.Equal(t, []workflows.AlertResult{{Delivered: true}}, res)
		attempts, delivered := rcv.snapshot()
		assert.Equal(t, 3, attempts, "two failed deliveries and the one that succeeded")
		require.Len(t, delivered, 1)
		assert.Equal(t, alerts.WebhookPayload{Type: alerts.PayloadType, ID: "support-bot/threshold-80/2026-11-28",
			AgentID: "support-bot", Kind: "threshold-80", Period: "2026-11-28", Severity: alerts.SeverityInfo,
			Title: "threshold-80: support-bot", Message: crossing.Message, At: "2026-11-28T15:04:00Z"}, delivered[0])
		key, err := stdwebhooks.DecodeSecret(secret)
		require.NoError(t, err)
		_, err = stdwebhooks.Verify(key, rcv.headers[0], rcv.bodies[0], time.Now(), stdwebhooks.Tolerance)
		require.NoError(t, err, "the delivery is Standard Webhooks-signed")

		rows, err := st.ListAlerts(ctx, "support-bot", 10)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		assert.Equal(t, store.AlertSent, rows[0].Status)
		assert.Equal(t, 3, rows[0].Attempts, "every attempt is counted")
		assert.True(t, rows[0].SentAt.Valid)

		// The same crossing again the same day (twice, from two workflow runs): nothing is sent.
		res = runSendAlerts(t, acts, crossing, crossing)
		assert.Equal(t, []workflows.AlertResult{{Delivered: true, Duplicate: true}, {Delivered: true, Duplicate: true}}, res)
		attempts, delivered = rcv.snapshot()
		assert.Equal(t, 3, attempts)
		assert.Len(t, delivered, 1)

		// The next day's crossing of the same threshold, and another threshold today, each once.
		nextDay := crossing
		nextDay.Period, nextDay.At = "2026-11-29", day1.Add(24*time.Hour)
		other := crossing
		other.Kind = workflows.AlertThreshold + "-100"
		res = runSendAlerts(t, acts, nextDay, other, nextDay, other)
		assert.Equal(t, []workflows.AlertResult{{Delivered: true}, {Delivered: true}, {Delivered: true, Duplicate: true},
			{Delivered: true, Duplicate: true}}, res)
		attempts, delivered = rcv.snapshot()
		assert.Equal(t, 5, attempts)
		require.Len(t, delivered, 3)
		assert.Equal(t, "2026-11-29", delivered[1].Period)
		assert.Equal(t, "threshold-100", delivered[2].Kind)
		assert.Equal(t, alerts.SeverityWarning, delivered[2].Severity)

		rows, err = st.ListAlerts(ctx, "support-bot", 10)
		require.NoError(t, err)
		require.Len(t, rows, 3)
		for _, r := range rows {
			assert.Equal(t, store.AlertSent, r.Status, "%s/%s", r.Kind, r.Period)
		}
	})
}

// TestRejectedAlertIsNotRetried: a receiver that answers 4xx rejects the alert itself; the
// activity fails non-retryably after one attempt and the row stays pending.
func TestRejectedAlertIsNotRetried(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		var calls int
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			mu.Unlock()
			http.Error(w, "no such hook", http.StatusGone)
		}))
		t.Cleanup(srv.Close)
		// No process-wide sinks: the policy's webhook only, signed with the process secret.
		n, err := alerts.NewNotifier(alerts.Config{WebhookSecret: "whsec_c2VjcmV0", Outbound: outbound.Dev()})
		require.NoError(t, err)
		acts := &activities.Activities{Store: st, Alerts: n}
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(sendAlerts)
		env.RegisterActivityWithOptions(acts.SendAlert, activityOpts(workflows.ActivitySendAlert))
		env.ExecuteWorkflow(sendAlerts, []workflows.AlertInput{{AgentID: "bot", Kind: workflows.AlertFrozen, Period: "gen1-freeze1",
			Message: "frozen", WebhookURL: srv.URL, At: time.Now()}})
		require.True(t, env.IsWorkflowCompleted())
		err = env.GetWorkflowError()
		require.Error(t, err)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		assert.Equal(t, "AlertWebhookRejected", appErr.Type())
		assert.True(t, appErr.NonRetryable())
		mu.Lock()
		assert.Equal(t, 1, calls)
		mu.Unlock()
		rows, err := st.ListAlerts(context.Background(), "bot", 10)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		assert.Equal(t, store.AlertPending, rows[0].Status)
		assert.Equal(t, 1, rows[0].Attempts)
	})
}

func activityOpts(name string) activity.RegisterOptions { return activity.RegisterOptions{Name: name} }
