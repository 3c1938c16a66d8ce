// Package model is the adversarial model test of the budget invariant (README, "Money
// safety"): seeded random sequences of purchases racing card changes, captures, reversals,
// refunds, force-posts, budget changes, freezes, retire-and-recreate and resets, under issuer
// faults, run against the real AgentCard workflow on a real Temporal server, the real HTTP API
// and the issuer simulator; every check is made against the simulator's own records.
package model_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

const simKey = "sim_model_key"

var whSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cardwarden-model-test-webhooks"))

// stack is cardwarden as production wires it, in one process: Temporal's test server, a
// SQLite application database, the issuer simulator (behind a proxy that can lose responses),
// the HTTP API receiving the simulator's signed webhooks (and its redelivery loop), and a worker.
type stack struct {
	t       testing.TB
	logDir  string
	tc      client.Client
	st      *store.Store
	sim     *issuersim.Server
	simURL  string
	apiURL  string
	admin   string
	adapter *sim.Adapter
	lossy   *lossyIssuer
	hc      *http.Client
	// decided are the agents whose purchases cardwarden decides in real time (the simulator
	// asks every purchase; the others are approved by the hook at once, as if it were off).
	decided sync.Map
	// asked counts the purchases sent to the decision endpoint.
	asked atomic.Int64
}

