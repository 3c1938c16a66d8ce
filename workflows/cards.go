// Long file: the card protocol that keeps the budget invariant (issue, cap, read, fund, close)
// is one sequence whose steps depend on each other's order; it reads best top to bottom in one
// place.

package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/money"
)

// Card operations: issue, cap, fund, read and close. Together they keep the budget invariant
// (README, "Money safety"): at any moment at most one of the agent's cards can approve a
// purchase (the current one, when it is funded), every other open card is capped, and the
// current card is funded with exactly what is left of the period's allowance on top of what
// the issuer already counts against it. A replaced card is capped and what it spent is read
// from the issuer before its successor gets any money.

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

const (
	// closeRetry is how long a card that could not be closed waits before the next try.
	closeRetry = 10 * time.Minute
	// changeMoneyInvariant is the workflow.GetVersion change id of the capped-before-funded
	// card protocol, spend read from the issuer, per-event overspend alerts and credits that
	// lower the limit. Runs without it keep the earlier order (legacy.go).
	changeMoneyInvariant = "money-invariant"
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

// fundBackoff spaces out retries of a limit the issuer did not take: 30s doubling to 10m.
func fundBackoff(failures int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < failures && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// issue issues the next card generation and makes it current. A failed issue keeps the
// current card in use, alerts, and is retried later with exactly the same input, so the
// idempotency key always comes with the same body.
func (wf *agentCard) issue(ctx workflow.Context, reason string) error {
	if !wf.moneyInvariant {
		return wf.legacyIssue(ctx, reason)
	}
	if !wf.st.Capabilities.UpdatableLimits {
		return wf.issueFixedLimit(ctx, reason)
	}
	old := wf.st.Card
	oldFunded := old != nil && !old.Capped && wf.st.Status == StatusActive
	// Nothing but the new card may approve anything once it is funded: cap the old one (and
	// any replaced card that is not capped yet) and read what they spent.
	if err := wf.stopOthers(ctx, nil); err != nil {
		msg := fmt.Sprintf("could not cap the cards in use before issuing a new one (%s): %s; no new card was issued", reason, failureMessage(err))
		if oldFunded && old.Capped {
			wf.fund(ctx, old, time.Time{})
		}
		wf.deferIssue(ctx, wf.pendingInput(reason), msg, false)
		return fmt.Errorf("issue card: %s", msg)
	}
	in, retried := wf.issueInput(reason)
	var out IssuedCard
	if err := wf.issueCard(ctx, in, &out); err != nil {
		if oldFunded {
			wf.fund(ctx, old, time.Time{}) // the old card stays in use until the new one exists
		}
		wf.deferIssue(ctx, in, fmt.Sprintf("could not issue card generation %d (%s): %s", in.Generation, in.Reason, failureMessage(err)),
			errorType(err) == ErrTypeIssuerInvalid)
		return fmt.Errorf("issue card generation %d: %s", in.Generation, failureMessage(err))
	}
	card := wf.adopt(ctx, in, out)
	card.Capped = in.Limits[0].AmountMinor == 0
	if card.Capped || retried || !slices.Equal(in.Limits, LimitPlan(wf.st.Capabilities, 0, wf.remaining())) {
		wf.fund(ctx, card, time.Time{})
	} else {
		card.LimitMinor = in.Limits[0].AmountMinor
	}
	if old != nil {
		wf.retireCard(ctx, *old, in.Reason)
	}
	wf.pushCredentials(ctx, *card)
	return nil
}

// issueFixedLimit replaces a card on an issuer whose limits cannot change (AI Payment
// Proxy): the old card is closed first, then a new one is issued with what is left.
func (wf *agentCard) issueFixedLimit(ctx workflow.Context, reason string) error {
	if err := wf.stopOthers(ctx, nil); err != nil {
		msg := fmt.Sprintf("could not close the card in use before issuing a new one (%s): %s", reason, failureMessage(err))
		wf.deferIssue(ctx, wf.pendingInput(reason), msg, false)
		return fmt.Errorf("issue card: %s", msg)
	}
	wf.st.Card = nil // closed and read by stopOthers
	in, _ := wf.issueInput(reason)
	if in.Limits[0].AmountMinor <= 0 {
		wf.st.Pending = nil
		return nil // nothing left to spend in this period: the next period issues a card
	}
	var out IssuedCard
	if err := wf.issueCard(ctx, in, &out); err != nil {
		wf.deferIssue(ctx, in, fmt.Sprintf("could not issue card generation %d (%s): %s", in.Generation, in.Reason, failureMessage(err)),
			errorType(err) == ErrTypeIssuerInvalid)
		return fmt.Errorf("issue card generation %d: %s", in.Generation, failureMessage(err))
	}
	card := wf.adopt(ctx, in, out)
	card.LimitMinor = in.Limits[0].AmountMinor
	wf.st.Budget.CommittedMinor += card.LimitMinor
	wf.st.Budget.CommittedMonthMinor += card.LimitMinor
	wf.pushCredentials(ctx, *card)
	return nil
}

// adopt makes a newly issued card current.
func (wf *agentCard) adopt(ctx workflow.Context, in IssueCardInput, out IssuedCard) *CardRef {
	now := workflow.Now(ctx)
	wf.st.Pending = nil
	card := &CardRef{
		ID: out.ID, Issuer: in.Issuer, Last4: out.Last4, Generation: in.Generation, Status: string(issuer.CardActive),
		IssuedAt: now, ExpiresAt: out.ExpiresAt, RotateAt: wf.rotateAt(now, out.ExpiresAt),
	}
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
	return card
}

// deferIssue records a failed issue for a retry with the same input, and alerts.
func (wf *agentCard) deferIssue(ctx workflow.Context, in IssueCardInput, what string, rebuild bool) {
	failures := 1
	if wf.st.Pending != nil {
		failures = wf.st.Pending.Failures + 1
	}
	wf.st.Pending = &PendingIssue{Input: in, RetryAt: workflow.Now(ctx).Add(issueBackoff(failures)), Failures: failures, Rebuild: rebuild}
	msg := what + ";"
	if c := wf.st.Card; c != nil {
		msg += fmt.Sprintf(" card ****%s stays in use;", c.Last4)
	}
	msg += " retrying at " + wf.st.Pending.RetryAt.In(wf.loc).Format(time.RFC3339)
	wf.alert(ctx, AlertRotationFailed, wf.periodKey(), msg)
}

// pendingInput is the input a retry must repeat: the pending one, or a new one for reason.
func (wf *agentCard) pendingInput(reason string) IssueCardInput {
	in, _ := wf.issueInput(reason)
	return in
}

// issueInput is the input of the next issue: the pending one's when a retry must repeat it.
// A replacement card on an issuer whose limits can change is issued capped and funded once it
// exists, so its input never depends on the moment and a retry can always repeat it; only an
// agent's very first card, which nothing else could race, is issued with its allowance.
func (wf *agentCard) issueInput(reason string) (IssueCardInput, bool) {
	if p := wf.st.Pending; p != nil {
		if !p.Rebuild {
			return p.Input, true
		}
		reason = p.Input.Reason
	}
	gen := wf.st.Generation + 1
	caps := wf.st.Capabilities
	limits := LimitPlan(caps, 0, wf.remaining())
	switch {
	case !wf.moneyInvariant:
	case !caps.UpdatableLimits:
		limits = LimitPlan(caps, 0, wf.st.Budget.FixedAllowance(wf.policy.DailyLimitUSD.Minor(), wf.policy.MonthlyLimitMinor()))
	case !(reason == reasonInitial && wf.st.Budget.SpentTodayMinor == 0):
		limits = CapPlan(caps)
	}
	return IssueCardInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Label: wf.cardLabel(gen), Currency: wf.policy.Currency,
		Generation: gen, IdempotencyKey: IdempotencyKey(wf.workflowID, gen),
		Limits: limits, DailyLimitMinor: wf.policy.DailyLimitUSD.Minor(), Reason: reason,
	}, false
}

// retireCard moves a replaced (capped) card to the closing list for the grace period, in
// which authorizations it already approved settle.
func (wf *agentCard) retireCard(ctx workflow.Context, old CardRef, reason string) {
	if old.Status == string(issuer.CardClosed) {
		return
	}
	wf.st.Closing = append(wf.st.Closing, ClosingRef{
		Card: old, CloseAt: workflow.Now(ctx).Add(wf.policy.RotationGrace.D()), Reason: reason,
	})
}

// stopOthers caps every open card except keep (nil: every card, the current one included)
// and reads from the issuer what the newly capped ones spent in the period. It fails if any
// card could not be capped or read: nothing may be funded then.
func (wf *agentCard) stopOthers(ctx workflow.Context, keep *CardRef) error {
	var cards []*CardRef
	if c := wf.st.Card; c != nil && c != keep {
		cards = append(cards, c)
	}
	for i := range wf.st.Closing {
		cards = append(cards, &wf.st.Closing[i].Card)
	}
	var unread []*CardRef
	for _, c := range cards {
		if c.Status == string(issuer.CardClosed) && c.Read {
			continue
		}
		if err := wf.capCard(ctx, c, false); err != nil {
			wf.alert(ctx, AlertLimitFailed, wf.periodKey()+"/cap/"+c.ID, fmt.Sprintf(
				"could not cap card ****%s before funding another card: %s; no card is funded until it is capped or closed",
				c.Last4, failureMessage(err)))
			return fmt.Errorf("cap card ****%s: %s", c.Last4, failureMessage(err))
		}
		if !c.Read {
			unread = append(unread, c)
		}
	}
	return wf.settle(ctx, unread)
}

// capCard makes a card approve nothing more: its lifetime limit drops to 0 (captures of what
// it approved still settle; issuers never limit those), or it is paused, or closed where
// neither is possible. A card the issuer says is closed is capped. urgent sends the call to
// the urgent issuer queue (a freeze).
func (wf *agentCard) capCard(ctx workflow.Context, card *CardRef, urgent bool) error {
	if card.Capped || card.Status == string(issuer.CardClosed) {
		card.Capped = true
		return nil
	}
	caps := wf.st.Capabilities
	in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: cmp.Or(card.Issuer, wf.policy.Issuer), CardID: card.ID, Reason: "capped"}
	var err error
	switch {
	case caps.UpdatableLimits:
		err = wf.updateLimit(ctx, card, CapPlan(caps), time.Time{}, urgent)
	case card.Status == string(issuer.CardPaused):
	case caps.Pause:
		if err = wf.issuerCallOn(ctx, urgent, ia.PauseCard, 30*time.Second, in, nil); err == nil {
			card.Status = string(issuer.CardPaused)
		}
	default:
		if err = wf.closeCard(ctx, *card, "replaced", urgent); err == nil {
			card.Status = string(issuer.CardClosed)
		}
	}
	if err != nil {
		if t := errorType(err); t != ErrTypeIssuerAlreadyClosed && t != ErrTypeIssuerNotFound {
			return err
		}
		card.Status = string(issuer.CardClosed)
	}
	card.Capped, card.LimitMinor = true, 0
	return nil
}

