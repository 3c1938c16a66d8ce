// Package spend holds cardwarden's money rules: what each issuer event does to a card's usage
// (what an issuer counts against the card's lifetime limit) and to the spend of a budget
// period (what the budget invariant caps). The rules are functions of the set of events, not
// of the order they arrive in, so the workflow, the ledger, reconciliation and the tests that
// check them against the issuer's own records all agree whatever order webhooks come in.
//
// Spend in a window counts an authorization when it was approved in the window, net of the
// reversals made in the same window, plus whatever no limit could stop that happened in the
// window: the part of a capture above what was still authorized, and force-posts. Credits
// (refunds, reversals of an earlier window's authorization, partial captures) lower usage but
// never spend: money coming back must not enlarge an allowance.
package spend

import (
	"time"

	"github.com/cardwarden/cardwarden"
)

// Window is the span [Start, End) of a budget period, a day or a month; a zero End is
// open-ended. A window that spans several budget periods (a month) says which instants share
// a period with SamePeriod: a reversal nets its authorization only within the authorization's
// own period. Nil means the window is one period.
type Window struct {
	Start      time.Time
	End        time.Time
	SamePeriod func(a, b time.Time) bool
}

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && (w.End.IsZero() || t.Before(w.End))
}

// Totals is spend in a window: Spent counts everything, Overspend the part no limit could stop.
type Totals struct {
	Spent     int64 `json:"spent"`
	Overspend int64 `json:"overspend"`
}

// Add returns t + o.
func (t Totals) Add(o Totals) Totals {
	return Totals{Spent: t.Spent + o.Spent, Overspend: t.Overspend + o.Overspend}
}

// Sub returns t - o.
func (t Totals) Sub(o Totals) Totals {
	return Totals{Spent: t.Spent - o.Spent, Overspend: t.Overspend - o.Overspend}
}

// Move is a reversal: an amount released from a hold at a time.
type Move struct {
	At     time.Time `json:"at"`
	Amount int64     `json:"amount"`
}

// Record is what is known about one authorization (its approval, reversals and capture, in
// whatever order they arrived), or about one force-post or refund, which stand alone.
type Record struct {
	Key    string `json:"key"`
	CardID string `json:"card_id"`
	// Standalone is the kind of a record that is not an authorization's: force_capture, or
	// refund (also a reversal or capture that names no authorization).
	Standalone cardwarden.EventKind `json:"standalone,omitempty"`
	// Seen is set once the approved authorization itself arrived.
	Seen bool      `json:"seen,omitempty"`
	At   time.Time `json:"at"` // when it was authorized (or the standalone event happened)
	// Amount is what was authorized (or moved, for a standalone record); AmountKnown says
	// whether it is known yet (a capture may come first and not say).
	Amount      int64     `json:"amount"`
	AmountKnown bool      `json:"amount_known,omitempty"`
	Reversals   []Move    `json:"reversals,omitempty"`
	Captured    int64     `json:"captured,omitempty"`
	CapturedAt  time.Time `json:"captured_at,omitzero"`
	Settled     bool      `json:"settled,omitempty"`
}

// KeyOf names the record an event belongs to: its authorization, or the event itself.
func KeyOf(ev cardwarden.Event) string {
	switch ev.Kind {
	case cardwarden.KindAuthorization, cardwarden.KindCapture, cardwarden.KindReversal:
		if ev.AuthorizationID != "" {
			return "auth:" + ev.AuthorizationID
		}
	}
	return "event:" + ev.ID
}

// Relevant reports whether the event moves money at all: declined authorizations do not.
func Relevant(ev cardwarden.Event) bool {
	return !(ev.Kind == cardwarden.KindAuthorization && !ev.Approved) && ev.AmountMinor > 0
}

