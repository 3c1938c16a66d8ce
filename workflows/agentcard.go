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
	wf.reconcileAhead = workflow.GetVersion(ctx, changeReconcileAhead, workflow.DefaultVersion, 1) >= 1
	wf.urgentStops = workflow.GetVersion(ctx, changeUrgentStops, workflow.DefaultVersion, 1) >= 1
	wf.moneyInvariant = workflow.GetVersion(ctx, changeMoneyInvariant, workflow.DefaultVersion, 1) >= 1
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

// cancelled handles a cancellation request: an agent whose workflow stops must not keep a
// live card, so it is retired (on a disconnected context, as cancelled contexts cannot run
// activities) and the workflow ends as cancelled.
func (wf *agentCard) cancelled(ctx workflow.Context) (Result, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	wf.retire(dctx, "workflow cancelled", "")
	if _, err := wf.finish(dctx); err != nil {
		return Result{}, err
	}
	return *wf.result, temporal.NewCanceledError("agent retired because its workflow was cancelled")
}

// start is the first run's setup: check the issuer, record the agent, issue the first card.
func (wf *agentCard) start(ctx workflow.Context) error {
	var info IssuerInfo
	if err := wf.mustLocal(ctx, la.IssuerInfo, IssuerInfoInput{Issuer: wf.policy.Issuer}, &info); err != nil {
		return invalidPolicy(FieldErrors{{Field: "policy.issuer", Msg: failureMessage(err)}})
	}
	wf.st.Capabilities = info.Capabilities
	now := workflow.Now(ctx)
	// The agent's budget period is the one the reset schedule is in, not one that starts now:
	// an agent retired and created again within a period gets what is left of it, not more.
	periodStart := now
	if wf.moneyInvariant {
		if p := PrevFire(wf.resetSched, wf.loc, now); !p.IsZero() {
			periodStart = p
		}
	}
	var snap AgentSnapshot
	in := UpsertAgentInput{Policy: wf.policy, Status: StatusActive}
	if wf.moneyInvariant {
		// Cards that could have spent in this period or this month (for the monthly cap).
		l := periodStart.In(wf.loc)
		in.CardsSince = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, wf.loc).UTC()
	}
	if err := wf.mustLocal(ctx, la.UpsertAgent, in, &snap); err != nil {
		return fmt.Errorf("record agent %s: %w", wf.policy.AgentID, err)
	}
	wf.st.Generation = snap.LastGeneration
	wf.st.LastReset = periodStart
	wf.st.NextReset = NextFire(wf.resetSched, wf.loc, now)
	if wf.rotateSched != nil {
		wf.st.NextRotation = NextFire(wf.rotateSched, wf.loc, now)
	}
	wf.st.LastReconcile = now
	wf.st.Budget.StartPeriod(periodStart, wf.loc, wf.policy.DailyLimitUSD.Minor(), wf.nextReset)
	wf.syncSearchAttributes(ctx)
	// Cards an earlier workflow for this agent left open are closed: before the new card is
	// funded (or, in runs from before that change, once it exists).
	for _, c := range snap.OpenCards {
		wf.st.Closing = append(wf.st.Closing, ClosingRef{
			Card:    CardRef{ID: c.ID, Issuer: c.Issuer, Last4: c.Last4, Generation: c.Generation, Status: c.Status},
			CloseAt: now, Reason: "left open by an earlier workflow",
		})
		wf.addReconcileCard(c.ID)
	}
	if wf.moneyInvariant {
		wf.countEarlierCards(ctx, snap)
	}
	_ = wf.issue(ctx, reasonInitial)
	return nil
}

// countEarlierCards reads what the agent's earlier cards (of a retired workflow, say) spent in
// this period and this month, from the issuer (or the ledger where the issuer cannot list), so
// a new workflow does not hand out an allowance that was already used.
func (wf *agentCard) countEarlierCards(ctx workflow.Context, snap AgentSnapshot) {
	if len(snap.RecentCards) == 0 {
		return
	}
	since := wf.st.Budget.PeriodStart
	if wf.st.Budget.MonthStart.Before(since) {
		since = wf.st.Budget.MonthStart
	}
	in := ReconcileInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Timezone: wf.policy.Timezone,
		Since: since, Until: workflow.Now(ctx), IncludeAll: true, LedgerFallback: true, Reason: ReconcileEarlierCards,
	}
	for _, c := range snap.RecentCards {
		in.CardIDs = append(in.CardIDs, c.ID)
	}
	var res ReconcileResult
	if err := wf.issuerCall(ctx, ia.Reconcile, 2*time.Minute, in, &res); err != nil {
		wf.alert(ctx, AlertReconcileFailed, wf.periodKey(), "could not read what the agent's earlier cards spent in this period: "+
			failureMessage(err)+"; its first card is funded with the whole allowance")
		return
	}
	wf.applyListed(ctx, res)
}

