package workflows_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// scheduled is one thing the simulated world does to the agent at a given instant.
type scheduled struct {
	at        time.Time
	ev        *cardwarden.Event // a card-event signal
	unfreeze  bool              // a human's unfreeze update
	check     bool              // a query of today's spend
	delivered bool
}

// historyCount estimates a run's history length from the outside, from what the test
// environment reports: every signal, update, activity, local activity and timer, each with
// the workflow task it causes. It is independent of the workflow's own estimate.
type historyCount struct {
	signals, updates, activities, locals, timers, timersFired, timersCanceled atomic.Int64
}

func (c *historyCount) total() int64 {
	return 4 + // started + first workflow task
		c.signals.Load()*(1+3) + c.updates.Load()*(2+3) + c.activities.Load()*(3+3) + c.locals.Load() +
		c.timers.Load() + c.timersFired.Load()*(1+3) + c.timersCanceled.Load() +
		2 // the task that completes or continues as new
}

func (h *harness) countHistory() *historyCount {
	c := &historyCount{}
	h.env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { c.activities.Add(1) })
	h.env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { c.locals.Add(1) })
	h.env.SetOnTimerScheduledListener(func(string, time.Duration) { c.timers.Add(1) })
	h.env.SetOnTimerFiredListener(func(string) { c.timersFired.Add(1) })
	h.env.SetOnTimerCanceledListener(func(string) { c.timersCanceled.Add(1) })
	return c
}

