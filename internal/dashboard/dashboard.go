// Package dashboard is the operators' web view, served by `cardwarden serve` (and so by
// `cardwarden dev`) at "/": a live fleet table, and per agent a spend chart, a decline
// timeline with the freezes and revocations it caused, the card generations, the alerts sent,
// freeze/unfreeze/rotate buttons and a link to the agent's workflow in the Temporal Web UI.
//
// The page is plain HTML, CSS and JavaScript embedded with go:embed (assets/): nothing to
// build, nothing fetched from elsewhere. It polls two JSON endpoints this package serves,
// /dashboard/api/fleet and /dashboard/api/agents/{id}, which read the application database and
// each agent's live state (the workflow's "state" query, with a short timeout and the store as
// the fallback), and /dashboard/api/teams[/{id}] for the teams (Team workflows, team/<id>)
// with their budgets, member agents and real-time decisions.
//
// The action buttons call the management API (POST /v1/agents/{id}/freeze|unfreeze|rotate)
// from the browser with the admin token, which the page asks for once and keeps in
// sessionStorage (gone when the tab closes). The dashboard holds no credential of its own and
// so cannot act for someone who does not have the token; the management API stays the single
// place that authorizes and audits changes. When Config.AdminToken is set, the JSON endpoints
// require the same token, so spend and card data are not public either.
package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

//go:embed assets
var assetsFS embed.FS

// Store is what the dashboard reads from the application database; *store.Store has it.
type Store interface {
	ListAgents(ctx context.Context) ([]store.Agent, error)
	GetAgent(ctx context.Context, agentID string) (store.Agent, error)
	ListCards(ctx context.Context, agentID string) ([]store.Card, error)
	SpendSeries(ctx context.Context, agentID, fromDay, toDay string) ([]store.DailySpend, error)
	AgentEvents(ctx context.Context, agentID string, since time.Time, limit int) ([]store.LedgerEvent, error)
	ListAlerts(ctx context.Context, agentID string, limit int) ([]store.Alert, error)
	ListAudit(ctx context.Context, agentID string, limit int) ([]store.AuditEntry, error)
	ListDecisions(ctx context.Context, agentID string, limit int) ([]store.Decision, error)
}

var _ Store = (*store.Store)(nil)

// States gives an agent's live state from its workflow: *starter.Client, over a Temporal
// client that uses the same data converter (payload codec) as the workers.
type States interface {
	State(ctx context.Context, agentID string) (workflows.StateView, error)
}

// Teams gives a team's live state from its Team workflow (team/<id>): *starter.Client.
type Teams interface {
	TeamState(ctx context.Context, teamID string) (workflows.TeamView, error)
}

// Config configures the dashboard. Only Store is required.
type Config struct {
	Store Store
	// States gives live state; nil shows what the store knows (status, cards, spend).
	States States
	// StateTimeout bounds one agent's state query; 1.5 s when zero. A workflow that does not
	// answer in time (its worker is down) is shown from the store, marked as not live.
	StateTimeout time.Duration
	// Teams gives the teams' live state; when nil, States is used if it has TeamState
	// (*starter.Client does), else the team pages show what the store knows (members,
	// decisions).
	Teams Teams
	// MaxConcurrentQueries bounds the state queries one fleet refresh runs at once; 8 when zero.
	MaxConcurrentQueries int
	// AdminToken is required (Authorization: Bearer) by the JSON endpoints; the page asks for
	// it once per browser tab. Without one the JSON endpoints answer 401 to everyone: the
	// fleet, policies, push URLs and spend are never public.
	AdminToken string
	// Throttle limits failed token checks (the API's *api.Throttle, shared); nil limits
	// nothing.
	Throttle Throttle
	// TemporalUIURL is the Temporal Web UI's base URL (http://127.0.0.1:8233 in dev); empty
	// hides the workflow links.
	TemporalUIURL string
	// Namespace is the Temporal namespace of the links; "default" when empty.
	Namespace string
	// PollInterval is how often the page refreshes; 2 s when zero.
	PollInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Paths the handler answers.
const (
	PathFleet  = "/dashboard/api/fleet"
	PathAgent  = "/dashboard/api/agents/" // + {id}
	PathTeams  = "/dashboard/api/teams"
	PathTeam   = "/dashboard/api/teams/" // + {id}
	PathAssets = "/dashboard/assets/"
)

// AgentLink returns the function that gives an agent's dashboard page under baseURL (the
// address people reach `serve` at), for alert links: AgentLink("https://cw.example.com").
// alerts.AgentPage builds the same address; a test keeps them equal.
func AgentLink(baseURL string) func(agentID string) string {
	base := strings.TrimRight(baseURL, "/")
	return func(agentID string) string { return base + "/#/agents/" + url.PathEscape(agentID) }
}

// WorkflowURL is the Temporal Web UI page of an agent's workflow, or "" without a UI base.
func WorkflowURL(uiBase, namespace, agentID string) string {
	return uiWorkflowURL(uiBase, namespace, workflows.WorkflowID(agentID))
}

// TeamWorkflowURL is the Temporal Web UI page of a team's workflow, or "" without a UI base.
func TeamWorkflowURL(uiBase, namespace, teamID string) string {
	return uiWorkflowURL(uiBase, namespace, workflows.TeamWorkflowID(teamID))
}

func uiWorkflowURL(uiBase, namespace, workflowID string) string {
	if uiBase == "" {
		return ""
	}
	if namespace == "" {
		namespace = "default"
	}
	return strings.TrimRight(uiBase, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" +
		url.PathEscape(workflowID)
}

type handler struct {
	cfg    Config
	mux    *http.ServeMux
	assets http.Handler

	mu        sync.Mutex
	fleet     *Fleet
	fleetAt   time.Time
	fleetBusy chan struct{}
	// cacheClock times the fleet cache. It is the real clock even when Config.Now is fixed
	// (tests pin "today", not the passing of time).
	cacheClock func() time.Time
}

// New returns the dashboard handler. Mount it at "/" (it answers "/", "/index.html" and
// everything under "/dashboard/") or route those paths to it.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("dashboard: a Store is required")
	}
	if cfg.StateTimeout <= 0 {
		cfg.StateTimeout = 1500 * time.Millisecond
	}
	if cfg.MaxConcurrentQueries <= 0 {
		cfg.MaxConcurrentQueries = 8
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if t, ok := cfg.States.(Teams); ok && cfg.Teams == nil {
		cfg.Teams = t
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux(),
		assets: http.StripPrefix(PathAssets, http.FileServerFS(sub)), fleetBusy: make(chan struct{}, 1), cacheClock: time.Now}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /index.html", h.index)
	h.mux.HandleFunc("GET "+PathAssets, h.asset)
	h.mux.HandleFunc("GET "+PathFleet, h.api(h.getFleet))
	h.mux.HandleFunc("GET "+PathAgent+"{id}", h.api(h.getAgent))
	h.mux.HandleFunc("GET "+PathTeams, h.api(h.getTeams))
	h.mux.HandleFunc("GET "+PathTeam+"{id}", h.api(h.getTeam))
	h.mux.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errBody("not_found", "no dashboard route for "+r.Method+" "+r.URL.Path))
	})
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The page loads nothing from elsewhere and runs no inline script, so a strict policy costs
	// nothing and turns an injection bug into a blocked request.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; "+
		"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	b, err := assetsFS.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, "dashboard assets missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	// Assets change with the binary; revalidating is cheap (they are in memory) and keeps a
	// new release from running an old script.
	w.Header().Set("Cache-Control", "no-cache")
	h.assets.ServeHTTP(w, r)
}

