package workflows

import (
	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Budget is the agent's running spend: today (the period since the last reset), this calendar
// month in the agent's zone, and the authorizations still open, so captures can be matched to
// what was authorized. Plain data, carried through continue-as-new.
type Budget struct {
	Day                 string       `json:"day"`   // local date of the last reset, YYYY-MM-DD
	Month               string       `json:"month"` // local month of the last reset, YYYY-MM
	SpentTodayMinor     int64        `json:"spent_today_minor"`
	SpentMonthMinor     int64        `json:"spent_month_minor"`
	OverspendTodayMinor int64        `json:"overspend_today_minor"`
	Auths               []AuthRecord `json:"auths,omitempty"` // oldest first, bounded
}

// AuthRecord is one authorization as far as spend is concerned.
type AuthRecord struct {
	ID         string `json:"id"`
	CardID     string `json:"card_id"`
	Authorized int64  `json:"authorized"`
	Captured   int64  `json:"captured"`
	Settled    bool   `json:"settled"` // a capture arrived: the captured amount is the spend
}

// maxAuths bounds the open-authorization memory; authorizations settle within days, and a
// capture for one forgotten here is still counted, just without overspend detection.
const maxAuths = 512

// Delta is the change one event makes to spend. Overspend is the part no limit could stop:
// captures above the authorized amount and force-posts.
type Delta struct {
	Spent     int64
	Overspend int64
}

// Apply updates spend for one event and returns the change. It assumes the event is new
// (the workflow deduplicates by event id first).
func (b *Budget) Apply(ev issuer.Event) Delta {
	amt := ev.AmountMinor
	if amt < 0 {
		amt = -amt
	}
	var d Delta
	switch ev.Kind {
	case issuer.KindAuthorization:
		if !ev.Approved {
			return Delta{}
		}
		if ev.AuthorizationID != "" {
			if a := b.auth(ev.AuthorizationID); a != nil {
				// The capture came first and was counted then.
				return Delta{}
			}
			b.remember(AuthRecord{ID: ev.AuthorizationID, CardID: ev.CardID, Authorized: amt})
		}
		d.Spent = amt
	case issuer.KindCapture:
		a := b.auth(ev.AuthorizationID)
		if ev.AuthorizationID == "" || a == nil {
			// No authorization on record (missed, or forgotten): count what was captured and
			// remember it, so a late authorization is not counted a second time.
			if ev.AuthorizationID != "" {
				b.remember(AuthRecord{ID: ev.AuthorizationID, CardID: ev.CardID, Authorized: amt, Captured: amt, Settled: true})
			}
			d.Spent = amt
			break
		}
		before, overBefore := a.accounted(), a.over()
		a.Captured += amt
		a.Settled = true
		d.Spent = a.accounted() - before
		d.Overspend = a.over() - overBefore
	case issuer.KindForceCapture:
		d.Spent, d.Overspend = amt, amt
	case issuer.KindReversal:
		a := b.auth(ev.AuthorizationID)
		if a == nil || a.Settled {
			return Delta{}
		}
		r := min(amt, a.Authorized)
		a.Authorized -= r
		d.Spent = -r
	case issuer.KindRefund:
		d.Spent = -amt
	}
	b.SpentTodayMinor = max(0, b.SpentTodayMinor+d.Spent)
	b.SpentMonthMinor = max(0, b.SpentMonthMinor+d.Spent)
	b.OverspendTodayMinor += d.Overspend
	return d
}

// accounted is what an authorization counts as spend: the hold until it settles, then what
// was captured.
func (a *AuthRecord) accounted() int64 {
	if a.Settled {
		return a.Captured
	}
	return a.Authorized
}

func (a *AuthRecord) over() int64 { return max(0, a.Captured-a.Authorized) }

func (b *Budget) auth(id string) *AuthRecord {
	if id == "" {
		return nil
	}
	for i := len(b.Auths) - 1; i >= 0; i-- {
		if b.Auths[i].ID == id {
			return &b.Auths[i]
		}
	}
	return nil
}

func (b *Budget) remember(a AuthRecord) {
	b.Auths = append(b.Auths, a)
	if n := len(b.Auths) - maxAuths; n > 0 {
		b.Auths = append(b.Auths[:0:0], b.Auths[n:]...)
	}
}

// StartDay begins a new budget day at a reset; a new month also clears the month's spend.
func (b *Budget) StartDay(day, month string) {
	b.Day = day
	b.SpentTodayMinor = 0
	b.OverspendTodayMinor = 0
	if month != b.Month {
		b.Month = month
		b.SpentMonthMinor = 0
	}
}

// RemainingToday is what the agent may still spend today: the rest of the daily limit, never
// more than the rest of the monthly cap (monthlyMinor 0 means no cap).
func (b Budget) RemainingToday(dailyMinor, monthlyMinor int64) int64 {
	rem := dailyMinor - b.SpentTodayMinor
	if monthlyMinor > 0 {
		rem = min(rem, monthlyMinor-b.SpentMonthMinor)
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

// FreezePlan returns limits that stop new authorizations on a card that cannot be paused.
func FreezePlan(caps issuer.Capabilities, cardSpentMinor int64) []issuer.SpendLimit {
	return LimitPlan(caps, cardSpentMinor, 0)
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
