package workflows

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/money"
)

// Freeze modes.
const (
	freezePause = "pause" // paused at the issuer
	freezeLimit = "limit" // capped: limit set to 0 (issuer cannot pause)
)

const (
	// reconcileOverlap re-reads a little before the last reconciliation, so events that
	// occurred just before it but were listed late are not missed; ids deduplicate.
	reconcileOverlap = time.Hour
	// reconcileLead is the window before each reset in which the ending day is reconciled.
	// Each agent takes its own point in it (by agent id), so a fleet whose resets fall on one
	// instant does not also list every card at that instant: the limit updates alone then
	// share the issuer's rate limit at the reset.
	reconcileLead = 15 * time.Minute
	// changeReconcileAhead is the workflow.GetVersion change id of reconciling before the
	// reset instead of at it.
	changeReconcileAhead = "reconcile-ahead-of-reset"
	// changeUrgentStops is the change id of stopping cards on IssuerUrgentTaskQueue.
	changeUrgentStops = "stop-cards-on-urgent-queue"
)

// nextReset is the first reset instant after t: what ends the budget period t falls in.
func (wf *agentCard) nextReset(t time.Time) time.Time { return NextFire(wf.resetSched, wf.loc, t) }

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

// plannedReconcile is when the ending day's reconciliation runs, if it is still to run: at a
// point fixed by the agent id within the lead before the next reset (at most a quarter of the
// reset period, for frequent resets). A workflow started inside that window skips it; the next
// reconciliation reads from the last one (or the start), so nothing goes unread.
func (wf *agentCard) plannedReconcile() (time.Time, bool) {
	if !wf.reconcileAhead || wf.st.ReconciledFor.Equal(wf.st.NextReset) {
		return time.Time{}, false
	}
	lead := min(reconcileLead, NextFire(wf.resetSched, wf.loc, wf.st.NextReset).Sub(wf.st.NextReset)/4)
	at := wf.st.NextReset.Add(-lead + spread(wf.policy.AgentID, lead))
	if !at.After(wf.st.LastReconcile) {
		return time.Time{}, false
	}
	return at, true
}

// spread is a fixed point in [0, window) for key, in whole milliseconds, so agents spread
// evenly over the window and every replay picks the same point.
func spread(key string, window time.Duration) time.Duration {
	ms := int64(window / time.Millisecond)
	if ms <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(int64(h.Sum64()%uint64(ms))) * time.Millisecond
}

// reconcile compares the issuer's events since the last reconciliation with the ledger. What
// the webhooks missed is applied here as if it had been signalled, and so (in runs with
// changeMoneyInvariant) is what the ledger had but this workflow was not signalled yet; a card
// whose usage the issuer and the ledger count differently alerts.
func (wf *agentCard) reconcile(ctx workflow.Context, until time.Time) {
	if len(wf.st.ReconcileCards) == 0 {
		wf.st.LastReconcile = until
		wf.resetReconcileCards()
		return
	}
	in := ReconcileInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Timezone: wf.policy.Timezone,
		CardIDs: slices.Clone(wf.st.ReconcileCards), Since: wf.st.LastReconcile.Add(-reconcileOverlap), Until: until,
		IncludeAll: wf.moneyInvariant, Reason: ReconcileAtReset,
	}
	if wf.reconcileAhead {
		in.Reason = ReconcileBeforeReset
	}
	var res ReconcileResult
	if err := wf.issuerCall(ctx, ia.Reconcile, 2*time.Minute, in, &res); err != nil {
		if errorType(err) == ErrTypeIssuerNotSupported {
			wf.st.LastReconcile = until
			wf.resetReconcileCards()
			return
		}
		wf.alert(ctx, AlertReconcileFailed, wf.periodKey(), "reconciliation with the issuer failed: "+failureMessage(err))
		return
	}
	wf.applyListed(ctx, res)
	var differ []string
	for _, t := range res.Totals {
		if t.IssuerUsageMinor != t.LedgerUsageMinor {
			differ = append(differ, fmt.Sprintf("card %s: the issuer counts %s, the ledger %s", t.CardID,
				money.Format(t.IssuerUsageMinor), money.Format(t.LedgerUsageMinor)))
		}
	}
	if len(res.Missed) > 0 || len(res.Mismatches) > 0 || len(differ) > 0 {
		var missedMinor int64
		for _, ev := range res.Missed {
			missedMinor += ev.AmountMinor
		}
		msg := fmt.Sprintf("reconciliation of %s: %d events the webhooks missed (%s USD), %d events whose amounts differ from the ledger",
			wf.st.Budget.Day, len(res.Missed), money.Format(missedMinor), len(res.Mismatches))
		for _, d := range differ {
			msg += "; " + d
		}
		wf.alert(ctx, AlertReconcile, wf.periodKey(), msg)
	}
	wf.st.LastReconcile = until
	wf.resetReconcileCards()
}

