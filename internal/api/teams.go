package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Teams (README, "Teams"): a budget that several agents share, held by the team's own
// workflow (team/<id>). An agent joins with its policy's team_id.

// Teams is what the team endpoints ask of Temporal: *starter.Client.
type Teams interface {
	StartTeam(ctx context.Context, p workflows.TeamPolicy) (starter.Team, error)
	TeamState(ctx context.Context, teamID string) (workflows.TeamView, error)
	SetTeamBudget(ctx context.Context, teamID string, req workflows.BudgetRequest) (workflows.TeamView, error)
}

var _ Teams = (*starter.Client)(nil)

// teams is the control client's team side, or nil (answered 503) when it has none.
func (s *server) teams(w http.ResponseWriter) Teams {
	t, ok := s.ctl.(Teams)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "temporal_unavailable", "teams need a Temporal client", "")
		return nil
	}
	return t
}

// createTeam: POST /v1/teams with a team policy; 201 when started, 200 when it runs already.
func (s *server) createTeam(w http.ResponseWriter, r *http.Request) {
	var p workflows.TeamPolicy
	if !readStrict(w, r, &p, "invalid_policy", "team policy", "team") {
		return
	}
	t := s.teams(w)
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	team, err := t.StartTeam(ctx, p)
	if err != nil {
		s.teamErr(w, r, err)
		return
	}
	status := http.StatusOK
	if team.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, team)
}

// getTeam: GET /v1/teams/{id}.
func (s *server) getTeam(w http.ResponseWriter, r *http.Request) {
	s.answerTeam(w, r, func(ctx context.Context, t Teams, id string) (workflows.TeamView, error) { return t.TeamState(ctx, id) })
}

// setTeamBudget: POST /v1/teams/{id}/budget with {"daily_limit_usd": "…", "monthly_limit_usd": "…"}.
func (s *server) setTeamBudget(w http.ResponseWriter, r *http.Request) {
	var req workflows.BudgetRequest
	if !readRequest(w, r, &req) {
		return
	}
	s.answerTeam(w, r, func(ctx context.Context, t Teams, id string) (workflows.TeamView, error) {
		return t.SetTeamBudget(ctx, id, req)
	})
}

func (s *server) answerTeam(w http.ResponseWriter, r *http.Request, do func(context.Context, Teams, string) (workflows.TeamView, error)) {
	t := s.teams(w)
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	v, err := do(ctx, t, r.PathValue("id"))
	if err != nil {
		s.teamErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// teamErr is writeErr with a team's words for a missing workflow.
func (s *server) teamErr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, starter.ErrAgentNotFound) {
		writeError(w, http.StatusNotFound, "team_not_found", "no such team (create it with POST /v1/teams)", "")
		return
	}
	s.writeErr(w, r, err)
}