// settle reads from the issuer everything that happened on capped cards since the period
// began and applies what the webhooks have not delivered yet, so the allowance left is known
// before another card gets money.
func (wf *agentCard) settle(ctx workflow.Context, cards []*CardRef) error {
	if len(cards) == 0 {
		return nil
	}
	in := ReconcileInput{
		AgentID: wf.policy.AgentID, Issuer: wf.policy.Issuer, Timezone: wf.policy.Timezone,
		Since: wf.st.Budget.PeriodStart.Add(-reconcileOverlap), Until: workflow.Now(ctx), IncludeAll: true, Reason: ReconcileCapped,
	}
	for _, c := range cards {
		in.CardIDs = append(in.CardIDs, c.ID)
	}
	var res ReconcileResult
	if err := wf.issuerCall(ctx, ia.Reconcile, 2*time.Minute, in, &res); err != nil && errorType(err) != ErrTypeIssuerNotSupported {
		return err
	}
	wf.applyListed(ctx, res)
	for _, c := range cards {
		c.Read = true
	}
	return nil
}

// applyListed applies the events a reconciliation listed (those the ledger had, which the
// webhooks may not have delivered to this workflow yet, and those it missed).
func (wf *agentCard) applyListed(ctx workflow.Context, res ReconcileResult) {
	for _, ev := range res.Missed {
		wf.onEvent(ctx, ev)
	}
	for _, ev := range res.Events {
		wf.onEvent(ctx, ev)
	}
}