// Apply adds one event to the record. The caller deduplicates events by id.
func (r *Record) Apply(ev cardwarden.Event) {
	if !Relevant(ev) {
		return
	}
	if r.CardID == "" {
		r.CardID = ev.CardID
	}
	amt := ev.AmountMinor
	if ev.AuthorizationID == "" && ev.Kind != cardwarden.KindAuthorization {
		// A capture with no authorization is a force-post; a reversal with none is a credit.
		switch ev.Kind {
		case cardwarden.KindCapture, cardwarden.KindForceCapture:
			r.Standalone = cardwarden.KindForceCapture
		default:
			r.Standalone = cardwarden.KindRefund
		}
		r.At, r.Amount, r.AmountKnown = ev.OccurredAt, amt, true
		return
	}
	switch ev.Kind {
	case cardwarden.KindAuthorization:
		r.Seen, r.At, r.Amount, r.AmountKnown = true, ev.OccurredAt, amt, true
	case cardwarden.KindCapture:
		if !r.Settled {
			r.CapturedAt = ev.OccurredAt
		}
		r.Captured += amt
		r.Settled = true
		if !r.AmountKnown && ev.AuthorizedMinor > 0 {
			r.Amount, r.AmountKnown = ev.AuthorizedMinor, true
		}
	case cardwarden.KindReversal:
		r.Reversals = append(r.Reversals, Move{At: ev.OccurredAt, Amount: amt})
	case cardwarden.KindForceCapture, cardwarden.KindRefund:
		r.Standalone, r.At, r.Amount, r.AmountKnown = ev.Kind, ev.OccurredAt, amt, true
	}
}

func (r *Record) reversed(in func(time.Time) bool) int64 {
	var sum int64
	for _, m := range r.Reversals {
		if in == nil || in(m.At) {
			sum += m.Amount
		}
	}
	return sum
}

// Usage is what the record counts against its card's lifetime limit at the issuer: a hold
// until it is captured, then what was captured; force-posts add, refunds take away.
func (r *Record) Usage() int64 {
	switch {
	case r.Standalone == cardwarden.KindForceCapture:
		return r.Amount
	case r.Standalone != "":
		return -r.Amount
	case r.Settled:
		return r.Captured
	case r.Seen:
		return max(0, r.Amount-r.reversed(nil))
	}
	return 0
}

// Spend is what the record counts as spend in the window.
func (r *Record) Spend(w Window) Totals {
	var t Totals
	switch {
	case r.Standalone == cardwarden.KindForceCapture:
		if w.Contains(r.At) {
			t.Spent, t.Overspend = r.Amount, r.Amount
		}
		return t
	case r.Standalone != "":
		return t
	}
	if r.Seen && w.Contains(r.At) {
		own := func(at time.Time) bool {
			return w.Contains(at) && (w.SamePeriod == nil || w.SamePeriod(r.At, at))
		}
		t.Spent = r.Amount - min(r.Amount, r.reversed(own))
	}
	if r.Settled && w.Contains(r.CapturedAt) {
		authorized := r.Captured // unknown: assume the capture matched it
		if r.AmountKnown {
			authorized = max(0, r.Amount-r.reversed(nil))
		}
		if over := r.Captured - authorized; over > 0 {
			t.Spent += over
			t.Overspend += over
		}
	}
	return t
}

// Closed reports whether nothing but a refund (its own record) can still change the record.
func (r *Record) Closed() bool {
	return r.Standalone != "" || r.Settled || (r.Seen && r.reversed(nil) >= r.Amount)
}

// Fold builds the records of a set of events (deduplicated by id), in first-seen order.
func Fold(events []cardwarden.Event) []*Record {
	byKey := map[string]*Record{}
	var out []*Record
	seen := map[string]bool{}
	for _, ev := range events {
		if seen[ev.ID] || !Relevant(ev) {
			continue
		}
		seen[ev.ID] = true
		k := KeyOf(ev)
		r := byKey[k]
		if r == nil {
			r = &Record{Key: k}
			byKey[k] = r
			out = append(out, r)
		}
		r.Apply(ev)
	}
	return out
}

// Sum adds up the spend of records in a window.
func Sum(records []*Record, w Window) Totals {
	var t Totals
	for _, r := range records {
		t = t.Add(r.Spend(w))
	}
	return t
}

// CardUsage adds up the usage of records on one card.
func CardUsage(records []*Record, cardID string) int64 {
	var u int64
	for _, r := range records {
		if r.CardID == cardID {
			u += r.Usage()
		}
	}
	return u
}
