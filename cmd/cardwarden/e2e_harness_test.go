package main

// The end-to-end harness for the control surfaces: a real in-process Temporal server
// (temporaltest) with cardwarden's search attributes, the real workers (worker package), the
// issuer simulator (issuersim over httptest), a SQLite store (testdb), and the HTTP API. Tests
// drive it through the CLI (the cobra root, in-process), the HTTP API and the starter package.
// Every component logs as JSON into one buffer, so tests can search the logs for secrets.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/api/openapitest"
	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

const (
	e2eSimKey        = "sim_e2e_key"
	e2eWebhookSecret = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWZvci1jYXJkd2FyZGVu"
	e2eAdminToken    = "cwadm_e2e_admin_token_0123456789abcdef"
)

// syncBuffer is a bytes.Buffer safe for the many goroutines that log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type e2eStack struct {
	t        *testing.T
	ts       *temporaltest.TestServer
	tc       client.Client
	ns       string
	dbURL    string
	store    *store.Store
	vaultKey []byte
	sim      *issuersim.Server
	simURL   string
	apiURL   string
	reg      *issuer.Registry
	codec    *codec.Codec
	ctl      *starter.Client
	logs     *syncBuffer
	logger   *slog.Logger
	hooksMu  sync.Mutex
	hooks    []capturedWebhook // every webhook delivery the simulator made
	openapi  *openapitest.Validator
	workers  *worker.Workers
	stopOnce sync.Once
}

// stopWorkers stops the stack's workers (once; the test's cleanup would otherwise stop them).
func (e *e2eStack) stopWorkers() { e.stopOnce.Do(e.workers.Stop) }

type capturedWebhook struct {
	header http.Header
	body   []byte
}

// e2eOption changes the stack.
type e2eOption func(*e2eStack)

// withCodec encrypts every Temporal payload with key, in every client of the stack (workers,
// API, CLI through CARDWARDEN_CODEC_KEY) and serves the codec endpoint.
func withCodec(key []byte) e2eOption {
	return func(e *e2eStack) {
		c, err := codec.New(key)
		require.NoError(e.t, err)
		e.codec = c
		e.t.Setenv(codec.EnvKey, hex.EncodeToString(key))
	}
}

func newE2E(t *testing.T, opts ...e2eOption) *e2eStack {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &e2eStack{t: t, logs: logs, logger: logger}
	for _, o := range opts {
		o(e)
	}
	if path := os.Getenv("CARDWARDEN_E2E_LOGS"); path != "" {
		// Debugging aid: keep every component's log lines of the test in a file.
		t.Cleanup(func() { _ = os.WriteFile(path+"."+t.Name(), []byte(logs.String()), 0o600) })
	}

	dc := codec.DataConverter(e.codec)
	e.ts = temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: sdklog.NewStructuredLogger(logger), DataConverter: dc}))
	e.ns = e.ts.GetDefaultNamespace()
	e.tc = e.ts.NewClientWithOptions(client.Options{Logger: sdklog.NewStructuredLogger(logger), DataConverter: dc})
	e.registerSearchAttributes()

	e.dbURL = testdb.SQLiteURL(t)
	e.store = testdb.Open(t, e.dbURL)
	e.vaultKey = make([]byte, vault.KeySize)
	_, _ = rand.Read(e.vaultKey)
	vlt, err := vault.New(e.vaultKey)
	require.NoError(t, err)

	// The API's address must exist before the simulator (its webhook target) and the simulator's
	// before the issuer registry the API needs: start the listener first, route later.
	var handler http.Handler = http.NotFoundHandler()
	var handlerMu sync.RWMutex
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/webhooks/") && r.Header.Get("webhook-id") != "" {
			body, _ := io.ReadAll(r.Body)
			e.hooksMu.Lock()
			e.hooks = append(e.hooks, capturedWebhook{header: r.Header.Clone(), body: body})
			e.hooksMu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		handlerMu.RLock()
		h := handler
		handlerMu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(apiSrv.Close)
	e.apiURL = apiSrv.URL

	e.sim, err = issuersim.NewServer(issuersim.Config{
		APIKey: e2eSimKey, WebhookURL: e.apiURL + "/v1/webhooks/sim", WebhookSecret: e2eWebhookSecret,
		WebhookRetryInitial: 50 * time.Millisecond, WebhookRetryMax: 500 * time.Millisecond,
		Logger: logger.With("component", "issuer-sim"),
	})
	require.NoError(t, err)
	simSrv := httptest.NewServer(e.sim)
	t.Cleanup(func() { simSrv.Close(); _ = e.sim.Close() })
	e.simURL = simSrv.URL

	e.reg, err = adapters.New(adapters.Config{Sim: adapters.SimConfig{BaseURL: e.simURL, APIKey: e2eSimKey, WebhookSecret: e2eWebhookSecret}})
	require.NoError(t, err)
	reg := e.reg
	w := worker.New(e.tc, &activities.Activities{Issuers: reg, Store: e.store, Vault: vlt, Logger: logger}, worker.Config{})
	require.NoError(t, w.Start())
	e.workers = w
	t.Cleanup(e.stopWorkers)

	e.ctl = starter.New(e.tc, starter.Options{Store: e.store, Logger: logger, Issuers: reg.Names(), DataConverter: dc})
	deps := api.Deps{Store: e.store, Temporal: e.tc, Logger: logger, AdminToken: e2eAdminToken, Issuers: reg, Vault: vlt,
		Control: e.ctl, Codec: e.codec}
	handlerMu.Lock()
	// Every request to the API and every answer it gives is checked against the OpenAPI
	// document (internal/api/openapi.yaml).
	e.openapi = openapitest.Load(t)
	handler = e.openapi.Handler(t, api.New(deps))
	handlerMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := api.StartRedelivery(ctx, deps, api.RedeliveryOptions{Every: 200 * time.Millisecond, Grace: time.Second})
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// registerSearchAttributes adds AgentId, CardStatus and Issuer and waits until the namespace
// reports them, so the first workflow can set them.
func (e *e2eStack) registerSearchAttributes() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op := e.tc.OperatorService()
	_, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: e.ns, SearchAttributes: devstack.SearchAttributes()})
	require.NoError(e.t, err)
	require.Eventually(e.t, func() bool {
		resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: e.ns})
		if err != nil {
			return false
		}
		for name := range devstack.SearchAttributes() {
			if _, ok := resp.CustomAttributes[name]; !ok {
				return false
			}
		}
		return true
	}, time.Minute, 50*time.Millisecond)
}

