package workflows

import "go.temporal.io/sdk/workflow"

// changeSince2026_11 is the workflow.GetVersion change id that stands for every change before
// it. In a run that records it, each of those changes is on without a marker of its own.
//
// Each GetVersion a run calls for the first time writes two events (a marker and an upsert of
// the TemporalChangeVersion search attribute, which is also a visibility write): five of them
// were ten of the first workflow task's thirteen commands, and every continue-as-new wrote
// them again. One marker per run keeps what the five decided, and runs started before it
// (no such marker in their history) still read their own five.
const changeSince2026_11 = "changes-to-2026-11"

// changesOn reports, in a fixed order, whether this run has each change that a
// workflow.GetVersion marker switched on: reconcile ahead of the reset, stops on the urgent
// queue, the money invariant, the reset spread, recording hand-sent events.
func changesOn(ctx workflow.Context) (reconcileAhead, urgentStops, moneyInvariant, spreadResets, recordHandSent bool) {
	if workflow.GetVersion(ctx, changeSince2026_11, workflow.DefaultVersion, 1) >= 1 {
		return true, true, true, true, true
	}
	on := func(change string) bool { return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) >= 1 }
	return on(changeReconcileAhead), on(changeUrgentStops), on(changeMoneyInvariant), on(changeResetSpread), on(changeRecordHandSent)
}
