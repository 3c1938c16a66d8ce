package workflows_test

import (
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// Agents that share a reset instant wake to apply it at points spread over the ten seconds
// after it, so the instant does not queue a workflow task per agent at once; each applies its
// reset within the window.
func TestResetsSpreadOverTheWindowAfterTheInstant(t *testing.T) {
	probes := []time.Duration{time.Millisecond, 2500 * time.Millisecond, 5 * time.Second, 7500 * time.Millisecond, 10*time.Second + time.Millisecond}
	firstReset := map[time.Duration]int{} // probe → agents first seen reset there
	for i := range 20 {
		agent := fmt.Sprintf("spread-%02d", i)
		h := newHarness(t, newFake(), sunday) // midnight is 14 hours after the start
		h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(agent), TaskQueue: workflows.TaskQueue})
		resets := make([]int, len(probes))
		for j, p := range probes {
			h.at(14*time.Hour+p, func() { resets[j] = h.state().Resets })
		}
		h.run(fmt.Sprintf(`{"agent_id":%q,"daily_limit_usd":25,"rotate_cron":"off",%s}`, agent, retireAt(midnight.Add(time.Minute))))
		for j, n := range resets {
			if n == 1 {
				firstReset[probes[j]]++
				break
			}
			if j == len(resets)-1 {
				t.Fatalf("%s: not reset 10 s after the instant (resets seen %v)", agent, resets)
			}
		}
	}
	if len(firstReset) < 3 {
		t.Errorf("20 agents applied their resets at %v (by probe), want them spread over the window", firstReset)
	}
}

// A fleet that sets reset_spread spreads its wakes over that window instead: some of 20 agents
// apply the reset past the default ten seconds, and every one within the minute it set.
func TestResetSpreadFromThePolicy(t *testing.T) {
	probes := []time.Duration{time.Millisecond, 10*time.Second + time.Millisecond, 30 * time.Second, 45 * time.Second, time.Minute + time.Millisecond}
	firstReset := map[time.Duration]int{}
	for i := range 20 {
		agent := fmt.Sprintf("wide-%02d", i)
		h := newHarness(t, newFake(), sunday)
		h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(agent), TaskQueue: workflows.TaskQueue})
		resets := make([]int, len(probes))
		for j, p := range probes {
			h.at(14*time.Hour+p, func() { resets[j] = h.state().Resets })
		}
		h.run(fmt.Sprintf(`{"agent_id":%q,"daily_limit_usd":25,"rotate_cron":"off","reset_spread":"1m",%s}`, agent, retireAt(midnight.Add(2*time.Minute))))
		if resets[len(resets)-1] != 1 {
			t.Fatalf("%s: not reset a minute after the instant (resets seen %v)", agent, resets)
		}
		for j, n := range resets {
			if n == 1 {
				firstReset[probes[j]]++
				break
			}
		}
	}
	late := 0
	for p, n := range firstReset {
		if p > 10*time.Second+time.Millisecond {
			late += n
		}
	}
	if late == 0 || len(firstReset) < 3 {
		t.Errorf("20 agents with reset_spread 1m applied their resets at %v (by probe): want them over the minute, some after 10 s", firstReset)
	}
}

// A purchase right after the instant, before the agent's own wake, applies the reset first and
// counts in the new period.
func TestEventAfterTheInstantAppliesTheResetFirst(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var st workflows.StateView
	h.at(14*time.Hour+time.Millisecond, func() { h.signal(approved("e1", "card-1", midnight.Add(time.Millisecond), 700)) })
	h.at(14*time.Hour+2*time.Millisecond, func() { st = h.state() })
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(midnight.Add(time.Minute))))
	if st.Resets != 1 || st.Budget.Day != "2027-01-04" || st.Budget.SpentTodayUSD.String() != "7.00" {
		t.Fatalf("after a purchase 1 ms past the reset: resets %d, budget %+v", st.Resets, st.Budget)
	}
}
