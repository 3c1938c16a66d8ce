package activities_test

import (
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

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
		w.record(t, phantom)
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
