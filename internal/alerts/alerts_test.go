package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
)

var at = time.Date(2026, 11, 28, 14, 30, 0, 0, time.UTC)

// receiver records deliveries and answers with the queued statuses, then 200.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	reqs     []recorded
}

type recorded struct {
	header http.Header
	body   []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Header.Clone(), body})
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *receiver) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func newReceiver(t *testing.T, statuses ...int) (*receiver, string) {
	r := &receiver{statuses: statuses}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func sample() Alert {
	return Alert{AgentID: "support-bot", Kind: "threshold-80", Period: "2026-11-28",
		Message: "spent 40.00 of 50.00 USD today (80%)", At: at}
}

func TestSeverityOf(t *testing.T) {
	assert.Equal(t, SeverityCritical, SeverityOf(KindOverspend))
	assert.Equal(t, SeverityCritical, SeverityOf(KindRevoked))
	assert.Equal(t, SeverityCritical, SeverityOf(KindIssuerUnreachable))
	assert.Equal(t, SeverityWarning, SeverityOf(KindFrozen))
	assert.Equal(t, SeverityWarning, SeverityOf(KindRotationFailed))
	assert.Equal(t, SeverityWarning, SeverityOf("threshold-100"))
	assert.Equal(t, SeverityInfo, SeverityOf("threshold-50"))
	a := sample()
	a.Severity = SeverityCritical
	assert.Equal(t, SeverityCritical, a.severity())
	assert.Equal(t, "support-bot/threshold-80/2026-11-28", a.Key())
	assert.Equal(t, "issuer-unreachable: fleet", Alert{Kind: KindIssuerUnreachable}.Title())
}

func TestSlackSinkPostsIncomingWebhookMessage(t *testing.T) {
	r, url := newReceiver(t)
	a := sample()
	a.Message = "limit <b> & co"
	a.Link = "http://dash/#/agents/support-bot"
	require.NoError(t, (&SlackSink{URL: url + "/services/T000/B000/XXXX", Client: testClient}).Send(context.Background(), a))
	reqs := r.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "application/json", reqs[0].header.Get("Content-Type"))
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Elements []struct {
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(reqs[0].body, &msg))
	assert.Equal(t, "[info] threshold-80: support-bot — limit <b> & co", msg.Text)
	require.Len(t, msg.Blocks, 2)
	assert.Equal(t, "mrkdwn", msg.Blocks[0].Text.Type)
	assert.Contains(t, msg.Blocks[0].Text.Text, "*threshold-80: support-bot*")
	assert.Contains(t, msg.Blocks[0].Text.Text, "<http://dash/#/agents/support-bot|open dashboard>")
	assert.Contains(t, msg.Blocks[0].Text.Text, "limit &lt;b&gt; &amp; co", "mrkdwn control characters are escaped")
	assert.Contains(t, msg.Blocks[1].Elements[0].Text, "period `2026-11-28`")
	assert.Contains(t, msg.Blocks[1].Elements[0].Text, "2026-11-28T14:30:00Z")
}

func TestWebhookSinkSignsStandardWebhooks(t *testing.T) {
	r, url := newReceiver(t)
	key, err := stdwebhooks.DecodeSecret("whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=")
	require.NoError(t, err)
	sink := &WebhookSink{URL: url, Key: key, Client: testClient, Now: func() time.Time { return at }}
	require.NoError(t, sink.Send(context.Background(), sample()))
	req := r.requests()[0]
	id, err := stdwebhooks.Verify(key, req.header, req.body, at.Add(time.Minute), stdwebhooks.Tolerance)
	require.NoError(t, err, "a Standard Webhooks verifier accepts the delivery")
	assert.Equal(t, "support-bot/threshold-80/2026-11-28", id)
	assert.Equal(t, "support-bot/threshold-80/2026-11-28", req.header.Get("Idempotency-Key"))
	assert.Equal(t, userAgent, req.header.Get("User-Agent"))
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(req.body, &p))
	assert.Equal(t, WebhookPayload{Type: PayloadType, ID: id, AgentID: "support-bot", Kind: "threshold-80", Period: "2026-11-28",
		Severity: SeverityInfo, Title: "threshold-80: support-bot", Message: sample().Message, At: "2026-11-28T14:30:00Z"}, p)

	// A tampered body fails verification.
	_, err = stdwebhooks.Verify(key, req.header, append(req.body, ' '), at, stdwebhooks.Tolerance)
	require.Error(t, err)

	// Unsigned without a key.
	require.NoError(t, (&WebhookSink{URL: url, Client: testClient}).Send(context.Background(), sample()))
	assert.Empty(t, r.requests()[1].header.Get(stdwebhooks.HeaderSignature))
}

