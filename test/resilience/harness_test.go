//go:build resilience

package resilience

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
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

const simKey = "sim_resilience_key"

var whSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cardwarden-resilience-webhooks"))

// cwBinary is the cardwarden binary built once by TestMain, for worker processes.
var cwBinary string

// Environment of the Temporal child process (see runTemporalChild).
const (
	envTemporalDir  = "CW_RESILIENCE_TEMPORAL_DIR"
	envTemporalPort = "CW_RESILIENCE_TEMPORAL_PORT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envSQLTool) != "" {
		os.Exit(runSQLTool())
	}
	if cfg := os.Getenv(envTemporalPG); cfg != "" {
		os.Exit(runTemporalPGChild(cfg))
	}
	if dir := os.Getenv(envTemporalDir); dir != "" {
		os.Exit(runTemporalChild(dir))
	}
	dir, err := os.MkdirTemp("", "cardwarden-resilience-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cwBinary = filepath.Join(dir, "cardwarden")
	build := exec.Command("go", "build", "-o", cwBinary, "github.com/cardwarden/cardwarden/cmd/cardwarden")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cardwarden:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runTemporalChild is the body of a child process (this test binary re-executed) that runs the
// embedded, file-backed Temporal server until SIGTERM, so a test can stop Temporal and start
// it again on the same state.
func runTemporalChild(dir string) int {
	port, _ := strconv.Atoi(os.Getenv(envTemporalPort))
	stack, err := devstack.Start(devstack.Config{Dir: dir, Port: port, LogLevel: "warn"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal child:", err)
		return 1
	}
	fmt.Println("READY", stack.Address())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	<-ch
	stack.Stop()
	return 0
}

// signalNotify delivers SIGTERM and SIGINT to ch.
func signalNotify(ch chan os.Signal) { signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// harness is cardwarden running for a test: Temporal, the application database, the issuer
// simulator, the HTTP API, and a worker (a child process, or in this process).
type harness struct {
	t        *testing.T
	ctx      context.Context
	dir      string
	temporal config.Temporal
	tc       client.Client
	dbURL    string
	st       *store.Store
	vaultKey string
	issuers  *issuer.Registry
	sim      *issuersim.Server
	simURL   string
	apiURL   string
	apiSrv   *httptest.Server
	// adminToken is the management API's bearer token.
	adminToken string
	starter    *starter.Client
	log        *slog.Logger
	whKey      []byte

	proc   *workerProc
	inproc *worker.Workers
	lossy  *lossyIssuer
}

type harnessOptions struct {
	// temporal is an already running Temporal; empty starts Temporal's in-memory test server.
	temporal config.Temporal
	// dbURL is the application database; empty is a SQLite file in the test's directory.
	dbURL  string
	faults issuersim.Faults
	// redelivery runs the API's redelivery loop (events recorded while Temporal was down).
	redelivery bool
	// lostResponses is the share of card API POSTs that execute but whose response is lost.
	lostResponses float64
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, dir: t.TempDir(), vaultKey: randomHex(32)}
	logFile, err := os.Create(filepath.Join(h.dir, "harness.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil && len(b) > 0 {
				t.Logf("harness log: API, starter, simulator (last 8 KB):\n%s", tail(b, 8192))
			}
		}
	})
	h.log = slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.whKey, _ = stdwebhooks.DecodeSecret(whSecret)

	h.temporal = o.temporal
	if h.temporal.Address == "" {
		ts := temporaltest.NewServer(temporaltest.WithT(t))
		h.temporal = config.Temporal{Address: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace()}
	}
	h.tc, err = h.temporal.Dial(ctx, h.log.With("component", "sdk"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.tc.Close)
	registerSearchAttributes(t, h.tc, h.temporal.Namespace)

	h.dbURL = o.dbURL
	if h.dbURL == "" {
		h.dbURL = "sqlite://" + filepath.Join(h.dir, "cardwarden.db")
	}
	h.st, err = store.Open(ctx, h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.st.Close() })
	if _, err := h.st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// Two listeners first, so the simulator and the API know each other's address.
	h.apiSrv = httptest.NewUnstartedServer(nil)
	simSrv := httptest.NewUnstartedServer(nil)
	h.apiURL, h.simURL = "http://"+h.apiSrv.Listener.Addr().String(), "http://"+simSrv.Listener.Addr().String()
	h.sim, err = issuersim.NewServer(issuersim.Config{
		APIKey: simKey, WebhookURL: h.apiURL + "/v1/webhooks/sim", WebhookSecret: whSecret,
		RateLimit: o.faults.RateLimit, ErrorRate: o.faults.ErrorRate, Latency: time.Duration(o.faults.LatencyMS) * time.Millisecond,
		WebhookRetryInitial: 50 * time.Millisecond, WebhookRetryMax: 2 * time.Second, Logger: h.log.With("component", "sim"),
	})
	if err != nil {
		t.Fatal(err)
	}
	simSrv.Config.Handler = h.sim
	if o.lostResponses > 0 {
		h.lossy = &lossyIssuer{next: h.sim, rate: o.lostResponses}
		simSrv.Config.Handler = h.lossy
	}
	simSrv.Start()
	t.Cleanup(func() { h.sim.Close(); simSrv.Close() })

	h.issuers, err = adapters.New(adapters.Config{Sim: adapters.SimConfig{BaseURL: h.simURL, APIKey: simKey, WebhookSecret: whSecret}})
	if err != nil {
		t.Fatal(err)
	}
	h.starter = starter.New(h.tc, starter.Options{Store: h.st, Logger: h.log.With("component", "starter"), Issuers: h.issuers.Names()})
	h.adminToken = randomHex(16)
	deps := api.Deps{Store: h.st, Temporal: h.tc, Logger: h.log.With("component", "api"), Issuers: h.issuers, Control: h.starter, AdminToken: h.adminToken}
	h.apiSrv.Config.Handler = api.New(deps)
	h.apiSrv.Start()
	t.Cleanup(h.apiSrv.Close)
	if o.redelivery {
		rctx, stop := context.WithCancel(ctx)
		done := api.StartRedelivery(rctx, deps, api.RedeliveryOptions{Every: 500 * time.Millisecond, Grace: time.Second})
		t.Cleanup(func() { stop(); <-done })
	}
	return h
}

