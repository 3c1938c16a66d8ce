package spend

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
)

var t0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func mk(id string, kind cardwarden.EventKind, auth string, amount int64, h int) cardwarden.Event {
	return cardwarden.Event{ID: id, Kind: kind, CardID: "c1", AuthorizationID: auth, Approved: true, AmountMinor: amount, OccurredAt: at(h)}
}

var today = Window{Start: at(0), End: at(24)}

func TestSpendRules(t *testing.T) {
	cases := []struct {
		name         string
		events       []cardwarden.Event
		spent, over  int64
		usage        int64
		windowStarts int // hours: the window checked is [at(windowStarts), +24h)
	}{
		{"hold", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1)}, 1000, 0, 1000, 0},
		{"declined", []cardwarden.Event{{ID: "e1", Kind: cardwarden.KindAuthorization, AuthorizationID: "a", AmountMinor: 1000, OccurredAt: at(1)}}, 0, 0, 0, 0},
		{"exact capture", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1), mk("e2", cardwarden.KindCapture, "a", 1000, 2)}, 1000, 0, 1000, 0},
		{"over-capture", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1), mk("e2", cardwarden.KindCapture, "a", 1300, 2)}, 1300, 300, 1300, 0},
		// A partial capture releases the rest of the hold at the issuer, but what was approved
		// stays spent: only a reversal gives an allowance back.
		{"partial capture", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1), mk("e2", cardwarden.KindCapture, "a", 600, 2)}, 1000, 0, 600, 0},
		{"own reversal", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1), mk("e2", cardwarden.KindReversal, "a", 400, 2)}, 600, 0, 600, 0},
		{"reversal then over-capture of the rest", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1),
			mk("e2", cardwarden.KindReversal, "a", 400, 2), mk("e3", cardwarden.KindCapture, "a", 900, 3)}, 900, 300, 900, 0},
		{"force-post", []cardwarden.Event{mk("e1", cardwarden.KindForceCapture, "", 700, 1)}, 700, 700, 700, 0},
		{"refund is no allowance", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, 1), mk("e2", cardwarden.KindCapture, "a", 1000, 2),
			mk("e3", cardwarden.KindRefund, "", 1000, 3)}, 1000, 0, 0, 0},
		// Yesterday's hold reversed today and yesterday's capture refunded today: today's spend
		// is untouched (leak 5), while the issuer's usage drops.
		{"yesterday's credits", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, -5), mk("e2", cardwarden.KindReversal, "a", 1000, 1),
			mk("e3", cardwarden.KindAuthorization, "b", 500, -4), mk("e4", cardwarden.KindCapture, "b", 500, -3), mk("e5", cardwarden.KindRefund, "", 500, 2)}, 0, 0, 0, 0},
		// Over-capture today of yesterday's authorization is today's overspend.
		{"yesterday's over-capture", []cardwarden.Event{mk("e1", cardwarden.KindAuthorization, "a", 1000, -5), mk("e2", cardwarden.KindCapture, "a", 1200, 1)}, 200, 200, 1200, 0},
		{"capture first says what was authorized", []cardwarden.Event{
			{ID: "e2", Kind: cardwarden.KindCapture, CardID: "c1", AuthorizationID: "a", Approved: true, AmountMinor: 1300, AuthorizedMinor: 1000, OccurredAt: at(2)}},
			300, 300, 1300, 0},
		{"capture without authorization id is a force-post", []cardwarden.Event{mk("e1", cardwarden.KindCapture, "", 250, 1)}, 250, 250, 250, 0},
	}
	for _, c := range cases {
		rs := Fold(c.events)
		w := Window{Start: at(c.windowStarts), End: at(c.windowStarts + 24)}
		got := Sum(rs, w)
		if got.Spent != c.spent || got.Overspend != c.over {
			t.Errorf("%s: spend %+v, want spent %d over %d", c.name, got, c.spent, c.over)
		}
		if u := CardUsage(rs, "c1"); u != c.usage {
			t.Errorf("%s: usage %d, want %d", c.name, u, c.usage)
		}
	}
}

// The same events in any order give the same spend and usage, and the Book's running effects
// add up to the fold of the whole set.
func TestOrderDoesNotMatter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		var evs []cardwarden.Event
		n := 0
		id := func() string { n++; return fmt.Sprintf("e%d", n) }
		for a := range 1 + rng.IntN(6) {
			auth := fmt.Sprintf("a%d", a)
			amt := int64(1 + rng.IntN(1000))
			h := rng.IntN(48) - 24
			evs = append(evs, mk(id(), cardwarden.KindAuthorization, auth, amt, h))
			if rng.IntN(2) == 0 {
				evs = append(evs, mk(id(), cardwarden.KindReversal, auth, 1+rng.Int64N(amt), h+rng.IntN(3)))
			}
			if rng.IntN(2) == 0 {
				c := mk(id(), cardwarden.KindCapture, auth, 1+rng.Int64N(2*amt), h+1+rng.IntN(20))
				if rng.IntN(2) == 0 {
					c.AuthorizedMinor = amt
				}
				evs = append(evs, c)
			}
		}
		if rng.IntN(3) == 0 {
			evs = append(evs, mk(id(), cardwarden.KindForceCapture, "", 1+rng.Int64N(500), rng.IntN(48)-24))
		}
		if rng.IntN(3) == 0 {
			evs = append(evs, mk(id(), cardwarden.KindRefund, "", 1+rng.Int64N(500), rng.IntN(48)-24))
		}
		want := Sum(Fold(evs), today)
		wantU := CardUsage(Fold(evs), "c1")
		for range 5 {
			perm := append([]cardwarden.Event(nil), evs...)
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			if got := Sum(Fold(perm), today); got != want {
				t.Fatalf("trial %d: order changed spend: %+v vs %+v\n%v", trial, got, want, perm)
			}
			var b Book
			var run Totals
			var u int64
			for _, ev := range perm {
				e := b.Apply(ev, today, Window{Start: at(-24)})
				run = run.Add(e.Period)
				u += e.Usage
			}
			if run != want || u != wantU || b.Sum(today) != want {
				t.Fatalf("trial %d: book effects %+v usage %d (book sum %+v), fold %+v usage %d\n%v", trial, run, u, b.Sum(today), want, wantU, perm)
			}
		}
	}
}

// More open authorizations than the book keeps: closed records go first, and a capture of an
// authorization the book still holds is never counted twice (leak 4).
func TestBookForgetsClosedRecordsFirst(t *testing.T) {
	var b Book
	open := Window{Start: at(0)}
	b.Apply(mk("hold", cardwarden.KindAuthorization, "big", 1000, 1), open, open)
	var spent Totals
	for i := range MaxRecords + 10 {
		a := fmt.Sprintf("small%d", i)
		spent = spent.Add(b.Apply(mk("x"+a, cardwarden.KindAuthorization, a, 1, 1), open, open).Period)
		spent = spent.Add(b.Apply(mk("c"+a, cardwarden.KindCapture, a, 1, 2), open, open).Period)
	}
	e := b.Apply(mk("cap", cardwarden.KindCapture, "big", 1000, 3), open, open)
	if e.Period.Spent != 0 || e.Usage != 0 {
		t.Fatalf("capturing the remembered hold counted again: %+v", e)
	}
	if len(b.Records) > MaxRecords {
		t.Fatalf("%d records kept", len(b.Records))
	}
	if spent.Spent != MaxRecords+10 {
		t.Fatalf("small spend %d", spent.Spent)
	}
}
