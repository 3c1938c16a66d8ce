package workflows

import (
	"cmp"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Stopping cards: a freeze (a decline burst's or a human's), a revocation, and the unfreeze
// that makes the agent active again.

// Freeze modes.
const (
	freezePause = "pause" // paused at the issuer
	freezeLimit = "limit" // capped: limit set to 0 (issuer cannot pause)
)

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
