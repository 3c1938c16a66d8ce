package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/dynamicconfig"
	srvtemporal "go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
)

// webhookSecret signs the simulator's webhooks and verifies them at the API.
var webhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("cardwarden-bench-webhook-secret"))

const simAPIKey = "sim_bench_key" // #nosec G101 -- the benchmark's private simulator's key, never a real credential

// stackConfig says what one scenario needs from its stack.
type stackConfig struct {
	name string
	// inProcessWorker runs cardwarden's workers in this process; the memory scenario runs
	// them in a child process instead.
	inProcessWorker bool
	// workerConfig configures cardwarden's workers; the zero config when nil.
	workerConfig *worker.Config
	// floorRate starts a rate-limited floor worker too.
	floorRate float64
	// noWebhooks: the simulator records events without delivering them.
	noWebhooks bool
	// decisions points the simulator's decision hook at the API's POST
	// /v1/authorizations/sim, so cardwarden decides every purchase in real time.
	decisions bool
}

// stack is one scenario's system: Temporal (embedded or external), the application database,
// the vault, the issuer simulator, cardwarden's HTTP API and, usually, its workers, plus the
// floor worker that runs the minimal workflows cardwarden is compared with.
type stack struct {
	opts Options
	cfg  stackConfig
	dir  string
	log  *slog.Logger

	dev      *devstack.Stack
	ts       *temporaltest.TestServer
	temporal config.Temporal
	tc       client.Client

	dbURL    string
	store    *store.Store
	vaultKey string
	vault    *vault.Vault

	sim       *issuersim.Server
	simURL    string
	simSrv    *http.Server
	simRec    *recorder
	simClient *sim.Adapter

	apiURL string
	apiSrv *http.Server
	apiRec *recorder
	// updates times the API's authorize updates (the decisions stack only).
	updates *timedDecisions

	issuers *issuer.Registry
	acts    *activities.Activities
	starter *starter.Client
	workers *worker.Workers
	floor   *floorWorkers

	prefix string    // agent id prefix, unique per scenario run
	began  time.Time // when the run started (what it may clean up)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newStack starts everything a scenario needs. Close it when done.
func newStack(ctx context.Context, o Options, cfg stackConfig) (_ *stack, err error) {
	s := &stack{opts: o, cfg: cfg, log: o.Logger.With("scenario", cfg.name), prefix: "b" + randomHex(3) + "-" + cfg.name, began: time.Now()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.dir, err = os.MkdirTemp(o.TempDir, "cardwarden-bench-"+cfg.name+"-"); err != nil {
		return nil, err
	}

	// Temporal.
	s.temporal = config.Temporal{Address: o.Address, Namespace: cmp.Or(o.Namespace, DefaultNamespace), Identity: benchIdentity()}
	switch {
	case o.Address != "":
	case o.TemporalFile:
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		dcfg := devstack.Config{Dir: filepath.Join(s.dir, "temporal"), Port: port, LogLevel: "error", Namespace: s.temporal.Namespace}
		if s.dev, err = devstack.Start(dcfg); err != nil {
			return nil, fmt.Errorf("embedded temporal: %w", err)
		}
		s.temporal.Address = s.dev.Address()
	default:
		if s.ts, err = startTestServer(); err != nil {
			return nil, fmt.Errorf("embedded temporal: %w", err)
		}
		s.temporal.Address, s.temporal.Namespace = s.ts.GetFrontendHostPort(), s.ts.GetDefaultNamespace()
	}
	if s.tc, err = s.temporal.Dial(ctx, o.Logger.With("component", "temporal-sdk"), 30*time.Second); err != nil {
		return nil, err
	}
	if o.Address != "" {
		// Someone else's cluster: a namespace of the bench's own, nobody else's workers.
		if err = prepareNamespace(ctx, s.tc, s.temporal.Namespace, s.temporal.Identity, o.Logger); err != nil {
			return nil, err
		}
	} else if err = registerSearchAttributes(ctx, s.tc, s.temporal.Namespace); err != nil {
		return nil, err
	}

	// Application database.
	s.dbURL = o.DatabaseURL
	if s.dbURL == "" {
		s.dbURL = "sqlite://" + filepath.Join(s.dir, "cardwarden.db")
	}
	if s.store, err = store.Open(ctx, s.dbURL); err != nil {
		return nil, err
	}
	if _, err = s.store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s.vaultKey = randomHex(32)
	key, _ := vault.ParseKey(s.vaultKey)
	if s.vault, err = vault.New(key); err != nil {
		return nil, err
	}

	// Listeners first, so the simulator knows where to send webhooks.
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		apiLn.Close()
		return nil, err
	}
	s.apiURL = "http://" + apiLn.Addr().String()
	s.simURL = "http://" + simLn.Addr().String()

	quiet := o.Logger.With("component", "issuer-sim")
	webhookURL := s.apiURL + "/v1/webhooks/sim"
	if cfg.noWebhooks {
		webhookURL = ""
	}
	simCfg := issuersim.Config{
		APIKey: simAPIKey, WebhookURL: webhookURL, WebhookSecret: webhookSecret,
		WebhookRetryInitial: 50 * time.Millisecond, WebhookRetryMax: 2 * time.Second, Logger: quiet,
	}
	if cfg.decisions {
		// Hundreds of decision requests in flight: keep their connections, as an issuer does,
		// rather than measure the kernel opening new ones (the default client keeps two).
		simCfg.HTTPClient = &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}}
	}
	if s.sim, err = issuersim.NewServer(simCfg); err != nil {
		apiLn.Close()
		simLn.Close()
		return nil, err
	}
	s.simRec = &recorder{next: s.sim}
	s.simSrv = &http.Server{Handler: s.simRec, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.simSrv.Serve(simLn) }()

	if s.issuers, err = adapters.New(adapters.Config{Sim: adapters.SimConfig{BaseURL: s.simURL, APIKey: simAPIKey, WebhookSecret: webhookSecret},
		HTTPClient: sharedHTTPClient}); err != nil {
		apiLn.Close()
		return nil, err
	}
	if s.simClient, err = sim.New(sim.Config{BaseURL: s.simURL, APIKey: simAPIKey, WebhookSecret: webhookSecret, HTTPClient: sharedHTTPClient}); err != nil {
		apiLn.Close()
		return nil, err
	}
	s.acts = &activities.Activities{Issuers: s.issuers, Store: s.store, Vault: s.vault, Logger: o.Logger.With("component", "activities")}
	s.starter = starter.New(s.tc, starter.Options{Store: s.store, Logger: o.Logger.With("component", "starter"), Issuers: s.issuers.Names()})

	var control api.Control = s.starter
	if cfg.decisions {
		s.updates = &timedDecisions{Client: s.starter}
		control = s.updates
	}
	handler := api.New(api.Deps{Store: s.store, Temporal: s.tc, Logger: o.Logger.With("component", "api"), Issuers: s.issuers,
		AdminToken: randomHex(16), Vault: s.vault, Control: control})
	s.apiRec = &recorder{next: handler}
	s.apiSrv = &http.Server{Handler: s.apiRec, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.apiSrv.Serve(apiLn) }()
	if cfg.decisions {
		// The real decision path: the simulator asks api.New's handler, which asks the
		// agent's workflow through the starter, as `cardwarden dev --decisions` wires it.
		if err = s.sim.SetDecisionHook(issuersim.DecisionHook{URL: s.apiURL + "/v1/authorizations/sim",
			Fallback: issuersim.FallbackDecline}); err != nil {
			return nil, err
		}
	}

	if cfg.inProcessWorker {
		wcfg := worker.Config{}
		if cfg.workerConfig != nil {
			wcfg = *cfg.workerConfig
		}
		s.workers = worker.New(s.tc, s.acts, wcfg)
		if err = s.workers.Start(); err != nil {
			return nil, err
		}
	}
	if s.floor, err = startFloorWorkers(s.tc, s.simClient, cfg.floorRate); err != nil {
		return nil, err
	}
	return s, nil
}

