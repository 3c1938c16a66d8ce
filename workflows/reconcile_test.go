package workflows_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// midnight is the first reset after sunday (10:00 UTC) under the default reset_cron.
var midnight = time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)

// A fleet whose resets fall on one instant reconciles at points spread over the lead before
// it, so the reset instant carries only the limit updates.
func TestReconciliationSpreadsAgentsOverTheLeadBeforeTheReset(t *testing.T) {
	var points []time.Time
	for i := range 20 {
		agent := fmt.Sprintf("agent-%02d", i)
		f := newFake()
		h := newHarness(t, f, sunday)
		h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(agent), TaskQueue: workflows.TaskQueue})
		h.run(fmt.Sprintf(`{"agent_id":%q,"daily_limit_usd":25,"rotate_cron":"off",%s}`, agent, retireAt(midnight.Add(30*time.Minute))))
		if r := h.result(); r.Resets != 1 {
			t.Fatalf("%s: %d resets", agent, r.Resets)
		}
		f.lock(func() {
			if len(f.reconciles) != 1 || !inLeadBefore(f.reconciles[0].Until, midnight) {
				t.Fatalf("%s: reconciliations %+v, want one in the 15 minutes before %s", agent, f.reconciles, midnight)
			}
			points = append(points, f.reconciles[0].Until)
		})
	}
	slices.SortFunc(points, func(a, b time.Time) int { return a.Compare(b) })
	if spanned := points[len(points)-1].Sub(points[0]); spanned < 10*time.Minute {
		t.Errorf("20 agents reconcile within %s of each other, want them spread over most of the 15-minute lead", spanned)
	}
	if distinct := len(slices.CompactFunc(points, func(a, b time.Time) bool { return a.Equal(b) })); distinct < 18 {
		t.Errorf("only %d distinct reconciliation points among 20 agents", distinct)
	}
}

// An agent started inside its lead does not reconcile the few minutes it has lived; the next
// day's reconciliation reads from its start, so nothing goes unread.
func TestAgentStartedInsideTheLeadReconcilesAtTheNextReset(t *testing.T) {
	f := newFake()
	start := midnight.Add(-time.Minute)
	h := newHarness(t, f, start)
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(midnight.Add(24*time.Hour+30*time.Minute))))
	if r := h.result(); r.Resets != 2 {
		t.Fatalf("resets: %d", r.Resets)
	}
	f.lock(func() {
		if len(f.reconciles) != 1 {
			t.Fatalf("reconciliations: %+v, want only the one before the second reset", f.reconciles)
		}
		r := f.reconciles[0]
		if !inLeadBefore(r.Until, midnight.Add(24*time.Hour)) || !r.Since.Equal(start.Add(-time.Hour)) {
			t.Fatalf("reconciliation %+v: want since %s (start less the overlap), in the lead before %s", r, start.Add(-time.Hour), midnight.Add(24*time.Hour))
		}
		if len(f.limits) != 2 {
			t.Fatalf("limit updates: %d, want one per reset", len(f.limits))
		}
	})
}

// A reconciliation that fails alerts, is tried once per reset (not in a loop), does not hold
// up the reset, and the next one reads from the last successful point.
func TestFailedReconciliationAlertsAndTheResetStillHappens(t *testing.T) {
	f := newFake()
	f.failReconcile = true
	h := newHarness(t, f, sunday)
	h.run(policyJSON(`"rotate_cron":"off",` + retireAt(midnight.Add(24*time.Hour+30*time.Minute))))
	if r := h.result(); r.Resets != 2 {
		t.Fatalf("resets: %d", r.Resets)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertReconcileFailed) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
	f.lock(func() {
		if len(f.reconciles) != 2 {
			t.Fatalf("%d reconciliation attempts, want one before each of 2 resets", len(f.reconciles))
		}
		for i, r := range f.reconciles {
			if !r.Since.Equal(sunday.Add(-time.Hour)) {
				t.Errorf("attempt %d reads since %s, want %s (nothing reconciled yet)", i, r.Since, sunday.Add(-time.Hour))
			}
		}
		if len(f.limits) != 2 {
			t.Fatalf("limit updates: %d, want one per reset", len(f.limits))
		}
	})
}
