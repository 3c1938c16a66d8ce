package workflows

import (
	"cmp"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Retirement: every card is closed and the workflow completes, on retire_at, the retire update
// or a cancellation.

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
