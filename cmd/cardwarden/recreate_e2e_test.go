package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/money"
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
