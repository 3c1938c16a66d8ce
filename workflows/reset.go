package workflows

import (
	"cmp"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Budget periods: the reset that starts each one and puts its allowance on the card, and a
// budget change, which applies at the issuer or changes nothing.

// nextReset is the first reset instant after t: what ends the budget period t falls in.
func (wf *agentCard) nextReset(t time.Time) time.Time { return NextFire(wf.resetSched, wf.loc, t) }

// A fleet's agents mostly share a reset instant (midnight in one zone), and if every workflow
// woke at it, thousands of workflow tasks would queue at once and a runaway agent's decline
// burst would wait seconds behind them for its freeze. The timer that applies a reset therefore
// wakes at a point fixed by the agent id within a short window after the instant. Waking late
// gives nothing away: until the reset applies, the card keeps the ending period's funding, and
// what is spent after the instant counts in the new period (by the events' own time), which is
// funded with what is left of it; any earlier wake (a purchase's event, an update) applies the
// reset first.
//
// The default window suits a fleet whose resets the issuer's rate limit absorbs in about ten
// seconds. A larger fleet sharing one instant sets reset_spread to N / (0.9 × the issuer's
// rate), the time its limit updates take anyway: the wakes then come no faster than the calls
// they lead to, and no backlog forms in front of a burst's freeze (cardwarden bench --scenario
// reset, docs/benchmarks.md).
const (
	// defaultResetSpread is the window when the policy sets none; any window is at most a
	// twentieth of the period, for frequent resets.
	defaultResetSpread = 10 * time.Second
	// changeResetSpread is the workflow.GetVersion change id of the spread.
	changeResetSpread = "reset-spread"
)

// resetWake is when the timer wakes the workflow to apply the next reset.
func (wf *agentCard) resetWake() time.Time {
	if !wf.spreadResets {
		return wf.st.NextReset
	}
	period := NextFire(wf.resetSched, wf.loc, wf.st.NextReset).Sub(wf.st.NextReset)
	window := cmp.Or(wf.policy.ResetSpread.D(), defaultResetSpread)
	return wf.st.NextReset.Add(spread(wf.policy.AgentID+"/reset", min(window, period/20)))
}

// periodKey names the current budget period (its start, local time) in alert keys, so an
// alert fires once per period however often the reset cron fires in a day.
func (wf *agentCard) periodKey() string {
	if wf.st.Budget.PeriodStart.IsZero() {
		return wf.st.Budget.Day
	}
	return wf.st.Budget.PeriodStart.In(wf.loc).Format("2006-01-02T15:04:05")
}

// reset starts a new budget period and gives the card its allowance (by limit update, or by a
// fresh card where limits cannot change). The ending period was reconciled in the lead before
// the reset (runDue), or, in runs from before that change, is reconciled here.
func (wf *agentCard) reset(ctx workflow.Context, now time.Time) {
	fireAt, skipped := Catchup(wf.resetSched, wf.loc, wf.st.NextReset, now)
	if skipped > 0 {
		wf.logger(ctx).Warn("resets collapsed after downtime", "skipped", skipped)
		wf.st.Skipped += skipped
	}
	if !wf.reconcileAhead {
		wf.reconcile(ctx, fireAt)
	}
	wf.st.Budget.StartPeriod(fireAt, wf.loc, wf.policy.DailyLimitUSD.Minor(), wf.nextReset)
	wf.st.AlertedThresholds = nil
	wf.st.OverspendAlerted = false
	wf.st.Resets++
	wf.st.LastReset = fireAt
	wf.st.NextReset = NextFire(wf.resetSched, wf.loc, fireAt)
	if wf.moneyInvariant {
		_ = wf.applyBudget(ctx, reasonDailyReissue, fireAt)
	} else {
		wf.legacyApplyBudget(ctx, reasonDailyReissue, fireAt)
	}
}

// applyBudget puts the period's allowance on the card after a reset or a budget change, and
// says whether the issuer took it. resetAt names the reset (zero for a budget change).
func (wf *agentCard) applyBudget(ctx workflow.Context, reissueReason string, resetAt time.Time) error {
	card := wf.st.Card
	caps := wf.st.Capabilities
	switch wf.st.Status {
	case StatusActive:
		switch {
		case card == nil && wf.st.Pending != nil:
			return nil // the pending issue funds its card with what is left then
		case card == nil:
			// Put away for lack of budget; a new period or budget brings a card back.
			if wf.remaining() > 0 {
				return wf.issue(ctx, reissueReason)
			}
		case caps.UpdatableLimits:
			if err := wf.stopOthers(ctx, card); err != nil {
				return err
			}
			return wf.fund(ctx, card, resetAt)
		default:
			// The card's limit cannot change: a fresh card carries the new allowance, or
			// none is issued when nothing is left.
			return wf.issue(ctx, reissueReason)
		}
	case StatusFrozen:
		// A paused card gets the right limit for when it is resumed; a capped card keeps its
		// zero limit until a human unfreezes it.
		if card != nil && caps.UpdatableLimits && wf.st.FreezeMode == freezePause {
			if err := wf.stopOthers(ctx, card); err != nil {
				return err
			}
			return wf.fund(ctx, card, resetAt)
		}
	}
	return nil
}

// setBudget changes the limits and applies them to the card at once. Either the issuer takes
// the new limit, or nothing changes and the update fails saying why: a budget change never
// reports a success the issuer did not see.
func (wf *agentCard) setBudget(ctx workflow.Context, req BudgetRequest) error {
	p := wf.policy
	p.DailyLimitUSD, p.MonthlyLimitUSD = req.Apply(p.DailyLimitUSD, p.MonthlyLimitUSD)
	np, err := p.Normalize()
	if err != nil {
		return invalidRequest(err)
	}
	if wf.moneyInvariant {
		if err := wf.applyNewBudget(ctx, np); err != nil {
			return err
		}
	} else {
		wf.policy = np
		wf.legacyApplyBudget(ctx, reasonBudgetChange, time.Time{})
	}
	_ = wf.local(ctx, la.UpsertAgent, UpsertAgentInput{Policy: np, Status: wf.st.Status}, nil)
	monthly := "none"
	if np.MonthlyLimitUSD != nil {
		monthly = np.MonthlyLimitUSD.String()
	}
	wf.audit(ctx, actorOr(req.Actor), "set-budget",
		fmt.Sprintf("daily %s, monthly %s: %s", np.DailyLimitUSD, monthly, req.Reason))
	wf.checkThresholds(ctx)
	return nil
}

// applyNewBudget makes np the policy if the issuer takes its limit, and otherwise leaves the
// policy as it was and says why.
func (wf *agentCard) applyNewBudget(ctx workflow.Context, np Policy) error {
	if wf.st.Card == nil && wf.st.Pending != nil && wf.st.Status == StatusActive {
		// The card a pending issue will create carries the old allowance: issue it now, so
		// the new limit can be put on it, or refuse.
		if err := wf.issue(ctx, wf.st.Pending.Input.Reason); err != nil {
			return notApplied("the agent's card is still being issued (%s); the budget was not changed, try again once it exists", err)
		}
	}
	old := wf.policy
	wf.policy = np
	wf.st.Budget.MaxDailyMinor = max(wf.st.Budget.MaxDailyMinor, np.DailyLimitUSD.Minor())
	if err := wf.applyBudget(ctx, reasonBudgetChange, time.Time{}); err != nil {
		wf.policy = old
		wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
		if c := wf.st.Card; c != nil && !c.Capped && c.LimitMinor > 0 && wf.st.Status == StatusActive && wf.st.Capabilities.UpdatableLimits {
			// The card kept the limit it had; if a cap on the way left it without one, the
			// old budget's limit is owed again.
			if c.LimitMinor != c.UsageMinor+wf.remaining() {
				wf.st.FundRetryAt = workflow.Now(ctx)
			}
		}
		return notApplied("the issuer did not take the new limit, so the budget was not changed: %s", err)
	}
	return nil
}
