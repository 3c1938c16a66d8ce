package workflows

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// agentCard is one run of the workflow: the policy, the state, and the run's bookkeeping.
type agentCard struct {
	policy      Policy
	loc         *time.Location
	resetSched  cron.Schedule
	rotateSched cron.Schedule // nil when rotate_cron is "off"
	workflowID  string
	st          *State

	eventCh workflow.ReceiveChannel
	cmdCh   workflow.Channel

	seen map[string]struct{}

	timer       workflow.Future
	timerAt     time.Time
	cancelTimer workflow.CancelFunc

	signalsThisRun int
	estimate       int // this run's history length as it counts it (history.go)
	background     int // alerts and credential pushes in flight, which continue-as-new and completion wait for
	retiring       bool
	fresh          bool // the first run of this agent's workflow
	// reconcileAhead: reconciliation runs in the lead before each reset rather than at it
	// (changeReconcileAhead); runs started before that change keep reconciling at the reset.
	reconcileAhead bool
	// urgentStops: card-stopping calls go to IssuerUrgentTaskQueue (changeUrgentStops).
	urgentStops bool
	// moneyInvariant: cards are capped and read before another is funded, credits lower the
	// limit, every overspend alerts (changeMoneyInvariant).
	moneyInvariant bool
	// spreadResets: the timer that applies a reset wakes a little after the instant, at a
	// point fixed by the agent id (changeResetSpread).
	spreadResets bool
	// recordHandSent: a card-event signal the ledger does not have (sent by hand) is recorded
	// in it by the RecordEvent activity.
	recordHandSent bool
	result         *Result
}

// AgentCard is the entity workflow that owns one agent's card for the agent's whole life.
// Start it with workflow id WorkflowID(agent_id) on TaskQueue; its input is the policy.
func AgentCard(ctx workflow.Context, in Input) (Result, error) {
	wf, err := newAgentCard(ctx, in)
	if err != nil {
		return Result{}, err
	}
	return wf.run(ctx)
}

func invalidPolicy(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidPolicy, nil)
}

// newAgentCard validates the input and registers the handlers. A bad policy fails the
// workflow here, before any activity runs, so no card is ever issued for it.
func newAgentCard(ctx workflow.Context, in Input) (*agentCard, error) {
	if in.parseErr != nil {
		return nil, invalidPolicy(in.parseErr)
	}
	p, err := in.Policy.Normalize()
	if err != nil {
		return nil, invalidPolicy(err)
	}
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	if want := WorkflowID(p.AgentID); id != want {
		return nil, invalidPolicy(FieldErrors{{Field: "policy.agent_id", Msg: fmt.Sprintf("the workflow id must be %q, got %q", want, id)}})
	}
	now := workflow.Now(ctx)
	if in.State == nil && p.RetireAt != nil && !p.RetireAt.After(now) {
		return nil, invalidPolicy(FieldErrors{{Field: "policy.retire_at", Msg: fmt.Sprintf("%s is in the past", p.RetireAt.Format(time.RFC3339))}})
	}
	wf := &agentCard{policy: p, loc: p.Location(), workflowID: id, seen: map[string]struct{}{}, estimate: eventsAtStart}
	wf.resetSched, _ = ParseCron(p.ResetCron) // Normalize checked both specs
	if p.RotateCron != RotateOff {
		wf.rotateSched, _ = ParseCron(p.RotateCron)
	}
	if in.State != nil {
		wf.st = in.State
	} else {
		wf.fresh = true
		wf.st = &State{Status: StatusActive, StartedAt: now, Run: 1}
	}
	for _, id := range wf.st.Seen {
		wf.seen[id] = struct{}{}
	}
	if err := wf.registerHandlers(ctx); err != nil {
		return nil, err
	}
	return wf, nil
}

func (wf *agentCard) logger(ctx workflow.Context) log.Logger {
	return log.With(workflow.GetLogger(ctx), "agent_id", wf.policy.AgentID, "generation", wf.st.Generation)
}

func (wf *agentCard) run(ctx workflow.Context) (Result, error) {
	wf.reconcileAhead, wf.urgentStops, wf.moneyInvariant, wf.spreadResets, wf.recordHandSent = changesOn(ctx)
	if wf.fresh {
		if err := wf.start(ctx); err != nil {
			return Result{}, err
		}
	} else {
		wf.resume(ctx)
	}
	for wf.result == nil {
		wf.runDue(ctx)
		if wf.result != nil {
			break
		}
		if wf.shouldContinueAsNew(ctx) {
			return wf.continueAsNew(ctx)
		}
		wf.waitForWork(ctx)
		if ctx.Err() != nil {
			return wf.cancelled(ctx)
		}
	}
	return wf.finish(ctx)
}

