// Package e2e runs cardwarden's workflow against a real in-process Temporal server
// (temporaltest), the issuer simulator over HTTP with signed webhooks, and a real store. It is
// the only package besides internal/devstack that links go.temporal.io/server: the first
// build takes minutes, later ones seconds.
//
// With -update it also records the histories the workflows package replays:
//
//	go test ./test/e2e/ -run . -update
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

var update = flag.Bool("update", false, "record workflow histories into workflows/testdata for the replay tests")

const webhookSecret = "whsec_ZTJlLXRlc3Qtd2ViaG9vay1zZWNyZXQtZm9yLWNhcmR3YXJkZW4="

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stack is everything an agent needs, wired as in production except the webhook endpoint,
// which is the few lines of ingress below.
type stack struct {
	ts      *temporaltest.TestServer
	c       client.Client
	store   *store.Store
	sim     *issuersim.Server
	simURL  string
	adapter *sim.Adapter
	acts    *activities.Activities
}

func newStack(t *testing.T, serverOpts ...temporaltest.TestServerOption) *stack {
	t.Helper()
	opts := append([]temporaltest.TestServerOption{temporaltest.WithT(t)}, serverOpts...)
	ts := temporaltest.NewServer(opts...)
	c := ts.GetDefaultClient()
	registerSearchAttributes(t, c, ts.GetDefaultNamespace())

	st := testdb.Open(t, testdb.SQLiteURL(t))
	in := &ingress{c: c, store: st}
	hook := httptest.NewServer(in)
	t.Cleanup(hook.Close)
	simSrv, err := issuersim.NewServer(issuersim.Config{
		WebhookURL: hook.URL, WebhookSecret: webhookSecret, WebhookRetryInitial: 50 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	simHTTP := httptest.NewServer(simSrv)
	t.Cleanup(func() { simHTTP.Close(); simSrv.Close() })
	adapter, err := sim.New(sim.Config{BaseURL: simHTTP.URL, APIKey: issuersim.DefaultAPIKey, WebhookSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(bytes.Repeat([]byte{9}, vault.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{Issuers: issuer.NewRegistry(adapter), Store: st, Vault: v, Logger: quiet}
	in.adapter = adapter

	w := worker.New(c, acts, worker.Config{
		IssuerRatePerSecond: 200,
		Main:                sdkworker.Options{WorkflowPanicPolicy: sdkworker.FailWorkflow},
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &stack{ts: ts, c: c, store: st, sim: simSrv, simURL: simHTTP.URL, adapter: adapter, acts: acts}
}

func registerSearchAttributes(t *testing.T, c client.Client, ns string) {
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

// ingress is the webhook endpoint in miniature, doing what the API's does: verify the
// signature, record the event in the ledger, signal the agent's workflow, mark it signalled,
// and only then acknowledge.
type ingress struct {
	mu      sync.Mutex
	adapter *sim.Adapter
	c       client.Client
	store   *store.Store
}

func (in *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock() // one delivery at a time keeps the test's reasoning simple
	defer in.mu.Unlock()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	events, err := in.adapter.VerifyWebhook(r.Header, body, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	for _, ev := range events {
		res, err := (&ledger.Ledger{Store: in.store}).Record(r.Context(), ev, store.SourceWebhook)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if res.Orphaned {
			continue
		}
		if !res.New {
			if row, err := in.store.GetEvent(r.Context(), ev.Issuer, ev.ID); err == nil && row.SignalledAt.Valid {
				continue
			}
		}
		ev.Recorded = true
		if err := in.c.SignalWorkflow(r.Context(), workflows.WorkflowID(res.AgentID), "", workflows.SignalCardEvent, ev); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := in.store.MarkSignalled(r.Context(), time.Now(), store.EventKey{Issuer: ev.Issuer, ID: ev.ID}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// simPost calls the simulator's API directly (purchases are not part of the adapter).
func (s *stack) simPost(t *testing.T, path string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.simURL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+issuersim.DefaultAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// purchase is a merchant's authorization attempt on the card.
func (s *stack) purchase(t *testing.T, cardID string, amountMinor int64) (approved bool, reason string) {
	t.Helper()
	var r struct {
		Approved bool   `json:"approved"`
		Reason   string `json:"reason"`
	}
	s.simPost(t, "/v1/simulate/authorizations", map[string]any{"card_id": cardID, "amount_minor": amountMinor, "merchant": "Model API"}, &r)
	return r.Approved, r.Reason
}

func (s *stack) state(t *testing.T, agentID string) workflows.StateView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := s.c.QueryWorkflow(ctx, workflows.WorkflowID(agentID), "", workflows.QueryState)
	if err != nil {
		t.Fatalf("query %s: %v", agentID, err)
	}
	var st workflows.StateView
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitState polls the state query until ok says yes.
func (s *stack) waitState(t *testing.T, agentID, what string, ok func(workflows.StateView) bool) workflows.StateView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.state(t, agentID)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: state is %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) update(ctx context.Context, agentID, name string, arg any) (workflows.StateView, error) {
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.WorkflowID(agentID), UpdateName: name, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.StateView{}, err
	}
	var v workflows.StateView
	err = h.Get(ctx, &v)
	return v, err
}

func (s *stack) start(t *testing.T, agentID string, input any) client.WorkflowRun {
	t.Helper()
	run, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.WorkflowID(agentID), TaskQueue: workflows.TaskQueue,
		TypedSearchAttributes: workflows.SearchAttributes(agentID, "sim"),
	}, workflows.WorkflowType, input)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// history returns one run's events.
func (s *stack) history(t *testing.T, workflowID, runID string) *historypb.History {
	t.Helper()
	it := s.c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// record writes a run's history to workflows/testdata when -update is given.
func (s *stack) record(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	if !*update {
		return
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(s.history(t, workflowID, runID))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "workflows", "testdata", name)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d bytes)", path, len(b))
}

// rawJSON is a workflow argument that is already JSON, as the CLI's --input sends it.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
