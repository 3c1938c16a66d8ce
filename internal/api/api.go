// Package api is cardwarden's HTTP surface: health and readiness probes, issuer webhooks, the
// management API, agents' credential pull and, when a codec key is configured, the codec
// endpoint for the Temporal Web UI. docs/http-api.md is its reference.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Deps are what the handlers need. Everything but Store is optional; a missing dependency
// disables the endpoints that need it (documented on each field) rather than failing start-up.
type Deps struct {
	Store    *store.Store
	Temporal client.Client // nil in a process that has no client yet: /readyz then says so
	Logger   *slog.Logger

	// AdminToken guards the management API under /v1/agents (Authorization: Bearer <token>).
	// Set it from CARDWARDEN_ADMIN_TOKEN; `cardwarden dev` keeps one in .cardwarden/admin.token
	// (LoadOrCreateAdminToken). Empty disables the management API: every call is 401.
	AdminToken string
	// Issuers verifies webhooks at POST /v1/webhooks/{issuer} (adapters.New). Nil: every
	// webhook is 404.
	Issuers *issuer.Registry
	// Vault opens card credentials for GET /v1/agents/{id}/card. Nil: that endpoint is 503.
	Vault *vault.Vault
	// Codec, when set (codec.FromEnv, CARDWARDEN_CODEC_KEY), mounts the Temporal codec endpoint
	// at /codec (POST /codec/encode, /codec/decode) for the Web UI, and must be the codec of
	// the Temporal client too.
	Codec *codec.Codec
	// CodecOrigins are the browser origins allowed to call /codec (codec.OriginsFromEnv);
	// codec.DefaultOrigins (the dev Web UI) when empty.
	CodecOrigins []string

	// Control is the agents' control client; built from Temporal and Store when nil. Tests
	// substitute a fake.
	Control Control
	// RevealLimit credential reveals per agent are allowed per RevealWindow: 10 per minute when
	// zero. Counted in the audit log, so the limit holds across replicas.
	RevealLimit  int
	RevealWindow time.Duration
	// Observer counts new issuer events and webhooks refused before verification
	// (*metrics.Metrics); nil counts nothing.
	Observer Observer

	// Now is the clock for webhook signature freshness; time.Now when nil.
	Now func() time.Time

	// Throttle limits failed authentications (admin token, agent tokens, codec); one with the
	// defaults when nil. Share one between the API and the dashboard.
	Throttle *Throttle
	// CodecToken is the bearer token of /codec (CARDWARDEN_CODEC_AUTH_TOKEN); the admin token
	// is accepted too. With neither, /codec answers 401 unless CodecOpen.
	CodecToken string
	// CodecOpen serves /codec without authentication: only `cardwarden dev`, whose embedded
	// Web UI cannot send a token, sets it.
	CodecOpen bool
	// Outbound are the rules a new agent's policy URLs must pass (credentials_push_url,
	// alerts.webhook_url); the zero value is production's.
	Outbound outbound.Rules
	// Relay tunes how acknowledged webhook events are delivered to their workflows.
	Relay RelayOptions
}

// Control is what the handlers do to agents: *starter.Client.
type Control interface {
	CreateAgent(ctx context.Context, p workflows.Policy, actor string) (starter.Agent, string, error)
	ListAgents(ctx context.Context, o starter.ListOptions) ([]starter.AgentSummary, error)
	State(ctx context.Context, agentID string) (workflows.StateView, error)
	Rotate(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error)
	Freeze(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error)
	Unfreeze(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error)
	Retire(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error)
	SetBudget(ctx context.Context, agentID string, req workflows.BudgetRequest) (workflows.StateView, error)
	RotateToken(ctx context.Context, agentID, actor string) (string, error)
	VerifyToken(ctx context.Context, agentID, token string) error
	ReportEvent(ctx context.Context, issuerName string, ev cardwarden.Event) (starter.EventResult, error)
	RecordEvent(ctx context.Context, issuerName string, ev cardwarden.Event) (starter.EventResult, error)
	DeliverEvents(ctx context.Context, agentID string, evs []cardwarden.Event) error
	RedeliverPending(ctx context.Context, grace time.Duration, limit int) (int, error)
}

var _ Control = (*starter.Client)(nil)

// server is Deps with the defaults filled in.
type server struct {
	Deps
	ctl   Control
	relay *relay // delivers acknowledged webhook events; nil without ctl
}

func (d Deps) withDefaults() *server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.RevealLimit <= 0 {
		d.RevealLimit = 10
	}
	if d.RevealWindow <= 0 {
		d.RevealWindow = time.Minute
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Throttle == nil {
		d.Throttle = &Throttle{}
	}
	s := &server{Deps: d, ctl: d.Control}
	if s.ctl == nil && d.Temporal != nil {
		var names []string
		if d.Issuers != nil {
			names = d.Issuers.Names()
		}
		s.ctl = starter.New(d.Temporal, starter.Options{Store: d.Store, Logger: d.Logger, Issuers: names,
			DataConverter: codec.DataConverter(d.Codec), Vault: d.Vault, Outbound: d.Outbound})
	}
	if s.ctl != nil {
		s.relay = newRelay(s.ctl, d.Logger, d.Relay)
		s.relay.obs = d.Observer
	}
	return s
}

