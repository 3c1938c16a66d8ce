package workflows_test

import (
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

func newTeamEnv(t *testing.T, start time.Time) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger)
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Team, workflow.RegisterOptions{Name: workflows.TeamWorkflowType})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.TeamWorkflowID("research"), TaskQueue: workflows.TaskQueue})
	env.SetStartTime(start)
	return env
}

type reserveResult struct {
	done bool
	res  workflows.TeamReserveResult
	err  error
}

func reserve(env *testsuite.TestWorkflowEnvironment, req workflows.TeamReserveRequest) *reserveResult {
	r := &reserveResult{}
	env.UpdateWorkflow(workflows.UpdateTeamReserve, "", &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { r.done, r.err = true, err },
		OnComplete: func(v any, err error) { r.done, r.err = true, err; r.res, _ = v.(workflows.TeamReserveResult) },
	}, req)
	return r
}

// A team's agents racing for the team's last dollar: the team approves exactly what its
// allowance holds; events turn reservations into spend; a release gives one back; the next
// period starts afresh.
func TestTeamReservesExactly(t *testing.T) {
	env := newTeamEnv(t, sunday)
	var first []*reserveResult
	var afterEvents, afterRelease, nextDay workflows.TeamView
	query := func(v *workflows.TeamView) {
		q, err := env.QueryWorkflow(workflows.QueryState)
		if err != nil {
			t.Fatal(err)
		}
		_ = q.Get(v)
	}
	env.RegisterDelayedCallback(func() {
		for i := range 10 {
			first = append(first, reserve(env, workflows.TeamReserveRequest{AuthorizationID: fmt.Sprintf("a%d", i), AgentID: fmt.Sprintf("agent-%d", i%3), AmountMinor: 2500}))
		}
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		for i, r := range first {
			if r.res.Approved {
				env.SignalWorkflow(workflows.SignalTeamEvent, workflows.TeamEvent{AgentID: fmt.Sprintf("agent-%d", i%3), Event: cardwarden.Event{
					ID: fmt.Sprintf("ev%d", i), Kind: cardwarden.KindAuthorization, CardID: "c", AuthorizationID: fmt.Sprintf("a%d", i),
					Approved: true, AmountMinor: 2500, OccurredAt: sunday.Add(2 * time.Minute)}})
			}
		}
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() { query(&afterEvents) }, 3*time.Minute)
	env.RegisterDelayedCallback(func() {
		reserve(env, workflows.TeamReserveRequest{AuthorizationID: "late", AgentID: "agent-1", AmountMinor: 1000})
		env.UpdateWorkflow(workflows.UpdateTeamRelease, "", &testsuite.TestUpdateCallback{OnReject: func(error) {}, OnComplete: func(any, error) {}},
			workflows.TeamReleaseRequest{AuthorizationID: "late"})
	}, 4*time.Minute)
	env.RegisterDelayedCallback(func() { query(&afterRelease) }, 5*time.Minute)
	env.RegisterDelayedCallback(func() { query(&nextDay) }, 15*time.Hour)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 16*time.Hour)
	env.ExecuteWorkflow(workflows.TeamWorkflowType, workflows.TeamInput{TeamPolicy: workflows.TeamPolicy{TeamID: "research", DailyLimitUSD: 10000}})

	approved := 0
	for _, r := range first {
		if !r.done || r.err != nil {
			t.Fatalf("reserve: %+v", r)
		}
		if r.res.Approved {
			approved++
		}
	}
	if approved != 4 {
		t.Fatalf("%d reservations of 25.00 approved against 100.00, want 4", approved)
	}
	if afterEvents.SpentTodayUSD.String() != "100.00" || afterEvents.ReservedUSD.String() != "0.00" || len(afterEvents.Members) != 3 {
		t.Fatalf("after the events: %+v", afterEvents)
	}
	if afterRelease.ReservedUSD.String() != "0.00" {
		t.Fatalf("after release: %+v", afterRelease)
	}
	if nextDay.SpentTodayUSD.String() != "0.00" || nextDay.RemainingTodayUSD.String() != "100.00" {
		t.Fatalf("next day: %+v", nextDay)
	}
}

func TestTeamPolicyNamesBadFields(t *testing.T) {
	_, err := workflows.TeamPolicy{TeamID: "bad id!", DailyLimitUSD: -1, Timezone: "Mars/Base"}.Normalize()
	if err == nil {
		t.Fatal("bad team policy accepted")
	}
	for _, f := range []string{"team.team_id", "team.daily_limit_usd", "team.timezone"} {
		if !containsField(err, f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

func containsField(err error, field string) bool {
	fe, ok := err.(workflows.FieldErrors)
	if !ok {
		return false
	}
	for _, e := range fe {
		if e.Field == field {
			return true
		}
	}
	return false
}