// TestSimulatedYear runs one agent in America/New_York through 2027: 365 daily resets, 52
// weekly rotations, 12 decline bursts each unfrozen by a human, and about 5,200 card events
// (3,000 of them declines) across as many runs as continue-as-new makes.
func TestSimulatedYear(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated year skipped in -short mode")
	}
	ny, _ := workflows.LoadLocation("America/New_York")
	start := time.Date(2027, 1, 1, 0, 30, 0, 0, ny).UTC()
	end := time.Date(2028, 1, 1, 0, 30, 0, 0, ny).UTC()
	local := func(day time.Time, h, m int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), h, m, 17, 0, ny).UTC() // :17 s never ties a workflow timer
	}

	var items []*scheduled
	add := func(at time.Time, ev *cardwarden.Event) { items = append(items, &scheduled{at: at, ev: ev}) }
	declines := 0
	for d := time.Date(2027, 1, 1, 0, 0, 0, 0, ny); d.Year() == 2027; d = d.AddDate(0, 0, 1) {
		tag := d.Format("0102")
		for i, h := range []int{9, 11, 14, 16} { // 4 × 3.00 authorized
			e := approved(fmt.Sprintf("a%s-%d", tag, i), "card-x", local(d, h, 0), 300)
			add(local(d, h, 0), &e)
		}
		add(local(d, 12, 30), &cardwarden.Event{ID: "c" + tag + "-0", Kind: cardwarden.KindCapture, CardID: "card-x",
			AuthorizationID: fmt.Sprintf("auth-a%s-0", tag), Approved: true, AmountMinor: 300, OccurredAt: local(d, 12, 30)})
		add(local(d, 18, 0), &cardwarden.Event{ID: "c" + tag + "-2", Kind: cardwarden.KindCapture, CardID: "card-x", // +0.50 tip
			AuthorizationID: fmt.Sprintf("auth-a%s-2", tag), Approved: true, AmountMinor: 350, OccurredAt: local(d, 18, 0)})
		for i := range 8 { // spread out: never a burst
			e := decline(fmt.Sprintf("d%s-%d", tag, i), "card-x", local(d, 1+3*i, 15), cardwarden.ReasonSpendingLimit)
			add(local(d, 1+3*i, 15), &e)
			declines++
		}
		if d.Weekday() == time.Wednesday { // a webhook delivered twice
			e := approved(fmt.Sprintf("a%s-0", tag), "card-x", local(d, 9, 0), 300)
			add(local(d, 20, 0), &e)
		}
		if d.Day() == 10 { // a burst of 6 declines in 25 s, unfrozen by a human an hour later
			for i := range 6 {
				at := local(d, 21, 0).Add(time.Duration(i) * 5 * time.Second)
				e := decline(fmt.Sprintf("b%s-%d", tag, i), "card-x", at, cardwarden.ReasonMerchantBlocked)
				add(at, &e)
				declines++
			}
			items = append(items, &scheduled{at: local(d, 22, 0), unfreeze: true})
		}
		items = append(items, &scheduled{at: local(d, 23, 0), check: true})
	}
	slices.SortStableFunc(items, func(a, b *scheduled) int { return a.at.Compare(b.at) })

	f := newFake()
	var input any = rawJSON(policyJSON(`"timezone":"America/New_York",` + retireAt(end)))
	runStart := start
	var result workflows.Result
	var runs int
	var delivered, unfreezes int64
	var badDays []string
	for {
		runs++
		if runs > 50 {
			t.Fatal("too many runs")
		}
		h := newHarness(t, f, runStart)
		count := h.countHistory()
		// The test environment buffers only so many delayed callbacks, so each delivery
		// schedules the next one.
		deliver := func(it *scheduled) {
			switch {
			case it.ev != nil:
				h.signal(*it.ev)
				count.signals.Add(1)
				delivered++
			case it.unfreeze:
				r := h.update(workflows.UpdateUnfreeze, workflows.ReasonRequest{Reason: "burst reviewed", Actor: "ops"})
				count.updates.Add(1)
				unfreezes++
				h.at(time.Second, func() {
					if r.rejected != nil || r.err != nil {
						t.Errorf("unfreeze at %s: %v %v", it.at, r.rejected, r.err)
					}
				})
			case it.check:
				if s := h.state(); s.Budget.SpentTodayUSD.String() != "12.50" || s.Budget.OverspendTodayUSD.String() != "0.50" {
					badDays = append(badDays, fmt.Sprintf("%s: spent %s overspend %s", it.at.In(ny).Format("2006-01-02"),
						s.Budget.SpentTodayUSD, s.Budget.OverspendTodayUSD))
				}
			}
			it.delivered = true
		}
		var feed func(now time.Time)
		feed = func(now time.Time) {
			for _, it := range items {
				if it.delivered {
					continue
				}
				h.env.RegisterDelayedCallback(func() {
					if h.env.IsWorkflowCompleted() {
						return
					}
					deliver(it)
					feed(h.env.Now())
				}, max(it.at.Sub(now), time.Millisecond))
				return
			}
		}
		feed(runStart)
		h.env.ExecuteWorkflow(workflows.WorkflowType, input)
		if n := count.total(); n > 10_000 {
			t.Errorf("run %d: estimated history %d events > 10,000", runs, n)
		}
		t.Logf("run %d from %s: %d signals, ~%d history events", runs, runStart.In(ny).Format("2006-01-02 15:04"), count.signals.Load(), count.total())
		if next, ok := continued(t, h); ok {
			input = next
			runStart = h.env.Now()
			continue
		}
		result = h.result()
		break
	}

	if len(badDays) > 0 {
		t.Errorf("%d days with wrong spend, e.g. %v", len(badDays), badDays[:min(3, len(badDays))])
	}
	if runs < 3 {
		t.Errorf("only %d runs: continue-as-new did not happen as often as it should", runs)
	}
	for _, it := range items {
		if !it.delivered {
			t.Fatalf("not delivered: %+v", it)
		}
	}
	if result.SignalsTotal != delivered {
		t.Errorf("signals counted %d, delivered %d", result.SignalsTotal, delivered)
	}
	if declines < 2_900 {
		t.Errorf("only %d declines", declines)
	}
	if result.Resets != 365 || result.Rotations != 52 || result.Generation != 53 {
		t.Errorf("result: %+v", result)
	}
	f.lock(func() {
		// One reconciliation in the lead before each local midnight, none skipped, none
		// doubled (the days' spend above shows each reset itself landed on its midnight).
		var beforeReset []workflows.ReconcileInput
		for _, r := range f.reconciles {
			if r.Reason == workflows.ReconcileBeforeReset {
				beforeReset = append(beforeReset, r)
			}
		}
		if len(beforeReset) != 365 {
			t.Errorf("%d reconciliations before a reset", len(beforeReset))
		}
		for i, r := range beforeReset {
			if reset := time.Date(2027, 1, 2+i, 0, 0, 0, 0, ny); !inLeadBefore(r.Until, reset) {
				t.Fatalf("reconciliation %d at %s, want in the 15 minutes before %s", i, r.Until.In(ny), reset)
			}
		}
		// Consecutive generations, each issued once.
		for i, in := range f.issued {
			if in.Generation != i+1 || in.IdempotencyKey != workflows.IdempotencyKey("agent/demo", i+1) {
				t.Fatalf("issue %d: generation %d key %s", i, in.Generation, in.IdempotencyKey)
			}
		}
		if len(f.issued) != 53 || len(f.cards) != 53 {
			t.Errorf("issued %d, cards %d", len(f.issued), len(f.cards))
		}
		if len(f.paused) != 12 || len(f.resumed) != 12 || unfreezes != 12 {
			t.Errorf("paused %d, resumed %d, unfreezes %d", len(f.paused), len(f.resumed), unfreezes)
		}
		// Every card but the last was closed after its grace period; the last at retirement.
		if len(f.closed) != 53 {
			t.Errorf("closed %d cards", len(f.closed))
		}
		overspend := 0
		for _, a := range f.alerts {
			if a.Kind == workflows.AlertOverspend {
				overspend++
			}
		}
		if overspend != 365 {
			t.Errorf("%d overspend alerts, want one a day", overspend)
		}
	})
}
