package workflows_test

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden/workflows"
)

// continued returns the input of the next run if the execution continued as new.
func continued(t *testing.T, h *harness) (workflows.Input, bool) {
	t.Helper()
	var can *workflow.ContinueAsNewError
	if !errors.As(h.env.GetWorkflowError(), &can) {
		return workflows.Input{}, false
	}
	if can.WorkflowType.Name != workflows.WorkflowType {
		t.Fatalf("continued as %q", can.WorkflowType.Name)
	}
	var next workflows.Input
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode continue-as-new input: %v", err)
	}
	return next, true
}

func TestContinueAsNewDrainsSignalsAndCarriesState(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	h.at(time.Hour, func() {
		h.env.SetContinueAsNewSuggested(true)
		// Two signals land in the buffer without a workflow task of their own, a third
		// triggers the task that decides to continue as new: all three must be carried.
		h.env.SignalWorkflowSkippingWorkflowTask(workflows.SignalCardEvent, approved("s1", "card-1", sunday.Add(time.Hour), 100))
		h.env.SignalWorkflowSkippingWorkflowTask(workflows.SignalCardEvent, approved("s2", "card-1", sunday.Add(time.Hour), 200))
		h.signal(approved("s3", "card-1", sunday.Add(time.Hour), 300))
	})
	h.run(policyJSON(retireAt(sunday.Add(3 * time.Hour))))
	next, ok := continued(t, h)
	if !ok {
		t.Fatalf("did not continue as new: %v", h.env.GetWorkflowError())
	}
	st := next.State
	if st == nil || st.SignalsTotal != 3 || st.Budget.SpentTodayMinor != 600 || st.Run != 2 {
		t.Fatalf("carried state: %+v", st)
	}
	if st.Card == nil || st.Card.ID != "card-1" || st.Card.UsageMinor != 600 || st.Generation != 1 || len(st.Seen) != 3 {
		t.Fatalf("carried card: %+v", st)
	}
	if next.AgentID != "demo" || next.Policy.RetireAt == nil {
		t.Fatalf("carried policy: %+v", next.Policy)
	}

	// The next run picks up where the last one stopped: no new card, duplicates ignored.
	h2 := newHarness(t, f, sunday.Add(time.Hour))
	var view workflows.StateView
	h2.at(time.Minute, func() { h2.signal(approved("s2", "card-1", sunday.Add(time.Hour), 200)) }) // redelivered
	h2.at(2*time.Minute, func() { view = h2.state() })
	h2.env.ExecuteWorkflow(workflows.WorkflowType, next)
	if view.Run != 2 || view.SignalsTotal != 4 || view.Budget.SpentTodayUSD.String() != "6.00" || view.Card.ID != "card-1" {
		t.Fatalf("second run: %+v", view)
	}
	f.lock(func() {
		if len(f.issued) != 1 || len(f.agents) != 1 {
			t.Fatalf("the continued run must not start over: issued %d, agents %d", len(f.issued), len(f.agents))
		}
	})
	if r := h2.result(); r.SignalsTotal != 4 {
		t.Fatalf("result: %+v", r)
	}
}

func TestResetsAtLocalMidnightAcrossDST(t *testing.T) {
	cases := []struct {
		name  string
		start time.Time
		want  []string
	}{
		// Spring forward on Sunday 14 March 2027: midnight is 05:00Z before, 04:00Z after.
		{"march", time.Date(2027, 3, 13, 17, 0, 0, 0, time.UTC), []string{"2027-03-14T05:00:00Z", "2027-03-15T04:00:00Z", "2027-03-16T04:00:00Z"}},
		// Fall back on Sunday 7 November 2027: 04:00Z before, 05:00Z after.
		{"november", time.Date(2027, 11, 6, 16, 0, 0, 0, time.UTC), []string{"2027-11-07T04:00:00Z", "2027-11-08T05:00:00Z", "2027-11-09T05:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake()
			h := newHarness(t, f, c.start)
			days := map[string]string{}
			for _, w := range c.want {
				at, _ := time.Parse(time.RFC3339, w)
				h.at(at.Sub(c.start)+time.Minute, func() { days[w] = h.state().Budget.Day })
			}
			h.run(policyJSON(`"timezone":"America/New_York","rotate_cron":"off",` + retireAt(c.start.Add(72*time.Hour))))
			f.lock(func() {
				if len(f.reconciles) != len(c.want) {
					t.Fatalf("%d reconciliations, want one before each of %d resets", len(f.reconciles), len(c.want))
				}
				for i, r := range f.reconciles {
					if reset, _ := time.Parse(time.RFC3339, c.want[i]); !inLeadBefore(r.Until, reset) {
						t.Errorf("reconciliation %d at %s, want in the 15 minutes before the reset at %s", i, r.Until.UTC().Format(time.RFC3339), c.want[i])
					}
				}
			})
			for _, w := range c.want {
				at, _ := time.Parse(time.RFC3339, w)
				ny, _ := workflows.LoadLocation("America/New_York")
				if want := at.In(ny).Format("2006-01-02"); days[w] != want {
					t.Errorf("budget day after the reset at %s is %q, want %q", w, days[w], want)
				}
			}
			if r := h.result(); r.Resets != 3 {
				t.Fatalf("resets: %d", r.Resets)
			}
		})
	}
}