func registerSearchAttributes(t *testing.T, c client.Client, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range devstack.SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) > 0 {
		if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{SearchAttributes: missing, Namespace: ns}); err != nil {
			t.Fatal(err)
		}
	}
}

// workerProc is `cardwarden worker` as a child process that a test can SIGKILL and restart.
type workerProc struct {
	h    *harness
	args []string
	log  *os.File
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// startWorkerProcess runs `cardwarden worker` against the harness; extra flags are appended.
func (h *harness) startWorkerProcess(extra ...string) *workerProc {
	h.t.Helper()
	f, err := os.Create(filepath.Join(h.dir, "worker.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	args := append([]string{"worker", "--address", h.temporal.Address, "--namespace", h.temporal.Namespace,
		"--database-url", h.dbURL, "--issuer-url", h.simURL, "--sim-api-key", simKey, "--sim-webhook-secret", whSecret,
		"--health-listen", "", "--log-format", "text", "--log-level", "warn"}, extra...)
	w := &workerProc{h: h, args: args, log: f}
	w.start()
	h.proc = w
	h.t.Cleanup(func() {
		w.terminate()
		f.Close()
		if h.t.Failed() {
			if b, err := os.ReadFile(f.Name()); err == nil && len(b) > 0 {
				h.t.Logf("worker log (last 4 KB):\n%s", tail(b, 4096))
			}
		}
	})
	return w
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (w *workerProc) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	cmd := exec.Command(cwBinary, w.args...)
	cmd.Env = append(os.Environ(), "CARDWARDEN_VAULT_KEY="+w.h.vaultKey)
	cmd.Stdout, cmd.Stderr = w.log, w.log
	fmt.Fprintf(w.log, "---- start %d at %s\n", w.runs+1, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		w.h.t.Fatalf("start worker: %v", err)
	}
	w.runs++
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	w.cmd, w.done = cmd, done
}

// kill sends SIGKILL and waits for the process to be gone.
func (w *workerProc) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
	fmt.Fprintf(w.log, "---- SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
	w.cmd = nil
}

func (w *workerProc) terminate() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil {
		return
	}
	terminate(w.cmd, w.done, 10*time.Second)
	w.cmd = nil
}