// apiError has the management API's error shape: {"error": {"code", "message"}}.
type apiError struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errBody(code, msg string) apiError {
	return apiError{Error: errorDetail{Code: code, Message: msg}}
}

// Throttle limits failed authentications; *api.Throttle is one.
type Throttle interface {
	Blocked(r *http.Request, agentID string) (time.Duration, bool)
	Failed(r *http.Request, agentID string)
}

// api wraps a JSON endpoint with the token check. No configured token means no access.
func (h *handler) api(fn func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if h.cfg.Throttle != nil {
			if wait, blocked := h.cfg.Throttle.Blocked(r, ""); blocked {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
				writeJSON(w, http.StatusTooManyRequests, errBody("rate_limited", "too many failed authentications"))
				return
			}
		}
		if h.cfg.AdminToken == "" {
			writeJSON(w, http.StatusUnauthorized, errBody("unauthorized", "the dashboard's data needs the admin token, and none is configured (set CARDWARDEN_ADMIN_TOKEN)"))
			return
		}
		if !h.authorized(r) {
			if h.cfg.Throttle != nil {
				h.cfg.Throttle.Failed(r, "")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="cardwarden"`)
			writeJSON(w, http.StatusUnauthorized, errBody("unauthorized", "the dashboard needs the admin token (Authorization: Bearer <token>)"))
			return
		}
		fn(w, r)
	}
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Comparing digests keeps the comparison constant-time whatever the lengths.
	got, want := sha256.Sum256([]byte(strings.TrimSpace(tok))), sha256.Sum256([]byte(h.cfg.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (h *handler) getFleet(w http.ResponseWriter, r *http.Request) {
	f, err := h.cachedFleet(r.Context())
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard fleet", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, errBody("unavailable", "cannot read the fleet: "+err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// cachedFleet shares one refresh between the browsers polling at the same moment: a fleet
// refresh queries every workflow, and ten open tabs must not make that ten times the work.
func (h *handler) cachedFleet(ctx context.Context) (*Fleet, error) {
	fresh := h.cfg.PollInterval / 2
	for {
		h.mu.Lock()
		if h.fleet != nil && h.cacheClock().Sub(h.fleetAt) < fresh {
			f := h.fleet
			h.mu.Unlock()
			return f, nil
		}
		h.mu.Unlock()
		select {
		case h.fleetBusy <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.mu.Lock()
		if h.fleet != nil && h.cacheClock().Sub(h.fleetAt) < fresh {
			h.mu.Unlock()
			<-h.fleetBusy
			continue
		}
		h.mu.Unlock()
		f, err := h.buildFleet(ctx)
		if err == nil {
			h.mu.Lock()
			h.fleet, h.fleetAt = f, h.cacheClock()
			h.mu.Unlock()
		}
		<-h.fleetBusy
		return f, err
	}
}

func (h *handler) getAgent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !workflows.ValidAgentID(id) { // anything else is not looked up
		writeJSON(w, http.StatusNotFound, errBody("agent_not_found", "no such agent"))
		return
	}
	d, err := h.buildAgent(r.Context(), id)
	switch {
	case store.IsNotFound(err):
		writeJSON(w, http.StatusNotFound, errBody("agent_not_found", "no agent "+id))
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard agent", "agent_id", id, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, errBody("unavailable", "cannot read agent "+id+": "+err.Error()))
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
