package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// The `cardwarden schedule` commands, and a schedule-triggered fleet rotation of 20 agents in
// which each agent gets exactly one new card, also when the rotation is run again for the same
// scheduled time.
func TestCLIScheduleAndFleetRotation(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()

	_, _, code := e.cli("schedule", "describe")
	require.Equal(t, exitNotFound, code)
	_, _, code = e.cli("schedule", "trigger")
	require.Equal(t, exitNotFound, code)
	_, errOut, code := e.cli("schedule", "create", "--cron", "not a cron")
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "schedule.cron[0]")
	_, _, code = e.cli("schedule", "create", "--timezone", "Mars/Base")
	require.Equal(t, exitUsage, code)

	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("fleet-%02d", i)
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			// rotate_cron off: only the fleet rotation may rotate these agents in this test.
			_, _, err := e.ctl.CreateAgent(ctx, workflows.Policy{AgentID: id, DailyLimitUSD: money.MustParse("20"), RotateCron: workflows.RotateOff}, "test")
			errs <- err
		}(ids[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// A frozen agent is left alone by the fleet rotation: rotating would reactivate it.
	_, _, err := e.ctl.CreateAgent(ctx, workflows.Policy{AgentID: "frozen-one", DailyLimitUSD: money.MustParse("20"), RotateCron: workflows.RotateOff}, "test")
	require.NoError(t, err)
	var lastIssued time.Time
	for _, id := range append(ids, "frozen-one") {
		if st := e.waitCard(id, 1); st.Card.IssuedAt.After(lastIssued) {
			lastIssued = st.Card.IssuedAt
		}
	}
	_, err = e.ctl.Freeze(ctx, "frozen-one", workflows.ReasonRequest{Reason: "hold", Actor: "test"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		agents, err := e.ctl.ListAgents(ctx, starter.ListOptions{Status: workflows.StatusActive})
		return err == nil && len(agents) == n
	}, 30*time.Second, 100*time.Millisecond, "visibility never showed the 20 active agents")

	var created struct {
		Schedule starter.ScheduleInfo `json:"schedule"`
		Created  bool                 `json:"created"`
	}
	e.cliJSON(&created, "schedule", "create", "--cron", "0 3 * * MON", "--timezone", "Europe/Berlin", "--batch-size", "5", "--paused", "--note", "review first")
	require.True(t, created.Created)
	require.True(t, created.Schedule.Paused)
	require.Equal(t, []string{"0 3 * * 1"}, created.Schedule.Spec)
	require.Equal(t, "Europe/Berlin", created.Schedule.TimeZone)
	require.Equal(t, 5, created.Schedule.BatchSize)

	out, _, code := e.cli("schedule", "describe")
	require.Equal(t, 0, code)
	require.Contains(t, out, "paused (review first)")
	require.Contains(t, out, "5 at a time")

	// Updating in place: the same command with other settings.
	e.cliJSON(&created, "schedule", "create", "--cron", "0 4 * * SUN", "--batch-size", "4")
	require.False(t, created.Created)
	require.False(t, created.Schedule.Paused)
	require.Equal(t, []string{"0 4 * * 0"}, created.Schedule.Spec)
	require.Equal(t, 4, created.Schedule.BatchSize)
	require.NotEmpty(t, created.Schedule.NextRuns)

	_, _, code = e.cli("schedule", "pause", "--note", "maintenance")
	require.Equal(t, 0, code)
	var info starter.ScheduleInfo
	e.cliJSON(&info, "schedule", "describe")
	require.True(t, info.Paused)
	require.Equal(t, "maintenance", info.Note)
	_, _, code = e.cli("schedule", "unpause")
	require.Equal(t, 0, code)
	e.cliJSON(&info, "schedule", "describe")
	require.False(t, info.Paused)

	// Trigger now and wait for the rotation to finish. A schedule's times have whole seconds,
	// and a card issued at or after the scheduled time counts as already rotated, so let the
	// second in which the first cards were issued pass.
	for time.Now().Before(lastIssued.Truncate(time.Second).Add(time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	_, _, code = e.cli("schedule", "trigger")
	require.Equal(t, 0, code)
	var run starter.ScheduleRun
	require.Eventually(t, func() bool {
		info, err := e.ctl.DescribeFleetRotationSchedule(ctx)
		if err != nil || len(info.RecentRuns) == 0 {
			return false
		}
		run = info.RecentRuns[0]
		return run.WorkflowID != ""
	}, 60*time.Second, 100*time.Millisecond, "the trigger never started a run")
	require.True(t, strings.HasPrefix(run.WorkflowID, workflows.FleetRotationScheduleID))
	var res workflows.FleetRotationResult
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, e.tc.GetWorkflow(wctx, run.WorkflowID, "").Get(wctx, &res))
	require.Equal(t, n, res.Agents, "the frozen agent is not listed")
	require.Equal(t, n, res.Rotated, "%+v", res)
	require.Zero(t, res.Failed, "%+v", res)
	// Its idempotency time is the scheduled time (TemporalScheduledStartTime keeps whole seconds).
	require.True(t, run.ScheduledAt.Truncate(time.Second).Equal(res.ScheduledAt), "%s vs %s", run.ScheduledAt, res.ScheduledAt)

	checkOneNewCard := func() {
		t.Helper()
		for _, id := range ids {
			st, err := e.ctl.State(ctx, id)
			require.NoError(t, err)
			require.Equal(t, 2, st.Generation, id)
			require.Equal(t, 1, st.Rotations, id)
			cards, err := e.store.ListCards(ctx, id)
			require.NoError(t, err)
			require.Len(t, cards, 2, "agent %s must have exactly one new card", id)
		}
		st, err := e.ctl.State(ctx, "frozen-one")
		require.NoError(t, err)
		require.Equal(t, workflows.StatusFrozen, st.Status)
		require.Equal(t, 1, st.Generation)
	}
	checkOneNewCard()
	require.EqualValues(t, n+1+n, e.sim.Stats().CardsCreated, "21 first cards and 20 rotations, nothing more")

	// Run the same scheduled rotation again (a re-run, or a retry after a crash): no agent
	// rotates twice.
	again, err := e.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "fleet-rotation-rerun", TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.FleetRotationWorkflowType, workflows.FleetRotationInput{ScheduledAt: &res.ScheduledAt, BatchSize: 7})
	require.NoError(t, err)
	var res2 workflows.FleetRotationResult
	require.NoError(t, again.Get(wctx, &res2))
	require.Equal(t, n, res2.Agents)
	require.Zero(t, res2.Rotated, "%+v", res2)
	require.Equal(t, n, res2.Skipped)
	checkOneNewCard()
	require.EqualValues(t, n+1+n, e.sim.Stats().CardsCreated)

	// delete.
	_, _, code = e.cli("schedule", "delete")
	require.Equal(t, 0, code)
	_, _, code = e.cli("schedule", "describe")
	require.Equal(t, exitNotFound, code)
}
