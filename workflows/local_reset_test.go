package workflows_test

import (
	"slices"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/workflows"
)

// A reset's limit update is tried in the workflow's worker first (UpdateLimitNow); only what
// that did not apply goes to the paced issuer queue, and the card gets the limit exactly once
// either way.
func TestResetLimitTriedLocallyThenOnThePacedQueue(t *testing.T) {
	resetAt := time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)
	want := []issuer.SpendLimit{{AmountMinor: 2500, Interval: issuer.AllTime}}
	for _, c := range []struct {
		name      string
		refused   bool // the worker's share has no room
		failFirst bool // the local try's issuer call fails
		wantQueue bool // UpdateLimit scheduled on the issuer queue
	}{
		{name: "applied in the waking task"},
		{name: "no room: the paced queue", refused: true, wantQueue: true},
		{name: "local call failed: the paced queue", failFirst: true, wantQueue: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake()
			f.localRefused = c.refused
			if c.failFirst {
				f.failLimit = map[string]int{"card-1": 1}
			}
			h := newHarness(t, f, sunday)
			var after workflows.StateView
			h.at(14*time.Hour+time.Minute, func() { after = h.state() })
			h.run(policyJSON(`"rotate_cron":"off",` + retireAt(sunday.Add(15*time.Hour))))

			if after.Resets != 1 || after.Budget.RemainingTodayUSD.String() != "25.00" {
				t.Fatalf("after the reset: %+v", after)
			}
			f.lock(func() {
				if len(f.limits) != 1 || !slices.Equal(f.limits[0].Limits, want) || !f.limits[0].ResetAt.Equal(resetAt) {
					t.Fatalf("limits set: %+v, want %v once for the reset at %s", f.limits, want, resetAt)
				}
				if got := f.queues[workflows.ActivityUpdateLimitNow]; len(got) != 1 {
					t.Fatalf("local tries: %v, want one", got)
				}
				queued := f.queues[workflows.ActivityUpdateLimit]
				if c.wantQueue != (len(queued) == 1 && queued[0] == workflows.IssuerTaskQueue) || len(queued) > 1 {
					t.Fatalf("UpdateLimit scheduled on %v; want the issuer queue: %v", queued, c.wantQueue)
				}
			})
		})
	}
}
