package workflows_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// A card-event signal sent by hand (Temporal CLI or Web UI: no "recorded" mark) is recorded in
// the ledger by the workflow, once per event id, with the agent's issuer filled in when the
// sender left it out; a signal from the webhook path (marked recorded) is not recorded again.
func TestHandSentEventsAreRecordedInTheLedger(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var st workflows.StateView
	h.at(time.Hour, func() {
		byHand := approved("evt-hand", "card-1", sunday.Add(time.Hour), 300)
		byHand.Issuer = ""
		h.signal(byHand)
		h.signal(byHand) // sent twice by hand: counted and recorded once
		webhook := approved("evt-webhook", "card-1", sunday.Add(time.Hour), 200)
		webhook.Recorded = true
		h.signal(webhook)
		bad := approved("evt-bad", "card-1", sunday.Add(time.Hour), -5) // ignored: nothing to record
		h.signal(bad)
	})
	h.at(2*time.Hour, func() { st = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(3 * time.Hour))))
	h.result()
	if got := st.Budget.SpentTodayUSD.String(); got != "5.00" {
		t.Fatalf("spent today %s, want 5.00", got)
	}
	f.lock(func() {
		var ids []string
		for _, r := range f.recorded {
			ids = append(ids, r.Event.ID)
			if r.AgentID != "demo" || r.Event.Issuer != "sim" || r.Event.AmountMinor != 300 || r.Event.OccurredAt.IsZero() {
				t.Fatalf("record input: %+v", r)
			}
		}
		if !slices.Equal(ids, []string{"evt-hand"}) {
			t.Fatalf("recorded %v, want only evt-hand", ids)
		}
	})
}

// When the ledger cannot take a hand-sent event (its card belongs to no agent), the workflow
// alerts that its spend and the ledger's now disagree.
func TestHandSentEventTheLedgerRefusesAlerts(t *testing.T) {
	f := newFake()
	f.failRecord = true
	h := newHarness(t, f, sunday)
	h.at(time.Hour, func() {
		h.signal(cardwarden.Event{ID: "evt-x", Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: "card-other",
			Approved: true, AmountMinor: 100, Currency: "USD"})
	})
	h.run(policyJSON(retireAt(sunday.Add(2 * time.Hour))))
	h.result()
	if !slices.Contains(f.alertKinds(), workflows.AlertLedgerFailed) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
}

// The webhook relay sends several of an agent's events as one card-event signal (a JSON
// array): each is applied in order and counted once, a decline burst in one signal freezes the
// card, and a single event (a JSON object, as the Temporal CLI sends it) still reads.
func TestOneSignalCarriesManyEvents(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	t0 := sunday.Add(time.Hour)
	var st workflows.StateView
	h.at(time.Hour, func() {
		spend := []cardwarden.Event{approved("evt-a", "card-1", t0, 300), approved("evt-b", "card-1", t0, 200)}
		for i := range spend {
			spend[i].Recorded = true
		}
		h.env.SignalWorkflow(workflows.SignalCardEvent, spend)
		h.env.SignalWorkflow(workflows.SignalCardEvent, spend[:1]) // a redelivery: counted once
		one := approved("evt-c", "card-1", t0, 100)
		one.Recorded = true
		h.signal(one)
	})
	h.at(2*time.Hour, func() {
		st = h.state()
		var burst []cardwarden.Event
		for i := range 5 {
			ev := decline(fmt.Sprintf("d%d", i), "card-1", t0.Add(time.Hour+time.Duration(i)*time.Second), cardwarden.ReasonSpendingLimit)
			ev.Recorded = true
			burst = append(burst, ev)
		}
		h.env.SignalWorkflow(workflows.SignalCardEvent, burst)
	})
	var frozen workflows.StateView
	h.at(2*time.Hour+time.Minute, func() { frozen = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(3 * time.Hour))))
	h.result()
	if got := st.Budget.SpentTodayUSD.String(); got != "6.00" {
		t.Fatalf("spent today %s, want 6.00 (3 + 2 + 1, each once)", got)
	}
	if frozen.Status != workflows.StatusFrozen || len(frozen.RecentDeclines) != 5 {
		t.Fatalf("a burst of 5 declines in one signal: status %s, %d recent declines", frozen.Status, len(frozen.RecentDeclines))
	}
	f.lock(func() {
		if len(f.recorded) != 0 {
			t.Fatalf("events marked recorded were recorded again: %+v", f.recorded)
		}
	})
}

// An attacker who can reach the signal (or an issuer redelivering) sends one event many times:
// repeated inside one array, and again once the window is full, when it is the oldest id the
// agent still remembers. Each is counted once; an id pushed out of the window is the ledger's
// to refuse (the webhook path), which this test does not cover.
func TestRepeatsAcrossAFullDedupeWindowCountOnce(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	t0 := sunday.Add(time.Hour)
	ev := func(i int) cardwarden.Event {
		e := approved(fmt.Sprintf("evt-%05d", i), "card-1", t0, 1)
		e.Recorded = true
		return e
	}
	var st workflows.StateView
	h.at(time.Hour, func() {
		first := ev(0)
		h.env.SignalWorkflow(workflows.SignalCardEvent, []cardwarden.Event{first, first, first})
		var fill []cardwarden.Event
		for i := 1; i < 2048; i++ { // the window holds 2,048 ids: evt-00000 is now its oldest
			fill = append(fill, ev(i))
		}
		h.env.SignalWorkflow(workflows.SignalCardEvent, fill)
		h.env.SignalWorkflow(workflows.SignalCardEvent, []cardwarden.Event{first, ev(2047), first})
	})
	h.at(2*time.Hour, func() { st = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(3 * time.Hour))))
	h.result()
	if got := st.Budget.SpentTodayUSD.String(); got != "20.48" {
		t.Fatalf("spent today %s, want 20.48 (2,048 events of 0.01, each once)", got)
	}
}
