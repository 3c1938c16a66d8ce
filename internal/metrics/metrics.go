// Package metrics is cardwarden's Prometheus instrumentation: one registry per process (never
// the global default, so tests and several servers in one process do not collide) holding
// cardwarden's own series, the Temporal SDK's worker and client metrics (temporal.go), and the
// Go runtime's. Handler serves it at /metrics.
//
// The series and what feeds them:
//
//	cardwarden_agents{status}                                   gauge, counted from the store at scrape time
//	cardwarden_cards_issued_total{issuer}                        InstrumentIssuer (CreateCard)
//	cardwarden_cards_closed_total{issuer}                        InstrumentIssuer (CloseCard)
//	cardwarden_issuer_events_total{issuer,kind,outcome,decline_reason}  ObserveEvent (new ledger events)
//	cardwarden_freeze_latency_seconds{issuer}                    ObserveFreeze (first event of a burst → card paused)
//	cardwarden_issuer_request_duration_seconds{issuer,operation,outcome}  InstrumentIssuer
//	cardwarden_issuer_errors_total{issuer,operation,kind}        InstrumentIssuer
//	cardwarden_issuer_last_success_timestamp_seconds{issuer}     InstrumentIssuer
//	cardwarden_webhook_verification_failures_total{issuer,reason}  InstrumentIssuer (VerifyWebhook), WebhookRejected
//	cardwarden_webhook_events_deferred_total{reason}            EventsDeferred (the webhook relay left events to the redelivery loop)
//	cardwarden_alerts_total{sink,kind,outcome}                   AlertDelivery (alerts.Notifier.Observe)
//	temporal_*                                                   TemporalHandler (client.Options.MetricsHandler)
//
// Labels hold names and enumerations only — never card numbers, agent-supplied text, or
// anything unbounded. Agent ids are not labels either: a fleet of thousands would explode the
// series count; per-agent views are the dashboard's job.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/store"
)

// Namespace prefixes every cardwarden series.
const Namespace = "cardwarden"

// Statuses always reported by cardwarden_agents, so a status with no agent shows 0 rather than
// disappearing (which would break "frozen > 0" alerts' resolution).
var knownStatuses = [...]string{"active", "frozen", "revoked", "retired"}

// Options configure New.
type Options struct {
	// AgentsByStatus counts agents per lifecycle status; it runs at scrape time. Nil omits
	// cardwarden_agents (a worker-only process has no need to report it). StoreAgentCounter
	// builds one from the store.
	AgentsByStatus func(ctx context.Context) (map[string]int, error)
	// FleetSpend reads today's spend of the fleet at scrape time (StoreFleetSpend); nil omits
	// cardwarden_spend_today_usd and its companions.
	FleetSpend func(ctx context.Context) (FleetSpend, error)
	// ScrapeTimeout bounds AgentsByStatus and FleetSpend; 5 s when zero.
	ScrapeTimeout time.Duration
	// Version is reported by cardwarden_build_info.
	Version string
}

// Metrics holds the registry and every series.
type Metrics struct {
	reg *prometheus.Registry

	cardsIssued     *prometheus.CounterVec
	cardsClosed     *prometheus.CounterVec
	events          *prometheus.CounterVec
	freezeLatency   *prometheus.HistogramVec
	issuerDuration  *prometheus.HistogramVec
	issuerErrors    *prometheus.CounterVec
	issuerLastOK    *prometheus.GaugeVec
	webhookFailures *prometheus.CounterVec
	deferred        *prometheus.CounterVec
	alerts          *prometheus.CounterVec
	decisions       decisionSeries
	temporal        *sdkCollector
	recentlyIssued  *recentSet
	agentsCollector *agentsCollector
}

