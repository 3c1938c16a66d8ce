package worker_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nexus-rpc/sdk-go/nexus"
	"go.temporal.io/sdk/activity"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

// recorder is a worker.Registry that remembers names.
type recorder struct {
	workflows, activities []string
}

func (r *recorder) RegisterWorkflow(any) { panic("register workflows with their public names") }
func (r *recorder) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
}
func (r *recorder) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}
func (r *recorder) RegisterActivity(any)                                         { panic("register activities with their contract names") }
func (r *recorder) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) {
	r.activities = append(r.activities, o.Name)
}
func (r *recorder) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}
func (r *recorder) RegisterNexusService(*nexus.Service)                          {}

// Every activity the workflow calls is registered under the name it calls it by, on the queue
// it calls it on.
func TestRegistrationMatchesTheContract(t *testing.T) {
	acts := &activities.Activities{}
	var main, issuer, stops recorder
	worker.RegisterMain(&main, acts)
	worker.RegisterIssuer(&issuer, acts)
	worker.RegisterStops(&stops, acts)
	if !slices.Contains(main.workflows, workflows.WorkflowType) {
		t.Fatalf("workflows: %v", main.workflows)
	}
	wantMain := []string{workflows.ActivityIssuerInfo, workflows.ActivityUpsertAgent, workflows.ActivitySetAgentStatus,
		workflows.ActivityAudit, workflows.ActivitySendAlert, workflows.ActivityPushCredentials, workflows.ActivityRecordEvent,
		workflows.ActivityUpdateLimitNow}
	wantIssuer := []string{workflows.ActivityIssueCard, workflows.ActivityUpdateLimit, workflows.ActivityPauseCard,
		workflows.ActivityResumeCard, workflows.ActivityCloseCard, workflows.ActivityReconcile}
	for _, n := range wantMain {
		if !slices.Contains(main.activities, n) {
			t.Errorf("%s not registered on %s", n, workflows.TaskQueue)
		}
	}
	for _, n := range wantIssuer {
		if !slices.Contains(issuer.activities, n) {
			t.Errorf("%s not registered on %s", n, workflows.IssuerTaskQueue)
		}
	}
	// freeze and revoke stop cards on the workflow queue (earlier versions on the urgent
	// queue); New registers the stops on both.
	for _, n := range []string{workflows.ActivityPauseCard, workflows.ActivityUpdateLimit, workflows.ActivityCloseCard} {
		if !slices.Contains(stops.activities, n) {
			t.Errorf("%s not registered as a stop", n)
		}
	}
	// Each registered name is a method of *activities.Activities with that name, so the
	// names cannot drift from the code.
	typ := reflect.TypeOf(acts)
	for _, n := range append(wantMain, wantIssuer...) {
		if _, ok := typ.MethodByName(n); !ok {
			t.Errorf("*activities.Activities has no method %s", n)
		}
	}
	// The fleet rotation runs on the workflow queue with its own activities.
	var fleet recorder
	worker.RegisterFleet(&fleet, activities.NewFleet(nil, nil))
	if !slices.Contains(fleet.workflows, workflows.FleetRotationWorkflowType) ||
		!slices.Contains(fleet.activities, workflows.ActivityListFleet) || !slices.Contains(fleet.activities, workflows.ActivityRotateAgent) {
		t.Errorf("fleet rotation registered as workflows %v, activities %v", fleet.workflows, fleet.activities)
	}
}

// The issuer's limit caps the queue across workers and paces each worker below it, so bursts
// the server-side cap lets through do not reach the issuer.
func TestIssuerOptionsCapAndPace(t *testing.T) {
	o := worker.IssuerOptions(worker.Config{IssuerRatePerSecond: 100})
	if o.TaskQueueActivitiesPerSecond != 100 {
		t.Errorf("TaskQueueActivitiesPerSecond = %v, want the issuer's limit 100", o.TaskQueueActivitiesPerSecond)
	}
	if o.WorkerActivitiesPerSecond != 90 {
		t.Errorf("WorkerActivitiesPerSecond = %v, want 90 (90%% of the limit)", o.WorkerActivitiesPerSecond)
	}
	if o := worker.IssuerOptions(worker.Config{}); o.TaskQueueActivitiesPerSecond != 0 || o.WorkerActivitiesPerSecond != 0 {
		t.Errorf("no limit configured, got %+v", o)
	}
	// The urgent queue is capped at the limit but not paced: a freeze is never held back.
	if o := worker.UrgentOptions(worker.Config{IssuerRatePerSecond: 100}); o.TaskQueueActivitiesPerSecond != 100 || o.WorkerActivitiesPerSecond != 0 {
		t.Errorf("urgent queue options: %+v", o)
	}
}

// A workflow task waits on the worker's sticky queue longer than the SDK's 5 s, so a
// fleet-wide reset's backlog does not time tasks out into full-history replays; an operator's
// own setting is kept.
func TestMainOptionsStickyWait(t *testing.T) {
	if got := worker.MainOptions(worker.Config{}).StickyScheduleToStartTimeout; got != worker.StickyScheduleToStart || got <= 5*time.Second {
		t.Errorf("StickyScheduleToStartTimeout = %v, want %v (above the SDK's 5s)", got, worker.StickyScheduleToStart)
	}
	own := worker.Config{Main: sdkworker.Options{StickyScheduleToStartTimeout: 2 * time.Second}}
	if got := worker.MainOptions(own).StickyScheduleToStartTimeout; got != 2*time.Second {
		t.Errorf("an explicit StickyScheduleToStartTimeout was replaced: got %v, want 2s", got)
	}
}