func TestDeliveryErrorsClassify(t *testing.T) {
	ctx := context.Background()
	for status, permanent := range map[int]bool{500: false, 503: false, 429: false, 408: false, 400: true, 404: true, 410: true, 403: true} {
		_, url := newReceiver(t, status)
		err := (&WebhookSink{URL: url, Client: testClient}).Send(ctx, sample())
		var de *DeliveryError
		require.ErrorAs(t, err, &de, "status %d", status)
		assert.Equal(t, status, de.StatusCode)
		assert.Equal(t, permanent, Permanent(err), "status %d", status)
	}
	// Unreachable: retryable, and the error names the host, not the secret path.
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/services/SECRET-PATH"
	srv.Close()
	err := (&SlackSink{URL: dead, Client: testClient}).Send(ctx, sample())
	require.Error(t, err)
	assert.False(t, Permanent(err))
	assert.NotContains(t, err.Error(), "SECRET-PATH")
	// A URL that is not http(s) is a configuration error: permanent.
	err = (&WebhookSink{URL: "ftp://example.com/x", Client: testClient}).Send(ctx, sample())
	assert.True(t, Permanent(err))

	assert.False(t, Permanent(nil))
	assert.False(t, Permanent(errors.New("db down")))
	joined := errors.Join(&DeliveryError{Sink: "a", Permanent: true}, &DeliveryError{Sink: "b"})
	assert.False(t, Permanent(joined), "one retryable failure makes the whole retryable")
	assert.True(t, Permanent(fmt.Errorf("wrapped: %w", errors.Join(&DeliveryError{Sink: "a", Permanent: true}))))
}

func TestNotifierFansOutAndSkipsDelivered(t *testing.T) {
	ctx := context.Background()
	slack, slackURL := newReceiver(t)
	hook, hookURL := newReceiver(t, 500)
	agent, agentURL := newReceiver(t)
	var observed []string
	n := &Notifier{
		Sinks: []Sink{&SlackSink{URL: slackURL, Client: testClient}, &WebhookSink{URL: hookURL, Client: testClient}},
		AgentWebhook: func(url string) Sink {
			return &WebhookSink{URL: url, Client: testClient, SinkName: AgentWebhookSinkName, RequireSignature: true}
		},
		Link: func(id string) string { return "http://dash/#/agents/" + id },
		Observe: func(sink, kind string, err error) {
			observed = append(observed, fmt.Sprintf("%s:%s:%v", sink, kind, err == nil))
		},
	}
	a := sample()
	a.WebhookURL = agentURL
	a.WebhookKey = []byte("agent-push-key")
	delivered, err := n.Send(ctx, a, nil)
	require.Error(t, err)
	assert.False(t, Permanent(err))
	assert.Equal(t, []string{"slack", AgentWebhookSinkName}, delivered)
	assert.Len(t, slack.requests(), 1)
	assert.Len(t, hook.requests(), 1)
	assert.Len(t, agent.requests(), 1)
	assert.Equal(t, []string{"slack:threshold-80:true", "webhook:threshold-80:false", "agent-webhook:threshold-80:true"}, observed)

	// The retry sends only to the sink that failed.
	delivered, err = n.Send(ctx, a, delivered)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"slack", "webhook", AgentWebhookSinkName}, delivered)
	assert.Len(t, slack.requests(), 1)
	assert.Len(t, hook.requests(), 2)
	assert.Len(t, agent.requests(), 1)
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(hook.requests()[1].body, &p))
	assert.Equal(t, "http://dash/#/agents/support-bot", p.Link)

	// No sinks: nothing to do, success.
	delivered, err = (&Notifier{}).Send(ctx, sample(), nil)
	require.NoError(t, err)
	assert.Empty(t, delivered)
	var nilNotifier *Notifier
	_, err = nilNotifier.Send(ctx, sample(), nil)
	require.NoError(t, err)
}