// cli runs the cobra root in-process against this stack and returns stdout, stderr and the
// exit code main would use.
func (e *e2eStack) cli(args ...string) (string, string, int) {
	e.t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	full := append([]string{}, args...)
	if len(args) > 0 && (args[0] == "agent" || args[0] == "team" || args[0] == "schedule") {
		// The management CLI needs the API's URL and the admin token, nothing else.
		full = append(full, "--api-url", e.apiURL, "--admin-token", e2eAdminToken, "--timeout", "90s")
	}
	root.SetArgs(full)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		printError(&errb, cmd, err)
	}
	// What the CLI logs is checked for secrets with everything else (its stdout is not: the
	// credentials command prints the card on purpose).
	_, _ = e.logs.Write(errb.Bytes())
	return out.String(), errb.String(), exitCode(err)
}

// cliJSON runs a command with --json, requires exit 0 and decodes stdout.
func (e *e2eStack) cliJSON(v any, args ...string) {
	e.t.Helper()
	out, errOut, code := e.cli(append(args, "--json")...)
	require.Equal(e.t, 0, code, "cardwarden %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	require.NoError(e.t, json.Unmarshal([]byte(out), v), out)
}

// waitCard waits until the agent's workflow has a card of at least generation gen.
func (e *e2eStack) waitCard(agentID string, gen int) workflows.StateView {
	e.t.Helper()
	var st workflows.StateView
	require.Eventually(e.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		st, err = e.ctl.State(ctx, agentID)
		return err == nil && st.Card != nil && st.Card.Generation >= gen
	}, 60*time.Second, 50*time.Millisecond, "agent %s never got card generation %d (last state %+v)", agentID, gen, st)
	return st
}

// waitState polls the agent's state until ok says so.
func (e *e2eStack) waitState(agentID string, what string, ok func(workflows.StateView) bool) workflows.StateView {
	e.t.Helper()
	var st workflows.StateView
	require.Eventually(e.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		st, err = e.ctl.State(ctx, agentID)
		return err == nil && ok(st)
	}, 60*time.Second, 50*time.Millisecond, "agent %s: %s (last state %+v)", agentID, what, st)
	return st
}

// httpDo calls the cardwarden API.
func (e *e2eStack) httpDo(method, path, token string, body []byte) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.apiURL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// simDo calls the issuer simulator's API.
func (e *e2eStack) simDo(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.simURL+path, rd)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+e2eSimKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// authorize simulates a purchase on a card at the simulator.
func (e *e2eStack) authorize(cardID, amountUSD string, extra map[string]any) map[string]any {
	e.t.Helper()
	body := map[string]any{"card_id": cardID, "amount_usd": amountUSD, "merchant": "Acme Compute"}
	for k, v := range extra {
		body[k] = v
	}
	status, m := e.simDo("POST", "/v1/simulate/authorizations", body)
	require.Equal(e.t, 200, status, "%v", m)
	return m
}

// reveal reads a card's number and CVC straight from the simulator, for comparisons.
func (e *e2eStack) reveal(cardID string) (number, cvc string) {
	e.t.Helper()
	status, m := e.simDo("GET", "/v1/cards/"+cardID+"/reveal", nil)
	require.Equal(e.t, 200, status, "%v", m)
	return m["number"].(string), m["cvc"].(string)
}

func (e *e2eStack) webhooks() []capturedWebhook {
	e.hooksMu.Lock()
	defer e.hooksMu.Unlock()
	return append([]capturedWebhook(nil), e.hooks...)
}
