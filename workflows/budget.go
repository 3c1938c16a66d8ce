package workflows

import (
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/spend"
)

// Budget is the agent's running spend: in the current budget period (from the last reset to
// the next), in this calendar month of the agent's zone, and the records of recent
// authorizations that later events (captures, reversals) still refer to. What counts as spend
// is package spend's rule, the same one the ledger and reconciliation use. Plain data,
// carried through continue-as-new.
type Budget struct {
	Day   string `json:"day"`   // local date of the period's start, YYYY-MM-DD
	Month string `json:"month"` // local month of the period's start, YYYY-MM
	// PeriodStart is the reset instant that began the period; MonthStart the first instant of
	// Month in the agent's zone. Events count towards a window by when they happened.
	PeriodStart         time.Time `json:"period_start,omitzero"`
	MonthStart          time.Time `json:"month_start,omitzero"`
	SpentTodayMinor     int64     `json:"spent_today_minor"`
	SpentMonthMinor     int64     `json:"spent_month_minor"`
	OverspendTodayMinor int64     `json:"overspend_today_minor"`
	// MaxDailyMinor is the highest daily limit in force during the period, so approvals
	// beyond it are recognised even after a set-budget lowered the limit.
	MaxDailyMinor int64 `json:"max_daily_minor,omitempty"`
	// CommittedMinor and CommittedMonthMinor add up the limits of the fixed-limit cards issued
	// in the period and the month: on an issuer whose limits cannot change (and that may tell
	// cardwarden nothing of what a card spent) a card is assumed to spend its whole limit.
	CommittedMinor      int64      `json:"committed_minor,omitempty"`
	CommittedMonthMinor int64      `json:"committed_month_minor,omitempty"`
	Book                spend.Book `json:"book"`
	// Auths is the open-authorization memory of runs from before package spend; resume turns
	// it into Book records.
	Auths []AuthRecord `json:"auths,omitempty"`
}

// AuthRecord is one authorization as runs before package spend remembered it.
type AuthRecord struct {
	ID         string `json:"id"`
	CardID     string `json:"card_id"`
	Authorized int64  `json:"authorized"`
	Captured   int64  `json:"captured"`
	Settled    bool   `json:"settled"`
}

// Delta is the change one event makes: to the period's spend (Spent, of which Overspend is
// what no limit could stop), to the usage of the card it happened on, and the overspend the
// event is, whichever period it belongs to (an over-capture arriving after its period ended).
type Delta struct {
	Spent        int64
	Overspend    int64
	Usage        int64
	OverspendAny int64
}

func (b *Budget) period() spend.Window { return spend.Window{Start: b.PeriodStart} }

// month is the month's window; nextReset (the first reset after an instant) tells which of
// its instants share a budget period, so a reversal of an earlier period's authorization is
// no more allowance for the month than for the day.
func (b *Budget) month(nextReset func(time.Time) time.Time) spend.Window {
	w := spend.Window{Start: b.MonthStart}
	if nextReset != nil {
		w.SamePeriod = func(a, c time.Time) bool { return nextReset(a).After(c) }
	}
	return w
}

// Apply updates spend for one event and returns the change. The workflow deduplicates by
// event id first; an event without a time counts as happening now.
func (b *Budget) Apply(ev cardwarden.Event, nextReset func(time.Time) time.Time) Delta {
	e := b.Book.Apply(ev, b.period(), b.month(nextReset))
	b.SpentTodayMinor += e.Period.Spent
	b.OverspendTodayMinor += e.Period.Overspend
	b.SpentMonthMinor += e.Month.Spent
	return Delta{Spent: e.Period.Spent, Overspend: e.Period.Overspend, Usage: e.Usage, OverspendAny: e.Any.Overspend}
}

// StartPeriod begins a new budget period at a reset: spend is recounted from the records, so
// events that happened after the reset instant but arrived before the reset ran still count.
func (b *Budget) StartPeriod(start time.Time, loc *time.Location, dailyMinor int64, nextReset func(time.Time) time.Time) {
	b.PeriodStart = start
	b.Day = LocalDay(start, loc)
	if m := LocalMonth(start, loc); m != b.Month || b.MonthStart.IsZero() {
		b.Month = m
		l := start.In(loc)
		b.MonthStart = time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc).UTC()
		b.SpentMonthMinor = b.Book.Sum(b.month(nextReset)).Spent
		b.CommittedMonthMinor = 0
	}
	b.CommittedMinor = 0
	t := b.Book.Sum(b.period())
	b.SpentTodayMinor, b.OverspendTodayMinor = t.Spent, t.Overspend
	b.MaxDailyMinor = dailyMinor
}

