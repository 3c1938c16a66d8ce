package workflows

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/money"
)

// Reconciliation: before each reset the issuer's records of the cards used in the period are
// compared with the ledger, and what the webhooks missed is applied.

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
)

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
