package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// newLedger records agent demo with the policy and its card card_1, as the workflow's
// activities would, and returns the ledger over st.
func newLedger(t *testing.T, st *store.Store, policy string) (*ledger.Ledger, string) {
	t.Helper()
	ctx := context.Background()
	if err := st.UpsertAgent(ctx, store.Agent{AgentID: "demo", Issuer: "sim", Status: "active", Policy: policy}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordCard(ctx, store.Card{AgentID: "demo", Generation: 1, Issuer: "sim", IssuerCardID: "card_1", Last4: "4242", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	return &ledger.Ledger{Store: st}, "card_1"
}

// An event is stored once, its spend counted on the agent's own day, and an event on a card
// no agent owns is stored as orphaned.
func TestRecordOnceInTheAgentsZone(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, card := newLedger(t, st, `{"agent_id":"demo","daily_limit_usd":25,"timezone":"America/New_York"}`)
		at := time.Date(2027, 1, 5, 3, 0, 0, 0, time.UTC) // 4 January, 22:00 in New York
		ev := cardwarden.Event{ID: "evt_1", Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: card, AuthorizationID: "auth_1",
			Approved: true, AmountMinor: 1000, Currency: "USD", OccurredAt: at}
		record := func(ev cardwarden.Event) ledger.Result {
			r, err := l.Record(ctx, ev, store.SourceWebhook)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := record(ev); !r.New || r.AgentID != "demo" || r.Orphaned {
			t.Fatalf("first delivery: %+v", r)
		}
		if r := record(ev); r.New {
			t.Fatalf("duplicate stored twice: %+v", r)
		}
		capture := ev
		capture.ID, capture.Kind, capture.AmountMinor = "evt_2", cardwarden.KindCapture, 1200
		record(capture)
		declined := ev
		declined.ID, declined.AuthorizationID, declined.Approved, declined.DeclineReason = "evt_3", "auth_3", false, cardwarden.ReasonSpendingLimit
		record(declined)
		days, err := st.SpendSeries(ctx, "demo", "2027-01-01", "2027-01-31")
		if err != nil || len(days) != 1 {
			t.Fatalf("spend: %+v %v", days, err)
		}
		if d := days[0]; d.Day != "2027-01-04" || d.SpentMinor != 1200 || d.OverspendMinor != 200 || d.Declines != 1 {
			t.Fatalf("spend day: %+v", d)
		}
		orphan := ev
		orphan.ID, orphan.CardID = "evt_4", "card_unknown"
		if r := record(orphan); !r.Orphaned || r.AgentID != "" || !r.New {
			t.Fatalf("orphan: %+v", r)
		}
		if n := testdb.CountEvents(t, st); n != 4 {
			t.Fatalf("ledger rows: %d", n)
		}
		if _, err := l.Record(ctx, cardwarden.Event{Issuer: "sim"}, store.SourceWebhook); err == nil {
			t.Fatal("an event without id was recorded")
		}
	})
}

// The ledger's daily spend is the same whatever order an authorization's events arrive in,
// one after the other or at the same moment: a capture delivered before (or alongside) its
// authorization is not counted twice (the dashboard showed 8.00 where the issuer had 5.00).
func TestDailySpendDoesNotDependOnArrivalOrder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, card := newLedger(t, st, `{"agent_id":"demo","daily_limit_usd":25}`)
		at := time.Date(2027, 1, 5, 12, 0, 0, 0, time.UTC)
		events := func(n int) []cardwarden.Event {
			auth := fmt.Sprintf("auth_%d", n)
			base := cardwarden.Event{Issuer: "sim", CardID: card, AuthorizationID: auth, Approved: true, Currency: "USD"}
			a, c, r := base, base, base
			a.ID, a.Kind, a.AmountMinor, a.OccurredAt = fmt.Sprintf("a%d", n), cardwarden.KindAuthorization, 500, at
			r.ID, r.Kind, r.AmountMinor, r.OccurredAt = fmt.Sprintf("r%d", n), cardwarden.KindReversal, 100, at.Add(time.Minute)
			c.ID, c.Kind, c.AmountMinor, c.AuthorizedMinor, c.OccurredAt = fmt.Sprintf("c%d", n), cardwarden.KindCapture, 450, 500, at.Add(2*time.Minute)
			return []cardwarden.Event{a, r, c}
		}
		record := func(ev cardwarden.Event) {
			if _, err := l.Record(ctx, ev, store.SourceWebhook); err != nil {
				t.Error(err)
			}
		}
		// Authorization 0 in order, 1 backwards, 2 capture first, 3 all three at once (x5).
		e := events(0)
		record(e[0])
		record(e[1])
		record(e[2])
		e = events(1)
		record(e[2])
		record(e[1])
		record(e[0])
		e = events(2)
		record(e[2])
		record(e[0])
		record(e[1])
		for n := 3; n < 8; n++ {
			var wg sync.WaitGroup
			for _, ev := range events(n) {
				wg.Add(1)
				go func() { defer wg.Done(); record(ev) }()
			}
			wg.Wait()
		}
		days, err := st.SpendSeries(ctx, "demo", "2027-01-05", "2027-01-05")
		if err != nil || len(days) != 1 {
			t.Fatalf("spend: %+v %v", days, err)
		}
		// Each: 5.00 authorized, 1.00 reversed the same day, 4.50 captured of the 4.00 left:
		// 4.00 net + 0.50 over-capture = 4.50 spent, 0.50 of it overspend.
		if d := days[0]; d.SpentMinor != 8*450 || d.OverspendMinor != 8*50 {
			t.Fatalf("day: spent %d overspend %d, want %d and %d", d.SpentMinor, d.OverspendMinor, 8*450, 8*50)
		}
	})
}

// An authorization that arrives a day late counts on its own day, and a refund is no spend.
func TestDailySpendCountsEachEventOnItsDay(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, card := newLedger(t, st, `{"agent_id":"demo","daily_limit_usd":25}`)
		day1 := time.Date(2027, 1, 5, 23, 0, 0, 0, time.UTC)
		base := cardwarden.Event{Issuer: "sim", CardID: card, AuthorizationID: "auth_late", Approved: true, Currency: "USD"}
		capture := base
		capture.ID, capture.Kind, capture.AmountMinor, capture.AuthorizedMinor, capture.OccurredAt = "cap", cardwarden.KindCapture, 700, 600, day1.Add(2*time.Hour)
		auth := base
		auth.ID, auth.Kind, auth.AmountMinor, auth.OccurredAt = "auth", cardwarden.KindAuthorization, 600, day1
		refund := cardwarden.Event{ID: "ref", Issuer: "sim", Kind: cardwarden.KindRefund, CardID: card, Approved: true, AmountMinor: 700, Currency: "USD", OccurredAt: day1.Add(3 * time.Hour)}
		for _, ev := range []cardwarden.Event{capture, auth, refund} {
			if _, err := l.Record(ctx, ev, store.SourceWebhook); err != nil {
				t.Fatal(err)
			}
		}
		days, err := st.SpendSeries(ctx, "demo", "2027-01-01", "2027-01-31")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, d := range days {
			got[d.Day] = [2]int64{d.SpentMinor, d.OverspendMinor}
		}
		if got["2027-01-05"] != [2]int64{600, 0} || got["2027-01-06"] != [2]int64{100, 100} {
			t.Fatalf("days %v, want 6.00 on the 5th and the 1.00 over-capture on the 6th", got)
		}
	})
}