// migrateAuths turns a legacy open-authorization memory into records.
func (b *Budget) migrateAuths() {
	for _, a := range b.Auths {
		b.Book.Records = append(b.Book.Records, spend.Record{
			Key: "auth:" + a.ID, CardID: a.CardID, Seen: true, Amount: a.Authorized, AmountKnown: true,
			Captured: a.Captured, Settled: a.Settled,
		})
	}
	b.Auths = nil
}

// ApprovedNet is the period's approved spend net of its own reversals: what the invariant caps.
func (b Budget) ApprovedNet() int64 { return b.SpentTodayMinor - b.OverspendTodayMinor }

// RemainingToday is what the agent may still spend today: the rest of the daily limit, never
// more than the rest of the monthly cap (monthlyMinor 0 means no cap).
func (b Budget) RemainingToday(dailyMinor, monthlyMinor int64) int64 {
	rem := dailyMinor - b.SpentTodayMinor
	if monthlyMinor > 0 {
		rem = min(rem, monthlyMinor-b.SpentMonthMinor)
	}
	return max(0, rem)
}

// FixedAllowance is what a new card whose limit cannot change may carry: what the limits of
// the cards already issued in the period and the month leave (monthlyMinor 0: no cap).
func (b Budget) FixedAllowance(dailyMinor, monthlyMinor int64) int64 {
	rem := dailyMinor - b.CommittedMinor
	if monthlyMinor > 0 {
		rem = min(rem, monthlyMinor-b.CommittedMonthMinor)
	}
	return max(0, rem)
}

// RemainingMonth is what is left of the monthly cap, or -1 without one.
func (b Budget) RemainingMonth(monthlyMinor int64) int64 {
	if monthlyMinor <= 0 {
		return -1
	}
	return max(0, monthlyMinor-b.SpentMonthMinor)
}

// CrossedThresholds returns the thresholds (percent of the daily limit) that today's spend has
// reached and that are not in already.
func (b Budget) CrossedThresholds(dailyMinor int64, thresholds, already []int) []int {
	if dailyMinor <= 0 {
		return nil
	}
	var out []int
	for _, pct := range thresholds {
		// spent/daily >= pct/100, in integers.
		if b.SpentTodayMinor*100 >= int64(pct)*dailyMinor && !containsInt(already, pct) {
			out = append(out, pct)
		}
	}
	return out
}

// LimitPlan returns the limits to put on a card so that exactly allowance more can be spent
// on it, given what the card has spent so far. A lifetime (all_time) limit is preferred: set
// to spent + allowance, it means "allowance from now on" whatever window the issuer counts
// in. Amounts are rounded down to the issuer's granularity, never up.
func LimitPlan(caps issuer.Capabilities, cardSpentMinor, allowanceMinor int64) []issuer.SpendLimit {
	g := caps.LimitGranularityMinor
	if g <= 1 {
		g = 1
	}
	down := func(v int64) int64 { return max(0, v) / g * g }
	switch {
	case caps.Supports(issuer.AllTime) || len(caps.LimitIntervals) == 0:
		return []issuer.SpendLimit{{AmountMinor: down(cardSpentMinor + allowanceMinor), Interval: issuer.AllTime}}
	case caps.Supports(issuer.Daily):
		return []issuer.SpendLimit{{AmountMinor: down(allowanceMinor), Interval: issuer.Daily}}
	case caps.Supports(issuer.Monthly):
		return []issuer.SpendLimit{{AmountMinor: down(allowanceMinor), Interval: issuer.Monthly}}
	default:
		return []issuer.SpendLimit{{AmountMinor: down(allowanceMinor), Interval: caps.LimitIntervals[0]}}
	}
}

// CapPlan returns limits under which a card approves nothing more, whatever it has spent:
// zero. Captures of what it approved before still settle (issuers never limit those).
func CapPlan(caps issuer.Capabilities) []issuer.SpendLimit {
	return LimitPlan(caps, 0, 0)
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