// New creates a registry with cardwarden's series, the Go runtime and process collectors, and
// the collector behind TemporalHandler.
func New(o Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		cardsIssued: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "cards_issued_total",
			Help: "Cards created at the issuer (a retried create of the same card counts once per process)."}, []string{"issuer"}),
		cardsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "cards_closed_total",
			Help: "Cards closed at the issuer."}, []string{"issuer"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "issuer_events_total",
			Help: "Issuer events newly recorded in the ledger, by kind, outcome (approved|declined) and decline reason."},
			[]string{"issuer", "kind", "outcome", "decline_reason"}),
		freezeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "freeze_latency_seconds",
			Help:    "Time from the first event of a decline burst to the card being paused at the issuer.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}}, []string{"issuer"}),
		issuerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "issuer_request_duration_seconds",
			Help:    "Latency of calls to a card issuer's API, by adapter, operation and outcome (ok|error).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, []string{"issuer", "operation", "outcome"}),
		issuerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "issuer_errors_total",
			Help: "Failed issuer calls by adapter, operation and error kind (issuer.ErrorKind, or timeout|canceled|network)."},
			[]string{"issuer", "operation", "kind"}),
		issuerLastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "issuer_last_success_timestamp_seconds",
			Help: "Unix time of the last successful call to the issuer from this process."}, []string{"issuer"}),
		webhookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "webhook_verification_failures_total",
			Help: "Issuer webhook deliveries rejected before processing, by reason (signature|invalid|unknown_issuer|too_large)."},
			[]string{"issuer", "reason"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "webhook_events_deferred_total",
			Help: "Acknowledged webhook events the relay left in the ledger for the redelivery loop (seconds later), by reason (queue_full|temporal_unreachable|failed)."},
			[]string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "alerts_total",
			Help: "Alert delivery attempts by sink, alert kind and outcome (delivered|failed)."}, []string{"sink", "kind", "outcome"}),
		decisions:      newDecisionSeries(),
		temporal:       newSDKCollector(),
		recentlyIssued: newRecentSet(4096),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the version label says which cardwarden runs.", ConstLabels: prometheus.Labels{"version": orDev(o.Version)}})
	build.Set(1)
	m.reg.MustRegister(m.cardsIssued, m.cardsClosed, m.events, m.freezeLatency, m.issuerDuration, m.issuerErrors,
		m.issuerLastOK, m.webhookFailures, m.deferred, m.alerts, m.decisions.total, m.decisions.latency, build, m.temporal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	timeout := o.ScrapeTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if o.FleetSpend != nil {
		m.reg.MustRegister(newSpendCollector(o.FleetSpend, timeout))
	}
	if o.AgentsByStatus != nil {
		m.agentsCollector = &agentsCollector{count: o.AgentsByStatus, timeout: timeout,
			desc: prometheus.NewDesc(Namespace+"_agents", "Agents by lifecycle status (active, frozen, revoked, retired).", []string{"status"}, nil)}
		m.reg.MustRegister(m.agentsCollector)
	}
	return m
}

func orDev(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}

// Registry is the process's registry, for registering more collectors or gathering in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or OpenMetrics) format. A collector that
// fails (the store is down) drops its own series from the scrape, not the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Registry:          m.reg, // promhttp_metric_handler_* about the scrapes themselves
	})
}

// ObserveEvent counts one issuer event newly recorded in the ledger. Call it only for new
// events (starter.EventResult.New, ledger.Result.New): webhooks are delivered at least
// once, and a replay must not count twice.
func (m *Metrics) ObserveEvent(ev cardwarden.Event) {
	outcome, reason := "approved", ""
	if !ev.Approved {
		outcome, reason = "declined", string(ev.DeclineReason)
		if reason == "" {
			reason = string(cardwarden.ReasonOther)
		}
	}
	m.events.WithLabelValues(ev.Issuer, string(ev.Kind), outcome, reason).Inc()
}

// ObserveFreeze records how long a decline burst took to stop the card: from the burst's first
// event (its OccurredAt) to the moment the issuer confirmed the pause. The PauseCard activity
// calls it when its input carries the burst start. A zero or later burst start is ignored.
func (m *Metrics) ObserveFreeze(issuerName string, burstStart, pausedAt time.Time) {
	if burstStart.IsZero() || pausedAt.Before(burstStart) {
		return
	}
	m.freezeLatency.WithLabelValues(issuerName).Observe(pausedAt.Sub(burstStart).Seconds())
}

