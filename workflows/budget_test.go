package workflows

import (
	"slices"
	"testing"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

func ev(kind issuer.EventKind, auth string, amount int64, approved bool) issuer.Event {
	return issuer.Event{ID: string(kind) + auth, Kind: kind, AuthorizationID: auth, AmountMinor: amount, Approved: approved, CardID: "c1"}
}

func TestBudgetSpendAndOverspend(t *testing.T) {
	var b Budget
	b.StartDay("2027-01-01", "2027-01")
	steps := []struct {
		ev                issuer.Event
		spent, over, want int64
	}{
		{ev(issuer.KindAuthorization, "a1", 1000, true), 1000, 0, 1000},
		{ev(issuer.KindAuthorization, "a2", 500, false), 0, 0, 1000},  // declined: no spend
		{ev(issuer.KindCapture, "a1", 1200, true), 200, 200, 1200},    // over-capture (tip)
		{ev(issuer.KindAuthorization, "a3", 800, true), 800, 0, 2000}, // hold
		{ev(issuer.KindCapture, "a3", 600, true), -200, 0, 1800},      // partial capture releases the rest
		{ev(issuer.KindAuthorization, "a4", 300, true), 300, 0, 2100}, // hold
		{ev(issuer.KindReversal, "a4", 300, true), -300, 0, 1800},     // reversed
		{ev(issuer.KindForceCapture, "", 700, true), 700, 700, 2500},  // no authorization at all
		{ev(issuer.KindRefund, "", 400, true), -400, 0, 2100},         // money back
		{ev(issuer.KindCapture, "zz", 100, true), 100, 0, 2200},       // capture of a missed auth
		{ev(issuer.KindAuthorization, "zz", 100, true), 0, 0, 2200},   // the late auth is not counted again
	}
	for i, s := range steps {
		d := b.Apply(s.ev)
		if d.Spent != s.spent || d.Overspend != s.over || b.SpentTodayMinor != s.want {
			t.Fatalf("step %d (%s %s): delta %+v today %d; want spent %d over %d today %d",
				i, s.ev.Kind, s.ev.AuthorizationID, d, b.SpentTodayMinor, s.spent, s.over, s.want)
		}
	}
	if b.OverspendTodayMinor != 900 {
		t.Fatalf("overspend today %d, want 900", b.OverspendTodayMinor)
	}
}

func TestBudgetRemainingAndMonthlyCap(t *testing.T) {
	var b Budget
	b.StartDay("2027-01-30", "2027-01")
	b.Apply(ev(issuer.KindAuthorization, "a", 2000, true))
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
	b.StartDay("2027-01-31", "2027-01")
	if b.SpentTodayMinor != 0 || b.SpentMonthMinor != 29800 {
		t.Fatalf("same month keeps month spend: %+v", b)
	}
	b.StartDay("2027-02-01", "2027-02")
	if b.SpentMonthMinor != 0 || b.RemainingToday(2500, 30000) != 2500 {
		t.Fatalf("new month: %+v", b)
	}
	b.Apply(ev(issuer.KindAuthorization, "big", 9999, true))
	if b.RemainingToday(2500, 30000) != 0 {
		t.Fatal("remaining never negative")
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
	if got := FreezePlan(all, 1234); got[0].AmountMinor != 1234 {
		t.Fatalf("freeze: %v", got)
	}
}
