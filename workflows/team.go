package workflows

import (
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
)

// The Team workflow (README, "Teams"): a budget shared by a team of agents, each still capped
// by its own. It holds the team's spend (every money event of its agents, forwarded by their
// workflows) and decides, for the decision endpoint, whether a purchase fits the team's
// allowance, reserving it at once: its handlers never wait on anything, so two purchases by
// two agents can never both take the team's last dollar. It calls no activity at all.

// Names other programs rely on.
const (
	TeamWorkflowType     = "Team"
	TeamWorkflowIDPrefix = "team/"
	// SignalTeamEvent carries a TeamEvent from a member agent's workflow.
	SignalTeamEvent = "team-event"
	// Team updates: reserve (TeamReserveRequest → TeamReserveResult), release
	// (TeamReleaseRequest), set-budget (BudgetRequest); the query state (TeamView).
	UpdateTeamReserve = "reserve"
	UpdateTeamRelease = "release"
)

// TeamWorkflowID is the workflow id of a team's workflow.
func TeamWorkflowID(teamID string) string { return TeamWorkflowIDPrefix + teamID }

// Bounds of the team's carried state.
const (
	maxTeamDecisions   = 256
	maxTeamSeen        = 4096
	maxTeamSignalsRun  = 2000
	teamHistoryLimit   = 8000
	teamReasonOverTeam = DecideTeamBudget
)

type team struct {
	policy TeamPolicy
	st     *TeamState
	loc    *time.Location
	sched  cron.Schedule
	seen   map[string]bool
	events workflow.ReceiveChannel
	signal int
}

// Team is the team's entity workflow. Start it with id TeamWorkflowID(team_id) on TaskQueue.
func Team(ctx workflow.Context, in TeamInput) (TeamView, error) {
	p, err := in.TeamPolicy.Normalize()
	if err != nil {
		return TeamView{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidPolicy, nil)
	}
	if want, id := TeamWorkflowID(p.TeamID), workflow.GetInfo(ctx).WorkflowExecution.ID; id != want {
		return TeamView{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("team.team_id: the workflow id must be %q, got %q", want, id), ErrTypeInvalidPolicy, nil)
	}
	t := &team{policy: p, loc: zone(p.Timezone), seen: map[string]bool{}}
	t.sched, _ = ParseCron(p.ResetCron)
	now := workflow.Now(ctx)
	if in.State != nil {
		t.st = in.State
	} else {
		start := PrevFire(t.sched, t.loc, now)
		if start.IsZero() {
			start = now
		}
		t.st = &TeamState{LastReset: start, NextReset: NextFire(t.sched, t.loc, now), Run: 1}
		t.st.Budget.StartPeriod(start, t.loc, p.DailyLimitUSD.Minor(), t.nextReset)
	}
	for _, id := range t.st.Seen {
		t.seen[id] = true
	}
	if err := t.register(ctx); err != nil {
		return TeamView{}, err
	}
	var timer workflow.Future
	for {
		now := workflow.Now(ctx)
		if !now.Before(t.st.NextReset) {
			fire, _ := Catchup(t.sched, t.loc, t.st.NextReset, now)
			t.st.LastReset = fire
			t.st.NextReset = NextFire(t.sched, t.loc, fire)
			t.st.Budget.StartPeriod(fire, t.loc, t.policy.DailyLimitUSD.Minor(), t.nextReset)
		}
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || t.signal >= maxTeamSignalsRun || info.GetCurrentHistoryLength() >= teamHistoryLimit {
			return t.continueAsNew(ctx)
		}
		if timer == nil {
			// The timer is kept while signals come and go: only a reset moves its deadline.
			timer = workflow.NewTimer(ctx, max(time.Millisecond, t.st.NextReset.Sub(now)))
		}
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) { timer = nil })
		sel.AddReceive(t.events, func(c workflow.ReceiveChannel, _ bool) {
			var ev TeamEvent
			c.ReceiveAsync(&ev)
			t.apply(ctx, ev)
		})
		sel.Select(ctx)
		if ctx.Err() != nil {
			return t.view(), temporal.NewCanceledError("team workflow cancelled")
		}
	}
}

