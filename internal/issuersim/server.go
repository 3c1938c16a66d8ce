// Package issuersim is a card issuer simulator: an HTTP server with its own documented JSON
// API (docs/issuers.md, "The issuer simulator") that behaves like a real issuer closely enough that what cardwarden
// proves against it holds against Stripe Issuing or Lithic. It enforces spending limits at
// authorization time, declines with normalized reasons, models captures (including over-
// captures), force-posts, refunds and reversals, delivers Standard Webhooks-signed events at
// least once with retries, honours idempotency keys, injects faults on demand, and also
// speaks the AI Payment Proxy dialect so that adapter has a peer.
package issuersim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

// DefaultAPIKey is the key the simulator accepts when none is configured.
const DefaultAPIKey = "sim_test_key"

// Config configures a simulator.
type Config struct {
	// APIKey is the bearer key every request must carry; DefaultAPIKey when empty.
	APIKey string
	// WebhookURL receives every event; empty means events are only recorded and listed.
	WebhookURL string
	// WebhookSecret signs deliveries: "whsec_<base64>" or a raw string. Required with WebhookURL.
	WebhookSecret string
	// RateLimit is the number of API requests admitted in any one-second window; 0 means no
	// limit. Requests to /v1/sim/* never count.
	RateLimit int
	// ErrorRate is the share (0..1) of API requests answered with an injected 500 or 503.
	ErrorRate float64
	// Latency is added to every API request.
	Latency time.Duration
	// DuplicateWebhooks is the share (0..1) of events delivered a second time after they
	// were acknowledged.
	DuplicateWebhooks float64
	// ReorderWebhooks delays each delivery by a random amount so events arrive out of order.
	ReorderWebhooks bool
	// Decisions, when its URL is set, asks that endpoint to decide each purchase in real time
	// (decision.go); requests are signed with WebhookSecret.
	Decisions DecisionHook
	// StatePath, when set, persists state to this JSON file (atomically) and loads it at start.
	StatePath string
	// Clock is the simulator's business clock (limit windows, expiry, event times); time.Now
	// when nil. Rate limiting and webhook signatures always use wall time.
	Clock func() time.Time
	// WebhookRetryInitial and WebhookRetryMax bound the exponential backoff between delivery
	// attempts; 250ms and 30s when zero.
	WebhookRetryInitial time.Duration
	WebhookRetryMax     time.Duration
	// HTTPClient delivers webhooks; a client with a 10s timeout when nil.
	HTTPClient *http.Client
	// Logger receives operational messages (never card data); slog.Default when nil.
	Logger *slog.Logger
}

// Faults are the fault-injection settings, adjustable at runtime through POST /v1/sim/faults.
type Faults struct {
	RateLimit         int     `json:"rate_limit"`
	ErrorRate         float64 `json:"error_rate"`
	LatencyMS         int64   `json:"latency_ms"`
	DuplicateWebhooks float64 `json:"duplicate_webhooks"`
	ReorderWebhooks   bool    `json:"reorder_webhooks"`
	// WebhookDelayMS holds each event's first delivery back by a random time up to this
	// many milliseconds (a slow or backed-up issuer).
	WebhookDelayMS int64 `json:"webhook_delay_ms,omitempty"`
	// DropWebhooks is the share (0..1) of events never delivered at all, as an issuer that
	// loses a webhook: only listing the card's events finds them.
	DropWebhooks float64 `json:"drop_webhooks,omitempty"`
}

func (f Faults) validate() error {
	switch {
	case f.RateLimit < 0:
		return errors.New("rate_limit must be >= 0")
	case f.ErrorRate < 0 || f.ErrorRate > 1 || math.IsNaN(f.ErrorRate):
		return errors.New("error_rate must be between 0 and 1")
	case f.LatencyMS < 0 || f.LatencyMS > 600_000:
		return errors.New("latency_ms must be between 0 and 600000")
	case f.DuplicateWebhooks < 0 || f.DuplicateWebhooks > 1 || math.IsNaN(f.DuplicateWebhooks):
		return errors.New("duplicate_webhooks must be between 0 and 1")
	case f.WebhookDelayMS < 0 || f.WebhookDelayMS > 600_000:
		return errors.New("webhook_delay_ms must be between 0 and 600000")
	case f.DropWebhooks < 0 || f.DropWebhooks > 1 || math.IsNaN(f.DropWebhooks):
		return errors.New("drop_webhooks must be between 0 and 1")
	}
	return nil
}

// Server is a running simulator. It is an http.Handler; Close stops webhook delivery and
// saves state.
type Server struct {
	apiKey     string
	webhookURL string
	webhookKey []byte
	statePath  string
	clock      func() time.Time
	retryInit  time.Duration
	retryMax   time.Duration
	hc         *http.Client
	log        *slog.Logger
	mux        *http.ServeMux

	mu          sync.Mutex // guards st, clockOffset, closed, dirty
	st          *state
	clockOffset time.Duration
	closed      bool
	dirty       bool
	syncFlush   bool // a change that must reach the state file before the response

	faultsMu sync.Mutex // guards faults and hook
	faults   Faults
	hook     DecisionHook
	limiter  *windowLimiter

	fileMu sync.Mutex // serializes state file writes

	stop     chan struct{}
	stopCtx  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	sendSem  chan struct{}
	closeErr error
	once     sync.Once

	requests, rateLimited, errorsInjected, replays atomic.Int64
	webhooksSent, webhooksAcked, webhooksFailed    atomic.Int64
	webhooksDropped                                atomic.Int64
	decisionsAsked, decisionsFallback              atomic.Int64
}

