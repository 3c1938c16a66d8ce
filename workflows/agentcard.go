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

	timer       workflow.Future
	timerAt     time.Time
	cancelTimer workflow.CancelFunc
	woken       woken // what ended the current wait

	signalsThisRun int
	estimate       int // this run's history length as it counts it (history.go)
	background     int // alerts and credential pushes in flight, which continue-as-new and completion wait for
	retiring       bool
	fresh          bool // the first run of this agent's workflow
	changes             // which changes this run has (versions.go)
	result         *Result
}

// AgentCard is the entity workflow that owns one agent's card for the agent's whole life.
// Start it with workflow id WorkflowID(agent_id) on TaskQueue; its input is the policy.
//
// An idle agent is this coroutine parked in the selector below, and its stack is, after its
// heap, most of what it costs the worker. The runtime halves a parked goroutine's stack only
// while it uses less than a quarter of it (less 800 bytes of headroom), and the SDK's frames
// below this function already take 2.9 KB, so the frames from here to the park are kept small:
// the input and the result go by pointer (the payload is the same JSON), the loop is here
// rather than in a method, and everything done between waits runs in calls that have returned
// by then. It parks with 3.1 KB in use, and an idle agent's stack is 8 KB instead of 16
// (cardwarden bench --scenario memory; docs/benchmarks.md says how it was measured). A local
// or a frame added here can undo that.
func AgentCard(ctx workflow.Context, in *Input) (*Result, error) {
	wf, err := newAgentCard(ctx, in)
	if err == nil {
		err = wf.setUp(ctx)
	}
	if err != nil {
		return nil, err
	}
	for !wf.atEnd(ctx) {
		wf.wakeSelector(ctx).Select(ctx)
		wf.onWake(ctx)
		if ctx.Err() != nil {
			return wf.end(ctx, true)
		}
	}
	return wf.end(ctx, false)
}

func invalidPolicy(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidPolicy, nil)
}

// newAgentCard validates the input and registers the handlers. A bad policy fails the
// workflow here, before any activity runs, so no card is ever issued for it.
func newAgentCard(ctx workflow.Context, in *Input) (*agentCard, error) {
	if in == nil {
		in = &Input{} // no input at all: refused below, naming the required fields
	}
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
	wf := &agentCard{policy: p, loc: p.Location(), workflowID: id, estimate: eventsAtStart}
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
	if err := wf.registerHandlers(ctx); err != nil {
		return nil, err
	}
	return wf, nil
}

func (wf *agentCard) logger(ctx workflow.Context) log.Logger {
	return log.With(workflow.GetLogger(ctx), "agent_id", wf.policy.AgentID, "generation", wf.st.Generation)
}

// setUp decides the run's versions and sets the run up: the first run issues the card, a
// continued run refreshes what it carried.
func (wf *agentCard) setUp(ctx workflow.Context) error {
	wf.changes = changesOn(ctx)
	if wf.fresh {
		return wf.start(ctx)
	}
	wf.resume(ctx)
	return nil
}

// atEnd does what is due and reports whether the run is over: the agent retired, or its
// history is long enough to continue as new.
func (wf *agentCard) atEnd(ctx workflow.Context) bool {
	if wf.result == nil {
		wf.runDue(ctx)
	}
	return wf.result != nil || wf.shouldContinueAsNew(ctx)
}

// end ends the run: cancelled, retired, or continued as new.
func (wf *agentCard) end(ctx workflow.Context, cancelled bool) (*Result, error) {
	var (
		res Result
		err error
	)
	switch {
	case cancelled:
		res, err = wf.cancelled(ctx)
	case wf.result == nil:
		res, err = wf.continueAsNew(ctx)
	default:
		res, err = wf.finish(ctx)
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
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

// Waiting for work is in three steps so that nothing but the selector is on the stack while
// the agent is idle (AgentCard). The timer is kept across iterations while the deadline is
// unchanged: creating and cancelling a timer per signal would double the history a decline
// storm writes.

// wakeSelector arms the timer for the next deadline and returns a selector that takes the first
// signal, update or timer into wf.woken.
func (wf *agentCard) wakeSelector(ctx workflow.Context) workflow.Selector {
	wf.armTimer(ctx, wf.nextWake())
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(wf.eventCh, func(c workflow.ReceiveChannel, _ bool) {
		var evs cardEvents
		if c.ReceiveAsync(&evs) {
			wf.woken.events, wf.woken.signal = evs, true
		}
	})
	sel.AddReceive(wf.cmdCh, func(c workflow.ReceiveChannel, _ bool) {
		c.ReceiveAsync(&wf.woken.cmd)
	})
	if wf.timer != nil {
		sel.AddFuture(wf.timer, func(workflow.Future) { wf.woken.timer = true })
	}
	return sel
}

// woken is what ended a wait: one of a signal, an update, the timer.
type woken struct {
	signal bool
	events cardEvents
	cmd    *command
	timer  bool
}

// onWake handles what ended the wait, and clears it for the next one.
func (wf *agentCard) onWake(ctx workflow.Context) {
	wf.wrote(eventsPerWake)
	w := wf.woken
	wf.woken = woken{}
	switch {
	case w.signal:
		wf.onSignal(ctx, w.events)
	case w.cmd != nil:
		w.cmd.execute(ctx, wf)
	case w.timer:
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