// continueAsNew hands the state to a new run once every buffered event is applied and every
// update handler has answered.
func (t *team) continueAsNew(ctx workflow.Context) (TeamView, error) {
	for {
		for {
			var ev TeamEvent
			if !t.events.ReceiveAsync(&ev) {
				break
			}
			t.apply(ctx, ev)
		}
		if err := workflow.Await(ctx, func() bool { return t.events.Len() > 0 || workflow.AllHandlersFinished(ctx) }); err != nil {
			return TeamView{}, err
		}
		if t.events.Len() == 0 {
			break
		}
	}
	t.st.Run++
	return TeamView{}, workflow.NewContinueAsNewError(ctx, TeamWorkflowType, TeamInput{TeamPolicy: t.policy, State: t.st})
}

// zone is a time zone a Normalize already loaded once.
func zone(name string) *time.Location {
	loc, err := LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("time zone %q: %v", name, err))
	}
	return loc
}

func (t *team) nextReset(at time.Time) time.Time { return NextFire(t.sched, t.loc, at) }

func (t *team) register(ctx workflow.Context) error {
	t.events = workflow.GetSignalChannelWithOptions(ctx, SignalTeamEvent, workflow.SignalChannelOptions{
		Description: "A member agent's money event, forwarded by its AgentCard workflow: counted once, settling its reservation."})
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryState, func() (TeamView, error) { return t.view(), nil },
		workflow.QueryHandlerOptions{Description: "The team's budget: limits, spent, reserved and remaining, members, recent decisions."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateTeamReserve,
		func(ctx workflow.Context, req TeamReserveRequest) (TeamReserveResult, error) {
			return t.reserve(ctx, req), nil
		},
		workflow.UpdateHandlerOptions{Description: "Approve and reserve a member's purchase if it fits the team's allowance (spent + reserved); sent by the decision endpoint before the agent's authorize.",
			Validator: func(_ workflow.Context, req TeamReserveRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return nil
			}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateTeamRelease, func(ctx workflow.Context, req TeamReleaseRequest) (TeamView, error) {
		t.st.Reservations = slices.DeleteFunc(t.st.Reservations, func(r TeamReservation) bool { return r.AuthorizationID == req.AuthorizationID })
		return t.view(), nil
	}, workflow.UpdateHandlerOptions{Description: "Give back a reservation whose purchase the agent declined.",
		Validator: func(_ workflow.Context, req TeamReleaseRequest) error {
			if err := req.Validate(); err != nil {
				return invalidRequest(err)
			}
			return nil
		}}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetBudget,
		func(ctx workflow.Context, req BudgetRequest) (TeamView, error) {
			p := t.policy
			p.DailyLimitUSD, p.MonthlyLimitUSD = req.Apply(p.DailyLimitUSD, p.MonthlyLimitUSD)
			np, err := p.Normalize()
			if err != nil {
				return TeamView{}, invalidRequest(err)
			}
			t.policy = np
			t.st.Budget.MaxDailyMinor = max(t.st.Budget.MaxDailyMinor, np.DailyLimitUSD.Minor())
			return t.view(), nil
		},
		workflow.UpdateHandlerOptions{Description: "Change the team's daily and/or monthly limit (from the next decision on).",
			Validator: func(_ workflow.Context, req BudgetRequest) error {
				if err := req.Validate(); err != nil {
					return invalidRequest(err)
				}
				return nil
			}})
}

// reserve decides whether a purchase fits what the team has left, and reserves it if so.
func (t *team) reserve(ctx workflow.Context, req TeamReserveRequest) TeamReserveResult {
	now := workflow.Now(ctx)
	t.st.Reservations = slices.DeleteFunc(t.st.Reservations, func(r TeamReservation) bool { return !now.Before(r.ExpiresAt) })
	for i := len(t.st.Decisions) - 1; i >= 0; i-- {
		if d := t.st.Decisions[i]; d.AuthorizationID == req.AuthorizationID {
			return TeamReserveResult{Approved: d.Approved, Reason: reasonOf(d.Approved), RemainingMinor: t.left(), Repeated: true}
		}
	}
	approved := req.AmountMinor <= t.left()
	if approved {
		t.st.Reservations = append(t.st.Reservations, TeamReservation{AuthorizationID: req.AuthorizationID, AgentID: req.AgentID,
			AmountMinor: req.AmountMinor, ExpiresAt: now.Add(reservationTTL)})
	}
	t.st.Decisions = append(t.st.Decisions, TeamDecision{AuthorizationID: req.AuthorizationID, AgentID: req.AgentID, At: now,
		AmountMinor: req.AmountMinor, Approved: approved})
	if n := len(t.st.Decisions) - maxTeamDecisions; n > 0 {
		t.st.Decisions = slices.Delete(t.st.Decisions, 0, n)
	}
	t.member(req.AgentID)
	return TeamReserveResult{Approved: approved, Reason: reasonOf(approved), RemainingMinor: t.left()}
}

func reasonOf(approved bool) string {
	if approved {
		return DecideApproved
	}
	return teamReasonOverTeam
}

// left is what the team's period leaves, reservations counted.
func (t *team) left() int64 {
	rem := t.st.Budget.RemainingToday(t.policy.DailyLimitUSD.Minor(), t.policy.MonthlyLimitMinor())
	for _, r := range t.st.Reservations {
		rem -= r.AmountMinor
	}
	return max(0, rem)
}

// apply counts a member's money event once, and settles the reservation of its authorization.
func (t *team) apply(ctx workflow.Context, ev TeamEvent) {
	t.signal++
	e := ev.Event
	if e.Check() != nil || t.seen[e.ID] {
		return
	}
	t.seen[e.ID] = true
	t.st.Seen = append(t.st.Seen, e.ID)
	if n := len(t.st.Seen) - maxTeamSeen; n > 0 {
		for _, old := range t.st.Seen[:n] {
			delete(t.seen, old)
		}
		t.st.Seen = slices.Delete(t.st.Seen, 0, n)
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = workflow.Now(ctx)
	}
	t.st.Budget.Apply(e, t.nextReset)
	if e.Kind == cardwarden.KindAuthorization {
		t.st.Reservations = slices.DeleteFunc(t.st.Reservations, func(r TeamReservation) bool { return r.AuthorizationID == e.AuthorizationID })
	}
	t.member(ev.AgentID)
}

func (t *team) member(agentID string) {
	if agentID != "" && !slices.Contains(t.st.Members, agentID) {
		t.st.Members = append(t.st.Members, agentID)
		slices.Sort(t.st.Members)
	}
}

func (t *team) view() TeamView {
	b := t.st.Budget
	v := TeamView{
		TeamID: t.policy.TeamID, Label: t.policy.Label, Policy: t.policy, Day: b.Day, PeriodStart: b.PeriodStart,
		NextReset: t.st.NextReset, SpentTodayUSD: money.Amount(b.SpentTodayMinor), OverspendTodayUSD: money.Amount(b.OverspendTodayMinor),
		RemainingTodayUSD: money.Amount(t.left()), SpentMonthUSD: money.Amount(b.SpentMonthMinor),
		Members: append([]string{}, t.st.Members...), Run: t.st.Run,
	}
	for _, r := range t.st.Reservations {
		v.ReservedUSD += money.Amount(r.AmountMinor)
	}
	for _, d := range t.st.Decisions[max(0, len(t.st.Decisions)-20):] {
		reason := reasonOf(d.Approved)
		v.Decisions = append(v.Decisions, DecisionView{AuthorizationID: d.AuthorizationID, At: d.At, AmountUSD: money.Amount(d.AmountMinor),
			AgentID: d.AgentID, Approved: d.Approved, Reason: reason})
	}
	return v
}