// decide is the simulator's decision hook: the decided agents' requests go to the API's
// POST /v1/authorizations/sim unchanged (signature and all), the others are approved.
func (s *stack) decide(apiHandler http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var req struct {
			CardID string `json:"card_id"`
		}
		_ = json.Unmarshal(body, &req)
		if c, err := s.st.CardByIssuerID(r.Context(), "sim", req.CardID); err == nil {
			if _, ok := s.decided.Load(c.AgentID); ok {
				s.asked.Add(1)
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.URL.Path = "/v1/authorizations/sim"
				apiHandler.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"approved":true}`))
	}
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	// The log outlives a failed test, with the histories of the agents that failed.
	logDir, err := os.MkdirTemp("", "cardwarden-model-")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(logDir, "stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if !t.Failed() {
			os.RemoveAll(logDir)
		} else {
			t.Logf("stack log and failed agents' histories kept in %s", logDir)
		}
	})
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ts := temporaltest.NewServer(temporaltest.WithT(t), temporaltest.WithBaseClientOptions(client.Options{
		Logger: sdklog.NewStructuredLogger(log.With("component", "sdk")),
	}))
	tc := ts.GetDefaultClient()
	registerSearchAttributes(t, tc, ts.GetDefaultNamespace())

	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "cardwarden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	apiSrv := httptest.NewUnstartedServer(nil)
	simSrv := httptest.NewUnstartedServer(nil)
	s := &stack{t: t, logDir: logDir, tc: tc, st: st, apiURL: "http://" + apiSrv.Listener.Addr().String(),
		simURL: "http://" + simSrv.Listener.Addr().String(), admin: randomHex(16),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	s.sim, err = issuersim.NewServer(issuersim.Config{
		APIKey: simKey, WebhookURL: s.apiURL + "/v1/webhooks/sim", WebhookSecret: whSecret,
		WebhookRetryInitial: 50 * time.Millisecond, WebhookRetryMax: time.Second, Logger: log.With("component", "sim"),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.lossy = &lossyIssuer{next: s.sim}
	simSrv.Config.Handler = s.lossy
	simSrv.Start()
	t.Cleanup(func() { s.sim.Close(); simSrv.Close() })

	issuers, err := adapters.New(adapters.Config{Sim: adapters.SimConfig{BaseURL: s.simURL, APIKey: simKey, WebhookSecret: whSecret}})
	if err != nil {
		t.Fatal(err)
	}
	s.adapter, err = sim.New(sim.Config{BaseURL: s.simURL, APIKey: simKey, WebhookSecret: whSecret})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(bytes.Repeat([]byte{3}, vault.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ctl := starter.New(tc, starter.Options{Store: st, Logger: log.With("component", "starter"), Issuers: issuers.Names()})
	deps := api.Deps{Store: st, Temporal: tc, Logger: log.With("component", "api"), Issuers: issuers,
		Control: ctl, AdminToken: s.admin, Vault: v}
	apiHandler := api.New(deps)
	// The redelivery loop, with the defaults `cardwarden serve` and `dev` run it with: an event
	// whose signal failed after its webhook was recorded (and acknowledged) is signalled again.
	rctx, stopRedelivery := context.WithCancel(ctx)
	redelivered := api.StartRedelivery(rctx, deps, api.RedeliveryOptions{})
	t.Cleanup(func() { stopRedelivery(); <-redelivered })
	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	mux.Handle("POST /model/decide", s.decide(apiHandler))
	apiSrv.Config.Handler = mux
	apiSrv.Start()
	if err := s.sim.SetDecisionHook(issuersim.DecisionHook{URL: s.apiURL + "/model/decide", Fallback: issuersim.FallbackDecline}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(apiSrv.Close)

	acts := &activities.Activities{Issuers: issuers, Store: st, Vault: v, Logger: log.With("component", "activities"),
		HTTPClient: outbound.NewClient(outbound.Dev(), outbound.Options{})}
	w := worker.New(tc, acts, worker.Config{IssuerRatePerSecond: 500, Main: sdkworker.Options{WorkflowPanicPolicy: sdkworker.FailWorkflow}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return s
}

func registerSearchAttributes(t testing.TB, c client.Client, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns,
		SearchAttributes: map[string]enumspb.IndexedValueType{
			workflows.SearchAttrAgentID:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
			workflows.SearchAttrCardStatus: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
			workflows.SearchAttrIssuer:     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		},
	})
	if err != nil {
		t.Fatalf("register search attributes: %v", err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lossyIssuer sits in front of the simulator and, while rate is set, lets a share of the card
// API's POSTs execute and then loses the response (502): what idempotency keys are for.
type lossyIssuer struct {
	next  http.Handler
	every atomic.Int64 // lose every n-th card POST; 0 loses none
	n     atomic.Int64
	lost  atomic.Int64
}

func (l *lossyIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := l.every.Load()
	if k <= 0 || r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/cards") || l.n.Add(1)%k != 0 {
		l.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	l.lost.Add(1)
	http.Error(w, `{"error":{"type":"api_error","code":"response_lost","message":"executed, response lost"}}`, http.StatusBadGateway)
}

// call makes a JSON request and decodes a JSON answer; it returns the status.
func (s *stack) call(ctx context.Context, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("decode %s %s: %w: %s", method, url, err, raw)
		}
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, bytes.TrimSpace(raw))
	}
	return res.StatusCode, nil
}

// sim calls the simulator's API (purchases and other money movements).
func (s *stack) simPost(ctx context.Context, path string, body, out any) error {
	_, err := s.call(ctx, http.MethodPost, s.simURL+path, simKey, body, out)
	return err
}

// apiPost calls cardwarden's management API with the admin token.
func (s *stack) apiPost(ctx context.Context, path string, body, out any) error {
	_, err := s.call(ctx, http.MethodPost, s.apiURL+path, s.admin, body, out)
	return err
}

// state is the agent's workflow state through the management API.
func (s *stack) state(ctx context.Context, agentID string) (workflows.StateView, error) {
	var v workflows.StateView
	_, err := s.call(ctx, http.MethodGet, s.apiURL+"/v1/agents/"+agentID, s.admin, nil, &v)
	return v, err
}

// faults sets the simulator's faults and the lost-response rate.
func (s *stack) faults(f issuersim.Faults, loseEvery int64) {
	if err := s.sim.SetFaults(f); err != nil {
		s.t.Errorf("set faults: %v", err)
	}
	s.lossy.every.Store(loseEvery)
}

// simCards lists the agent's cards as the simulator has them.
func (s *stack) simCards(ctx context.Context, agentID string) ([]simCard, error) {
	var page struct {
		Data []simCard `json:"data"`
	}
	_, err := s.call(ctx, http.MethodGet, s.simURL+"/v1/cards?limit=1000&agent_id="+agentID, simKey, nil, &page)
	return page.Data, err
}

type simCard struct {
	ID       string            `json:"id"`
	Status   string            `json:"status"`
	Metadata map[string]string `json:"metadata"`
	Spend    struct {
		AllTimeMinor int64 `json:"all_time_minor"`
	} `json:"spend"`
	CreatedAt time.Time `json:"created_at"`
}

// simEvents lists the money events on a card as the simulator recorded them.
func (s *stack) simEvents(ctx context.Context, cardID string) ([]cardwarden.Event, error) {
	return s.adapter.ListAuthorizations(ctx, cardID, time.Time{})
}

// dumpHistory writes every run of the agent's workflow to the log directory, for a failure.
func (s *stack) dumpHistory(agentID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := os.Create(filepath.Join(s.logDir, agentID+".history.txt"))
	if err != nil {
		return
	}
	defer f.Close()
	runs, err := s.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowId = '" + workflows.WorkflowID(agentID) + "'"})
	if err != nil {
		fmt.Fprintln(f, "list runs:", err)
		return
	}
	for _, run := range runs.GetExecutions() {
		fmt.Fprintf(f, "=== run %s (%s)\n", run.GetExecution().GetRunId(), run.GetStatus())
		it := s.tc.GetWorkflowHistory(ctx, run.GetExecution().GetWorkflowId(), run.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				fmt.Fprintln(f, "history:", err)
				break
			}
			fmt.Fprintf(f, "%d %s %s %v\n", ev.GetEventId(), ev.GetEventTime().AsTime().Format("15:04:05.000"), ev.GetEventType(), ev.GetAttributes())
		}
	}
}
