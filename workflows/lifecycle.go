package workflows

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/money"
)

// Why a card was issued. The reason travels to the issue activity (and the store) and
// decides which counter the issue adds to.
const (
	reasonInitial           = "initial"
	reasonScheduledRotation = "scheduled-rotation"
	reasonExpiry            = "expiry"
	reasonManualRotation    = "manual-rotation"
	reasonDailyReissue      = "daily-reissue"
	reasonBudgetChange      = "budget-change"
	reasonUnfreeze          = "unfreeze"
)

// Freeze modes.
const (
	freezePause = "pause" // paused at the issuer
	freezeLimit = "limit" // limit lowered to what the card has spent (issuer cannot pause)
)

const (
	// reconcileOverlap re-reads a little before the last reconciliation, so events that
	// occurred just before it but were listed late are not missed; ids deduplicate.
	reconcileOverlap = time.Hour
	// closeRetry is how long a card that could not be closed waits before the next try.
	closeRetry = 10 * time.Minute
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

func (wf *agentCard) remaining() int64 {
	return wf.st.Budget.RemainingToday(wf.policy.DailyLimitUSD.Minor(), wf.policy.MonthlyLimitMinor())
}

func (wf *agentCard) cardLabel(gen int) string {
	name := wf.policy.Label
	if name == "" {
		name = "cardwarden " + wf.policy.AgentID
	}
	return fmt.Sprintf("%s (gen %d)", name, gen)
}

// rotateAt is when a card issued at issued must be replaced: at its TTL, or early enough
// that the grace period ends before the issuer's expiry; never sooner than an hour out.
func (wf *agentCard) rotateAt(issued, expires time.Time) time.Time {
	at := issued.Add(wf.policy.CardTTL.D())
	if !expires.IsZero() {
		if e := expires.Add(-wf.policy.RotationGrace.D()); e.Before(at) {
			at = e
		}
	}
	if earliestOK := issued.Add(time.Hour); at.Before(earliestOK) {
		at = earliestOK
	}
	return at
}

// issueBackoff spaces out retries of a failed issue: 5m, 10m, 20m, 40m, then hourly.
func issueBackoff(failures int) time.Duration {
	d := 5 * time.Minute
	for i := 1; i < failures && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// issue issues the next card generation and makes it current; the card it replaces stays open
// for rotation_grace. A failed issue keeps the current card, alerts, and is retried later
// with exactly the same input, so the idempotency key always comes with the same body.
func (wf *agentCard) issue(ctx workflow.Context, reason string) error {
	in, retried := wf.issueInput(reason)
	var out IssuedCard
	err := wf.issuerCall(ctx, ActivityIssueCard, time.Minute, in, &out)
	now := workflow.Now(ctx)
	if err != nil {
		failures := 1
		if wf.st.Pending != nil {
			failures = wf.st.Pending.Failures + 1
		}
		wf.st.Pending = &PendingIssue{Input: in, RetryAt: now.Add(issueBackoff(failures)), Failures: failures,
			Rebuild: errorType(err) == ErrTypeIssuerInvalid}
		msg := fmt.Sprintf("could not issue card generation %d (%s): %s;", in.Generation, in.Reason, failureMessage(err))
		if c := wf.st.Card; c != nil {
			msg += fmt.Sprintf(" card ****%s stays in use;", c.Last4)
		}
		msg += " retrying at " + wf.st.Pending.RetryAt.In(wf.loc).Format(time.RFC3339)
		wf.alert(ctx, AlertRotationFailed, wf.st.Budget.Day, msg)
		return fmt.Errorf("issue card generation %d: %s", in.Generation, failureMessage(err))
	}
	wf.st.Pending = nil
	card := &CardRef{
		ID: out.ID, Issuer: in.Issuer, Last4: out.Last4, Generation: in.Generation, Status: string(issuer.CardActive),
		IssuedAt: now, ExpiresAt: out.ExpiresAt, RotateAt: wf.rotateAt(now, out.ExpiresAt),
	}
	old := wf.st.Card
	wf.st.Card = card
	wf.st.Generation = in.Generation
	wf.addReconcileCard(card.ID)
	switch in.Reason {
	case reasonInitial:
	case reasonDailyReissue, reasonBudgetChange, reasonUnfreeze:
		wf.st.Reissues++
	default:
		wf.st.Rotations++
	}
	if retried && wf.st.Capabilities.UpdatableLimits {
		// A retried issue carries its first attempt's limits, which may be out of date.
		if want := LimitPlan(wf.st.Capabilities, 0, wf.remaining()); !slices.Equal(want, in.Limits) {
			wf.setCardLimit(ctx, card)
		}
	}
	if old != nil {
		wf.replace(ctx, *old, in.Reason)
	}
	wf.pushCredentials(ctx, *card)
	return nil
}

func (wf *agentCard) issueInput(reason string) (IssueCardInput, bool) {
	if p := wf.st.Pending; p != nil {
		if !p.Rebuild {
			return p.Input, true
		}
		reason = p.Input.Reason
	}
	gen := wf.st.Generation + 1
	return IssueCardInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Label: wf.cardLabel(gen), Currency: wf.policy.Currency,
		Generation: gen, IdempotencyKey: IdempotencyKey(wf.workflowID, gen),
		Limits:          LimitPlan(wf.st.Capabilities, 0, wf.remaining()),
		DailyLimitMinor: wf.policy.DailyLimitUSD.Minor(), Reason: reason,
	}, false
}

// replace keeps a replaced card open for the grace period. Where limits can change, its
// limit drops to what it has spent, so in-flight authorizations settle but the old and the
// new card never both have today's budget.
func (wf *agentCard) replace(ctx workflow.Context, old CardRef, reason string) {
	if old.Status == string(issuer.CardClosed) {
		return
	}
	if wf.st.Capabilities.UpdatableLimits && old.Status == string(issuer.CardActive) {
		_ = wf.updateLimit(ctx, &old, FreezePlan(wf.st.Capabilities, old.SpentMinor))
	}
	wf.st.Closing = append(wf.st.Closing, ClosingRef{
		Card: old, CloseAt: workflow.Now(ctx).Add(wf.policy.RotationGrace.D()), Reason: reason,
	})
}

func (wf *agentCard) updateLimit(ctx workflow.Context, card *CardRef, limits []issuer.SpendLimit) error {
	in := UpdateLimitInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, CardID: card.ID, Limits: limits,
		DailyLimitMinor: wf.policy.DailyLimitUSD.Minor(), ResetAt: wf.resetting,
	}
	return wf.issuerCall(ctx, ActivityUpdateLimit, 30*time.Second, in, nil)
}

