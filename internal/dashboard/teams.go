package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// Teams and real-time decisions (README, "Deciding each purchase" and "Teams"): the team list
// and pages, built from the agents' stored policies (which name their team), each team's
// workflow (team/<id>, its state query) and the decisions table.

// maxDecisions bounds the decisions one agent or team page shows.
const maxDecisions = 50

func (h *handler) getTeams(w http.ResponseWriter, r *http.Request) {
	l, err := h.buildTeams(r.Context())
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard teams", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, errBody("unavailable", "cannot read the teams: "+err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (h *handler) getTeam(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !workflows.ValidAgentID(id) { // team ids follow the agent id rule; anything else is not looked up
		writeJSON(w, http.StatusNotFound, errBody("team_not_found", "no such team"))
		return
	}
	d, err := h.buildTeam(r.Context(), id)
	switch {
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard team", "team_id", id, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, errBody("unavailable", "cannot read team "+id+": "+err.Error()))
	case d == nil:
		writeJSON(w, http.StatusNotFound, errBody("team_not_found", "no team "+id))
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// teamMembers maps each team a stored agent's policy names to those agents, sorted.
func teamMembers(agents []store.Agent) map[string][]store.Agent {
	out := map[string][]store.Agent{}
	for _, a := range agents {
		if t := parsePolicy(a.Policy).TeamID; t != "" && workflows.ValidAgentID(t) {
			out[t] = append(out[t], a)
		}
	}
	return out
}

func (h *handler) buildTeams(ctx context.Context) (*TeamList, error) {
	agents, err := h.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	byTeam := teamMembers(agents)
	ids := make([]string, 0, len(byTeam))
	for id := range byTeam {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rows := make([]TeamRow, len(ids))
	h.parallel(len(ids), func(i int) {
		tv, ok := h.teamState(ctx, ids[i])
		rows[i] = h.teamRow(ids[i], tv, ok, byTeam[ids[i]])
	})
	return &TeamList{GeneratedAt: h.cfg.Now().UTC(), PollMS: h.cfg.PollInterval.Milliseconds(), Teams: rows}, nil
}

// buildTeam returns the team's page, or nil when neither a stored agent's policy nor a running
// workflow knows the team.
func (h *handler) buildTeam(ctx context.Context, id string) (*TeamDetail, error) {
	agents, err := h.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	stored := teamMembers(agents)[id]
	tv, live := h.teamState(ctx, id)
	if !live && len(stored) == 0 {
		return nil, nil
	}
	d := &TeamDetail{Team: h.teamRow(id, tv, live, stored)}
	byID := map[string]store.Agent{}
	for _, a := range agents {
		byID[a.AgentID] = a
	}
	d.Agents = make([]AgentRow, len(d.Team.Members))
	errs := make([]error, len(d.Team.Members))
	h.parallel(len(d.Team.Members), func(i int) {
		m := d.Team.Members[i]
		if a, ok := byID[m]; ok {
			d.Agents[i], _, errs[i] = h.row(ctx, a)
			return
		}
		// Seen by the team's workflow, unknown to the store (created elsewhere, or removed).
		d.Agents[i] = AgentRow{AgentID: m, Status: "unknown", TeamID: id}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	var view *workflows.TeamView
	if live {
		view = &tv
	}
	if d.Decisions, err = h.teamDecisions(ctx, id, d.Team.Members, view); err != nil {
		return nil, err
	}
	d.Agents = nonNil(d.Agents)
	return d, nil
}

// teamState queries the team's workflow with the agents' short timeout.
func (h *handler) teamState(ctx context.Context, id string) (workflows.TeamView, bool) {
	if h.cfg.Teams == nil {
		return workflows.TeamView{}, false
	}
	qctx, cancel := context.WithTimeout(ctx, h.cfg.StateTimeout)
	defer cancel()
	tv, err := h.cfg.Teams.TeamState(qctx, id)
	if err != nil {
		h.cfg.Logger.DebugContext(ctx, "dashboard: team state query failed; showing the store's view", "team_id", id, "error", err)
		return workflows.TeamView{}, false
	}
	return tv, true
}

func (h *handler) teamRow(id string, tv workflows.TeamView, live bool, stored []store.Agent) TeamRow {
	r := TeamRow{TeamID: id, Live: live, WorkflowURL: TeamWorkflowURL(h.cfg.TemporalUIURL, h.cfg.Namespace, id)}
	members := map[string]bool{}
	for _, a := range stored {
		members[a.AgentID] = true
	}
	if live {
		r.Label, r.Day, r.Timezone = tv.Label, tv.Day, tv.Policy.Timezone
		r.DailyLimitUSD, r.MonthlyLimitUSD = tv.Policy.DailyLimitUSD, tv.Policy.MonthlyLimitUSD
		r.SpentTodayUSD, r.ReservedUSD, r.RemainingTodayUSD = tv.SpentTodayUSD, tv.ReservedUSD, tv.RemainingTodayUSD
		r.OverspendTodayUSD, r.SpentMonthUSD = tv.OverspendTodayUSD, tv.SpentMonthUSD
		r.SpentPct = pct(r.SpentTodayUSD.Minor(), r.DailyLimitUSD.Minor())
		if !tv.NextReset.IsZero() {
			t := tv.NextReset.UTC()
			r.NextReset = &t
		}
		for _, m := range tv.Members {
			members[m] = true
		}
	}
	r.Members = make([]string, 0, len(members))
	for m := range members {
		r.Members = append(r.Members, m)
	}
	slices.Sort(r.Members)
	return r
}

// teamDecisions are the decisions recorded for the team's members on the team's behalf,
// with those the team's workflow made that are not recorded yet.
func (h *handler) teamDecisions(ctx context.Context, id string, members []string, tv *workflows.TeamView) ([]DecisionRow, error) {
	var pending []workflows.DecisionView
	if tv != nil {
		pending = tv.Decisions
	}
	return h.mergeDecisions(ctx, members, id, pending)
}

// decisions are one agent's recent decisions: the decisions table's, and those only its
// workflow's state holds so far.
func (h *handler) decisions(ctx context.Context, agentIDs []string, teamID string, sv *workflows.StateView) ([]DecisionRow, error) {
	var pending []workflows.DecisionView
	if sv != nil {
		for _, d := range sv.Decisions {
			if d.AgentID == "" {
				d.AgentID = sv.AgentID
			}
			pending = append(pending, d)
		}
	}
	return h.mergeDecisions(ctx, agentIDs, teamID, pending)
}

// mergeDecisions reads the agents' recorded decisions (those for teamID only, when set), adds
// the workflow's decisions the table does not have, and returns the newest maxDecisions,
// newest first.
func (h *handler) mergeDecisions(ctx context.Context, agentIDs []string, teamID string, pending []workflows.DecisionView) ([]DecisionRow, error) {
	out := []DecisionRow{}
	seen := map[string]bool{}
	for _, id := range agentIDs {
		ds, err := h.cfg.Store.ListDecisions(ctx, id, maxDecisions)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if teamID != "" && d.TeamID != teamID {
				continue
			}
			seen[d.AuthorizationID] = true
			out = append(out, DecisionRow{At: d.DecidedAt.UTC(), AuthorizationID: d.AuthorizationID, Issuer: d.Issuer, AgentID: d.AgentID,
				TeamID: d.TeamID, Approved: d.Approved, Reason: d.Reason, AmountUSD: money.Amount(d.AmountMinor), Currency: d.Currency,
				Merchant: d.Merchant, MCC: d.MCC, Fallback: d.Fallback, LatencyMS: d.LatencyMS, Recorded: true})
		}
	}
	for _, d := range pending {
		if seen[d.AuthorizationID] {
			continue
		}
		seen[d.AuthorizationID] = true
		out = append(out, DecisionRow{At: d.At.UTC(), AuthorizationID: d.AuthorizationID, AgentID: d.AgentID, TeamID: teamID,
			Approved: d.Approved, Reason: d.Reason, AmountUSD: d.AmountUSD, Merchant: d.Merchant})
	}
	slices.SortStableFunc(out, func(a, b DecisionRow) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(a.AuthorizationID, b.AuthorizationID)
	})
	if len(out) > maxDecisions {
		out = out[:maxDecisions]
	}
	return out, nil
}

// parallel runs fn(0…n-1) with at most MaxConcurrentQueries at once and waits for them.
func (h *handler) parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, h.cfg.MaxConcurrentQueries)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}