// addReconcileCard remembers a card to reconcile at the next reset.
func (wf *agentCard) addReconcileCard(id string) {
	if !slices.Contains(wf.st.ReconcileCards, id) {
		wf.st.ReconcileCards = append(wf.st.ReconcileCards, id)
	}
}

// resetReconcileCards starts the next period with the cards still open.
func (wf *agentCard) resetReconcileCards() {
	wf.st.ReconcileCards = nil
	if wf.st.Card != nil {
		wf.addReconcileCard(wf.st.Card.ID)
	}
	for _, c := range wf.st.Closing {
		wf.addReconcileCard(c.Card.ID)
	}
}

// scheduledRotation replaces an active card at rotate_cron. A frozen or revoked card is left
// alone: what happens to it is a human's decision.
func (wf *agentCard) scheduledRotation(ctx workflow.Context) {
	if wf.st.Status != StatusActive || wf.st.Card == nil || wf.st.Pending != nil {
		wf.logger(ctx).Info("scheduled rotation skipped", "status", wf.st.Status, "issue_pending", wf.st.Pending != nil)
		return
	}
	_ = wf.issue(ctx, reasonScheduledRotation)
}

// expire replaces a card that reached its TTL (or the issuer's expiry). A frozen card is
// closed instead; unfreezing issues a new one.
func (wf *agentCard) expire(ctx workflow.Context) {
	card := wf.st.Card
	if wf.st.Status == StatusActive {
		_ = wf.issue(ctx, reasonExpiry)
		return
	}
	if err := wf.closeCard(ctx, *card, reasonExpiry, false); err != nil && isRetryable(err) {
		card.RotateAt = workflow.Now(ctx).Add(closeRetry)
		return
	}
	card.Status, card.Capped = string(issuer.CardClosed), true
	if wf.moneyInvariant && !card.Read {
		wf.st.Closing = append(wf.st.Closing, ClosingRef{Card: *card, CloseAt: workflow.Now(ctx), Reason: reasonExpiry})
	}
	wf.st.Card = nil
}

