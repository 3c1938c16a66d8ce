package workflows

import (
	"context"

	"go.temporal.io/sdk/temporal"
)

// Typed references to the activities. The workflows call activities through method values of
// nil handles of these types (ia.IssueCard, la.UpsertAgent) rather than by name: the SDK takes
// the activity's name from the method's name and checks the arguments against the method's
// signature, so a call cannot drift from the activity it names. Package activities implements
// each method under the same name and signature (activities.Activities, activities.Fleet; a test
// compares them), and package worker registers them under the Activity* names of contract.go,
// which are these method names.
//
// The handles are not the implementations because this package cannot import package activities
// (it imports this one for the contract), and because the replayer, which cannot register
// activities, must still replay the workflows. The bodies below never run where the worker is
// wired as package worker does it, and say so if they ever do.

// issuerActivities call a card issuer: they run on IssuerTaskQueue, and the ones that stop a
// card also on TaskQueue (and IssuerUrgentTaskQueue, for earlier versions' stops).
type issuerActivities struct{}

// ia is the handle: ia.IssueCard names the IssueCard activity.
var ia *issuerActivities

func (*issuerActivities) IssueCard(context.Context, IssueCardInput) (IssuedCard, error) {
	return IssuedCard{}, notRegistered(ActivityIssueCard)
}

func (*issuerActivities) UpdateLimit(context.Context, UpdateLimitInput) error {
	return notRegistered(ActivityUpdateLimit)
}

func (*issuerActivities) PauseCard(context.Context, CardActionInput) error {
	return notRegistered(ActivityPauseCard)
}

func (*issuerActivities) ResumeCard(context.Context, CardActionInput) error {
	return notRegistered(ActivityResumeCard)
}

// CloseCard succeeds for a card that is already closed.
func (*issuerActivities) CloseCard(context.Context, CardActionInput) error {
	return notRegistered(ActivityCloseCard)
}

func (*issuerActivities) Reconcile(context.Context, ReconcileInput) (ReconcileResult, error) {
	return ReconcileResult{}, notRegistered(ActivityReconcile)
}

// backgroundActivities deliver to the outside world on TaskQueue, in calls the workflow does not
// wait for: alerts, credential pushes, and hand-sent events to the ledger.
type backgroundActivities struct{}

// ba is the handle: ba.SendAlert names the SendAlert activity.
var ba *backgroundActivities

func (*backgroundActivities) SendAlert(context.Context, AlertInput) (AlertResult, error) {
	return AlertResult{}, notRegistered(ActivitySendAlert)
}

func (*backgroundActivities) PushCredentials(context.Context, PushCredentialsInput) error {
	return notRegistered(ActivityPushCredentials)
}

func (*backgroundActivities) RecordEvent(context.Context, RecordEventInput) error {
	return notRegistered(ActivityRecordEvent)
}

// localActivities are short store writes and lookups that the workflow runs as local
// activities on its own worker.
type localActivities struct{}

// la is the handle: la.UpsertAgent names the UpsertAgent local activity.
var la *localActivities

// IssuerInfo fails non-retryably for an issuer that is not configured.
func (*localActivities) IssuerInfo(context.Context, IssuerInfoInput) (IssuerInfo, error) {
	return IssuerInfo{}, notRegistered(ActivityIssuerInfo)
}

func (*localActivities) UpsertAgent(context.Context, UpsertAgentInput) (AgentSnapshot, error) {
	return AgentSnapshot{}, notRegistered(ActivityUpsertAgent)
}

func (*localActivities) SetAgentStatus(context.Context, SetAgentStatusInput) error {
	return notRegistered(ActivitySetAgentStatus)
}

func (*localActivities) Audit(context.Context, AuditInput) error {
	return notRegistered(ActivityAudit)
}

// UpdateLimitNow reports not applied without calling the issuer when the worker's share of the
// issuer's rate limit has no room now, and not applied when the call fails: the caller then
// schedules UpdateLimit, which retries.
func (*localActivities) UpdateLimitNow(context.Context, UpdateLimitInput) (LimitApplied, error) {
	return LimitApplied{}, notRegistered(ActivityUpdateLimitNow)
}

// fleetActivities are the FleetRotation workflow's (activities.Fleet).
type fleetActivities struct{}

// fa is the handle: fa.RotateAgent names the RotateAgent activity.
var fa *fleetActivities

func (*fleetActivities) ListFleet(context.Context, ListFleetInput) (ListFleetResult, error) {
	return ListFleetResult{}, notRegistered(ActivityListFleet)
}

func (*fleetActivities) RotateAgent(context.Context, RotateAgentInput) (RotateAgentResult, error) {
	return RotateAgentResult{}, notRegistered(ActivityRotateAgent)
}

func notRegistered(name string) error {
	return temporal.NewNonRetryableApplicationError("activity "+name+" is not registered on this worker (see package worker)",
		"ActivityNotRegistered", nil)
}
