package activities_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

// The ledger's daily spend is the same whatever order an authorization's events arrive in,
// one after the other or at the same moment: a capture delivered before (or alongside) its
// authorization is not counted twice (the dashboard showed 8.00 where the issuer had 5.00).
func TestDailySpendDoesNotDependOnArrivalOrder(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		at := time.Date(2027, 1, 5, 12, 0, 0, 0, time.UTC)
		events := func(n int) []cardwarden.Event {
			auth := fmt.Sprintf("auth_%d", n)
			base := cardwarden.Event{Issuer: "sim", CardID: card.ID, AuthorizationID: auth, Approved: true, Currency: "USD"}
			a, c, r := base, base, base
			a.ID, a.Kind, a.AmountMinor, a.OccurredAt = fmt.Sprintf("a%d", n), cardwarden.KindAuthorization, 500, at
			r.ID, r.Kind, r.AmountMinor, r.OccurredAt = fmt.Sprintf("r%d", n), cardwarden.KindReversal, 100, at.Add(time.Minute)
			c.ID, c.Kind, c.AmountMinor, c.AuthorizedMinor, c.OccurredAt = fmt.Sprintf("c%d", n), cardwarden.KindCapture, 450, 500, at.Add(2*time.Minute)
			return []cardwarden.Event{a, r, c}
		}
		record := func(ev cardwarden.Event) {
			if err := w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{Event: ev}, nil); err != nil {
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
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		day1 := time.Date(2027, 1, 5, 23, 0, 0, 0, time.UTC)
		base := cardwarden.Event{Issuer: "sim", CardID: card.ID, AuthorizationID: "auth_late", Approved: true, Currency: "USD"}
		capture := base
		capture.ID, capture.Kind, capture.AmountMinor, capture.AuthorizedMinor, capture.OccurredAt = "cap", cardwarden.KindCapture, 700, 600, day1.Add(2*time.Hour)
		auth := base
		auth.ID, auth.Kind, auth.AmountMinor, auth.OccurredAt = "auth", cardwarden.KindAuthorization, 600, day1
		refund := cardwarden.Event{ID: "ref", Issuer: "sim", Kind: cardwarden.KindRefund, CardID: card.ID, Approved: true, AmountMinor: 700, Currency: "USD", OccurredAt: day1.Add(3 * time.Hour)}
		for _, ev := range []cardwarden.Event{capture, auth, refund} {
			if err := w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{Event: ev}, nil); err != nil {
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

// Reconciliation compares each card's total with the issuer's, not only event by event: a
// ledger event the issuer never made (a forged or misattributed webhook) shows up as a
// difference in the card's usage.
func TestReconcileComparesCardTotals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		since := time.Now().Add(-time.Minute)
		w.simCall(t, "/v1/simulate/authorizations", map[string]any{"card_id": card.ID, "amount_minor": 800}, nil)
		w.simCall(t, "/v1/simulate/authorizations", map[string]any{"card_id": card.ID, "amount_minor": 300}, nil)
		phantom := cardwarden.Event{ID: "evt_phantom", Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: card.ID, AuthorizationID: "auth_phantom",
			Approved: true, AmountMinor: 400, Currency: "USD", OccurredAt: time.Now().Add(-30 * time.Second)}
		if err := w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{Event: phantom}, nil); err != nil {
			t.Fatal(err)
		}
		in := workflows.ReconcileInput{AgentID: "demo", Issuer: "sim", Timezone: "UTC", CardIDs: []string{card.ID}, Since: since, IncludeAll: true}
		var res workflows.ReconcileResult
		if err := w.exec(t, w.acts.Reconcile, in, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Totals) != 1 || res.Totals[0].IssuerUsageMinor != 1100 || res.Totals[0].LedgerUsageMinor != 1500 {
			t.Fatalf("totals %+v, want the issuer's 11.00 against the ledger's 15.00", res.Totals)
		}
		if len(res.Missed) != 2 {
			t.Fatalf("missed %d events, want the 2 real ones", len(res.Missed))
		}
	})
}
