package workflows

import (
	"context"

	"go.temporal.io/sdk/temporal"
)

// localActivities names the store activities the workflow runs as local activities. The
// workflow calls them through method values of a nil *localActivities instead of by name:
// the SDK then runs the activity registered under the method's name on the worker (package
// activities, registered by worker.RegisterMain), and the replayer, which cannot register
// activities, can still replay their markers. These bodies run only on a worker where the
// activity is missing, and say so.
type localActivities struct{}

// la is the handle: la.UpsertAgent names the UpsertAgent local activity.
var la *localActivities

func notRegistered(name string) error {
	return temporal.NewNonRetryableApplicationError("local activity "+name+" is not registered on this worker (see worker.RegisterMain)",
		"ActivityNotRegistered", nil)
}

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