// Webhook rejection reasons.
const (
	WebhookSignature     = "signature"      // bad, missing or stale signature
	WebhookInvalid       = "invalid"        // signed but unparseable
	WebhookUnknownIssuer = "unknown_issuer" // POST /v1/webhooks/{issuer} for an unconfigured issuer
	WebhookTooLarge      = "too_large"      // body over the size cap
)

// Reasons the webhook relay leaves acknowledged events to the redelivery loop
// (cardwarden_webhook_events_deferred_total).
const (
	DeferredQueueFull           = "queue_full"           // more events waiting in the relay than it holds
	DeferredTemporalUnreachable = "temporal_unreachable" // a signal found Temporal unreachable, or the relay is paused after one
	DeferredFailed              = "failed"               // a signal or its mark failed otherwise
)

// EventsDeferred counts n acknowledged webhook events the relay left to the redelivery loop.
func (m *Metrics) EventsDeferred(reason string, n int) {
	m.deferred.WithLabelValues(reason).Add(float64(n))
}

// UnknownIssuerLabel is the issuer label of webhooks for an issuer that is not configured:
// the name in the path is the caller's, and must not become a series.
const UnknownIssuerLabel = "(unknown)"

// WebhookRejected counts a webhook delivery rejected before it reached the issuer adapter's
// verification (unknown issuer, body too large). Failures inside VerifyWebhook are counted by
// InstrumentIssuer; do not count them again here.
func (m *Metrics) WebhookRejected(issuerName, reason string) {
	m.webhookFailures.WithLabelValues(safeLabel(issuerName), reason).Inc()
}

// safeLabel keeps a label value that did not come from configuration bounded and valid UTF-8
// (Prometheus panics on invalid UTF-8): anything longer than 32 bytes or not a plain name is
// counted as UnknownIssuerLabel.
func safeLabel(v string) string {
	if len(v) == 0 || len(v) > 32 {
		return UnknownIssuerLabel
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '(' || r == ')') {
			return UnknownIssuerLabel
		}
	}
	return v
}

// AlertDelivery counts one delivery attempt; its signature is alerts.Notifier.Observe's.
func (m *Metrics) AlertDelivery(sink, kind string, err error) {
	outcome := "delivered"
	if err != nil {
		outcome = "failed"
	}
	m.alerts.WithLabelValues(sink, kind, outcome).Inc()
}

// AgentLister is the part of *store.Store StoreAgentCounter reads.
type AgentLister interface {
	ListAgents(ctx context.Context) ([]store.Agent, error)
}

// StoreAgentCounter counts the store's agents by status, for Options.AgentsByStatus. The store
// holds every agent's status (the workflow records each change), so every replica reports the
// same numbers: aggregate with max, not sum.
func StoreAgentCounter(l AgentLister) func(ctx context.Context) (map[string]int, error) {
	return func(ctx context.Context) (map[string]int, error) {
		as, err := l.ListAgents(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]int{}
		for _, a := range as {
			out[a.Status]++
		}
		return out, nil
	}
}

type agentsCollector struct {
	count   func(ctx context.Context) (map[string]int, error)
	timeout time.Duration
	desc    *prometheus.Desc
}

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range knownStatuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
	for s, n := range counts {
		if !isKnownStatus(s) && s != "" {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
		}
	}
}

func isKnownStatus(s string) bool {
	for _, k := range knownStatuses {
		if k == s {
			return true
		}
	}
	return false
}

// recentSet remembers the last n keys, so a create retried with the same idempotency key —
// which returns the same card — is counted once.
type recentSet struct {
	mu   sync.Mutex
	max  int
	keys map[string]struct{}
	fifo []string
}

func newRecentSet(n int) *recentSet { return &recentSet{max: n, keys: map[string]struct{}{}} }

// add reports whether key was new.
func (s *recentSet) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; ok {
		return false
	}
	s.keys[key] = struct{}{}
	s.fifo = append(s.fifo, key)
	if len(s.fifo) > s.max {
		delete(s.keys, s.fifo[0])
		s.fifo = s.fifo[1:]
	}
	return true
}
