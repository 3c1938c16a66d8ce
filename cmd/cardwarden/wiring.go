package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/dashboard"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/worker"
)

// issuerRegistry builds the configured issuer adapters.
func (f issuerFlags) registry() (*issuer.Registry, error) {
	stripeCfg := adapters.StripeConfig{APIKey: f.stripeAPIKey, BaseURL: f.stripeURL, WebhookSecret: f.stripeWebhookSecret,
		AuthorizationSecret: f.stripeAuthSecret}
	return adapters.New(adapters.Config{
		Sim:    adapters.SimConfig{BaseURL: f.simURL, APIKey: f.simAPIKey, WebhookSecret: f.simWebhookSecret},
		Stripe: stripeCfg,
		AIPP:   adapters.AIPPConfig{BaseURL: f.aippURL, APIKey: f.aippAPIKey},
	})
}

// observability is one process's metrics registry and alert delivery, shared by its workers
// and its HTTP server.
type observability struct {
	metrics  *metrics.Metrics
	notifier *alerts.Notifier
	watch    *alerts.IssuerWatch
	// outbound are the process's outbound rules; client is the hardened client built from them.
	outbound outbound.Rules
	client   *http.Client
}

func newObservability(st *store.Store, issuers *issuer.Registry, rules outbound.Rules, logger *slog.Logger) (*observability, error) {
	m := metrics.New(metrics.Options{Version: version, AgentsByStatus: metrics.StoreAgentCounter(st),
		FleetSpend: metrics.StoreFleetSpend(st, nil)})
	ac, err := alerts.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	ac.Outbound = rules
	n, err := alerts.NewNotifier(ac)
	if err != nil {
		return nil, usageError{err}
	}
	// Counters exist from the start, at 0, for what is configured.
	sinks := []string{}
	for _, s := range n.Sinks {
		sinks = append(sinks, s.Name())
	}
	var names []string
	if issuers != nil {
		names = issuers.Names()
	}
	m.Preset(names, sinks)
	n.Observe, n.Logger = m.AlertDelivery, logger
	watch := &alerts.IssuerWatch{After: ac.IssuerDownAfter, Dispatcher: &alerts.Dispatcher{Store: st, Notifier: n, Logger: logger}}
	return &observability{metrics: m, notifier: n, watch: watch, outbound: rules,
		client: outbound.NewClient(rules, outbound.Options{})}, nil
}

// withMetrics sends the Temporal SDK's metrics to the process registry.
func (o *observability) withMetrics(t config.Temporal) config.Temporal {
	t.MetricsHandler = o.metrics.TemporalHandler()
	return t
}

// httpRoutes mounts /metrics and the dashboard beside the API.
func httpRoutes(apiHandler, dash http.Handler, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /{$}", dash)
	mux.Handle("GET /index.html", dash)
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", apiHandler)
	return mux
}

// startWorkers registers the workflows and activities on the three task queues and starts polling.
// Issuer calls are measured and watched, so an issuer that stays unreachable raises an alert.
func startWorkers(ctx context.Context, c client.Client, st *store.Store, vlt *vault.Vault, reg *issuer.Registry, rateLimit float64, o *observability, logger *slog.Logger) (*worker.Workers, error) {
	reg, err := metrics.InstrumentRegistry(reg, o.metrics, o.watch.Observe)
	if err != nil {
		return nil, err
	}
	go o.watch.Run(ctx, 0)
	acts := &activities.Activities{Issuers: reg, Store: st, Vault: vlt, Logger: logger, Alerts: o.notifier, Metrics: o.metrics,
		HTTPClient: o.client}
	w := worker.New(c, acts, worker.Config{IssuerRatePerSecond: rateLimit})
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

// loadCodec reads CARDWARDEN_CODEC_KEY; nil when payload encryption is off.
func loadCodec() (*codec.Codec, error) {
	cdc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", codec.EnvKey, err)}
	}
	return cdc, nil
}

// encryptedTemporal makes the Temporal client encrypt payloads when a codec is configured.
func encryptedTemporal(t config.Temporal, cdc *codec.Codec) config.Temporal {
	if cdc != nil {
		t.DataConverter = codec.DataConverter(cdc)
	}
	return t
}

// apiDeps are the HTTP API's dependencies, shared by serve and dev. The issuers are
// instrumented so webhook signature failures are counted.
func apiDeps(st *store.Store, c client.Client, reg *issuer.Registry, vlt *vault.Vault, cdc *codec.Codec, adminToken string, o *observability, logger *slog.Logger) (api.Deps, error) {
	reg, err := metrics.InstrumentRegistry(reg, o.metrics)
	if err != nil {
		return api.Deps{}, err
	}
	return api.Deps{
		Store: st, Temporal: c, Logger: logger, AdminToken: adminToken, Issuers: reg, Vault: vlt,
		Codec: cdc, CodecOrigins: codec.OriginsFromEnv(os.Getenv), Observer: o.metrics,
		CodecToken: os.Getenv(api.EnvCodecAuthToken), Outbound: o.outbound, Throttle: &api.Throttle{},
	}, nil
}

// httpHandler is everything serve and dev answer: the API, the dashboard and /metrics.
func httpHandler(deps api.Deps, o *observability, temporalUIURL, namespace string) (http.Handler, error) {
	var states dashboard.States // without Temporal the dashboard shows what the store knows
	if deps.Temporal != nil {
		states = starter.New(deps.Temporal, starter.Options{Logger: deps.Logger})
	}
	dash, err := dashboard.New(dashboard.Config{
		Store: deps.Store, States: states, AdminToken: deps.AdminToken, Throttle: deps.Throttle,
		TemporalUIURL: temporalUIURL, Namespace: namespace, Logger: deps.Logger,
	})
	if err != nil {
		return nil, err
	}
	return httpRoutes(api.New(deps), dash, o.metrics), nil
}

func healthHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux
}

// process is what a production process (serve, worker) connects to at start-up.
type process struct {
	vault    *vault.Vault
	codec    *codec.Codec
	issuers  *issuer.Registry
	store    *store.Store
	obs      *observability
	temporal client.Client
}

// openProcess reads the secrets, builds the issuer adapters, opens the database and dials
// Temporal (with the codec and the SDK metrics). Settings are checked before anything is
// opened, so a bad key fails fast. close releases what was opened.
func openProcess(ctx context.Context, temporal config.Temporal, dbURL string, issuers issuerFlags, logger *slog.Logger) (p *process, closeAll func(), err error) {
	p = &process{}
	rules, err := outboundRules()
	if err != nil {
		return nil, nil, err
	}
	if p.vault, err = loadVault(""); err != nil {
		return nil, nil, err
	}
	if p.codec, err = loadCodec(); err != nil {
		return nil, nil, err
	}
	if p.issuers, err = issuers.registry(); err != nil {
		return nil, nil, err
	}
	if p.store, err = openStore(ctx, dbURL, false, logger); err != nil {
		return nil, nil, err
	}
	if p.obs, err = newObservability(p.store, p.issuers, rules, logger); err != nil {
		p.store.Close()
		return nil, nil, err
	}
	if p.temporal, err = p.obs.withMetrics(encryptedTemporal(temporal, p.codec)).Dial(ctx, logger, 30*time.Second); err != nil {
		p.store.Close()
		return nil, nil, err
	}
	return p, func() { p.temporal.Close(); p.store.Close() }, nil
}