// resume is a continued run's setup: refresh what the issuer can do (configuration may have
// changed with a deploy), make sure the search attributes are current, and bring state from
// runs before package spend up to date.
func (wf *agentCard) resume(ctx workflow.Context) {
	var info IssuerInfo
	if err := wf.local(ctx, la.IssuerInfo, IssuerInfoInput{Issuer: wf.policy.Issuer}, &info); err == nil {
		wf.st.Capabilities = info.Capabilities
	}
	b := &wf.st.Budget
	if len(b.Auths) > 0 {
		b.migrateAuths()
	}
	if b.PeriodStart.IsZero() {
		l := wf.st.LastReset.In(wf.loc)
		b.PeriodStart = wf.st.LastReset
		b.MonthStart = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, wf.loc).UTC()
		b.MaxDailyMinor = wf.policy.DailyLimitUSD.Minor()
	}
	for _, c := range wf.allCards() {
		if c.UsageMinor == 0 && c.LegacySpentMinor != 0 {
			c.UsageMinor, c.LegacySpentMinor = c.LegacySpentMinor, 0
		}
	}
	wf.syncSearchAttributes(ctx)
}

// allCards is the current card and every closing one.
func (wf *agentCard) allCards() []*CardRef {
	var cs []*CardRef
	if wf.st.Card != nil {
		cs = append(cs, wf.st.Card)
	}
	for i := range wf.st.Closing {
		cs = append(cs, &wf.st.Closing[i].Card)
	}
	return cs
}

// nextWake is the earliest instant something is due. Every deadline listed here is either
// acted on or moved forward by runDue, so the loop never spins.
func (wf *agentCard) nextWake() time.Time {
	ts := []time.Time{wf.st.NextReset, wf.st.NextRotation}
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

// continueAsNew drains every signal and update before handing the whole state to the next
// run: anything buffered but unread would otherwise be lost with this run.
func (wf *agentCard) continueAsNew(ctx workflow.Context) (Result, error) {
	if err := wf.drain(ctx); err != nil {
		return Result{}, err
	}
	if wf.result != nil {
		return wf.finish(ctx)
	}
	if wf.cancelTimer != nil {
		wf.cancelTimer()
	}
	wf.st.Run++
	wf.logger(ctx).Info("continuing as new", "signals_this_run", wf.signalsThisRun, "estimated_history", wf.estimate,
		"history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength(), "next_run", wf.st.Run)
	return Result{}, workflow.NewContinueAsNewError(ctx, WorkflowType, Input{Policy: wf.policy, State: wf.st})
}

// drain handles every buffered signal and update until none are left, no update handler is
// running and no alert is in flight.
func (wf *agentCard) drain(ctx workflow.Context) error {
	for {
		for {
			var e issuerEvent
			if !wf.eventCh.ReceiveAsync(&e) {
				break
			}
			wf.onSignal(ctx, e)
		}
		var cmd *command
		if wf.cmdCh.ReceiveAsync(&cmd) {
			cmd.execute(ctx, wf)
			continue
		}
		if wf.idle(ctx) {
			return nil
		}
		err := workflow.Await(ctx, func() bool {
			return wf.eventCh.Len() > 0 || wf.cmdCh.Len() > 0 || wf.idle(ctx)
		})
		if err != nil {
			return err
		}
		wf.wrote(eventsPerWake)
	}
}

func (wf *agentCard) idle(ctx workflow.Context) bool {
	return wf.eventCh.Len() == 0 && wf.cmdCh.Len() == 0 && wf.background == 0 && workflow.AllHandlersFinished(ctx)
}

// finish completes a retired agent's workflow once every update handler has answered.
func (wf *agentCard) finish(ctx workflow.Context) (Result, error) {
	for {
		var cmd *command
		if wf.cmdCh.ReceiveAsync(&cmd) {
			cmd.execute(ctx, wf) // rejected: the agent is retired
			continue
		}
		if wf.cmdCh.Len() == 0 && wf.background == 0 && workflow.AllHandlersFinished(ctx) {
			break
		}
		if err := workflow.Await(ctx, func() bool {
			return wf.cmdCh.Len() > 0 || (wf.background == 0 && workflow.AllHandlersFinished(ctx))
		}); err != nil {
			return Result{}, err
		}
	}
	if wf.cancelTimer != nil {
		wf.cancelTimer()
	}
	return *wf.result, nil
}
