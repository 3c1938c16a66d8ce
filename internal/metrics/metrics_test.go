package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/issuertest"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/store"
)

// scrape GETs /metrics from the handler over HTTP and parses the text format.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// series returns the family's samples as "label=value,…" → value, labels sorted.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "series %s is missing; have %v", name, names(fams))
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

func names(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for n := range fams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

const simSecret = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1zaW0tYWRhcHRlcg=="

func startSim(t *testing.T) string {
	t.Helper()
	s, err := issuersim.NewServer(issuersim.Config{})
	require.NoError(t, err)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return ts.URL
}

func simAdapter(t *testing.T, url string) issuer.Issuer {
	t.Helper()
	a, err := sim.New(sim.Config{BaseURL: url, APIKey: issuersim.DefaultAPIKey, WebhookSecret: simSecret})
	require.NoError(t, err)
	return a
}

// TestInstrumentedIssuerMeetsTheContract: the decorator is transparent — the adapter contract
// every issuer must meet still passes through it.
func TestInstrumentedIssuerMeetsTheContract(t *testing.T) {
	m := metrics.New(metrics.Options{})
	key, err := stdwebhooks.DecodeSecret(simSecret)
	require.NoError(t, err)
	issuertest.Run(t, func(t *testing.T) issuertest.Harness {
		url := startSim(t)
		return issuertest.Harness{
			Issuer: metrics.InstrumentIssuer(simAdapter(t, url), m),
			SignWebhook: func(t *testing.T, cardID string, ts time.Time) (http.Header, []byte) {
				evID := simPurchase(t, url, cardID, 500)
				var list struct {
					Data []json.RawMessage `json:"data"`
				}
				simCall(t, url, "GET", "/v1/events?card_id="+cardID, nil, &list)
				for _, raw := range list.Data {
					if bytes.Contains(raw, []byte(`"id":"`+evID+`"`)) {
						h := http.Header{}
						stdwebhooks.Sign(h, key, evID, ts, raw)
						return h, raw
					}
				}
				t.Fatalf("event %s not listed", evID)
				return nil, nil
			},
			Purchase: func(t *testing.T, cardID string, amountMinor int64) { simPurchase(t, url, cardID, amountMinor) },
		}
	})
}

// simCall makes a raw request to the simulator's API (purchases are not part of the adapter).
func simCall(t *testing.T, url, method, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+issuersim.DefaultAPIKey)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out))
	}
}

// simPurchase authorizes amountMinor on the card at the simulator and returns the event id.
func simPurchase(t *testing.T, url, cardID string, amountMinor int64) string {
	var r struct {
		EventID string `json:"event_id"`
	}
	simCall(t, url, "POST", "/v1/simulate/authorizations",
		map[string]any{"card_id": cardID, "amount_minor": amountMinor, "merchant": "ACME", "mcc": "5734"}, &r)
	return r.EventID
}

type observed struct {
	mu    sync.Mutex
	calls []string
}

func (o *observed) observe(name string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := name + ":ok"
	if err != nil {
		s = name + ":" + metrics.ErrorKind(err)
	}
	o.calls = append(o.calls, s)
}