// freeze stops the card: paused at the issuer, or capped (limit 0) where it cannot be paused,
// or closed where neither is possible. Both calls go to the urgent issuer queue. burstStart
// is set for an automatic freeze: the time of the burst's first decline.
func (wf *agentCard) freeze(ctx workflow.Context, reason, actor string, burstStart time.Time) error {
	automatic := !burstStart.IsZero()
	card := wf.st.Card
	if card == nil {
		return invalidRequestf("there is no card to freeze")
	}
	caps := wf.st.Capabilities
	in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, CardID: card.ID, Reason: reason, BurstStartedAt: burstStart}
	var err error
	mode := freezePause
	switch {
	case caps.Pause:
		err = wf.issuerCallOn(ctx, true, ia.PauseCard, 30*time.Second, in, nil)
	case caps.UpdatableLimits:
		mode = freezeLimit
		err = wf.updateLimit(ctx, card, CapPlan(caps), time.Time{}, true)
	default:
		return wf.revoke(ctx, reason+" (the issuer can neither pause nor limit cards, so it was closed)", actor)
	}
	if err != nil {
		if wf.cardGone(ctx, card, err) {
			return invalidRequestf("card ****%s is closed at the issuer", card.Last4)
		}
		if automatic {
			wf.alert(ctx, AlertFreezeFailed, fmt.Sprintf("gen%d-%d", card.Generation, card.Freezes),
				fmt.Sprintf("could not freeze card ****%s after %s: %s", card.Last4, reason, failureMessage(err)))
		}
		return fmt.Errorf("freeze card ****%s: %s", card.Last4, failureMessage(err))
	}
	if mode == freezePause {
		card.Status = string(issuer.CardPaused)
	} else {
		card.Capped, card.LimitMinor = true, 0
	}
	wf.st.FreezeMode = mode
	wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
	wf.st.Freezes++
	wf.st.Detector.Reset()
	wf.setStatus(ctx, StatusFrozen, reason)
	if automatic {
		wf.audit(ctx, "workflow", "auto-freeze", reason)
		wf.alert(ctx, AlertFrozen, fmt.Sprintf("gen%d-freeze%d", card.Generation, card.Freezes),
			fmt.Sprintf("card ****%s of agent %s frozen: %s", card.Last4, wf.policy.AgentID, reason))
	} else {
		wf.audit(ctx, actorOr(actor), "freeze", reason)
	}
	return nil
}

// revoke closes every card of the agent now (on the urgent issuer queue), and waits for a
// human to unfreeze or rotate. A card that could not be closed is retried; what the closed
// cards spent is read before any new card is funded.
func (wf *agentCard) revoke(ctx workflow.Context, reason, actor string) error {
	cards := []CardRef{}
	if wf.st.Card != nil {
		cards = append(cards, *wf.st.Card)
	}
	for _, c := range wf.st.Closing {
		cards = append(cards, c.Card)
	}
	gen := wf.st.Generation
	var left []ClosingRef
	for _, c := range cards {
		if c.Status != string(issuer.CardClosed) {
			if err := wf.closeCard(ctx, c, "revoked: "+reason, true); err != nil && isRetryable(err) {
				left = append(left, ClosingRef{Card: c, CloseAt: workflow.Now(ctx).Add(closeRetry), Reason: "revoked"})
				continue
			}
			c.Status, c.Capped = string(issuer.CardClosed), true
		}
		if wf.moneyInvariant && !c.Read {
			left = append(left, ClosingRef{Card: c, CloseAt: workflow.Now(ctx), Reason: "revoked"})
		}
	}
	last4 := ""
	if wf.st.Card != nil {
		last4 = wf.st.Card.Last4
	}
	wf.st.Card = nil
	wf.st.Closing = left
	wf.st.FreezeMode = ""
	wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
	wf.st.Revocations++
	wf.st.Detector.Reset()
	wf.setStatus(ctx, StatusRevoked, reason)
	wf.audit(ctx, cmp.Or(actor, "workflow"), "auto-revoke", reason)
	wf.alert(ctx, AlertRevoked, fmt.Sprintf("gen%d", gen),
		fmt.Sprintf("card ****%s of agent %s revoked (closed): %s; unfreeze or rotate to issue a new card", last4, wf.policy.AgentID, reason))
	return nil
}