// nextWake is the earliest instant something is due. Every deadline listed here is either
// acted on or moved forward by runDue, so the loop never spins.
func (wf *agentCard) nextWake() time.Time {
	ts := []time.Time{wf.resetWake(), wf.st.NextRotation}
	if at, ok := wf.plannedReconcile(); ok {
		ts = append(ts, at)
	}
	if wf.policy.RetireAt != nil {
		ts = append(ts, *wf.policy.RetireAt)
	}
	for _, c := range wf.st.Closing {
		if c.Card.Status != string(issuer.CardClosed) {
			ts = append(ts, c.CloseAt)
		}
	}
	if wf.st.Card != nil && wf.st.Pending == nil && wf.st.Status != StatusRevoked {
		ts = append(ts, wf.st.Card.RotateAt)
	}
	if wf.st.Pending != nil && wf.st.Status == StatusActive {
		ts = append(ts, wf.st.Pending.RetryAt)
	}
	if wf.owesFunding() {
		ts = append(ts, wf.st.FundRetryAt)
	}
	return earliest(ts...)
}

// waitForWork blocks until a signal, an update or the next deadline, and handles the first
// of them. The timer is kept across iterations while the deadline is unchanged: creating and
// cancelling a timer per signal would double the history a decline storm writes.
func (wf *agentCard) waitForWork(ctx workflow.Context) {
	wf.armTimer(ctx, wf.nextWake())
	var (
		ev      *issuerEvent
		cmd     *command
		timerUp bool
	)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(wf.eventCh, func(c workflow.ReceiveChannel, _ bool) {
		var e issuerEvent
		if c.ReceiveAsync(&e) {
			ev = &e
		}
	})
	sel.AddReceive(wf.cmdCh, func(c workflow.ReceiveChannel, _ bool) {
		c.ReceiveAsync(&cmd)
	})
	if wf.timer != nil {
		sel.AddFuture(wf.timer, func(workflow.Future) { timerUp = true })
	}
	sel.Select(ctx)
	wf.wrote(eventsPerWake)
	switch {
	case ev != nil:
		wf.onSignal(ctx, *ev)
	case cmd != nil:
		cmd.execute(ctx, wf)
	case timerUp:
		wf.timer, wf.cancelTimer, wf.timerAt = nil, nil, time.Time{}
	}
}

func (wf *agentCard) armTimer(ctx workflow.Context, at time.Time) {
	if wf.timer != nil && wf.timerAt.Equal(at) {
		return
	}
	if wf.cancelTimer != nil {
		wf.cancelTimer()
		wf.wrote(eventsPerCancel)
	}
	wf.timer, wf.cancelTimer, wf.timerAt = nil, nil, time.Time{}
	if at.IsZero() {
		return
	}
	d := at.Sub(workflow.Now(ctx))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	tctx, cancel := workflow.WithCancel(ctx)
	wf.timer = workflow.NewTimer(tctx, d)
	wf.cancelTimer = cancel
	wf.timerAt = at
	wf.wrote(eventsPerTimer)
}

// runDue does everything whose time has come, in a fixed order.
func (wf *agentCard) runDue(ctx workflow.Context) {
	now := workflow.Now(ctx)
	if wf.policy.RetireAt != nil && !now.Before(*wf.policy.RetireAt) {
		wf.retire(ctx, "retire_at reached", "")
		return
	}
	wf.closeDue(ctx, now)
	if at, ok := wf.plannedReconcile(); ok && !now.Before(at) {
		wf.st.ReconciledFor = wf.st.NextReset
		wf.reconcile(ctx, now)
	}
	if !now.Before(wf.st.NextReset) {
		wf.reset(ctx, now)
	}
	if !wf.st.NextRotation.IsZero() && !now.Before(wf.st.NextRotation) {
		wf.st.NextRotation = NextFire(wf.rotateSched, wf.loc, now)
		wf.scheduledRotation(ctx)
	}
	if c := wf.st.Card; c != nil && wf.st.Pending == nil && wf.st.Status != StatusRevoked && !workflow.Now(ctx).Before(c.RotateAt) {
		wf.expire(ctx)
	}
	if p := wf.st.Pending; p != nil && wf.st.Status == StatusActive && !workflow.Now(ctx).Before(p.RetryAt) {
		wf.issue(ctx, p.Input.Reason)
	}
	if wf.owesFunding() && !workflow.Now(ctx).Before(wf.st.FundRetryAt) {
		wf.retryFunding(ctx)
	}
}

// owesFunding reports whether the current card's limit is still to be put right after the
// issuer refused it.
func (wf *agentCard) owesFunding() bool {
	return !wf.st.FundRetryAt.IsZero() && wf.st.Card != nil && wf.st.Status == StatusActive
}

// retryFunding tries again to put the period's allowance on the current card (capping any
// other card first).
func (wf *agentCard) retryFunding(ctx workflow.Context) {
	card := wf.st.Card
	if err := wf.stopOthers(ctx, card); err != nil {
		wf.st.FundFailures++
		wf.st.FundRetryAt = workflow.Now(ctx).Add(fundBackoff(wf.st.FundFailures))
		return
	}
	_ = wf.fund(ctx, card, time.Time{})
}
