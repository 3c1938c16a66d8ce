package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/worker"
)

// The floor: the least Temporal work that does what a scenario measures, on the same server,
// the same simulator and the same machine, run in the same benchmark so the ratio cancels the
// machine out. None of it is cardwarden code.
const (
	floorQueue   = "bench-floor"
	floorRLQueue = "bench-floor-rate-limited"

	floorSignalName = "go"

	floorWFPause   = "BenchFloorPause"
	floorWFNoop    = "BenchFloorNoop"
	floorWFBatch   = "BenchFloorBatch"
	floorWFHistory = "BenchFloorHistory"
	floorWFTimer   = "BenchFloorTimer"
	floorWFUpdate  = "BenchFloorUpdate"

	floorUpdateName = "authorize"

	floorActPause = "BenchFloorPauseCard"
	floorActNoop  = "BenchFloorNoop"
	floorActGet   = "BenchFloorGetCard"
)

type floorWorkers struct {
	main, rl sdkworker.Worker
	acts     *floorActivities
}

// onNoop and onGet report when each floor activity ran, for completion times.
func (f *floorWorkers) onNoop(fn func(time.Time)) { f.acts.noopHook.Store(&fn) }
func (f *floorWorkers) onGet(fn func(time.Time))  { f.acts.getHook.Store(&fn) }

func (f *floorWorkers) stop() {
	if f.rl != nil {
		f.rl.Stop()
	}
	if f.main != nil {
		f.main.Stop()
	}
}

// floorActivities call the simulator through the same adapter cardwarden's activities use.
type floorActivities struct {
	sim               *sim.Adapter
	noopHook, getHook atomic.Pointer[func(time.Time)]
}

func (a *floorActivities) Pause(ctx context.Context, cardID string) error {
	_, err := a.sim.PauseCard(ctx, cardID)
	return err
}

func (a *floorActivities) Noop(context.Context) error {
	if h := a.noopHook.Load(); h != nil {
		(*h)(time.Now())
	}
	return nil
}

func (a *floorActivities) Get(ctx context.Context, cardID string) error {
	_, err := a.sim.GetCard(ctx, cardID)
	if h := a.getHook.Load(); h != nil && err == nil {
		(*h)(time.Now())
	}
	return err
}

func startFloorWorkers(c client.Client, simClient *sim.Adapter, rate float64) (*floorWorkers, error) {
	acts := &floorActivities{sim: simClient}
	// The floor's workflows get the sticky wait cardwarden's do (worker.MainOptions): the
	// comparison is of the work, not of a worker setting.
	f := &floorWorkers{main: sdkworker.New(c, floorQueue, worker.MainOptions(worker.Config{})), acts: acts}
	f.main.RegisterWorkflowWithOptions(floorPauseWorkflow, workflow.RegisterOptions{Name: floorWFPause})
	f.main.RegisterWorkflowWithOptions(floorNoopWorkflow, workflow.RegisterOptions{Name: floorWFNoop})
	f.main.RegisterWorkflowWithOptions(floorBatchWorkflow, workflow.RegisterOptions{Name: floorWFBatch})
	f.main.RegisterWorkflowWithOptions(floorHistoryWorkflow, workflow.RegisterOptions{Name: floorWFHistory})
	f.main.RegisterWorkflowWithOptions(floorTimerWorkflow, workflow.RegisterOptions{Name: floorWFTimer})
	f.main.RegisterWorkflowWithOptions(floorUpdateWorkflow, workflow.RegisterOptions{Name: floorWFUpdate})
	f.main.RegisterActivityWithOptions(acts.Pause, activity.RegisterOptions{Name: floorActPause})
	f.main.RegisterActivityWithOptions(acts.Noop, activity.RegisterOptions{Name: floorActNoop})
	if err := f.main.Start(); err != nil {
		return nil, fmt.Errorf("floor worker: %w", err)
	}
	if rate > 0 {
		f.rl = sdkworker.New(c, floorRLQueue, sdkworker.Options{TaskQueueActivitiesPerSecond: rate, WorkerActivitiesPerSecond: rate})
		f.rl.RegisterActivityWithOptions(acts.Get, activity.RegisterOptions{Name: floorActGet})
		if err := f.rl.Start(); err != nil {
			f.main.Stop()
			return nil, fmt.Errorf("rate-limited floor worker: %w", err)
		}
	}
	return f, nil
}

var floorRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute}

// floorPauseWorkflow is the freeze floor: an entity that, for every signal, runs one activity
// that pauses a card at the simulator. A negative signal ends it.
func floorPauseWorkflow(ctx workflow.Context, cardID string) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: floorQueue, StartToCloseTimeout: 30 * time.Second, RetryPolicy: floorRetry})
	ch := workflow.GetSignalChannel(ctx, floorSignalName)
	for i := 0; i < 1000; i++ {
		var n int
		ch.Receive(ctx, &n)
		if n < 0 {
			return nil
		}
		if err := workflow.ExecuteActivity(ctx, floorActPause, cardID).Get(ctx, nil); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(ctx, floorWFPause, cardID)
}

// floorNoopWorkflow is the onboarding floor: a workflow with one no-op activity.
func floorNoopWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: floorQueue, StartToCloseTimeout: 30 * time.Second, RetryPolicy: floorRetry})
	return workflow.ExecuteActivity(ctx, floorActNoop).Get(ctx, nil)
}

// floorBatchWorkflow is the fleet-reset floor: it schedules one simulator call per card, all at
// once, on a task queue rate limited like cardwarden's issuer queue.
func floorBatchWorkflow(ctx workflow.Context, cardIDs []string) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: floorRLQueue,
		ScheduleToCloseTimeout: 15 * time.Minute, StartToCloseTimeout: 30 * time.Second, RetryPolicy: floorRetry})
	futures := make([]workflow.Future, len(cardIDs))
	for i, id := range cardIDs {
		futures[i] = workflow.ExecuteActivity(ctx, floorActGet, id)
	}
	for _, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// floorTimerWorkflow is the fleet-reset floor: an entity whose timer fires at the given
// instant (the same instant for the whole fleet) and which then makes one simulator call, on a
// task queue rate limited like cardwarden's issuer queue.
func floorTimerWorkflow(ctx workflow.Context, at time.Time, cardID string) error {
	if d := at.Sub(workflow.Now(ctx)); d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return err
		}
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: floorRLQueue,
		ScheduleToCloseTimeout: 15 * time.Minute, StartToCloseTimeout: 30 * time.Second, RetryPolicy: floorRetry})
	return workflow.ExecuteActivity(ctx, floorActGet, cardID).Get(ctx, nil)
}

// floorHistoryWorkflow is the history floor: an entity that receives the same card-event
// signals as an agent, wakes once a (simulated) day on a timer, does nothing else, and
// continues as new when the server suggests it, after draining its signals.
func floorHistoryWorkflow(ctx workflow.Context, day time.Duration, seen int) (int, error) {
	ch := workflow.GetSignalChannel(ctx, floorSignalName)
	for !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		tctx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, day)
		stop := false
		for !stop {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var v any
				c.Receive(ctx, &v)
				seen++
			})
			sel.AddFuture(timer, func(workflow.Future) { stop = true })
			sel.Select(ctx)
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				cancel()
				break
			}
		}
	}
	for {
		var v any
		if !ch.ReceiveAsync(&v) {
			break
		}
		seen++
	}
	return seen, workflow.NewContinueAsNewError(ctx, floorWFHistory, day, seen)
}

// floorUpdateWorkflow is the decision floor: an entity whose update handler answers at once,
// in the handler, whatever it is asked; a signal ends it once its updates are done.
func floorUpdateWorkflow(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandler(ctx, floorUpdateName, func(workflow.Context, any) (bool, error) {
		return true, nil
	}); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, floorSignalName).Receive(ctx, nil)
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}
