package workflows

import "go.temporal.io/sdk/workflow"

// changeSince2026_12 is the workflow.GetVersion change id that stands for every change before
// it. In a run that records it, each of those changes is on without a marker of its own.
//
// Each GetVersion a run calls for the first time writes two events (a marker and an upsert of
// the TemporalChangeVersion search attribute, which is also a visibility write): one marker per
// run keeps what the separate ones decided, and runs started before it (no such marker in
// their history) still read their own: changeSince2026_11 (which stands for the first five),
// or the five.
const (
	changeSince2026_12 = "changes-to-2026-12"
	changeSince2026_11 = "changes-to-2026-11"
)

// changes are the changes a workflow.GetVersion marker switched on, each on in runs that have
// it.
type changes struct {
	// reconcileAhead: reconciliation runs in the lead before each reset rather than at it
	// (changeReconcileAhead); runs started before that change keep reconciling at the reset.
	reconcileAhead bool
	// urgentStops: card-stopping calls go to IssuerUrgentTaskQueue (changeUrgentStops).
	urgentStops bool
	// moneyInvariant: cards are capped and read before another is funded, credits lower the
	// limit, every overspend alerts (changeMoneyInvariant).
	moneyInvariant bool
	// spreadResets: the timer that applies a reset wakes a little after the instant, at a
	// point fixed by the agent id (changeResetSpread).
	spreadResets bool
	// recordHandSent: a card-event signal the ledger does not have (sent by hand) is recorded
	// in it by the RecordEvent activity.
	recordHandSent bool
	// localResets: a reset's limit update is tried first in the workflow's own worker
	// (UpdateLimitNow) and scheduled on the paced queue only if that did not apply it
	// (changeSince2026_12).
	localResets bool
}

// changesOn reads which changes this run has.
func changesOn(ctx workflow.Context) changes {
	on := func(change string) bool { return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) >= 1 }
	switch {
	case on(changeSince2026_12):
		return changes{true, true, true, true, true, true}
	case on(changeSince2026_11):
		return changes{true, true, true, true, true, false}
	}
	return changes{
		reconcileAhead: on(changeReconcileAhead), urgentStops: on(changeUrgentStops), moneyInvariant: on(changeMoneyInvariant),
		spreadResets: on(changeResetSpread), recordHandSent: on(changeRecordHandSent),
	}
}