// fund gives the card exactly what is left of the period's allowance: a lifetime limit of
// what the issuer counts against it plus the allowance. resetAt names the reset it belongs to
// (zero otherwise). A failure alerts and is retried (FundRetryAt); until then the card keeps
// the limit it had. A limit that only comes down (a credit or overspend made it too generous)
// goes to the urgent issuer queue, like a freeze.
func (wf *agentCard) fund(ctx workflow.Context, card *CardRef, resetAt time.Time) error {
	rem := wf.remaining()
	limits := LimitPlan(wf.st.Capabilities, card.UsageMinor, rem)
	lowering := !card.Capped && card.LimitMinor > 0 && card.UsageMinor+rem < card.LimitMinor
	err := wf.updateLimit(ctx, card, limits, resetAt, lowering)
	if err == nil {
		card.Capped, card.LimitMinor = false, card.UsageMinor+rem
		if card == wf.st.Card {
			wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
		}
		return nil
	}
	if wf.cardGone(ctx, card, err) {
		return err
	}
	if card == wf.st.Card {
		wf.st.FundFailures++
		wf.st.FundRetryAt = workflow.Now(ctx).Add(fundBackoff(wf.st.FundFailures))
	}
	wf.alert(ctx, AlertLimitFailed, wf.periodKey()+"/fund/"+card.ID,
		fmt.Sprintf("could not set the limit of card ****%s to %s: %s; retrying", card.Last4, money.Format(card.UsageMinor+rem), failureMessage(err)))
	return err
}