func TestInstrumentIssuerCountsCallsCardsAndWebhookFailures(t *testing.T) {
	ctx := context.Background()
	m := metrics.New(metrics.Options{})
	var obs observed
	reg, err := metrics.InstrumentRegistry(issuer.NewRegistry(simAdapter(t, startSim(t))), m, obs.observe)
	require.NoError(t, err)
	iss, err := reg.Get("sim")
	require.NoError(t, err)
	assert.Equal(t, "sim", iss.Name())
	assert.True(t, iss.Capabilities().Pause)
	_, decides := iss.(issuer.Decider)
	assert.True(t, decides, "an adapter that decides purchases still does once instrumented (serve's API looks for issuer.Decider)")

	req := issuer.CreateCardRequest{IdempotencyKey: "cardwarden:agent/a:gen:1", Label: "a", Currency: "USD",
		Limits: []issuer.SpendLimit{{AmountMinor: 5000, Interval: issuer.Daily}}}
	c1, err := iss.CreateCard(ctx, req)
	require.NoError(t, err)
	c2, err := iss.CreateCard(ctx, req) // a retry: same key, same card
	require.NoError(t, err)
	require.Equal(t, c1.ID, c2.ID)
	_, err = iss.PauseCard(ctx, c1.ID)
	require.NoError(t, err)
	_, err = iss.CloseCard(ctx, c1.ID)
	require.NoError(t, err)
	_, err = iss.CloseCard(ctx, c1.ID)
	require.ErrorIs(t, err, issuer.ErrAlreadyClosed)
	_, err = iss.GetCard(ctx, "card_does_not_exist")
	require.ErrorIs(t, err, issuer.ErrNotFound)
	_, err = iss.VerifyWebhook(http.Header{"Webhook-Id": {"x"}, "Webhook-Timestamp": {"1"}, "Webhook-Signature": {"v1,AAAA"}},
		[]byte(`{}`), time.Now())
	require.Error(t, err)
	m.WebhookRejected("nope", metrics.WebhookUnknownIssuer)
	m.EventsDeferred(metrics.DeferredTemporalUnreachable, 3)
	m.EventsDeferred(metrics.DeferredTemporalUnreachable, 1)

	fams := scrape(t, m)
	assert.Equal(t, map[string]float64{"reason=temporal_unreachable": 4}, series(t, fams, "cardwarden_webhook_events_deferred_total"))
	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_cards_issued_total"), "a retried create counts once")
	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_cards_closed_total"), "closing a closed card does not count")
	dur := series(t, fams, "cardwarden_issuer_request_duration_seconds")
	assert.Equal(t, 2.0, dur["issuer=sim,operation=create_card,outcome=ok"])
	assert.Equal(t, 1.0, dur["issuer=sim,operation=pause_card,outcome=ok"])
	assert.Equal(t, 1.0, dur["issuer=sim,operation=close_card,outcome=ok"])
	assert.Equal(t, 1.0, dur["issuer=sim,operation=close_card,outcome=error"])
	assert.Equal(t, 1.0, dur["issuer=sim,operation=get_card,outcome=error"])
	assert.Equal(t, map[string]float64{
		"issuer=sim,kind=already_closed,operation=close_card": 1,
		"issuer=sim,kind=not_found,operation=get_card":        1,
	}, series(t, fams, "cardwarden_issuer_errors_total"))
	assert.Equal(t, map[string]float64{"issuer=sim,reason=signature": 1, "issuer=nope,reason=unknown_issuer": 1},
		series(t, fams, "cardwarden_webhook_verification_failures_total"))
	last := series(t, fams, "cardwarden_issuer_last_success_timestamp_seconds")["issuer=sim"]
	assert.InDelta(t, float64(time.Now().Unix()), last, 3600, "a unix time")

	obs.mu.Lock()
	defer obs.mu.Unlock()
	assert.Equal(t, []string{"sim:ok", "sim:ok", "sim:ok", "sim:ok", "sim:already_closed", "sim:not_found"}, obs.calls,
		"observers see issuer calls, not webhook verification")
}

func TestErrorKind(t *testing.T) {
	assert.Equal(t, "rate_limited", metrics.ErrorKind(&issuer.Error{Kind: issuer.KindRateLimited}))
	assert.Equal(t, "timeout", metrics.ErrorKind(context.DeadlineExceeded))
	assert.Equal(t, "canceled", metrics.ErrorKind(context.Canceled))
	assert.Equal(t, "network", metrics.ErrorKind(errors.New("connection refused")))
}

func TestEventsFreezesAlertsAndAgents(t *testing.T) {
	fail := false
	m := metrics.New(metrics.Options{Version: "v1.2.3", AgentsByStatus: func(context.Context) (map[string]int, error) {
		if fail {
			return nil, errors.New("database is down")
		}
		return map[string]int{"active": 3, "frozen": 1, "weird": 2}, nil
	}})
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindAuthorization, Approved: true})
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindAuthorization, DeclineReason: cardwarden.ReasonSpendingLimit})
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindAuthorization, DeclineReason: cardwarden.ReasonSpendingLimit})
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindAuthorization}) // declined without a reason
	m.ObserveEvent(cardwarden.Event{Issuer: "sim", Kind: cardwarden.KindForceCapture, Approved: true})
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	m.ObserveFreeze("sim", start, start.Add(700*time.Millisecond))
	m.ObserveFreeze("sim", time.Time{}, start)             // no burst start: ignored
	m.ObserveFreeze("sim", start, start.Add(-time.Second)) // clock skew: ignored
	m.AlertDelivery("slack", "frozen", nil)
	m.AlertDelivery("webhook", "frozen", errors.New("500"))

	fams := scrape(t, m)
	assert.Equal(t, map[string]float64{
		"decline_reason=,issuer=sim,kind=authorization,outcome=approved":               1,
		"decline_reason=spending_limit,issuer=sim,kind=authorization,outcome=declined": 2,
		"decline_reason=other,issuer=sim,kind=authorization,outcome=declined":          1,
		"decline_reason=,issuer=sim,kind=force_capture,outcome=approved":               1,
	}, series(t, fams, "cardwarden_issuer_events_total"))
	assert.Equal(t, map[string]float64{"issuer=sim": 1}, series(t, fams, "cardwarden_freeze_latency_seconds"))
	h := fams["cardwarden_freeze_latency_seconds"].GetMetric()[0].GetHistogram()
	assert.InDelta(t, 0.7, h.GetSampleSum(), 1e-9)
	assert.Equal(t, map[string]float64{"kind=frozen,outcome=delivered,sink=slack": 1, "kind=frozen,outcome=failed,sink=webhook": 1},
		series(t, fams, "cardwarden_alerts_total"))
	assert.Equal(t, map[string]float64{"status=active": 3, "status=frozen": 1, "status=revoked": 0, "status=retired": 0, "status=weird": 2},
		series(t, fams, "cardwarden_agents"))
	assert.Equal(t, map[string]float64{"version=v1.2.3": 1}, series(t, fams, "cardwarden_build_info"))
	assert.Contains(t, fams, "go_goroutines")
	assert.Contains(t, fams, "process_cpu_seconds_total")

	// A failing store drops cardwarden_agents, not the scrape.
	fail = true
	fams = scrape(t, m)
	assert.NotContains(t, fams, "cardwarden_agents")
	assert.Contains(t, fams, "cardwarden_issuer_events_total")
}