// terminate asks a child to stop (SIGTERM) and kills it if it has not exited within grace;
// done closes when the child's Wait returns.
func terminate(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// startInProcessWorker runs cardwarden's workers inside the test process.
func (h *harness) startInProcessWorker(issuerRate float64) {
	h.t.Helper()
	vkey, _ := vault.ParseKey(h.vaultKey)
	vlt, err := vault.New(vkey)
	if err != nil {
		h.t.Fatal(err)
	}
	acts := &activities.Activities{Issuers: h.issuers, Store: h.st, Vault: vlt, Logger: h.log.With("component", "activities")}
	h.inproc = worker.New(h.tc, acts, worker.Config{IssuerRatePerSecond: issuerRate})
	if err := h.inproc.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(h.inproc.Stop)
}

// policy is a test agent's policy.
func policy(agentID, dailyUSD string, edit func(p *workflows.Policy)) workflows.Policy {
	p := workflows.Policy{AgentID: agentID, DailyLimitUSD: money.MustParse(dailyUSD)}
	if edit != nil {
		edit(&p)
	}
	return p
}

func (h *harness) startAgents(ids []string, p func(id string) workflows.Policy) {
	h.t.Helper()
	for _, id := range ids {
		if _, err := h.starter.StartAgent(h.ctx, p(id)); err != nil {
			h.t.Fatalf("start agent %s: %v", id, err)
		}
	}
}

// eventually polls cond until it returns nil or timeout passes, then fails with its last error.
func (h *harness) eventually(timeout time.Duration, what string, cond func() error) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) || h.ctx.Err() != nil {
			h.t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// state queries an agent's workflow.
func (h *harness) state(agentID string) (workflows.StateView, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	return h.starter.State(ctx, agentID)
}

// simCard is a card as the simulator lists it.
type simCard struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
	ClosedAt  *time.Time        `json:"closed_at"`
	Limits    []struct {
		Interval    string `json:"interval"`
		AmountMinor int64  `json:"amount_minor"`
	} `json:"limits"`
}

// simDo calls the simulator, retrying injected faults and 429s as any client must.
func (h *harness) simDo(method, path string, in, out any) error {
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		req, err := http.NewRequestWithContext(h.ctx, method, h.simURL+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+simKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
			time.Sleep(200 * time.Millisecond)
			continue
		case resp.StatusCode/100 != 2:
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	return last
}

// simCards lists every card the simulator has issued.
func (h *harness) simCards() []simCard {
	h.t.Helper()
	var all []simCard
	after := ""
	for {
		var page struct {
			Data    []simCard `json:"data"`
			HasMore bool      `json:"has_more"`
		}
		path := "/v1/cards?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		if err := h.simDo(http.MethodGet, path, nil, &page); err != nil {
			h.t.Fatal(err)
		}
		all = append(all, page.Data...)
		if !page.HasMore || len(page.Data) == 0 {
			return all
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

// cardsByAgent groups the simulator's cards by the agent and generation cardwarden put in
// their metadata, failing the test when one generation has two cards.
func (h *harness) cardsByAgent() map[string]map[int]simCard {
	h.t.Helper()
	out := map[string]map[int]simCard{}
	for _, c := range h.simCards() {
		agent := c.Metadata["agent_id"]
		gen, err := strconv.Atoi(c.Metadata["generation"])
		if agent == "" || err != nil {
			continue
		}
		if out[agent] == nil {
			out[agent] = map[int]simCard{}
		}
		if prev, dup := out[agent][gen]; dup {
			h.t.Errorf("agent %s has two cards of generation %d at the issuer: %s and %s", agent, gen, prev.ID, c.ID)
		}
		out[agent][gen] = c
	}
	return out
}

// postWebhook signs body as the simulator does (at time at) and posts it to the API.
func (h *harness) postWebhook(id string, body []byte, at time.Time, key []byte) (int, string) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.apiURL+"/v1/webhooks/sim", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != nil {
		stdwebhooks.Sign(req.Header, key, id, at, body)
	}
	c := &http.Client{Timeout: 40 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// approvedEvent is an authorization.created event exactly as the simulator sends it.
func approvedEvent(id, card string, amountMinor int64, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "type": "authorization.created", "created_at": at.UTC().Format(time.RFC3339Nano), "card_id": card,
		"data": map[string]any{"card_id": card, "authorization_id": "auth_" + id, "approved": true, "amount_minor": amountMinor,
			"currency": "usd", "merchant": "resilience", "mcc": "5734"},
	})
	return b
}

// currentCards returns each agent's current card id from the application database.
func (h *harness) currentCards(ids []string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		h.eventually(2*time.Minute, "card issued for "+id, func() error {
			c, err := h.st.CurrentCard(h.ctx, id)
			if err != nil {
				return err
			}
			out[id] = c.IssuerCardID
			return nil
		})
	}
	return out
}

func agentIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return ids
}
