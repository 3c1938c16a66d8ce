package workflows_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/workflows"
)

// Every new card (first issue, rotation) is pushed to the agent's URL, and only card ids go
// into the activity input: the activity reads the secrets from the vault.
func TestNewCardsArePushedToTheAgent(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday) // rotation: Monday 03:00 UTC = +17h
	h.run(policyJSON(`"credentials_push_url":"https://agent.example/cards",` + retireAt(sunday.Add(19*time.Hour))))
	h.result()
	f.lock(func() {
		var cards []string
		for _, p := range f.pushes {
			if p.URL != "https://agent.example/cards" || p.AgentID != "demo" || p.Issuer != "sim" {
				t.Fatalf("push input: %+v", p)
			}
			cards = append(cards, p.CardID)
		}
		if !slices.Equal(cards, []string{"card-1", "card-2"}) {
			t.Fatalf("pushed %v, want card-1 then card-2", cards)
		}
	})
}

func TestFailedPushAlertsAndKeepsTheCard(t *testing.T) {
	f := newFake()
	f.failPush = true
	h := newHarness(t, f, sunday)
	var st workflows.StateView
	h.at(time.Hour, func() { st = h.state() })
	h.run(policyJSON(`"credentials_push_url":"https://agent.example/cards",` + retireAt(sunday.Add(2*time.Hour))))
	h.result()
	if st.Status != workflows.StatusActive || st.Card == nil || st.Card.ID != "card-1" {
		t.Fatalf("state: %+v", st)
	}
	if !slices.Contains(f.alertKinds(), workflows.AlertPushFailed) {
		t.Fatalf("alerts: %v", f.alertKinds())
	}
}

func TestPushURLIsValidated(t *testing.T) {
	_, err := workflows.ParsePolicy([]byte(policyJSON(`"credentials_push_url":"ftp://x"`)))
	if err == nil || !strings.Contains(err.Error(), "policy.credentials_push_url") {
		t.Fatalf("want an error naming policy.credentials_push_url, got %v", err)
	}
}
