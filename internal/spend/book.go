package spend

import (
	"github.com/cardwarden/cardwarden"
)

// MaxRecords bounds the records a Book keeps. Closed records are forgotten first; an open
// authorization is forgotten only when more than MaxRecords are open at once, and a capture of
// a forgotten one is then taken to match what was held (reconciliation reports any difference).
const MaxRecords = 1024

// Book is the bounded set of records the workflow carries from event to event (and through
// continue-as-new), oldest first.
type Book struct {
	Records []Record `json:"records,omitempty"`
}

// Effect is what one event changed: its card's usage, spend in the two windows the workflow
// tracks (the budget period and the month), and spend whenever it counts (Any: an
// over-capture of an earlier period is overspend to alert on, though the current period's
// spend does not change).
type Effect struct {
	CardID string
	Usage  int64
	Period Totals
	Month  Totals
	Any    Totals
}

// Apply adds one event (already deduplicated by id) and returns what it changed.
func (b *Book) Apply(ev cardwarden.Event, period, month Window) Effect {
	if !Relevant(ev) {
		return Effect{CardID: ev.CardID}
	}
	k := KeyOf(ev)
	i := b.find(k)
	var r Record
	if i >= 0 {
		r = b.Records[i]
	} else {
		r = Record{Key: k}
	}
	u0, p0, m0, a0 := r.Usage(), r.Spend(period), r.Spend(month), r.Spend(Window{})
	r.Apply(ev)
	e := Effect{CardID: r.CardID, Usage: r.Usage() - u0, Period: r.Spend(period).Sub(p0), Month: r.Spend(month).Sub(m0),
		Any: r.Spend(Window{}).Sub(a0)}
	if i >= 0 {
		b.Records[i] = r
	} else if r.Standalone != cardwarden.KindRefund {
		// A refund never changes again; everything else is kept for what may follow it
		// (and force-posts for recounting a period that a late reset starts).
		b.Records = append(b.Records, r)
		b.evict()
	}
	return e
}

// Sum adds up the spend of every kept record in a window.
func (b *Book) Sum(w Window) Totals {
	var t Totals
	for i := range b.Records {
		t = t.Add(b.Records[i].Spend(w))
	}
	return t
}

func (b *Book) find(key string) int {
	for i := len(b.Records) - 1; i >= 0; i-- {
		if b.Records[i].Key == key {
			return i
		}
	}
	return -1
}

func (b *Book) evict() {
	for len(b.Records) > MaxRecords {
		drop := 0
		for i := range b.Records {
			if b.Records[i].Closed() {
				drop = i
				break
			}
		}
		b.Records = append(b.Records[:drop:drop], b.Records[drop+1:]...)
	}
}
