package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
)

var budgetT0 = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func ev(kind cardwarden.EventKind, auth string, amount int64, approved bool) cardwarden.Event {
	return cardwarden.Event{ID: string(kind) + auth, Kind: kind, AuthorizationID: auth, AmountMinor: amount, Approved: approved,
		CardID: "c1", OccurredAt: budgetT0.Add(time.Hour)}
}

func TestBudgetSpendAndOverspend(t *testing.T) {
	var b Budget
	b.StartPeriod(budgetT0, time.UTC, 5000, nil)
	steps := []struct {
		ev                cardwarden.Event
		spent, over, want int64
		usage             int64
	}{
		{ev(cardwarden.KindAuthorization, "a1", 1000, true), 1000, 0, 1000, 1000},
		{ev(cardwarden.KindAuthorization, "a2", 500, false), 0, 0, 1000, 0},    // declined: no spend
		{ev(cardwarden.KindCapture, "a1", 1200, true), 200, 200, 1200, 200},    // over-capture (tip)
		{ev(cardwarden.KindAuthorization, "a3", 800, true), 800, 0, 2000, 800}, // hold
		{ev(cardwarden.KindCapture, "a3", 600, true), 0, 0, 2000, -200},        // partial capture: the approval stays spent
		{ev(cardwarden.KindAuthorization, "a4", 300, true), 300, 0, 2300, 300}, // hold
		{ev(cardwarden.KindReversal, "a4", 300, true), -300, 0, 2000, -300},    // reversed in its own period
		{ev(cardwarden.KindForceCapture, "", 700, true), 700, 700, 2700, 700},  // no authorization at all
		{ev(cardwarden.KindRefund, "", 400, true), 0, 0, 2700, -400},           // a refund is no allowance
		{ev(cardwarden.KindCapture, "zz", 100, true), 0, 0, 2700, 100},         // capture of an authorization not seen yet
		{ev(cardwarden.KindAuthorization, "zz", 100, true), 100, 0, 2800, 0},   // the late authorization counts once
	}
	for i, s := range steps {
		d := b.Apply(s.ev, nil)
		if d.Spent != s.spent || d.Overspend != s.over || b.SpentTodayMinor != s.want || d.Usage != s.usage {
			t.Fatalf("step %d (%s %s): delta %+v today %d; want spent %d over %d usage %d today %d",
				i, s.ev.Kind, s.ev.AuthorizationID, d, b.SpentTodayMinor, s.spent, s.over, s.usage, s.want)
		}
	}
	if b.OverspendTodayMinor != 900 || b.ApprovedNet() != 1900 {
		t.Fatalf("overspend today %d, approved net %d; want 900 and 1900", b.OverspendTodayMinor, b.ApprovedNet())
	}
}

func TestBudgetRemainingAndMonthlyCap(t *testing.T) {
	var b Budget
	b.StartPeriod(time.Date(2027, 1, 30, 0, 0, 0, 0, time.UTC), time.UTC, 2500, nil)
	e := ev(cardwarden.KindAuthorization, "a", 2000, true)
	e.OccurredAt = time.Date(2027, 1, 30, 1, 0, 0, 0, time.UTC)
	b.Apply(e, nil)
	if r := b.RemainingToday(2500, 0); r != 500 {
		t.Fatalf("remaining %d", r)
	}
	b.SpentMonthMinor = 29000
	if r := b.RemainingToday(2500, 30000); r != 500 {
		t.Fatalf("monthly cap: remaining %d", r)
	}
	b.SpentMonthMinor = 29800
	if r := b.RemainingToday(2500, 30000); r != 200 {
		t.Fatalf("monthly cap binds: remaining %d", r)
	}
	b.StartPeriod(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), time.UTC, 2500, nil)
	if b.SpentTodayMinor != 0 || b.SpentMonthMinor != 29800 {
		t.Fatalf("same month keeps month spend: %+v", b)
	}
	b.StartPeriod(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), time.UTC, 2500, nil)
	if b.SpentMonthMinor != 0 || b.RemainingToday(2500, 30000) != 2500 {
		t.Fatalf("new month: %+v", b)
	}
	big := ev(cardwarden.KindAuthorization, "big", 9999, true)
	big.OccurredAt = time.Date(2027, 2, 1, 1, 0, 0, 0, time.UTC)
	b.Apply(big, nil)
	if b.RemainingToday(2500, 30000) != 0 {
		t.Fatal("remaining never negative")
	}
}