// New returns the HTTP handler for `cardwarden serve` and `cardwarden dev`.
func New(d Deps) http.Handler {
	s := d.withDefaults()
	if s.AdminToken == "" {
		s.Logger.Warn("management API disabled: no admin token (set CARDWARDEN_ADMIN_TOKEN)")
	} else if len(s.AdminToken) < 16 {
		s.Logger.Warn("admin token is short; use at least 32 random characters")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)

	// Every management POST takes an Idempotency-Key (after the admin check, so nothing is
	// stored for a caller without the token).
	post := func(h http.HandlerFunc) http.HandlerFunc { return s.admin(s.idempotent(h)) }
	routes := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", "/v1/openapi.json", serveOpenAPI},
		{"POST", "/v1/webhooks/{issuer}", s.webhook},
		{"POST", "/v1/authorizations/{issuer}", s.authorize},
		{"POST", "/v1/events", post(s.reportEvent)},
		{"POST", "/v1/agents", post(s.createAgent)},
		{"GET", "/v1/agents", s.admin(s.listAgents)},
		{"GET", "/v1/agents/{id}", agentPath(s.admin(s.getAgent))},
		{"POST", "/v1/agents/{id}/rotate", agentPath(post(s.reasonUpdate(Control.Rotate)))},
		{"POST", "/v1/agents/{id}/freeze", agentPath(post(s.reasonUpdate(Control.Freeze)))},
		{"POST", "/v1/agents/{id}/unfreeze", agentPath(post(s.reasonUpdate(Control.Unfreeze)))},
		{"POST", "/v1/agents/{id}/retire", agentPath(post(s.reasonUpdate(Control.Retire)))},
		{"POST", "/v1/agents/{id}/budget", agentPath(post(s.setBudget))},
		{"POST", "/v1/agents/{id}/token", agentPath(post(s.rotateToken))},
		{"GET", "/v1/agents/{id}/card", agentPath(s.revealCard)},
		{"POST", "/v1/teams", post(s.createTeam)},
		{"GET", "/v1/teams/{id}", agentPath(s.admin(s.getTeam))},
		{"POST", "/v1/teams/{id}/budget", agentPath(post(s.setTeamBudget))},
		{"GET", "/v1/schedules/fleet-rotation", s.admin(s.describeSchedule)},
		{"POST", "/v1/schedules/fleet-rotation", post(s.ensureSchedule)},
		{"DELETE", "/v1/schedules/fleet-rotation", s.admin(s.scheduleAction(Schedules.DeleteFleetRotationSchedule, "deleted"))},
		{"POST", "/v1/schedules/fleet-rotation/trigger", post(s.scheduleAction(Schedules.TriggerFleetRotation, "triggered"))},
		{"POST", "/v1/schedules/fleet-rotation/pause", post(s.pauseSchedule(Schedules.PauseFleetRotation, "paused"))},
		{"POST", "/v1/schedules/fleet-rotation/unpause", post(s.pauseSchedule(Schedules.UnpauseFleetRotation, "unpaused"))},
	}
	allowed := map[string][]string{}
	for _, r := range routes {
		mux.HandleFunc(r.method+" "+r.path, r.h)
		allowed[r.path] = append(allowed[r.path], r.method)
	}
	// Any other method on a known path is a JSON 405 rather than the catch-all's 404.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", clip(r.Method)+" is not allowed on "+clip(r.URL.Path)+" (allowed: "+allow+")", "")
		})
	}

	if s.Codec != nil {
		if s.CodecOpen {
			s.Logger.Warn("the codec endpoint /codec decrypts payloads for anyone who can reach it (cardwarden dev only)")
		}
		mux.Handle("/codec/", s.codecAuth(http.StripPrefix("/codec", codec.Handler(s.Codec, codec.HandlerOptions{AllowedOrigins: s.CodecOrigins}))))
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no route for "+clip(r.Method)+" "+clip(r.URL.Path), "")
	})
	return WithRequestID(s.Logger, s.recoverer(mux))
}

// recoverer turns a handler panic into a JSON 500 instead of a dropped connection; the panic
// value is logged, never echoed, in case it holds anything sensitive.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log(r).Error("handler panic", "method", clip(r.Method), "path", clip(r.URL.Path), "panic", v)
				writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// readyz reports ready only when both the database and Temporal answer, so a load balancer
// sends no webhook to a replica that could not record and signal it.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if err := s.Store.Ping(ctx); err != nil {
		checks["database"], ok = err.Error(), false
	} else {
		checks["database"] = "ok"
	}
	if s.Temporal == nil {
		checks["temporal"], ok = "no client", false
	} else if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], ok = err.Error(), false
	} else {
		checks["temporal"] = "ok"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
		s.log(r).Warn("not ready", "checks", checks)
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Observer is what the API reports to metrics.
type Observer interface {
	ObserveEvent(ev cardwarden.Event)
	WebhookRejected(issuerName, reason string)
	// EventsDeferred counts n acknowledged events the webhook relay left to the redelivery
	// loop, by reason (metrics.Deferred…).
	EventsDeferred(reason string, n int)
}