// overfunded reports whether the current card may approve more than is left: a credit (a
// refund, a reversal of an earlier period's hold, a partial capture) lowered what the issuer
// counts against it, or overspend elsewhere lowered the allowance, since it was funded.
func (wf *agentCard) overfunded() bool {
	c := wf.st.Card
	return wf.moneyInvariant && c != nil && !c.Capped && c.LimitMinor > 0 && wf.st.Status == StatusActive &&
		wf.st.Capabilities.UpdatableLimits && c.UsageMinor+wf.remaining() < c.LimitMinor
}

func (wf *agentCard) updateLimit(ctx workflow.Context, card *CardRef, limits []issuer.SpendLimit, resetAt time.Time, urgent bool) error {
	in := UpdateLimitInput{
		AgentID: wf.policy.AgentID, Issuer: cmp.Or(card.Issuer, wf.policy.Issuer), CardID: card.ID, Limits: limits,
		DailyLimitMinor: wf.policy.DailyLimitUSD.Minor(), ResetAt: resetAt,
	}
	if !resetAt.IsZero() && !urgent && wf.localResets && wf.updateLimitNow(ctx, in) {
		return nil
	}
	return wf.issuerCallOn(ctx, urgent, ia.UpdateLimit, 30*time.Second, in, nil)
}

// cardGone handles the issuer saying the current card is closed or unknown: someone closed it
// outside cardwarden. That is treated like a revocation, not silently replaced.
func (wf *agentCard) cardGone(ctx workflow.Context, card *CardRef, err error) bool {
	if t := errorType(err); t != ErrTypeIssuerAlreadyClosed && t != ErrTypeIssuerNotFound {
		return false
	}
	card.Status = string(issuer.CardClosed)
	card.Capped = true
	if wf.st.Card == nil || wf.st.Card.ID != card.ID {
		return true
	}
	reason := fmt.Sprintf("card ****%s was closed at the issuer outside cardwarden", card.Last4)
	wf.st.Card = nil
	wf.st.FreezeMode = ""
	wf.st.FundRetryAt, wf.st.FundFailures = time.Time{}, 0
	wf.st.Revocations++
	wf.setStatus(ctx, StatusRevoked, reason)
	wf.alert(ctx, AlertCardGone, fmt.Sprintf("gen%d", card.Generation), reason+"; unfreeze or rotate to issue a new card")
	return true
}

func (wf *agentCard) closeCard(ctx workflow.Context, card CardRef, reason string, urgent bool) error {
	in := CardActionInput{AgentID: wf.policy.AgentID, Issuer: cmp.Or(card.Issuer, wf.policy.Issuer), CardID: card.ID, Reason: reason}
	return wf.issuerCallOn(ctx, urgent, ia.CloseCard, 30*time.Second, in, nil)
}

// closeDue closes replaced cards whose grace period is over. A closed card stays listed until
// what it spent has been read (the next funding reads it).
func (wf *agentCard) closeDue(ctx workflow.Context, now time.Time) {
	if len(wf.st.Closing) == 0 {
		return
	}
	var keep []ClosingRef
	for _, c := range wf.st.Closing {
		if c.Card.Status != string(issuer.CardClosed) {
			if now.Before(c.CloseAt) {
				keep = append(keep, c)
				continue
			}
			if err := wf.closeCard(ctx, c.Card, c.Reason, false); err != nil && isRetryable(err) {
				c.CloseAt = workflow.Now(ctx).Add(closeRetry)
				keep = append(keep, c)
				continue
			}
			c.Card.Status, c.Card.Capped = string(issuer.CardClosed), true
		}
		if wf.moneyInvariant && !c.Card.Read {
			keep = append(keep, c)
		}
	}
	wf.st.Closing = keep
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
