package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// An agent created again at once after its retire gets a new run with a new card. The retired
// run goes on for a moment after the retire is answered (its last alerts, closing its card);
// a create in that moment used to be answered with that finishing run, as if the agent existed,
// and the agent ended right after ("no card, status retired" in the model test).
func TestCreateAgainRightAfterRetire(t *testing.T) {
	e := newE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := workflows.Policy{AgentID: "again", DailyLimitUSD: money.MustParse("20")}
	a, err := e.ctl.StartAgent(ctx, p)
	require.NoError(t, err)
	e.waitCard(a.AgentID, 1)
	runs := map[string]bool{a.RunID: true}
	for round := range 5 {
		_, err := e.ctl.Retire(ctx, a.AgentID, workflows.ReasonRequest{Reason: "again"})
		require.NoError(t, err, "round %d", round)
		again, err := e.ctl.StartAgent(ctx, p)
		require.NoError(t, err, "round %d", round)
		require.True(t, again.Created, "round %d: the create returned the retired run %s", round, again.RunID)
		require.False(t, runs[again.RunID], "round %d: run %s again", round, again.RunID)
		runs[again.RunID] = true
		st := e.waitState(a.AgentID, "a card on the new run", func(v workflows.StateView) bool {
			return v.Status == workflows.StatusActive && v.Card != nil
		})
		require.Equal(t, workflows.StatusActive, st.Status)
	}
}

// Eight creates of one new agent at once (an orchestrator retrying, two operators) make one
// workflow run and one card at the simulator: one call is answered "created", the others get
// the same run. The start is one call now (no describe first), so the conflict is the server's
// to decide.
func TestConcurrentCreatesMakeOneAgent(t *testing.T) {
	e := newE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := e.sim.Stats().CardsCreated
	p := workflows.Policy{AgentID: "twice", DailyLimitUSD: money.MustParse("20")}
	const n = 8
	agents := make([]starter.Agent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agents[i], errs[i] = e.ctl.StartAgent(ctx, p)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		require.NoError(t, errs[i], "call %d", i)
		require.Equal(t, agents[0].RunID, agents[i].RunID, "call %d got another run", i)
		if agents[i].Created {
			created++
		}
	}
	require.Equal(t, 1, created, "exactly one call starts the agent")
	e.waitCard(p.AgentID, 1)
	e.settle()
	require.EqualValues(t, 1, e.sim.Stats().CardsCreated-before, "one card at the simulator")
}
