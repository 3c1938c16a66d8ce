//go:build resilience

package resilience

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// TestWorkerCrash kills `cardwarden worker` with SIGKILL at random moments while many agents
// are being issued cards, rotated every few seconds and reset every few seconds, restarts it,
// and then checks at the simulator, in the application database and in the workflows'
// histories that no agent has two cards of one generation, no replaced card stayed open past
// its grace period (plus the time the worker was down and in-flight activities took to time
// out), and no reset was lost or done twice.
func TestWorkerCrash(t *testing.T) {
	const (
		agents   = 16
		period   = 4 * time.Second // reset
		rotation = 10 * time.Second
		grace    = 3 * time.Second
		chaos    = 45 * time.Second
	)
	h := newHarness(t, harnessOptions{})
	w := h.startWorkerProcess()
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	ids := agentIDs("crash", agents)
	pol := func(id string) workflows.Policy {
		return policy(id, "50", func(p *workflows.Policy) {
			p.ResetCron = "@every " + period.String()
			p.RotateCron = "@every " + rotation.String()
			p.RotationGrace = workflows.Duration(grace)
		})
	}
	start := time.Now()
	h.startAgents(ids, pol)

	// Kill at random points: the first soon enough to catch the first issues, then every
	// 0.5–5 s, each time down for 0.1–1.5 s.
	kills := 0
	next := time.Duration(200+rng.IntN(1200)) * time.Millisecond
	for time.Since(start) < chaos {
		time.Sleep(next)
		w.kill()
		kills++
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		w.start()
		next = time.Duration(500+rng.IntN(4500)) * time.Millisecond
	}
	t.Logf("killed the worker %d times in %s", kills, time.Since(start).Round(time.Second))

	// An activity that was running in a killed worker is retried only after its
	// start-to-close timeout (up to 2 minutes for a reconciliation), so allow that long for
	// every agent to catch up: an active card, nothing pending, resets current.
	h.eventually(4*time.Minute, "agents caught up after the crashes", func() error {
		for _, id := range ids {
			st, err := h.state(id)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if st.Status != workflows.StatusActive || st.Card == nil || st.IssuePending {
				return fmt.Errorf("%s: status %s, card %v, issue pending %v", id, st.Status, st.Card != nil, st.IssuePending)
			}
			if behind := time.Since(st.NextReset); behind > period {
				return fmt.Errorf("%s: next reset %s is %s overdue", id, st.NextReset.Format(time.TimeOnly), behind.Round(time.Millisecond))
			}
		}
		return nil
	})

	// The database is read before the issuer: a card is recorded only after the issuer made
	// it, so everything recorded must be at the issuer even while rotations go on.
	recorded := map[string][]store.Card{}
	for _, id := range ids {
		cards, err := h.st.ListCards(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		recorded[id] = cards
	}
	// 1. At the issuer: one card per generation (cardsByAgent fails on a duplicate), and
	// generations without gaps.
	now := time.Now()
	byAgent := h.cardsByAgent()
	// 2. Replaced cards closed in time. The allowance covers the worker being down when the
	// grace period ended plus an in-flight activity's timeout.
	const allowance = 180 * time.Second
	var worstDelay time.Duration
	totalCards, closedCards := 0, 0
	for _, id := range ids {
		gens := byAgent[id]
		if len(gens) == 0 {
			t.Errorf("agent %s has no card at the issuer", id)
			continue
		}
		for g := 1; g <= len(gens); g++ {
			if _, ok := gens[g]; !ok {
				t.Errorf("agent %s: generation %d missing at the issuer (has %d cards)", id, g, len(gens))
			}
		}
		for g := 1; g < len(gens); g++ {
			old, repl := gens[g], gens[g+1]
			totalCards++
			replaced := repl.CreatedAt
			switch {
			case old.ClosedAt != nil:
				closedCards++
				delay := old.ClosedAt.Sub(replaced) - grace
				worstDelay = max(worstDelay, delay)
				if delay > allowance {
					t.Errorf("agent %s: card gen %d closed %s after its grace ended", id, g, delay.Round(time.Second))
				}
			case now.Sub(replaced) > grace+allowance:
				t.Errorf("agent %s: card gen %d (%s) still %s, replaced %s ago", id, g, old.ID, old.Status, now.Sub(replaced).Round(time.Second))
			}
		}
		// The newest card is the workflow's current one (or one the workflow is about to
		// replace it with).
		st, err := h.state(id)
		if err != nil {
			t.Fatal(err)
		}
		newest := gens[len(gens)]
		if st.Card.ID != newest.ID && st.Card.Generation < len(gens)-1 {
			t.Errorf("agent %s: workflow's card gen %d %s, issuer's newest gen %d %s", id, st.Card.Generation, st.Card.ID, len(gens), newest.ID)
		}
		// 3. The application database agrees with the issuer, generation by generation.
		cards := recorded[id]
		for _, c := range cards {
			if sc, ok := gens[c.Generation]; !ok || sc.ID != c.IssuerCardID {
				t.Errorf("agent %s gen %d: database has %s, issuer has %s", id, c.Generation, c.IssuerCardID, sc.ID)
			}
		}
		if len(cards) < len(gens)-2 {
			t.Errorf("agent %s: %d cards recorded, issuer issued %d", id, len(cards), len(gens))
		}
	}
	t.Logf("%d replaced cards, %d closed; worst close delay past the grace period: %s", totalCards, closedCards, worstDelay.Round(time.Millisecond))

	// 4. Resets: none done twice, all on the schedule, none left behind.
	totalResets, totalCollapsed := 0, 0
	for _, id := range ids {
		inst, err := h.resetInstants(id)
		if err != nil {
			t.Fatal(err)
		}
		collapsed, err := checkResets(inst, period, time.Now(), 10*time.Second)
		if err != nil {
			t.Errorf("agent %s: %v", id, err)
		}
		totalResets += len(inst)
		totalCollapsed += collapsed
	}
	t.Logf("%d resets done, %d due instants collapsed into a later reset while the agent's worker was down or blocked (the workflow's catch-up: one reset after downtime, not one per missed instant)",
		totalResets, totalCollapsed)
	if kills == 0 {
		t.Fatal("the worker was never killed")
	}
	t.Logf("worker started %s times", strconv.Itoa(w.runs))
}
