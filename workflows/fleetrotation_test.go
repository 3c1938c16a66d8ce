package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakeFleet stands in for activities.Fleet.
type fakeFleet struct {
	ids      []string
	fail     map[string]bool
	skip     map[string]bool
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	mu       sync.Mutex
	calls    []RotateAgentInput
}

func (f *fakeFleet) list(_ context.Context, in ListFleetInput) (ListFleetResult, error) {
	return ListFleetResult{AgentIDs: f.ids}, nil
}

func (f *fakeFleet) rotate(_ context.Context, in RotateAgentInput) (RotateAgentResult, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	// Hold the slot briefly so concurrent activities of one batch overlap.
	time.Sleep(5 * time.Millisecond)
	f.mu.Lock()
	f.calls = append(f.calls, in)
	f.mu.Unlock()
	switch {
	case f.fail[in.AgentID]:
		return RotateAgentResult{}, temporal.NewNonRetryableApplicationError("issuer said no", "IssuerInvalidRequest", nil)
	case f.skip[in.AgentID]:
		return RotateAgentResult{AgentID: in.AgentID, Outcome: FleetSkipped, Detail: "frozen"}, nil
	}
	return RotateAgentResult{AgentID: in.AgentID, Outcome: FleetRotated, Generation: 2}, nil
}

func newFleetEnv(t *testing.T, f *fakeFleet) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(FleetRotation, workflow.RegisterOptions{Name: FleetRotationWorkflowType})
	env.RegisterActivityWithOptions(f.list, activity.RegisterOptions{Name: ActivityListFleet})
	env.RegisterActivityWithOptions(f.rotate, activity.RegisterOptions{Name: ActivityRotateAgent})
	return env
}

func agentIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%02d", i)
	}
	return ids
}

func TestFleetRotationCountsAndBoundsConcurrency(t *testing.T) {
	f := &fakeFleet{ids: agentIDs(25), fail: map[string]bool{"agent-03": true}, skip: map[string]bool{"agent-07": true, "agent-20": true}}
	env := newFleetEnv(t, f)
	scheduled := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(
		temporal.NewSearchAttributeKeyTime(SearchAttrScheduledStartTime).ValueSet(scheduled)))
	env.ExecuteWorkflow(FleetRotation, FleetRotationInput{BatchSize: 4})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res FleetRotationResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 25, res.Agents)
	require.Equal(t, 22, res.Rotated)
	require.Equal(t, 2, res.Skipped)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, "agent-03", res.Failures[0].AgentID)
	require.Contains(t, res.Failures[0].Error, "issuer said no")
	require.True(t, scheduled.Equal(res.ScheduledAt))
	require.LessOrEqual(t, int(f.maxSeen.Load()), 4, "never more than batch_size rotations at once")
	require.Len(t, f.calls, 25)
	for _, c := range f.calls {
		require.True(t, scheduled.Equal(c.ScheduledAt), "every rotation carries the scheduled time as its idempotency token")
		require.Equal(t, "schedule:fleet-rotation", c.Actor)
	}
}

func TestFleetRotationInputScheduledAtWins(t *testing.T) {
	f := &fakeFleet{ids: agentIDs(3)}
	env := newFleetEnv(t, f)
	at := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	env.ExecuteWorkflow(FleetRotation, FleetRotationInput{ScheduledAt: &at, Reason: "quarterly"})
	require.NoError(t, env.GetWorkflowError())
	for _, c := range f.calls {
		require.True(t, at.Equal(c.ScheduledAt))
		require.Equal(t, "quarterly", c.Reason)
	}
}

func TestFleetRotationContinuesAsNewWithProgress(t *testing.T) {
	old := fleetAgentsPerRun
	fleetAgentsPerRun = 4
	defer func() { fleetAgentsPerRun = old }()
	f := &fakeFleet{ids: agentIDs(10), skip: map[string]bool{"agent-01": true}}
	env := newFleetEnv(t, f)
	env.ExecuteWorkflow(FleetRotation, FleetRotationInput{BatchSize: 2})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "got %v", env.GetWorkflowError())
	require.Len(t, f.calls, 4)
	var next FleetRotationInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Progress)
	require.Equal(t, agentIDs(10)[4:], next.Progress.Remaining)
	require.Equal(t, 10, next.Progress.Result.Agents)
	require.Equal(t, 3, next.Progress.Result.Rotated)
	require.Equal(t, 1, next.Progress.Result.Skipped)
	require.Equal(t, 2, next.BatchSize)

	// The next run finishes the rest without listing again.
	fleetAgentsPerRun = old
	f2 := &fakeFleet{ids: []string{"must-not-be-listed"}}
	env2 := newFleetEnv(t, f2)
	env2.ExecuteWorkflow(FleetRotation, next)
	require.NoError(t, env2.GetWorkflowError())
	var res FleetRotationResult
	require.NoError(t, env2.GetWorkflowResult(&res))
	require.Equal(t, FleetRotationResult{ScheduledAt: res.ScheduledAt, Agents: 10, Rotated: 9, Skipped: 1}, res)
	require.True(t, next.Progress.ScheduledAt.Equal(res.ScheduledAt))
}

func TestFleetRotationRejectsBadBatchSize(t *testing.T) {
	env := newFleetEnv(t, &fakeFleet{})
	env.ExecuteWorkflow(FleetRotation, FleetRotationInput{BatchSize: 1000})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(env.GetWorkflowError(), &appErr))
	require.Equal(t, ErrTypeInvalidRequest, appErr.Type())
	require.Contains(t, appErr.Error(), "batch_size")
}

func TestFleetRotationUpdateIDIsStable(t *testing.T) {
	at := time.Date(2026, 1, 5, 3, 0, 0, 0, time.FixedZone("x", 3600))
	require.Equal(t, "fleet-rotation:2026-01-05T02:00:00Z", FleetRotationUpdateID(at))
}
