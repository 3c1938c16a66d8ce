package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// maxManagementBody bounds a management request; a policy is well under a kilobyte.
const maxManagementBody = 64 << 10

// updateTimeout bounds how long a management call waits for the agent's workflow. An update
// that issues a card waits for the issuer; without a worker it would otherwise hang.
const updateTimeout = 60 * time.Second

// readBody reads a bounded request body, answering 413 itself when it is too large.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	return readBodyOr(w, r, limit, func() {})
}

// readBodyOr is readBody that also calls tooLarge when the body is over the limit.
func readBodyOr(w http.ResponseWriter, r *http.Request, limit int64, tooLarge func()) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge()
			writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				"request body is larger than "+strconv.FormatInt(limit, 10)+" bytes", "")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "could not read the request body", "")
		return nil, false
	}
	return b, true
}

type createResponse struct {
	Agent starter.Agent `json:"agent"`
	// Token is the agent's credential-pull token: shown only in the response that created it.
	Token     string `json:"token,omitempty"`
	TokenNote string `json:"token_note,omitempty"`
}

// createAgent: POST /v1/agents with the policy as the body. 201 when started, 200 when the
// agent already runs with this policy, 409 when it runs with another one.
func (s *server) createAgent(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, maxManagementBody)
	if !ok {
		return
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "invalid_json", "request body is not valid JSON", "")
		return
	}
	p, err := workflows.ParsePolicyWith(body, s.Outbound)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_policy", err.Error(), starter.FieldOf(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	a, tok, err := s.ctl.CreateAgent(ctx, p, adminActor)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	resp := createResponse{Agent: a, Token: tok}
	if tok == "" {
		resp.TokenNote = "the agent already has a credential-pull token; replace it with POST /v1/agents/" + a.AgentID + "/token"
	}
	status := http.StatusOK
	if a.Created {
		status = http.StatusCreated
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, resp)
}

// Page sizes of GET /v1/agents.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// agentList is one page of GET /v1/agents.
type agentList struct {
	Object  string                 `json:"object"` // "list"
	Agents  []starter.AgentSummary `json:"agents"`
	HasMore bool                   `json:"has_more"`
}

// listAgents: GET /v1/agents?status=frozen&issuer=sim&agent_id=x&include_closed=true&limit=100
// &starting_after=<agent id>. Agents come ordered by id, a page at a time (Stripe's cursor
// pagination): has_more says whether another page follows, and the last agent id of this one
// is the next page's starting_after.
func (s *server) listAgents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := starter.ListOptions{Status: workflows.Status(q.Get("status")), Issuer: q.Get("issuer"), AgentID: q.Get("agent_id")}
	if v := q.Get("include_closed"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "include_closed must be true or false", "include_closed")
			return
		}
		o.IncludeClosed = b
	}
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to "+strconv.Itoa(maxListLimit), "limit")
			return
		}
		limit = n
	}
	after := q.Get("starting_after")
	if after != "" && !workflows.ValidAgentID(after) {
		writeError(w, http.StatusBadRequest, "invalid_request", "starting_after must be an agent id", "starting_after")
		return
	}
	agents, err := s.ctl.ListAgents(r.Context(), o)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	// The page starts after the cursor, in agent id order.
	slices.SortFunc(agents, func(a, b starter.AgentSummary) int { return strings.Compare(a.AgentID, b.AgentID) })
	start := 0
	for start < len(agents) && after != "" && agents[start].AgentID <= after {
		start++
	}
	page := agentList{Object: "list", Agents: agents[start:]}
	if len(page.Agents) > limit {
		page.Agents, page.HasMore = page.Agents[:limit], true
	}
	if page.Agents == nil {
		page.Agents = []starter.AgentSummary{}
	}
	writeJSON(w, http.StatusOK, page)
}

// getAgent: GET /v1/agents/{id} returns the state view (never card numbers).
func (s *server) getAgent(w http.ResponseWriter, r *http.Request) {
	s.answerState(w, r, s.ctl.State)
}

// reasonUpdate: POST /v1/agents/{id}/rotate|freeze|unfreeze|retire with an optional
// {"reason": "…", "actor": "…"} body. Answers the state after the change.
func (s *server) reasonUpdate(update func(Control, context.Context, string, workflows.ReasonRequest) (workflows.StateView, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req workflows.ReasonRequest
		if !readRequest(w, r, &req) {
			return
		}
		req.Actor = cmp.Or(req.Actor, adminActor)
		s.answerState(w, r, func(ctx context.Context, id string) (workflows.StateView, error) { return update(s.ctl, ctx, id, req) })
	}
}

// setBudget: POST /v1/agents/{id}/budget with {"daily_limit_usd": "40", "monthly_limit_usd":
// "600", "clear_monthly_limit": false, "reason": "…"}.
func (s *server) setBudget(w http.ResponseWriter, r *http.Request) {
	var req workflows.BudgetRequest
	if !readRequest(w, r, &req) {
		return
	}
	req.Actor = cmp.Or(req.Actor, adminActor)
	s.answerState(w, r, func(ctx context.Context, id string) (workflows.StateView, error) {
		return s.ctl.SetBudget(ctx, id, req)
	})
}

// readStrict reads a required JSON body into v, refusing unknown fields: 400 for malformed
// JSON, 422 (with code, "what: why" and field) for JSON that does not fit v. False when it
// has answered.
func readStrict(w http.ResponseWriter, r *http.Request, v any, code, what, field string) bool {
	body, ok := readBody(w, r, maxManagementBody)
	if !ok {
		return false
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "invalid_json", "request body is not valid JSON", "")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusUnprocessableEntity, code, what+": "+err.Error(), field)
		return false
	}
	return true
}

// readRequest reads an update's optional JSON body into req: an empty body is the zero
// request. False when it has answered the request itself.
func readRequest(w http.ResponseWriter, r *http.Request, req any) bool {
	body, ok := readBody(w, r, maxManagementBody)
	if !ok {
		return false
	}
	if len(body) > 0 {
		if !json.Valid(body) {
			writeError(w, http.StatusBadRequest, "invalid_json", "request body is not valid JSON", "")
			return false
		}
		if err := json.Unmarshal(body, req); err != nil {
			writeError(w, http.StatusUnprocessableEntity, "invalid_request", "request body does not fit the request: "+err.Error(), "request")
			return false
		}
	}
	return true
}

// answerState asks for the state of the path's agent, or changes it, within updateTimeout,
// and answers the state.
func (s *server) answerState(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, agentID string) (workflows.StateView, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	st, err := do(ctx, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// rotateToken: POST /v1/agents/{id}/token replaces the agent's credential-pull token and
// returns the new one, once.
func (s *server) rotateToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	tok, err := s.ctl.RotateToken(ctx, id, adminActor)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"agent_id": id, "token": tok})
}