// maxConcurrentDeliveries bounds in-flight webhook requests so a backlog cannot open
// thousands of connections to the receiver at once.
const maxConcurrentDeliveries = 16

// NewServer builds a simulator, loading state from cfg.StatePath when it exists and resuming
// delivery of events that were never acknowledged.
func NewServer(cfg Config) (*Server, error) {
	f := Faults{
		RateLimit: cfg.RateLimit, ErrorRate: cfg.ErrorRate, LatencyMS: cfg.Latency.Milliseconds(),
		DuplicateWebhooks: cfg.DuplicateWebhooks, ReorderWebhooks: cfg.ReorderWebhooks,
	}
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("issuersim config: %w", err)
	}
	s := &Server{
		apiKey: cfg.APIKey, webhookURL: cfg.WebhookURL, statePath: cfg.StatePath, clock: cfg.Clock,
		retryInit: cfg.WebhookRetryInitial, retryMax: cfg.WebhookRetryMax, hc: cfg.HTTPClient, log: cfg.Logger,
		faults: f, limiter: newWindowLimiter(f.RateLimit), st: newState(),
		stop: make(chan struct{}), sendSem: make(chan struct{}, maxConcurrentDeliveries),
	}
	if s.apiKey == "" {
		s.apiKey = DefaultAPIKey
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.retryInit <= 0 {
		s.retryInit = 250 * time.Millisecond
	}
	if s.retryMax <= 0 {
		s.retryMax = 30 * time.Second
	}
	if s.retryMax < s.retryInit {
		s.retryMax = s.retryInit
	}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.webhookURL != "" {
		if cfg.WebhookSecret == "" {
			return nil, errors.New("issuersim config: a webhook secret is required when a webhook URL is set")
		}
		key, err := stdwebhooks.DecodeSecret(cfg.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("issuersim config: %w", err)
		}
		s.webhookKey = key
	}
	if cfg.Decisions.URL != "" {
		if err := s.SetDecisionHook(cfg.Decisions); err != nil {
			return nil, fmt.Errorf("issuersim config: %w", err)
		}
	}
	if s.statePath != "" {
		snap, err := loadSnapshot(s.statePath)
		if err != nil {
			return nil, fmt.Errorf("issuersim: %w", err)
		}
		if snap != nil {
			st, err := stateFromSnapshot(snap)
			if err != nil {
				return nil, fmt.Errorf("issuersim: %s: %w", s.statePath, err)
			}
			s.st, s.clockOffset = st, snap.ClockOffset
		}
	}
	s.stopCtx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	s.mu.Lock()
	for _, e := range s.st.events {
		if s.st.pending[e.ID] {
			s.startDeliveryLocked(e)
		}
	}
	s.mu.Unlock()
	if s.statePath != "" {
		s.wg.Add(1)
		go s.flushLoop()
	}
	return s, nil
}

// Handler returns the simulator as an http.Handler (the Server itself).
func (s *Server) Handler() http.Handler { return s }

// Close stops webhook delivery (undelivered events stay pending in the state file and are
// resumed at the next start) and writes state a last time. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.cancel()
		s.wg.Wait()
		if s.statePath != "" {
			s.closeErr = s.flush()
		}
	})
	return s.closeErr
}

// Serve serves the simulator on ln until ctx is done, then shuts the HTTP server down
// gracefully and closes the simulator.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = hs.Shutdown(shutCtx)
		cancel()
		<-errc
	case err = <-errc:
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.Close())
}

// ListenAndServe listens on addr (for example "127.0.0.1:8090") and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("issuersim listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// nowLocked is the business clock: Config.Clock plus any advance made through /v1/sim/clock.
// Callers hold s.mu.
func (s *Server) nowLocked() time.Time { return s.clock().Add(s.clockOffset).UTC() }

// Faults returns the current fault settings.
func (s *Server) Faults() Faults {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return s.faults
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	if f.RateLimit != s.faults.RateLimit {
		s.limiter.setLimit(f.RateLimit)
	}
	s.faults = f
	return nil
}

// ServeHTTP authenticates, applies rate limit, latency and error faults to API requests (not
// to /v1/sim/*, which is the test harness's own control plane), then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Request-Id", newID("req_"))
	if r.URL.Path == "/healthz" {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		return
	}
	aipp := strings.HasPrefix(r.URL.Path, "/api/")
	if !s.authorized(r) {
		writeError(w, aipp, http.StatusUnauthorized, "unauthorized", "missing or invalid API key (Authorization: Bearer <key>)")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/sim/") {
		s.requests.Add(1)
		f := s.Faults()
		if ok, wait := s.admit(r.URL.Path); !ok {
			s.rateLimited.Add(1)
			secs := int64(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			w.Header().Set("Retry-After-Ms", fmt.Sprint(max(wait.Milliseconds(), 1)))
			writeError(w, aipp, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("rate limit of %d requests per second exceeded", f.RateLimit))
			return
		}
		if f.LatencyMS > 0 {
			t := time.NewTimer(time.Duration(f.LatencyMS) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.ErrorRate > 0 && randFloat() < f.ErrorRate {
			s.errorsInjected.Add(1)
			status := http.StatusInternalServerError
			if randFloat() < 0.5 {
				status = http.StatusServiceUnavailable
			}
			writeError(w, aipp, status, "injected_fault", "simulated issuer failure")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && constantTimeEqual(strings.TrimSpace(tok), s.apiKey)
}

const flushInterval = 200 * time.Millisecond
