package workflows

import (
	"cmp"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Rotation and expiry: a card is replaced on rotate_cron, at its TTL and on a human's rotate
// (cards.go does the replacing).

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