// testClient is the hardened client with the dev rules: these tests' receivers are plain http
// on the loopback interface.
var testClient = outbound.NewClient(outbound.Dev(), outbound.Options{})

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{EnvSlackURL: "https://hooks.slack.test/x", EnvWebhookURL: "https://hooks.test/y",
		EnvWebhookSecret: "plain-secret", EnvIssuerDownAfter: "90s", EnvPublicURL: "https://cw.example.com/"}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, c.IssuerDownAfter)
	n, err := NewNotifier(c)
	require.NoError(t, err)
	require.Len(t, n.Sinks, 2)
	assert.Equal(t, "slack", n.Sinks[0].Name())
	assert.Equal(t, []byte("plain-secret"), n.Sinks[1].(*WebhookSink).Key)
	assert.Equal(t, []byte("plain-secret"), n.AgentWebhook("https://agent.test").(*WebhookSink).Key)
	assert.Equal(t, "https://cw.example.com/#/agents/support%20bot", n.Link("support bot"))

	env[EnvIssuerDownAfter] = "soon"
	_, err = ConfigFromEnv(func(k string) string { return env[k] })
	require.Error(t, err)
	_, err = NewNotifier(Config{WebhookSecret: "whsec_!!!"})
	require.Error(t, err)
	// Alert targets must pass the outbound rules at start-up; the error names the variable,
	// never the URL (a Slack webhook URL is its own credential).
	for _, c := range []Config{{SlackURL: "http://hooks.slack.test/services/SECRET"}, {WebhookURL: "https://10.1.2.3/hook"},
		{WebhookURL: "https://169.254.169.254/latest"}} {
		_, err = NewNotifier(c)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "SECRET")
	}
	_, err = NewNotifier(Config{WebhookURL: "https://10.1.2.3/hook", Outbound: outbound.Rules{Allow: []string{"10.1.2.3"}}})
	require.NoError(t, err)
}

// memStore is an in-memory alerts Store with the same claim semantics as the database.
type memStore struct {
	mu   sync.Mutex
	rows map[string]*store.Alert
}

func (m *memStore) ClaimAlert(_ context.Context, a store.Alert) (store.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string]*store.Alert{}
	}
	k := a.AgentID + "/" + a.Kind + "/" + a.Period
	if r, ok := m.rows[k]; ok {
		return *r, nil
	}
	a.Status = store.AlertPending
	m.rows[k] = &a
	return a, nil
}

func (m *memStore) MarkAlertAttempt(_ context.Context, agentID, kind, period string, sent bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[agentID+"/"+kind+"/"+period]
	if !ok {
		return store.ErrNotFound
	}
	r.Attempts++
	if sent {
		r.Status = store.AlertSent
	}
	return nil
}

func TestIssuerWatch(t *testing.T) {
	ctx := context.Background()
	r, url := newReceiver(t, 502)
	now := at
	st := &memStore{}
	w := &IssuerWatch{After: 5 * time.Minute, Now: func() time.Time { return now },
		Dispatcher: &Dispatcher{Store: st, Notifier: &Notifier{Sinks: []Sink{&WebhookSink{URL: url, Client: testClient}}}}}

	transient := &issuer.Error{Kind: issuer.KindTransient, Op: "pause_card", Message: "503"}
	w.Observe("sim", transient)
	w.Observe("stripe", &issuer.Error{Kind: issuer.KindNotFound, Op: "get_card"}) // an answer: reachable
	w.Observe("sim", context.Canceled)                                            // our own cancellation: ignored
	assert.Equal(t, map[string]time.Time{"sim": at}, w.Down())

	now = at.Add(4 * time.Minute)
	require.NoError(t, w.Check(ctx))
	assert.Empty(t, r.requests(), "not down long enough")

	now = at.Add(6 * time.Minute)
	w.Observe("sim", errors.New("dial tcp: connection refused"))
	require.Error(t, w.Check(ctx), "first delivery answered 502")
	require.NoError(t, w.Check(ctx), "retried on the next check")
	require.NoError(t, w.Check(ctx), "alerted once")
	reqs := r.requests()
	require.Len(t, reqs, 2)
	var p WebhookPayload
	require.NoError(t, json.Unmarshal(reqs[1].body, &p))
	assert.Equal(t, KindIssuerUnreachable, p.Kind)
	assert.Equal(t, "", p.AgentID)
	assert.Equal(t, "sim/2026-11-28T14", p.Period)
	assert.Equal(t, SeverityCritical, p.Severity)
	assert.Contains(t, p.Message, "issuer sim has failed every call for 6m0s")
	assert.Contains(t, p.Message, "connection refused")

	// Recovery ends the outage; a new outage later alerts again.
	w.Observe("sim", nil)
	assert.Empty(t, w.Down())
	now = at.Add(2 * time.Hour)
	w.Observe("sim", &issuer.Error{Kind: issuer.KindUnauthorized, Op: "create_card"})
	now = now.Add(10 * time.Minute)
	require.NoError(t, w.Check(ctx))
	require.Len(t, r.requests(), 3)
	assert.True(t, strings.HasPrefix(string(r.requests()[2].body), `{"type":"cardwarden.alert"`))
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := &IssuerWatch{Dispatcher: &Dispatcher{Store: &memStore{}, Notifier: &Notifier{}}}
	w.Run(ctx, time.Hour) // returns at once
}