// setCardLimit gives the current card exactly today's remaining budget.
func (wf *agentCard) setCardLimit(ctx workflow.Context, card *CardRef) {
	err := wf.updateLimit(ctx, card, LimitPlan(wf.st.Capabilities, card.SpentMinor, wf.remaining()))
	if err == nil {
		return
	}
	if wf.cardGone(ctx, card, err) {
		return
	}
	wf.alert(ctx, AlertLimitFailed, wf.st.Budget.Day,
		fmt.Sprintf("could not set the limit of card ****%s: %s", card.Last4, failureMessage(err)))
}

// cardGone handles the issuer saying the current card is closed or unknown: someone closed it
// outside cardwarden. That is treated like a revocation, not silently replaced.
func (wf *agentCard) cardGone(ctx workflow.Context, card *CardRef, err error) bool {
	if t := errorType(err); t != ErrTypeIssuerAlreadyClosed && t != ErrTypeIssuerNotFound {
		return false
	}
	if wf.st.Card == nil || wf.st.Card.ID != card.ID {
		return true
	}
	reason := fmt.Sprintf("card ****%s was closed at the issuer outside cardwarden", card.Last4)
	wf.st.Card = nil
	wf.st.FreezeMode = ""
	wf.st.Revocations++
	wf.setStatus(ctx, StatusRevoked, reason)
	wf.alert(ctx, AlertCardGone, fmt.Sprintf("gen%d", card.Generation), reason+"; unfreeze or rotate to issue a new card")
	return true
}

func (wf *agentCard) closeCard(ctx workflow.Context, card CardRef, reason string) error {
	in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: reasonOr(card.Issuer, wf.policy.Issuer), CardID: card.ID, Reason: reason}
	return wf.issuerCall(ctx, ActivityCloseCard, 30*time.Second, in, nil)
}

// closeDue closes replaced cards whose grace period is over.
func (wf *agentCard) closeDue(ctx workflow.Context, now time.Time) {
	if len(wf.st.Closing) == 0 {
		return
	}
	var keep []ClosingRef
	for _, c := range wf.st.Closing {
		if now.Before(c.CloseAt) {
			keep = append(keep, c)
			continue
		}
		if err := wf.closeCard(ctx, c.Card, c.Reason); err != nil && isRetryable(err) {
			c.CloseAt = workflow.Now(ctx).Add(closeRetry)
			keep = append(keep, c)
		}
	}
	wf.st.Closing = keep
}

