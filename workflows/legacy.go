package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// The card order of runs started before changeMoneyInvariant: the new card is issued with its
// allowance first and the old card's limit lowered after, which a purchase racing the
// rotation could exploit. Kept so those runs replay; new runs never take these paths.

func (wf *agentCard) legacyIssue(ctx workflow.Context, reason string) error {
	in, retried := wf.issueInput(reason)
	var out IssuedCard
	if err := wf.issueCard(ctx, in, &out); err != nil {
		wf.deferIssue(ctx, in, fmt.Sprintf("could not issue card generation %d (%s): %s", in.Generation, in.Reason, failureMessage(err)),
			errorType(err) == ErrTypeIssuerInvalid)
		return fmt.Errorf("issue card generation %d: %s", in.Generation, failureMessage(err))
	}
	old := wf.st.Card
	card := wf.adopt(ctx, in, out)
	if retried && wf.st.Capabilities.UpdatableLimits {
		if want := LimitPlan(wf.st.Capabilities, 0, wf.remaining()); !slices.Equal(want, in.Limits) {
			wf.legacySetCardLimit(ctx, card, time.Time{})
		}
	}
	if old != nil {
		wf.legacyReplace(ctx, *old, in.Reason)
	}
	wf.pushCredentials(ctx, *card)
	return nil
}

func (wf *agentCard) legacyReplace(ctx workflow.Context, old CardRef, reason string) {
	if old.Status == string(issuer.CardClosed) {
		return
	}
	if wf.st.Capabilities.UpdatableLimits && old.Status == string(issuer.CardActive) {
		_ = wf.updateLimit(ctx, &old, CapPlan(wf.st.Capabilities), time.Time{}, false)
	}
	wf.retireCard(ctx, old, reason)
}

func (wf *agentCard) legacySetCardLimit(ctx workflow.Context, card *CardRef, resetAt time.Time) {
	err := wf.updateLimit(ctx, card, LimitPlan(wf.st.Capabilities, card.UsageMinor, wf.remaining()), resetAt, false)
	if err == nil || wf.cardGone(ctx, card, err) {
		return
	}
	wf.alert(ctx, AlertLimitFailed, wf.periodKey(),
		fmt.Sprintf("could not set the limit of card ****%s: %s", card.Last4, failureMessage(err)))
}

func (wf *agentCard) legacyApplyBudget(ctx workflow.Context, reissueReason string, resetAt time.Time) {
	card := wf.st.Card
	if wf.st.Pending != nil {
		return
	}
	caps := wf.st.Capabilities
	switch wf.st.Status {
	case StatusActive:
		switch {
		case card == nil:
			if wf.remaining() > 0 {
				_ = wf.issue(ctx, reissueReason)
			}
		case caps.UpdatableLimits:
			wf.legacySetCardLimit(ctx, card, resetAt)
		case wf.remaining() > 0:
			_ = wf.issue(ctx, reissueReason)
		default:
			wf.legacyReplace(ctx, *card, "no budget left")
			wf.st.Card = nil
		}
	case StatusFrozen:
		if card != nil && caps.UpdatableLimits && wf.st.FreezeMode == freezePause {
			wf.legacySetCardLimit(ctx, card, resetAt)
		}
	}
}