// sharedHTTPClient keeps enough idle connections for the benchmark's concurrency: the default
// transport keeps two per host, and reconnecting per request would measure the kernel.
var sharedHTTPClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
}

func (s *stack) close() {
	if s.floor != nil {
		s.floor.stop()
	}
	if s.workers != nil {
		s.workers.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if s.apiSrv != nil {
		_ = s.apiSrv.Shutdown(ctx)
	}
	if s.sim != nil {
		_ = s.sim.Close()
	}
	if s.simSrv != nil {
		_ = s.simSrv.Shutdown(ctx)
	}
	if s.tc != nil && s.opts.Address != "" {
		tctx, tcancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := terminateStarted(tctx, s.tc, s.temporal.Namespace, s.prefix, s.began); err != nil {
			s.log.Warn("bench: could not end the run's workflows", "error", err)
		} else if n > 0 {
			s.log.Info("bench: ended the run's workflows", "count", n)
		}
		tcancel()
	}
	if s.tc != nil {
		s.tc.Close()
	}
	if s.dev != nil {
		s.dev.Stop()
	}
	if s.ts != nil {
		s.ts.Stop()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.dir != "" && !s.opts.KeepTemp {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *stack) agentID(i int) string { return fmt.Sprintf("%s-%05d", s.prefix, i) }

// startTestServer starts Temporal's own in-memory test server (SQLite in memory, like
// temporaltest-based tests use), turning its panics into errors. It is configured like the
// embedded dev server: one partition per task queue, as there is one matching host.
func startTestServer() (ts *temporaltest.TestServer, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	return temporaltest.NewServer(temporaltest.WithBaseServerOptions(srvtemporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():      []dynamicconfig.ConstrainedValue{{Value: 1}},
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key():     []dynamicconfig.ConstrainedValue{{Value: 1}},
	}))), nil
}

// registerSearchAttributes adds cardwarden's search attributes to the namespace; already
// registered ones (the embedded dev server pre-registers them) are fine.
func registerSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range devstack.SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		SearchAttributes: missing, Namespace: namespace}); err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond every interval until it holds or ctx/timeout ends.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out after " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// count runs a SELECT count(*) on the application database.
func (s *stack) count(ctx context.Context, q string, args ...any) (int, error) {
	var n int
	err := s.store.DB().GetContext(ctx, &n, s.store.DB().Rebind(q), args...)
	return n, err
}
