// Package worker registers cardwarden's workflows and activities on their three task queues
// and runs them: the workflow queue (the AgentCard and FleetRotation workflows, the store
// activities they run locally, alerts, credential pushes and the fleet's activities), the
// issuer queue (issuer activities, paced under the issuer's own rate limit) and the urgent
// issuer queue (the calls that stop a card, as earlier versions scheduled them; they now run on
// the workflow queue, so a freeze never waits behind a fleet-wide reset).
package worker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/workflows"
)

// IssuerPacing is the share of the issuer's rate limit one worker process paces its issuer
// calls at. Temporal's server-side task queue limit admits bursts above the average (129 in
// one second against a limit of 100 in `cardwarden bench --scenario reset`), and an issuer
// counting over a sliding second answers those with 429s; evenly spaced calls at 90 % leave
// room for network jitter between the worker and the issuer.
const IssuerPacing = 0.9

// localBurst is how many reset limit updates the pacer lets through at once: half the headroom
// IssuerPacing leaves in a second, so the paced calls stay under the issuer's limit in any
// second and the stops, which are not paced, have the other half.
func localBurst(ratePerSecond float64) int {
	return int(ratePerSecond * (1 - IssuerPacing) / 2)
}

// Config tunes the workers.
type Config struct {
	// IssuerRatePerSecond is the issuer's rate limit. Issuer activities are capped at it
	// across every worker polling the issuer queue (server-side, TaskQueueActivitiesPerSecond)
	// and each worker process starts them evenly spaced at IssuerPacing of it
	// (WorkerActivitiesPerSecond, a token bucket with a burst of one), so a fleet-wide reset
	// stays under the issuer's limit. A reset's limit update is first tried in the worker that
	// woke for it (activities.UpdateLimitNow), paced at the process's share of IssuerPacing of
	// the limit, which the paced queue's calls also use (keepShare, pacedQueue). 0 means no cap.
	IssuerRatePerSecond float64
	// Main and Issuer are the base options of each worker; the zero value is fine.
	Main   sdkworker.Options
	Issuer sdkworker.Options
}

// Workers are the workers of one process.
type Workers struct {
	Main   sdkworker.Worker // TaskQueue: workflows, store and alert activities
	Issuer sdkworker.Worker // IssuerTaskQueue: issuer activities
	Urgent sdkworker.Worker // IssuerUrgentTaskQueue: stops scheduled there by earlier versions

	client    client.Client
	pacer     *activities.Pacer // this process's share of the issuer's rate limit
	log       *slog.Logger
	stopShare context.CancelFunc
}

// New creates the workers with everything registered. Call Start to poll.
func New(c client.Client, acts *activities.Activities, cfg Config) *Workers {
	paced := *acts
	paced.Pacer = activities.NewPacer(cfg.IssuerRatePerSecond*IssuerPacing, localBurst(cfg.IssuerRatePerSecond))
	acts = &paced
	main := sdkworker.New(c, workflows.TaskQueue, MainOptions(cfg))
	RegisterMain(main, acts)
	RegisterStops(main, acts)
	RegisterFleet(main, activities.NewFleet(c, acts.Logger))
	io := IssuerOptions(cfg)
	io.Interceptors = append(slices.Clip(io.Interceptors), &pacedQueue{pacer: acts.Pacer})
	iss := sdkworker.New(c, workflows.IssuerTaskQueue, io)
	RegisterIssuer(iss, acts)
	urgent := sdkworker.New(c, workflows.IssuerUrgentTaskQueue, UrgentOptions(cfg))
	RegisterStops(urgent, acts)
	return &Workers{Main: main, Issuer: iss, Urgent: urgent, client: c, pacer: acts.Pacer, log: cmp.Or(acts.Logger, slog.Default())}
}

// StickyScheduleToStart is how long a workflow task waits on this worker's sticky queue (the
// workflows it has cached) before the server moves it to the shared queue. The SDK's 5 s is
// shorter than the backlog a fleet-wide reset builds on a busy server; every task past it is
// timed out (a history write), dispatched again and replayed from its full history on
// whichever worker polls it, which adds load exactly when there is least to spare: in
// `cardwarden bench --scenario reset` nine in ten resetting agents had a timed-out task and
// the freezes during the reset waited 20–28 s. A worker that stops polling loses its sticky
// queue after 10 s anyway (the server stops adding to it), so a longer wait only delays the
// tasks already queued on a worker that died.
const StickyScheduleToStart = 30 * time.Second

// MainOptions are the workflow queue worker's options: cfg.Main with StickyScheduleToStart
// unless it sets its own.
func MainOptions(cfg Config) sdkworker.Options {
	o := cfg.Main
	if o.StickyScheduleToStartTimeout == 0 {
		o.StickyScheduleToStartTimeout = StickyScheduleToStart
	}
	return o
}

// IssuerOptions are the issuer queue worker's options: cfg.Issuer with the rate limits.
func IssuerOptions(cfg Config) sdkworker.Options {
	o := cfg.Issuer
	if cfg.IssuerRatePerSecond > 0 {
		o.TaskQueueActivitiesPerSecond = cfg.IssuerRatePerSecond
		o.WorkerActivitiesPerSecond = cfg.IssuerRatePerSecond * IssuerPacing
	}
	return o
}

