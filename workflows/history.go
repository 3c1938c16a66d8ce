package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// Continue-as-new thresholds. Signals do not count towards the server's continue-as-new
// suggestion and are capped at 10,000 per run, so the workflow counts them itself; the history
// guard reads the run's length from the server, or, where the server's count is unavailable
// (the SDK's test environment), from the run's own estimate.
const (
	MaxSignalsPerRun   = 2000
	HistoryLengthLimit = 8000
)

// Approximate history events per kind of step, counted generously: a wrong guess only makes a
// continue-as-new come a little early.
const (
	eventsAtStart      = 4 // started, the first workflow task
	eventsPerActivity  = 6 // scheduled, started, completed + the workflow task that resumes
	eventsPerLocal     = 1 // one marker, recorded by the task that ran it
	eventsPerTimer     = 2 // started, fired or canceled (the wake-up task is counted by the loop)
	eventsPerCancel    = 1 // a timer cancelled before it fired
	eventsPerWake      = 3 // workflow task scheduled, started, completed
	eventsPerUpdate    = 2 // accepted, completed
	eventsPerUpsert    = 1
	eventsPerSignal    = 1
	eventsPerSignalOut = 2 // signal-external initiated, then signaled
)

// wrote adds what a step writes to the run's estimate of its own history length. It is the one
// place the estimate changes; the wrappers that make the workflow write history (effects.go,
// the main loop's timer and wake-ups, signals and updates) call it.
func (wf *agentCard) wrote(events int) { wf.estimate += events }

// historyLength is the run's history length: the server's count as of this workflow task, or,
// where there is none (the SDK's test environment), the run's own estimate.
func (wf *agentCard) historyLength(ctx workflow.Context) int {
	if n := workflow.GetInfo(ctx).GetCurrentHistoryLength(); n > 0 {
		return n
	}
	return wf.estimate
}

// shouldContinueAsNew is checked only in the main loop, never in a handler.
func (wf *agentCard) shouldContinueAsNew(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested() ||
		wf.signalsThisRun >= MaxSignalsPerRun ||
		wf.historyLength(ctx) >= HistoryLengthLimit
}

// continueAsNew drains every signal and update before handing the whole state to the next
// run: anything buffered but unread would otherwise be lost with this run.
func (wf *agentCard) continueAsNew(ctx workflow.Context) (Result, error) {
	if err := wf.drain(ctx); err != nil {
		return Result{}, err
	}
	if wf.result != nil {
		return wf.finish(ctx)
	}
	if wf.cancelTimer != nil {
		wf.cancelTimer()
	}
	wf.st.Run++
	wf.logger(ctx).Info("continuing as new", "signals_this_run", wf.signalsThisRun, "estimated_history", wf.estimate,
		"history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength(), "next_run", wf.st.Run)
	return Result{}, workflow.NewContinueAsNewError(ctx, WorkflowType, Input{Policy: wf.policy, State: wf.st})
}

// drain handles every buffered signal and update until none are left, no update handler is
// running and no alert is in flight.
func (wf *agentCard) drain(ctx workflow.Context) error {
	for {
		for {
			var evs cardEvents
			if !wf.eventCh.ReceiveAsync(&evs) {
				break
			}
			wf.onSignal(ctx, evs)
		}
		var cmd *command
		if wf.cmdCh.ReceiveAsync(&cmd) {
			cmd.execute(ctx, wf)
			continue
		}
		if wf.idle(ctx) {
			return nil
		}
		err := workflow.Await(ctx, func() bool {
			return wf.eventCh.Len() > 0 || wf.cmdCh.Len() > 0 || wf.idle(ctx)
		})
		if err != nil {
			return err
		}
		wf.wrote(eventsPerWake)
	}
}

func (wf *agentCard) idle(ctx workflow.Context) bool {
	return wf.eventCh.Len() == 0 && wf.cmdCh.Len() == 0 && wf.background == 0 && workflow.AllHandlersFinished(ctx)
}