// reset starts a new budget day and gives the card today's budget (by limit update, or by a
// fresh card where limits cannot change). The ending day was reconciled in the lead before
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
	wf.st.Budget.StartDay(LocalDay(fireAt, wf.loc), LocalMonth(fireAt, wf.loc))
	wf.st.AlertedThresholds = nil
	wf.st.OverspendAlerted = false
	wf.st.Resets++
	wf.st.LastReset = fireAt
	wf.st.NextReset = NextFire(wf.resetSched, wf.loc, fireAt)
	wf.resetting = fireAt
	wf.applyBudget(ctx, reasonDailyReissue)
	wf.resetting = time.Time{}
}

// applyBudget puts the current budget on the card after a reset or a budget change.
func (wf *agentCard) applyBudget(ctx workflow.Context, reissueReason string) {
	card := wf.st.Card
	if wf.st.Pending != nil {
		return
	}
	caps := wf.st.Capabilities
	switch wf.st.Status {
	case StatusActive:
		switch {
		case card == nil:
			// Put away for lack of budget (below); a new day or budget brings a card back.
			if wf.remaining() > 0 {
				_ = wf.issue(ctx, reissueReason)
			}
		case caps.UpdatableLimits:
			wf.setCardLimit(ctx, card)
		case wf.remaining() > 0:
			_ = wf.issue(ctx, reissueReason)
		default:
			// Nothing may be spent, and this card's limit cannot be lowered: it still holds
			// what was left of its own day. Close it (after the grace period) until there
			// is budget again, rather than issue a card with nothing on it.
			wf.replace(ctx, *card, "no budget left")
			wf.st.Card = nil
		}
	case StatusFrozen:
		// A paused card gets the right limit for when it is resumed; a card frozen by its
		// limit keeps it until a human unfreezes it.
		if card != nil && caps.UpdatableLimits && wf.st.FreezeMode == freezePause {
			wf.setCardLimit(ctx, card)
		}
	}
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
// the webhooks missed is applied here as if it had been signalled.
func (wf *agentCard) reconcile(ctx workflow.Context, until time.Time) {
	if len(wf.st.ReconcileCards) == 0 {
		wf.st.LastReconcile = until
		wf.resetReconcileCards()
		return
	}
	in := ReconcileInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Timezone: wf.policy.Timezone,
		CardIDs: slices.Clone(wf.st.ReconcileCards), Since: wf.st.LastReconcile.Add(-reconcileOverlap), Until: until,
	}
	var res ReconcileResult
	if err := wf.issuerCall(ctx, ActivityReconcile, 2*time.Minute, in, &res); err != nil {
		if errorType(err) == ErrTypeIssuerNotSupported {
			wf.st.LastReconcile = until
			wf.resetReconcileCards()
			return
		}
		wf.alert(ctx, AlertReconcileFailed, wf.st.Budget.Day, "reconciliation with the issuer failed: "+failureMessage(err))
		return
	}
	for _, ev := range res.Missed {
		wf.onEvent(ctx, ev)
	}
	if len(res.Missed) > 0 || len(res.Mismatches) > 0 {
		var missedMinor int64
		for _, ev := range res.Missed {
			missedMinor += ev.AmountMinor
		}
		wf.alert(ctx, AlertReconcile, wf.st.Budget.Day, fmt.Sprintf(
			"reconciliation of %s: %d events the webhooks missed (%s USD), %d events whose amounts differ from the ledger",
			wf.st.Budget.Day, len(res.Missed), money.Format(missedMinor), len(res.Mismatches)))
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
	if err := wf.closeCard(ctx, *card, reasonExpiry); err != nil && isRetryable(err) {
		card.RotateAt = workflow.Now(ctx).Add(closeRetry)
		return
	}
	wf.st.Card = nil
}

// freeze stops the card: paused at the issuer, or its limit lowered to what it has spent
// where it cannot be paused, or closed where neither is possible. burstStart is set for an
// automatic freeze: the time of the burst's first decline.
func (wf *agentCard) freeze(ctx workflow.Context, reason, actor string, burstStart time.Time) error {
	defer wf.onUrgentQueue()()
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
		err = wf.issuerCall(ctx, ActivityPauseCard, 30*time.Second, in, nil)
	case caps.UpdatableLimits:
		mode = freezeLimit
		err = wf.updateLimit(ctx, card, FreezePlan(caps, card.SpentMinor))
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
	}
	wf.st.FreezeMode = mode
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

// revoke closes every card of the agent now, and waits for a human to unfreeze or rotate.
func (wf *agentCard) revoke(ctx workflow.Context, reason, actor string) error {
	defer wf.onUrgentQueue()()
	cards := []CardRef{}
	if wf.st.Card != nil {
		cards = append(cards, *wf.st.Card)
	}
	for _, c := range wf.st.Closing {
		cards = append(cards, c.Card)
	}
	gen := wf.st.Generation
	var failed []ClosingRef
	for _, c := range cards {
		if err := wf.closeCard(ctx, c, "revoked: "+reason); err != nil && isRetryable(err) {
			failed = append(failed, ClosingRef{Card: c, CloseAt: workflow.Now(ctx).Add(closeRetry), Reason: "revoked"})
		}
	}
	last4 := ""
	if wf.st.Card != nil {
		last4 = wf.st.Card.Last4
	}
	wf.st.Card = nil
	wf.st.Closing = failed
	wf.st.FreezeMode = ""
	wf.st.Revocations++
	wf.st.Detector.Reset()
	wf.setStatus(ctx, StatusRevoked, reason)
	wf.audit(ctx, reasonOr(actor, "workflow"), "auto-revoke", reason)
	wf.alert(ctx, AlertRevoked, fmt.Sprintf("gen%d", gen),
		fmt.Sprintf("card ****%s of agent %s revoked (closed): %s; unfreeze or rotate to issue a new card", last4, wf.policy.AgentID, reason))
	return nil
}

// unfreeze makes the agent active again: the paused card is resumed and given today's budget
// where the issuer allows; otherwise (revoked, no card, fixed-limit issuer) a new card is issued.
func (wf *agentCard) unfreeze(ctx workflow.Context, req ReasonRequest) error {
	reason := reasonOr(req.Reason, "unfrozen by "+actorOr(req.Actor))
	card := wf.st.Card
	caps := wf.st.Capabilities
	reissue := wf.st.Status == StatusRevoked || card == nil || !caps.UpdatableLimits
	if !reissue && wf.st.FreezeMode == freezePause {
		in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, CardID: card.ID, Reason: reason}
		if err := wf.issuerCall(ctx, ActivityResumeCard, 30*time.Second, in, nil); err != nil {
			if t := errorType(err); t != ErrTypeIssuerAlreadyClosed && t != ErrTypeIssuerNotFound {
				return fmt.Errorf("resume card ****%s: %s", card.Last4, failureMessage(err))
			}
			card.Status = string(issuer.CardClosed)
			reissue = true
		} else {
			card.Status = string(issuer.CardActive)
		}
	}
	if reissue {
		if err := wf.issue(ctx, reasonUnfreeze); err != nil {
			return err
		}
	} else if err := wf.updateLimit(ctx, card, LimitPlan(caps, card.SpentMinor, wf.remaining())); err != nil {
		return fmt.Errorf("restore the limit of card ****%s: %s", card.Last4, failureMessage(err))
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
	reason := reasonOr(req.Reason, "rotated by "+actorOr(req.Actor))
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

// setBudget changes the limits and applies them to the card at once.
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
	wf.policy = np
	_ = wf.local(ctx, la.UpsertAgent, UpsertAgentInput{Policy: np, Status: wf.st.Status}, nil)
	wf.applyBudget(ctx, reasonBudgetChange)
	monthly := "none"
	if np.MonthlyLimitUSD != nil {
		monthly = np.MonthlyLimitUSD.String()
	}
	wf.audit(ctx, actorOr(req.Actor), "set-budget",
		fmt.Sprintf("daily %s, monthly %s: %s", np.DailyLimitUSD, monthly, req.Reason))
	wf.checkThresholds(ctx)
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
			err := wf.closeCard(ctx, c, "retired: "+reason)
			if err == nil || !isRetryable(err) {
				break
			}
			wf.est += eventsPerTimer + eventsPerWake
			if workflow.Sleep(ctx, closeRetry) != nil {
				break
			}
		}
	}
	wf.st.Card = nil
	wf.st.Closing = nil
	wf.st.Pending = nil
	wf.setStatus(ctx, StatusRetired, reason)
	wf.audit(ctx, reasonOr(actor, "workflow"), "retire", reason)
	wf.result = &Result{
		AgentID: wf.policy.AgentID, Status: StatusRetired, Generation: wf.st.Generation, Rotations: wf.st.Rotations,
		Resets: wf.st.Resets, SignalsTotal: wf.st.SignalsTotal, RetiredAt: workflow.Now(ctx), Reason: reason,
	}
}

// cardByID finds the current or a closing card.
func (wf *agentCard) cardByID(id string) *CardRef {
	if wf.st.Card != nil && wf.st.Card.ID == id {
		return wf.st.Card
	}
	for i := range wf.st.Closing {
		if wf.st.Closing[i].Card.ID == id {
			return &wf.st.Closing[i].Card
		}
	}
	return nil
}