// UrgentOptions are the urgent queue worker's options: cfg.Issuer capped at the issuer's limit
// across workers but not paced, so a freeze is never held back by cardwarden itself; its few
// calls fit in the headroom IssuerPacing leaves, and a 429 is retried after Retry-After.
func UrgentOptions(cfg Config) sdkworker.Options {
	o := cfg.Issuer
	if cfg.IssuerRatePerSecond > 0 {
		o.TaskQueueActivitiesPerSecond = cfg.IssuerRatePerSecond
	}
	return o
}

// Start starts polling every queue; if one fails, none runs.
func (w *Workers) Start() error {
	started := []sdkworker.Worker{}
	for _, q := range w.queues() {
		if err := q.w.Start(); err != nil {
			for _, s := range started {
				s.Stop()
			}
			return fmt.Errorf("start %s worker: %w", q.name, err)
		}
		started = append(started, q.w)
	}
	if w.pacer != nil {
		ctx, cancel := context.WithCancel(context.Background())
		w.stopShare = cancel
		go keepShare(ctx, w.client, w.pacer, w.log)
	}
	return nil
}

// Stop stops the workers, letting running activities finish within their timeouts.
func (w *Workers) Stop() {
	if w.stopShare != nil {
		w.stopShare()
	}
	qs := w.queues()
	for i := len(qs) - 1; i >= 0; i-- {
		qs[i].w.Stop()
	}
}

type queueWorker struct {
	name string
	w    sdkworker.Worker
}

func (w *Workers) queues() []queueWorker {
	return []queueWorker{{workflows.TaskQueue, w.Main}, {workflows.IssuerTaskQueue, w.Issuer}, {workflows.IssuerUrgentTaskQueue, w.Urgent}}
}

// RegisterWorkflows registers the workflows under their public names.
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.AgentCard, workflow.RegisterOptions{Name: workflows.WorkflowType})
	r.RegisterWorkflowWithOptions(workflows.Team, workflow.RegisterOptions{Name: workflows.TeamWorkflowType})
}

// RegisterMain registers what the workflow queue's worker runs: the workflows, the store
// activities they run as local activities, alert delivery and credential pushes.
func RegisterMain(r sdkworker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	register(r, map[string]any{
		workflows.ActivityIssuerInfo:      acts.IssuerInfo,
		workflows.ActivityUpsertAgent:     acts.UpsertAgent,
		workflows.ActivitySetAgentStatus:  acts.SetAgentStatus,
		workflows.ActivityAudit:           acts.Audit,
		workflows.ActivityUpdateLimitNow:  acts.UpdateLimitNow,
		workflows.ActivitySendAlert:       acts.SendAlert,
		workflows.ActivityPushCredentials: acts.PushCredentials,
		workflows.ActivityRecordEvent:     acts.RecordEvent,
	})
}

// RegisterFleet registers the FleetRotation workflow and its activities, for the workflow
// queue's worker.
func RegisterFleet(r sdkworker.Registry, fleet *activities.Fleet) {
	r.RegisterWorkflowWithOptions(workflows.FleetRotation, workflow.RegisterOptions{Name: workflows.FleetRotationWorkflowType})
	register(r, map[string]any{
		workflows.ActivityListFleet:   fleet.ListFleet,
		workflows.ActivityRotateAgent: fleet.RotateAgent,
	})
}

// RegisterIssuer registers the issuer activities, for the issuer queue's worker.
func RegisterIssuer(r sdkworker.ActivityRegistry, acts *activities.Activities) {
	register(r, map[string]any{
		workflows.ActivityIssueCard:   acts.IssueCard,
		workflows.ActivityUpdateLimit: acts.UpdateLimit,
		workflows.ActivityPauseCard:   acts.PauseCard,
		workflows.ActivityResumeCard:  acts.ResumeCard,
		workflows.ActivityCloseCard:   acts.CloseCard,
		workflows.ActivityReconcile:   acts.Reconcile,
	})
}

// RegisterStops registers the issuer calls that stop a card (pause, or a limit lowered to what
// it spent, or close): on the workflow queue's worker, where the workflow schedules them and
// the worker that decided a stop starts it eagerly (every worker process has the issuer's
// adapters, so any of them can run one the server dispatches instead), and on the urgent
// queue's, for the stops earlier versions scheduled there.
func RegisterStops(r sdkworker.ActivityRegistry, acts *activities.Activities) {
	register(r, map[string]any{
		workflows.ActivityUpdateLimit: acts.UpdateLimit,
		workflows.ActivityPauseCard:   acts.PauseCard,
		workflows.ActivityCloseCard:   acts.CloseCard,
	})
}

// Register registers everything on one worker, for tests that run a single queue.
func Register(r sdkworker.Registry, acts *activities.Activities) {
	RegisterMain(r, acts)
	RegisterIssuer(r, acts)
}

func register(r sdkworker.ActivityRegistry, byName map[string]any) {
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		r.RegisterActivityWithOptions(byName[name], activity.RegisterOptions{Name: name})
	}
}