// Yesterday's hold reversed and yesterday's capture refunded after the reset give today no
// extra allowance (leak 5), and an event that happened after the reset instant but arrived
// before the reset ran still counts in the new period.
func TestBudgetCreditsFromAnEarlierPeriod(t *testing.T) {
	day1, day2 := budgetT0, budgetT0.Add(24*time.Hour)
	at := func(t time.Time, h int) time.Time { return t.Add(time.Duration(h) * time.Hour) }
	var b Budget
	b.StartPeriod(day1, time.UTC, 1000, nil)
	hold := ev(cardwarden.KindAuthorization, "h", 500, true)
	hold.OccurredAt = at(day1, 10)
	buy := ev(cardwarden.KindAuthorization, "b", 500, true)
	buy.OccurredAt = at(day1, 11)
	capture := ev(cardwarden.KindCapture, "b", 500, true)
	capture.OccurredAt = at(day1, 12)
	early := ev(cardwarden.KindAuthorization, "early", 100, true)
	early.OccurredAt = at(day2, 0).Add(time.Second) // after the reset instant, processed before the reset ran
	for _, e := range []cardwarden.Event{hold, buy, capture, early} {
		b.Apply(e, nil)
	}
	b.StartPeriod(day2, time.UTC, 1000, nil)
	if b.SpentTodayMinor != 100 {
		t.Fatalf("new period starts with %d, want the 100 approved after its start", b.SpentTodayMinor)
	}
	rev := ev(cardwarden.KindReversal, "h", 500, true)
	rev.OccurredAt = at(day2, 1)
	refund := ev(cardwarden.KindRefund, "", 500, true)
	refund.OccurredAt = at(day2, 2)
	for _, e := range []cardwarden.Event{rev, refund} {
		if d := b.Apply(e, nil); d.Spent != 0 || d.Usage != -500 {
			t.Fatalf("%s: delta %+v, want no spend and usage -500", e.Kind, d)
		}
	}
	if r := b.RemainingToday(1000, 0); r != 900 {
		t.Fatalf("remaining %d after yesterday's credits, want 900", r)
	}
}

func TestThresholds(t *testing.T) {
	var b Budget
	b.SpentTodayMinor = 2000
	if got := b.CrossedThresholds(2500, []int{50, 80, 100}, []int{50}); !slices.Equal(got, []int{80}) {
		t.Fatalf("got %v", got)
	}
}

func TestLimitPlan(t *testing.T) {
	all := issuer.Capabilities{LimitIntervals: []issuer.Interval{issuer.Daily, issuer.AllTime}, UpdatableLimits: true}
	if got := LimitPlan(all, 1234, 2500); !slices.Equal(got, []issuer.SpendLimit{{AmountMinor: 3734, Interval: issuer.AllTime}}) {
		t.Fatalf("all_time: %v", got)
	}
	daily := issuer.Capabilities{LimitIntervals: []issuer.Interval{issuer.Daily}, LimitGranularityMinor: 100}
	if got := LimitPlan(daily, 1234, 2550); !slices.Equal(got, []issuer.SpendLimit{{AmountMinor: 2500, Interval: issuer.Daily}}) {
		t.Fatalf("daily, whole dollars rounded down: %v", got)
	}
	if got := CapPlan(all); !slices.Equal(got, []issuer.SpendLimit{{AmountMinor: 0, Interval: issuer.AllTime}}) {
		t.Fatalf("cap: %v", got)
	}
}

// A reversal in a later period of an earlier period's hold is no more allowance for the month
// than for the day (found by the model test: a month's approvals passed its cap).
func TestBudgetMonthNetsOnlyEachPeriodsOwnReversals(t *testing.T) {
	daily := func(t time.Time) time.Time { return t.Truncate(24 * time.Hour).Add(24 * time.Hour) }
	day1 := time.Date(2027, 3, 10, 0, 0, 0, 0, time.UTC)
	var b Budget
	b.StartPeriod(day1, time.UTC, 1000, daily)
	at := func(h int) time.Time { return day1.Add(time.Duration(h) * time.Hour) }
	a := ev(cardwarden.KindAuthorization, "a", 600, true)
	a.OccurredAt = at(1)
	same := ev(cardwarden.KindAuthorization, "s", 200, true)
	same.OccurredAt = at(2)
	sameRev := ev(cardwarden.KindReversal, "s", 200, true)
	sameRev.OccurredAt = at(3)
	b.Apply(a, daily)
	b.Apply(same, daily)
	b.Apply(sameRev, daily)
	if b.SpentMonthMinor != 600 {
		t.Fatalf("month %d after a same-day reversal, want 600", b.SpentMonthMinor)
	}
	b.StartPeriod(day1.Add(24*time.Hour), time.UTC, 1000, daily)
	late := ev(cardwarden.KindReversal, "a", 600, true)
	late.OccurredAt = at(25)
	b.Apply(late, daily)
	if b.SpentMonthMinor != 600 || b.SpentTodayMinor != 0 {
		t.Fatalf("month %d, today %d after yesterday's hold was reversed today; want 600 and 0", b.SpentMonthMinor, b.SpentTodayMinor)
	}
	if r := b.RemainingToday(1000, 1000); r != 400 {
		t.Fatalf("remaining %d, want the monthly 4.00", r)
	}
}
