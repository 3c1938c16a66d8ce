package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"

	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

const (
	adminToken    = "test-admin-token-0123456789"
	webhookSecret = "whsec_dGVzdC13ZWJob29rLXNlY3JldA=="
)

// fakeControl answers the Temporal-side calls from memory and uses a real starter (over a
// mocked Temporal client and a real store) for tokens and events.
type fakeControl struct {
	*starter.Client
	mu     sync.Mutex
	agents map[string]*workflows.StateView
}

func (f *fakeControl) CreateAgent(ctx context.Context, p workflows.Policy, actor string) (starter.Agent, string, error) {
	np, err := p.Normalize()
	if err != nil {
		return starter.Agent{}, "", &starter.Error{Kind: starter.ErrInvalidPolicy, Op: "start", Msg: err.Error()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := starter.Agent{AgentID: np.AgentID, WorkflowID: workflows.WorkflowID(np.AgentID), RunID: "run-1", Policy: np}
	if st, ok := f.agents[np.AgentID]; ok {
		if st.Policy.DailyLimitUSD != np.DailyLimitUSD {
			return a, "", &starter.Error{Kind: starter.ErrAgentExists, Op: "start", AgentID: np.AgentID, Msg: "daily_limit_usd differs"}
		}
		tok, err := f.Client.IssueToken(ctx, np, actor)
		return a, tok, err
	}
	f.agents[np.AgentID] = &workflows.StateView{AgentID: np.AgentID, Issuer: np.Issuer, Status: workflows.StatusActive, Policy: np, Generation: 1}
	a.Created = true
	tok, err := f.Client.IssueToken(ctx, np, actor)
	return a, tok, err
}

func (f *fakeControl) ListAgents(ctx context.Context, o starter.ListOptions) ([]starter.AgentSummary, error) {
	if _, err := starter.AgentQuery(o); err != nil {
		return nil, &starter.Error{Kind: starter.ErrInvalidRequest, Op: "list", Msg: err.Error()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []starter.AgentSummary
	for id, st := range f.agents {
		if o.Status == "" || st.Status == o.Status {
			out = append(out, starter.AgentSummary{AgentID: id, Status: string(st.Status), Issuer: st.Issuer})
		}
	}
	return out, nil
}

func (f *fakeControl) get(id string) (*workflows.StateView, error) {
	st, ok := f.agents[id]
	if !ok {
		return nil, &starter.Error{Kind: starter.ErrAgentNotFound, Op: "state", AgentID: id}
	}
	return st, nil
}

func (f *fakeControl) State(ctx context.Context, id string) (workflows.StateView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.get(id)
	if err != nil {
		return workflows.StateView{}, err
	}
	return *st, nil
}

func (f *fakeControl) transition(id string, req workflows.ReasonRequest, from, to workflows.Status, gen int) (workflows.StateView, error) {
	if err := req.Validate(); err != nil {
		return workflows.StateView{}, &starter.Error{Kind: starter.ErrInvalidRequest, Op: "update", AgentID: id, Msg: err.Error(), Fields: err.(workflows.FieldErrors)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.get(id)
	if err != nil {
		return workflows.StateView{}, err
	}
	if from != "" && st.Status != from {
		return workflows.StateView{}, &starter.Error{Kind: starter.ErrRejected, Op: "update", AgentID: id, Msg: "card is " + string(st.Status)}
	}
	st.Status = to
	st.Generation += gen
	return *st, nil
}

func (f *fakeControl) Rotate(ctx context.Context, id string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return f.transition(id, req, "", workflows.StatusActive, 1)
}
func (f *fakeControl) Freeze(ctx context.Context, id string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return f.transition(id, req, workflows.StatusActive, workflows.StatusFrozen, 0)
}
func (f *fakeControl) Unfreeze(ctx context.Context, id string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return f.transition(id, req, workflows.StatusFrozen, workflows.StatusActive, 0)
}
func (f *fakeControl) Retire(ctx context.Context, id string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return f.transition(id, req, "", workflows.StatusRetired, 0)
}
func (f *fakeControl) SetBudget(ctx context.Context, id string, req workflows.BudgetRequest) (workflows.StateView, error) {
	if err := req.Validate(); err != nil {
		return workflows.StateView{}, &starter.Error{Kind: starter.ErrInvalidRequest, Op: "set-budget", AgentID: id, Msg: err.Error(), Fields: err.(workflows.FieldErrors)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.get(id)
	if err != nil {
		return workflows.StateView{}, err
	}
	if req.DailyLimitUSD != nil {
		st.Budget.DailyLimitUSD = *req.DailyLimitUSD
	}
	return *st, nil
}

type harness struct {
	t     *testing.T
	srv   *httptest.Server
	store *store.Store
	tc    *mocks.Client
	ctl   *fakeControl
	vault *vault.Vault
	logs  *bytes.Buffer
	now   time.Time
	deps  Deps
}

func newHarness(t *testing.T, opts ...func(*Deps)) *harness {
	t.Helper()
	st := testdb.Open(t, testdb.SQLiteURL(t))
	key := make([]byte, vault.KeySize)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	require.NoError(t, err)
	simAdapter, err := sim.New(sim.Config{BaseURL: "http://127.0.0.1:1", APIKey: "k", WebhookSecret: webhookSecret})
	require.NoError(t, err)
	tc := &mocks.Client{}
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sc := starter.New(tc, starter.Options{Store: st, Logger: logger})
	h := &harness{t: t, store: st, tc: tc, vault: v, logs: logs, now: time.Now(),
		ctl: &fakeControl{Client: sc, agents: map[string]*workflows.StateView{}}}
	cdc, err := codec.New(key)
	require.NoError(t, err)
	h.deps = Deps{
		Store: st, Logger: logger, AdminToken: adminToken, Issuers: issuer.NewRegistry(simAdapter), Vault: v,
		Codec: cdc, Control: h.ctl, RevealLimit: 3, Now: func() time.Time { return h.now },
	}
	for _, o := range opts {
		o(&h.deps)
	}
	h.srv = httptest.NewServer(New(h.deps))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) do(method, path, token string, body any) (int, map[string]any, http.Header) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	require.NoError(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func errCode(m map[string]any) (code, field string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

func TestHealth(t *testing.T) {
	h := newHarness(t)
	status, m, _ := h.do("GET", "/healthz", "", nil)
	require.Equal(t, 200, status)
	require.Equal(t, "ok", m["status"])
}

func TestManagementAPI(t *testing.T) {
	h := newHarness(t)

	status, m, hdr := h.do("GET", "/v1/agents", "", nil)
	require.Equal(t, 401, status)
	require.Equal(t, "unauthorized", must(errCode(m)))
	require.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
	status, _, _ = h.do("GET", "/v1/agents", "wrong-token", nil)
	require.Equal(t, 401, status)

	status, m, _ = h.do("POST", "/v1/agents", adminToken, `{"agent_id":"bot","daily_limit_usd":50,"timezone":"Mars/Base"}`)
	require.Equal(t, 422, status)
	code, field := errCode(m)
	require.Equal(t, "invalid_policy", code)
	require.Equal(t, "policy.timezone", field)

	status, m, _ = h.do("POST", "/v1/agents", adminToken, `{"agent_id":"bot","daily_limit_usd":50}`)
	require.Equal(t, 201, status, "%v", m)
	tok, _ := m["token"].(string)
	require.True(t, strings.HasPrefix(tok, starter.TokenPrefix))
	row, err := h.store.GetAgent(context.Background(), "bot")
	require.NoError(t, err)
	require.Equal(t, starter.HashToken(tok), row.TokenHash, "only the hash is stored")

	// Idempotent: the same policy again is 200 and shows no token.
	status, m, _ = h.do("POST", "/v1/agents", adminToken, `{"agent_id":"bot","daily_limit_usd":50}`)
	require.Equal(t, 200, status)
	require.Nil(t, m["token"])
	require.Contains(t, m["token_note"], "already has")

	status, m, _ = h.do("POST", "/v1/agents", adminToken, `{"agent_id":"bot","daily_limit_usd":70}`)
	require.Equal(t, 409, status)
	require.Equal(t, "agent_exists", must(errCode(m)))

	status, m, _ = h.do("GET", "/v1/agents", adminToken, nil)
	require.Equal(t, 200, status)
	require.Len(t, m["agents"], 1)
	status, m, _ = h.do("GET", "/v1/agents?status=sleepy", adminToken, nil)
	require.Equal(t, 422, status)
	require.Equal(t, "invalid_request", must(errCode(m)))
	status, _, _ = h.do("GET", "/v1/agents?limit=x", adminToken, nil)
	require.Equal(t, 400, status, "a malformed query parameter is a bad request")

	status, m, _ = h.do("GET", "/v1/agents/bot", adminToken, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "active", m["status"])
	status, m, _ = h.do("GET", "/v1/agents/ghost", adminToken, nil)
	require.Equal(t, 404, status)
	require.Equal(t, "agent_not_found", must(errCode(m)))

	status, m, _ = h.do("POST", "/v1/agents/bot/freeze", adminToken, map[string]string{"reason": "investigating"})
	require.Equal(t, 200, status)
	require.Equal(t, "frozen", m["status"])
	status, m, _ = h.do("POST", "/v1/agents/bot/freeze", adminToken, nil)
	require.Equal(t, 409, status)
	require.Equal(t, "rejected", must(errCode(m)))
	status, _, _ = h.do("POST", "/v1/agents/bot/unfreeze", adminToken, nil)
	require.Equal(t, 200, status)
	status, m, _ = h.do("POST", "/v1/agents/bot/rotate", adminToken, `{"reason":"weekly"}`)
	require.Equal(t, 200, status)
	require.EqualValues(t, 2, m["generation"])
	status, m, _ = h.do("POST", "/v1/agents/bot/rotate", adminToken, `{"reason":"x","colour":"red"}`)
	require.Equal(t, 422, status)
	require.Equal(t, "request.colour", must2(errCode(m)))
	status, m, _ = h.do("POST", "/v1/agents/bot/rotate", adminToken, `not json`)
	require.Equal(t, 400, status, "malformed JSON is a bad request, not an invalid one")
	require.Equal(t, "invalid_json", must(errCode(m)))
	status, _, _ = h.do("POST", "/v1/agents/ghost/rotate", adminToken, nil)
	require.Equal(t, 404, status)

	status, m, _ = h.do("POST", "/v1/agents/bot/budget", adminToken, `{"daily_limit_usd":"-5"}`)
	require.Equal(t, 422, status)
	require.Equal(t, "request.daily_limit_usd", must2(errCode(m)))
	status, m, _ = h.do("POST", "/v1/agents/bot/budget", adminToken, `{"daily_limit_usd":"40"}`)
	require.Equal(t, 200, status)
	require.Equal(t, "40.00", m["budget"].(map[string]any)["daily_limit_usd"])

	status, m, _ = h.do("POST", "/v1/agents", adminToken, bytes.Repeat([]byte(" "), maxManagementBody+1))
	require.Equal(t, 413, status)
	require.Equal(t, "payload_too_large", must(errCode(m)))

	status, m, _ = h.do("POST", "/v1/agents/bot/retire", adminToken, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "retired", m["status"])

	status, m, _ = h.do("GET", "/v1/nothing-here", adminToken, nil)
	require.Equal(t, 404, status)
	require.Equal(t, "not_found", must(errCode(m)))
	status, m, hdr = h.do("GET", "/v1/agents/bot/freeze", adminToken, nil)
	require.Equal(t, 405, status)
	require.Equal(t, "method_not_allowed", must(errCode(m)))
	require.Equal(t, "POST", hdr.Get("Allow"))
	status, _, hdr = h.do("DELETE", "/v1/agents", adminToken, nil)
	require.Equal(t, 405, status)
	require.Equal(t, "POST, GET", hdr.Get("Allow"))
}

func must(code, _ string) string   { return code }
func must2(_, field string) string { return field }

// seedCard records a card and its sealed credentials as the issuing activity would.
func (h *harness) seedCard(agentID, cardID, number, cvc string) {
	ctx := context.Background()
	require.NoError(h.t, h.store.RecordCard(ctx, store.Card{AgentID: agentID, Generation: 1, Issuer: "sim", IssuerCardID: cardID,
		Last4: number[len(number)-4:], ExpMonth: 11, ExpYear: 2031, Status: "active", DailyLimitMinor: 5000}))
	e, err := h.vault.Seal("sim", cardID, issuer.Secrets{Number: number, CVC: cvc, ExpMonth: 11, ExpYear: 2031})
	require.NoError(h.t, err)
	require.NoError(h.t, h.store.PutVaultEntry(ctx, e))
}

func TestCredentialPull(t *testing.T) {
	h := newHarness(t)
	_, m, _ := h.do("POST", "/v1/agents", adminToken, `{"agent_id":"alpha","daily_limit_usd":50}`)
	alphaTok := m["token"].(string)
	_, m, _ = h.do("POST", "/v1/agents", adminToken, `{"agent_id":"beta","daily_limit_usd":50}`)
	betaTok := m["token"].(string)

	status, m, _ := h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
	require.Equal(t, 404, status, "no card yet")
	require.Equal(t, "no_card", must(errCode(m)))

	h.seedCard("alpha", "card_a", "4000001234567899", "737")
	status, m, hdr := h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "4000001234567899", m["number"])
	require.Equal(t, "737", m["cvc"])
	require.EqualValues(t, 11, m["exp_month"])
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))

	// Another agent's token, no token, a made-up agent: all 401, all alike.
	for _, c := range []struct{ path, tok string }{
		{"/v1/agents/alpha/card", betaTok}, {"/v1/agents/alpha/card", ""}, {"/v1/agents/nobody/card", betaTok},
		{"/v1/agents/alpha/card", adminToken},
	} {
		status, m, _ = h.do("GET", c.path, c.tok, nil)
		require.Equal(t, 401, status, c.path)
		require.Equal(t, "unauthorized", must(errCode(m)))
	}

	// Rate limit: 3 reveals per minute in this harness; the first one above counts.
	for i := 0; i < 2; i++ {
		status, _, _ = h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
		require.Equal(t, 200, status)
	}
	status, m, hdr = h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
	require.Equal(t, 429, status)
	require.Equal(t, "rate_limited", must(errCode(m)))
	require.Equal(t, "60", hdr.Get("Retry-After"))
	h.now = h.now.Add(2 * time.Minute)
	status, _, _ = h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
	require.Equal(t, 200, status)

	audit, err := h.store.ListAudit(context.Background(), "alpha", 100)
	require.NoError(t, err)
	var reveals, denied int
	for _, e := range audit {
		switch e.Action {
		case ActionReveal:
			reveals++
			require.Contains(t, e.Detail, "****7899")
			require.NotContains(t, e.Detail, "4000001234567899")
		case ActionRevealDenied:
			denied++
		}
	}
	require.Equal(t, 4, reveals)
	require.Equal(t, 3, denied)

	// Token rotation: the old token stops working.
	status, m, _ = h.do("POST", "/v1/agents/alpha/token", adminToken, nil)
	require.Equal(t, 200, status)
	newTok := m["token"].(string)
	status, _, _ = h.do("GET", "/v1/agents/alpha/card", alphaTok, nil)
	require.Equal(t, 401, status)
	h.now = h.now.Add(2 * time.Minute)
	status, _, _ = h.do("GET", "/v1/agents/alpha/card", newTok, nil)
	require.Equal(t, 200, status)
	status, _, _ = h.do("POST", "/v1/agents/ghost/token", "", nil)
	require.Equal(t, 401, status)

	require.NotContains(t, h.logs.String(), "4000001234567899")
	require.NotContains(t, h.logs.String(), alphaTok)
}

func (h *harness) postWebhook(issuerName string, id string, ts time.Time, body []byte, key []byte) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+"/v1/webhooks/"+issuerName, bytes.NewReader(body))
	require.NoError(h.t, err)
	stdwebhooks.Sign(req.Header, key, id, ts, body)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func simEvent(id, cardID string, amountMinor int64, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "type": "authorization.created", "created_at": at, "card_id": cardID,
		"data": map[string]any{"card_id": cardID, "authorization_id": "auth_" + id, "approved": true, "amount_minor": amountMinor, "currency": "usd", "merchant": "Acme"},
	})
	return b
}

// waitSignalled reports whether the sim event is marked signalled within d.
func waitSignalled(t *testing.T, st *store.Store, id string, d time.Duration) bool {
	t.Helper()
	for end := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		ev, err := st.GetEvent(context.Background(), "sim", id)
		require.NoError(t, err)
		if ev.SignalledAt.Valid || time.Now().After(end) {
			return ev.SignalledAt.Valid
		}
	}
}

func TestWebhooks(t *testing.T) {
	// The relay leaves events to the sweep for a moment after Temporal was unreachable; the
	// test retries at once.
	h := newHarness(t, func(d *Deps) { d.Relay.Pause = time.Millisecond })
	key, err := stdwebhooks.DecodeSecret(webhookSecret)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, h.store.UpsertAgent(ctx, store.Agent{AgentID: "bot", Issuer: "sim", Status: "active", Policy: "{}"}))
	h.seedCard("bot", "card_b", "4000009999999991", "123")

	status, m := h.postWebhook("nope", "evt_1", h.now, simEvent("evt_1", "card_b", 500, h.now), key)
	require.Equal(t, 404, status)
	require.Equal(t, "unknown_issuer", must(errCode(m)))

	status, m = h.postWebhook("sim", "evt_1", h.now, simEvent("evt_1", "card_b", 500, h.now), []byte("wrong key"))
	require.Equal(t, 401, status)
	require.Equal(t, "invalid_signature", must(errCode(m)))
	status, _ = h.postWebhook("sim", "evt_1", h.now.Add(-10*time.Minute), simEvent("evt_1", "card_b", 500, h.now), key)
	require.Equal(t, 401, status, "stale timestamp")

	// Genuinely signed but naming no card: refused as the sender's error (a 5xx would be
	// redelivered forever), nothing recorded.
	noCard := []byte(`{"id":"evt_nc","type":"authorization.created","created_at":"` + h.now.Format(time.RFC3339) + `","data":{"approved":true,"amount_minor":100,"currency":"usd"}}`)
	status, m = h.postWebhook("sim", "evt_nc", h.now, noCard, key)
	require.Equal(t, 422, status, "%v", m)
	require.Equal(t, "invalid_event", must(errCode(m)))
	_, err = h.store.GetEvent(ctx, "sim", "evt_nc")
	require.True(t, store.IsNotFound(err), "a refused event is not recorded: %v", err)

	big := bytes.Repeat([]byte("x"), MaxWebhookBody+1)
	status, m = h.postWebhook("sim", "evt_big", h.now, big, key)
	require.Equal(t, 413, status)
	require.Equal(t, "payload_too_large", must(errCode(m)))

	// Temporal down: the event is recorded and acknowledged all the same (the ledger, not the
	// signal, is what keeps it); the relay's signal fails and it waits in the ledger unsignalled.
	tried := make(chan struct{})
	h.tc.On("SignalWorkflow", mock.Anything, "agent/bot", "", workflows.SignalCardEvent, mock.Anything).
		Return(serviceerror.NewUnavailable("down")).Run(func(mock.Arguments) { close(tried) }).Once()
	status, m = h.postWebhook("sim", "evt_1", h.now, simEvent("evt_1", "card_b", 500, h.now), key)
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 1, m["new"])
	select {
	case <-tried:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay never tried to signal the event")
	}
	ev, err := h.store.GetEvent(ctx, "sim", "evt_1")
	require.NoError(t, err)
	require.False(t, ev.SignalledAt.Valid)

	// The issuer retries once Temporal is back: the relay signals it now (the retry may come
	// while the relay is still paused, so the issuer retries until it is), counted once.
	var delivered atomic.Int32
	h.tc.On("SignalWorkflow", mock.Anything, "agent/bot", "", workflows.SignalCardEvent, mock.Anything).
		Return(nil).Run(func(mock.Arguments) { delivered.Add(1) })
	require.Eventually(t, func() bool {
		status, m = h.postWebhook("sim", "evt_1", h.now, simEvent("evt_1", "card_b", 500, h.now), key)
		require.Equal(t, 200, status, "%v", m)
		require.EqualValues(t, 1, m["duplicates"])
		return waitSignalled(t, h.store, "evt_1", 200*time.Millisecond)
	}, 5*time.Second, time.Millisecond, "the retried delivery reached the workflow")

	// A replay of a delivered event: acknowledged, not signalled or counted again.
	before := delivered.Load()
	status, m = h.postWebhook("sim", "evt_1", h.now, simEvent("evt_1", "card_b", 500, h.now), key)
	require.Equal(t, 200, status)
	require.EqualValues(t, 1, m["duplicates"])
	time.Sleep(100 * time.Millisecond) // a signal the relay would send goes out well within this
	require.Equal(t, before, delivered.Load(), "a delivered event was signalled again")
	days, err := h.store.SpendSeries(ctx, "bot", "2000-01-01", "2100-01-01")
	require.NoError(t, err)
	require.Len(t, days, 1)
	require.Equal(t, int64(500), days[0].SpentMinor)

	// An event for a card nobody owns: recorded orphaned, acknowledged, no signal.
	status, m = h.postWebhook("sim", "evt_2", h.now, simEvent("evt_2", "card_ghost", 700, h.now), key)
	require.Equal(t, 200, status)
	require.EqualValues(t, 1, m["orphaned"])
	h.tc.AssertExpectations(t)
}

func TestRedeliveryLoop(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, h.store.UpsertAgent(ctx, store.Agent{AgentID: "bot", Issuer: "sim", Status: "active", Policy: "{}"}))
	h.seedCard("bot", "card_b", "4000009999999991", "123")
	testdb.InsertEvent(t, h.store, store.LedgerEvent{Issuer: "sim", IssuerEventID: "evt_old", AgentID: "bot", IssuerCardID: "card_b",
		Kind: "authorization", Approved: true, AmountMinor: 100, Currency: "USD", Source: store.SourceWebhook,
		OccurredAt: time.Now().Add(-time.Minute), ReceivedAt: time.Now().Add(-time.Minute)})
	signalled := make(chan struct{})
	h.tc.On("SignalWorkflow", mock.Anything, "agent/bot", "", workflows.SignalCardEvent, mock.Anything).
		Run(func(mock.Arguments) { close(signalled) }).Return(nil).Once()
	done := StartRedelivery(ctx, Deps{Store: h.store, Control: h.ctl}, RedeliveryOptions{Every: 10 * time.Millisecond, Grace: time.Second})
	select {
	case <-signalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the stored event was never redelivered")
	}
	require.Eventually(t, func() bool {
		ev, err := h.store.GetEvent(ctx, "sim", "evt_old")
		return err == nil && ev.SignalledAt.Valid
	}, 30*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}

func TestCodecEndpointMounted(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("POST", h.srv.URL+"/codec/encode", strings.NewReader(`{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"IngiCg=="}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Contains(t, string(body), "YmluYXJ5L2VuY3J5cHRlZA==") // "binary/encrypted"
}

func TestLoadOrCreateAdminToken(t *testing.T) {
	path := t.TempDir() + "/sub/admin.token"
	tok, err := LoadOrCreateAdminToken(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, "cwadm_"))
	again, err := LoadOrCreateAdminToken(path)
	require.NoError(t, err)
	require.Equal(t, tok, again)
}