// unfreeze makes the agent active again: the paused card is resumed and given what is left of
// the period where the issuer allows; otherwise (revoked, no card, fixed-limit issuer) a new
// card is issued.
func (wf *agentCard) unfreeze(ctx workflow.Context, req ReasonRequest) error {
	reason := cmp.Or(req.Reason, "unfrozen by "+actorOr(req.Actor))
	card := wf.st.Card
	caps := wf.st.Capabilities
	reissue := wf.st.Status == StatusRevoked || card == nil || !caps.UpdatableLimits
	if !reissue && wf.st.FreezeMode == freezePause {
		in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, CardID: card.ID, Reason: reason}
		if err := wf.issuerCall(ctx, ia.ResumeCard, 30*time.Second, in, nil); err != nil {
			if t := errorType(err); t != ErrTypeIssuerAlreadyClosed && t != ErrTypeIssuerNotFound {
				return fmt.Errorf("resume card ****%s: %s", card.Last4, failureMessage(err))
			}
			card.Status = string(issuer.CardClosed)
			reissue = true
		} else {
			card.Status = string(issuer.CardActive)
		}
	}
	switch {
	case reissue:
		if err := wf.issue(ctx, reasonUnfreeze); err != nil {
			return err
		}
	case wf.moneyInvariant:
		err := wf.stopOthers(ctx, card)
		if err == nil {
			err = wf.fund(ctx, card, time.Time{})
		}
		if err != nil {
			wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0 // still frozen: nothing is owed
			return fmt.Errorf("restore the limit of card ****%s: %s", card.Last4, failureMessage(err))
		}
	default:
		if err := wf.updateLimit(ctx, card, LimitPlan(caps, card.UsageMinor, wf.remaining()), time.Time{}, false); err != nil {
			return fmt.Errorf("restore the limit of card ****%s: %s", card.Last4, failureMessage(err))
		}
	}
	wf.st.FreezeMode = ""
	wf.st.Detector.Reset()
	wf.setStatus(ctx, StatusActive, reason)
	wf.audit(ctx, actorOr(req.Actor), "unfreeze", reason)
	return nil
}

// manualRotate issues a new card now; from frozen or revoked it is also a human's approval
// to make the agent active again.
func (wf *agentCard) manualRotate(ctx workflow.Context, req ReasonRequest) error {
	reason := cmp.Or(req.Reason, "rotated by "+actorOr(req.Actor))
	if err := wf.issue(ctx, reasonManualRotation); err != nil {
		return err
	}
	if wf.st.Status != StatusActive {
		wf.st.FreezeMode = ""
		wf.st.Detector.Reset()
		wf.setStatus(ctx, StatusActive, reason)
	}
	wf.audit(ctx, actorOr(req.Actor), "rotate", reason)
	return nil
}

// setBudget changes the limits and applies them to the card at once. Either the issuer takes
// the new limit, or nothing changes and the update fails saying why: a budget change never
// reports a success the issuer did not see.
func (wf *agentCard) setBudget(ctx workflow.Context, req BudgetRequest) error {
	p := wf.policy
	if req.DailyLimitUSD != nil {
		p.DailyLimitUSD = *req.DailyLimitUSD
	}
	if req.MonthlyLimitUSD != nil {
		m := *req.MonthlyLimitUSD
		p.MonthlyLimitUSD = &m
	}
	if req.ClearMonthlyLimit {
		p.MonthlyLimitUSD = nil
	}
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

// retire closes every card and ends the workflow. Closing is retried until it works: a
// retired agent must not keep a live card.
func (wf *agentCard) retire(ctx workflow.Context, reason, actor string) {
	wf.retiring = true
	cards := []CardRef{}
	if wf.st.Card != nil {
		cards = append(cards, *wf.st.Card)
	}
	for _, c := range wf.st.Closing {
		cards = append(cards, c.Card)
	}
	for _, c := range cards {
		for {
			if c.Status == string(issuer.CardClosed) {
				break
			}
			err := wf.closeCard(ctx, c, "retired: "+reason, false)
			if err == nil || !isRetryable(err) {
				break
			}
			if wf.sleep(ctx, closeRetry) != nil {
				break
			}
		}
	}
	wf.st.Card = nil
	wf.st.Closing = nil
	wf.st.Pending = nil
	wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
	wf.setStatus(ctx, StatusRetired, reason)
	wf.audit(ctx, cmp.Or(actor, "workflow"), "retire", reason)
	wf.result = &Result{
		AgentID: wf.policy.AgentID, Status: StatusRetired, Generation: wf.st.Generation, Rotations: wf.st.Rotations,
		Resets: wf.st.Resets, SignalsTotal: wf.st.SignalsTotal, RetiredAt: workflow.Now(ctx), Reason: reason,
	}
}
