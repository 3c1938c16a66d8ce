package activities_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/activities"
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

// An approval whose webhook lands while reconciliation runs (after it read the ledger, before
// it records what the ledger lacked) is still returned to the workflow: the ledger has it, the
// workflow may not. Dropped, a card replaced with such a webhook in flight was read short and
// its successor funded with that approval again (the model test found it).
func TestReconcileReturnsAnEventWhoseWebhookLandsMeanwhile(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		since := time.Now().Add(-time.Minute)
		w.simCall(t, "/v1/simulate/authorizations", map[string]any{"card_id": card.ID, "amount_minor": 506}, nil)
		landed := 0
		activities.SetBeforeReconcileRecord(w.acts, func(ev cardwarden.Event) {
			landed++
			w.record(t, ev) // the webhook path records it first
		})
		in := workflows.ReconcileInput{AgentID: "demo", Issuer: "sim", Timezone: "UTC", CardIDs: []string{card.ID}, Since: since,
			IncludeAll: true, Reason: workflows.ReconcileCapped}
		var res workflows.ReconcileResult
		if err := w.exec(t, w.acts.Reconcile, in, &res); err != nil {
			t.Fatal(err)
		}
		if landed != 1 {
			t.Fatalf("the hook ran %d times, want once", landed)
		}
		if len(res.Missed) != 0 || len(res.Events) != 1 || res.Events[0].AmountMinor != 506 {
			t.Fatalf("missed %+v, events %+v: want the approval among the events the ledger has", res.Missed, res.Events)
		}
		if len(res.Totals) != 1 || res.Totals[0].IssuerUsageMinor != 506 || res.Totals[0].LedgerUsageMinor != 506 {
			t.Fatalf("totals %+v", res.Totals)
		}
	})
}

// A hand-sent card event naming another agent's card is refused and writes nothing: recorded,
// it would count against an agent whose workflow never saw it.
func TestRecordEventRefusesAnotherAgentsCard(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		ev := cardwarden.Event{ID: "evt_forged", Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: card.ID,
			Approved: true, AmountMinor: 900, Currency: "USD", OccurredAt: time.Now()}
		err := w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{AgentID: "intruder", Event: ev}, nil)
		if err == nil || !strings.Contains(err.Error(), "belongs to agent demo") {
			t.Fatalf("want a refusal naming the card's owner, got %v", err)
		}
		if _, err := st.GetEvent(t.Context(), "sim", "evt_forged"); !store.IsNotFound(err) {
			t.Fatalf("the refused event reached the ledger: %v", err)
		}
		// A card no agent owns is refused the same way (recorded, it would be an orphan the
		// workflow had counted).
		orphan := ev
		orphan.ID, orphan.CardID = "evt_orphan", "card_nobodys"
		err = w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{AgentID: "demo", Event: orphan}, nil)
		if err == nil || !strings.Contains(err.Error(), "belongs to no agent") {
			t.Fatalf("want a refusal for a card no agent owns, got %v", err)
		}
		if _, err := st.GetEvent(t.Context(), "sim", "evt_orphan"); !store.IsNotFound(err) {
			t.Fatalf("the refused orphan event reached the ledger: %v", err)
		}
		if err := w.exec(t, w.acts.RecordEvent, workflows.RecordEventInput{AgentID: "demo", Event: ev}, nil); err != nil {
			t.Fatal(err)
		}
		if le, err := st.GetEvent(t.Context(), "sim", "evt_forged"); err != nil || le.Source != store.SourceSignal || le.AgentID != "demo" {
			t.Fatalf("the owner's event: %+v %v", le, err)
		}
	})
}