type fakeLister []store.Agent

func (f fakeLister) ListAgents(context.Context) ([]store.Agent, error) { return f, nil }

func TestStoreAgentCounter(t *testing.T) {
	count := metrics.StoreAgentCounter(fakeLister{{Status: "active"}, {Status: "active"}, {Status: "frozen"}})
	got, err := count(context.Background())
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"active": 2, "frozen": 1}, got)
}

func TestTemporalHandlerReconcilesTagSets(t *testing.T) {
	m := metrics.New(metrics.Options{})
	h := m.TemporalHandler()
	base := h.WithTags(map[string]string{"namespace": "default", "client_name": "temporal_go"})
	worker := base.WithTags(map[string]string{"task_queue": "cardwarden", "worker_type": "WorkflowWorker"})
	base.Counter("temporal_request").Inc(2)
	worker.Counter("temporal_request").Inc(1)
	worker.Counter("temporal_request").Inc(1)
	worker.Gauge("temporal_worker_task_slots_available").Update(100)
	worker.Gauge("temporal_worker_task_slots_available").Update(99)
	worker.Timer("temporal_workflow_task_execution_latency").Record(3 * time.Millisecond)
	worker.Timer("temporal_workflow_task_execution_latency").Record(2 * time.Second)
	h.WithTags(map[string]string{"bad-tag.name": "x"}).Counter("temporal.odd-name").Inc(1)

	fams := scrape(t, m)
	assert.Equal(t, map[string]float64{
		"client_name=temporal_go,namespace=default,task_queue=,worker_type=":                         2,
		"client_name=temporal_go,namespace=default,task_queue=cardwarden,worker_type=WorkflowWorker": 2,
	}, series(t, fams, "temporal_request_total"), "series of one name share the union of label names")
	assert.Equal(t, map[string]float64{"client_name=temporal_go,namespace=default,task_queue=cardwarden,worker_type=WorkflowWorker": 99},
		series(t, fams, "temporal_worker_task_slots_available"))
	assert.Equal(t, map[string]float64{"client_name=temporal_go,namespace=default,task_queue=cardwarden,worker_type=WorkflowWorker": 2},
		series(t, fams, "temporal_workflow_task_execution_latency_seconds"))
	hist := fams["temporal_workflow_task_execution_latency_seconds"].GetMetric()[0].GetHistogram()
	assert.InDelta(t, 2.003, hist.GetSampleSum(), 1e-9)
	for _, b := range hist.GetBucket() {
		switch b.GetUpperBound() {
		case 0.0025:
			assert.Equal(t, uint64(0), b.GetCumulativeCount())
		case 0.005, 1:
			assert.Equal(t, uint64(1), b.GetCumulativeCount())
		case 2.5, 120:
			assert.Equal(t, uint64(2), b.GetCumulativeCount())
		}
	}
	assert.Equal(t, map[string]float64{"bad_tag_name=x": 1}, series(t, fams, "temporal_odd_name_total"))
}

// The SDK tags a handler for every cached workflow with the same tags and keeps it for the
// workflow's life: handlers with one tag set are one shared value, counting into one series.
func TestTemporalHandlerSharesOneHandlerPerTagSet(t *testing.T) {
	m := metrics.New(metrics.Options{})
	h := m.TemporalHandler()
	tags := func() map[string]string {
		return map[string]string{"namespace": "default", "workflow_type": "AgentCard", "task_queue": "cardwarden"}
	}
	a, b := h.WithTags(tags()), h.WithTags(tags())
	assert.True(t, metrics.SameHandler(a, b), "two handlers with one tag set are one")
	other := h.WithTags(map[string]string{"namespace": "default", "workflow_type": "Other", "task_queue": "cardwarden"})
	a.Counter("temporal_workflow_completed").Inc(1)
	b.Counter("temporal_workflow_completed").Inc(2)
	other.Counter("temporal_workflow_completed").Inc(5)
	assert.Equal(t, map[string]float64{
		"namespace=default,task_queue=cardwarden,workflow_type=AgentCard": 3,
		"namespace=default,task_queue=cardwarden,workflow_type=Other":     5,
	}, series(t, scrape(t, m), "temporal_workflow_completed_total"))
}
