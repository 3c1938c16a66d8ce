package workflows_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

func authorizeReq(id string, amount int64, merchant, mcc string) workflows.AuthorizeRequest {
	return workflows.AuthorizeRequest{AuthorizationID: id, CardID: "card-1", AmountMinor: amount, Merchant: merchant, MCC: mcc}
}

// authorizeAll sends the requests at one instant and returns the decisions by id.
func (h *harness) authorizeAll(reqs ...workflows.AuthorizeRequest) map[string]*updateResult {
	out := map[string]*updateResult{}
	for _, r := range reqs {
		out[r.AuthorizationID] = h.authorize(r)
	}
	return out
}

func (h *harness) authorize(req workflows.AuthorizeRequest) *updateResult {
	return h.update(workflows.UpdateAuthorize, req)
}

func decisionOf(t *testing.T, h *harness, r *updateResult) workflows.AuthorizeResult {
	t.Helper()
	if !r.done || r.err != nil || r.rejected != nil {
		t.Fatalf("authorize: done %v err %v rejected %v", r.done, r.err, r.rejected)
	}
	return r.authorize
}

// Purchases racing for the last dollar: exactly as many are approved as the budget holds, and
// an authorization's event turns its reservation into spend without counting it twice.
func TestAuthorizeReservesSoRacingPurchasesNeverShareTheLastDollar(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var results map[string]*updateResult
	h.at(time.Minute, func() {
		var reqs []workflows.AuthorizeRequest
		for i := range 12 {
			reqs = append(reqs, authorizeReq(fmt.Sprintf("a%d", i), 300, "Model API", ""))
		}
		results = h.authorizeAll(reqs...)
	})
	var afterEvents workflows.StateView
	h.at(2*time.Minute, func() {
		for i := range 12 {
			id := fmt.Sprintf("a%d", i)
			if results[id].authorize.Approved {
				h.signal(cardwarden.Event{ID: "ev-" + id, Kind: cardwarden.KindAuthorization, CardID: "card-1", AuthorizationID: id,
					Approved: true, AmountMinor: 300, OccurredAt: sunday.Add(2 * time.Minute)})
			}
		}
	})
	h.at(3*time.Minute, func() { afterEvents = h.state() })
	h.run(policyJSON(retireAt(sunday.Add(time.Hour))))
	approved := 0
	for i := range 12 {
		d := decisionOf(t, h, results[fmt.Sprintf("a%d", i)])
		if d.Approved {
			approved++
		} else if d.Reason != workflows.DecideBudget {
			t.Fatalf("declined for %q, want budget", d.Reason)
		}
	}
	if approved != 8 { // 25.00 / 3.00
		t.Fatalf("%d approved, want 8", approved)
	}
	if afterEvents.Budget.SpentTodayUSD.String() != "24.00" || afterEvents.Budget.ReservedUSD.String() != "0.00" || afterEvents.Budget.RemainingTodayUSD.String() != "1.00" {
		t.Fatalf("after the events: %+v", afterEvents.Budget)
	}
}

// Merchant rules, the per-purchase maximum and velocity decide; a redelivered request gets the
// same answer; a card that is not the current one is declined.
func TestAuthorizeRules(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	type step struct {
		req        workflows.AuthorizeRequest
		approved   bool
		reason     string
		redelivery bool
	}
	steps := []step{
		{authorizeReq("r1", 500, "Anthropic PBC", ""), true, workflows.DecideApproved, false},
		{authorizeReq("r2", 500, "Steam Games", "5816"), false, "merchant_not_allowed", false},
		{authorizeReq("r3", 500, "OpenAI", "7995"), false, "merchant_category_blocked", false},
		{authorizeReq("r4", 1200, "OpenAI", ""), false, workflows.DecideMaxPerPurchase, false},
		{authorizeReq("r1", 500, "Anthropic PBC", ""), true, workflows.DecideApproved, true},
		{authorizeReq("r5", 500, "cohere inc", ""), true, workflows.DecideApproved, false},
		{authorizeReq("r6", 500, "OpenAI", ""), false, workflows.DecideVelocityCount, false}, // third within 1m
		{workflows.AuthorizeRequest{AuthorizationID: "r7", CardID: "old-card", AmountMinor: 100, Merchant: "OpenAI"}, false, workflows.DecideCardNotCurrent, false},
	}
	results := make([]*updateResult, len(steps))
	for i, s := range steps {
		h.at(time.Minute+time.Duration(i)*time.Second, func() { results[i] = h.authorize(s.req) })
	}
	h.run(policyJSON(`"merchant_rules":{"presets":["ai-providers"],"block_mcc":["7995"]},"max_per_purchase_usd":10,` +
		`"velocity":{"window":"1m","max_count":2},` + retireAt(sunday.Add(time.Hour))))
	for i, s := range steps {
		d := decisionOf(t, h, results[i])
		if d.Approved != s.approved || d.Reason != s.reason || d.Repeated != s.redelivery {
			t.Errorf("step %d (%s): %+v, want approved %v reason %s repeated %v", i, s.req.AuthorizationID, d, s.approved, s.reason, s.redelivery)
		}
	}
}

// An approval whose authorization never arrives is released after a while; a declined
// authorization releases its reservation at once.
func TestAuthorizeReservationsExpireOrRelease(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var first, later *updateResult
	var st1, st2 workflows.StateView
	h.at(time.Minute, func() {
		first = h.authorize(authorizeReq("x1", 2000, "Model API", ""))
		h.authorize(authorizeReq("x2", 400, "Model API", ""))
	})
	h.at(time.Minute+time.Second, func() {
		h.signal(cardwarden.Event{ID: "ev-x2", Kind: cardwarden.KindAuthorization, CardID: "card-1", AuthorizationID: "x2", AmountMinor: 400,
			DeclineReason: cardwarden.ReasonSpendingLimit, OccurredAt: sunday.Add(time.Minute)})
	})
	h.at(2*time.Minute, func() { st1 = h.state() })
	h.at(10*time.Minute, func() {
		st2 = h.state()
		later = h.authorize(authorizeReq("x3", 2400, "Model API", ""))
	})
	h.run(policyJSON(retireAt(sunday.Add(time.Hour))))
	if !decisionOf(t, h, first).Approved {
		t.Fatal("x1 declined")
	}
	if st1.Budget.ReservedUSD.String() != "20.00" {
		t.Fatalf("reserved %s after x2 was declined at the issuer, want 20.00", st1.Budget.ReservedUSD)
	}
	if st2.Budget.ReservedUSD.String() != "20.00" {
		t.Fatalf("state before expiry is computed lazily: %s", st2.Budget.ReservedUSD)
	}
	if d := decisionOf(t, h, later); !d.Approved {
		t.Fatalf("x3 after x1's reservation expired: %+v", d)
	}
}

// An agent in a team needs the team's approval first.
func TestAuthorizeInATeamNeedsTheTeam(t *testing.T) {
	f := newFake()
	h := newHarness(t, f, sunday)
	var without, with *updateResult
	h.at(time.Minute, func() {
		without = h.authorize(authorizeReq("t1", 100, "Model API", ""))
		r := authorizeReq("t2", 100, "Model API", "")
		r.TeamApproved = true
		with = h.authorize(r)
	})
	h.run(policyJSON(`"team_id":"research",` + retireAt(sunday.Add(time.Hour))))
	if d := decisionOf(t, h, without); d.Approved || d.Reason != workflows.DecideTeamUnchecked {
		t.Fatalf("without the team: %+v", d)
	}
	if d := decisionOf(t, h, with); !d.Approved {
		t.Fatalf("with the team: %+v", d)
	}
}
