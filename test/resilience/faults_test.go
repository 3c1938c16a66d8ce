//go:build resilience

package resilience

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/workflows"
)

// TestIssuerFaults runs whole agent lifecycles — issue, daily resets, a manual rotation, a
// decline burst that freezes the card, an unfreeze, retirement — against an issuer that fails
// 30% of calls with 500/503, admits only 8 requests a second (429 beyond), and for every tenth
// card POST executes the request but loses the response. Everything must complete, and nothing
// may be duplicated: one card per generation, every card closed at the end, every decline in the
// ledger once.
func TestIssuerFaults(t *testing.T) {
	const agents = 4
	h := newHarness(t, harnessOptions{faults: issuersim.Faults{ErrorRate: 0.3, RateLimit: 8}, lostResponses: 0.1})
	// No --issuer-rate-limit: the worker runs into the 429s and must live with them.
	h.startWorkerProcess()
	ids := agentIDs("faults", agents)
	h.startAgents(ids, func(id string) workflows.Policy {
		return policy(id, "50", func(p *workflows.Policy) {
			p.ResetCron = "@every 10s"
			p.RotateCron = workflows.RotateOff
			p.RotationGrace = workflows.Duration(2 * time.Second)
		})
	})

	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.lifecycle(id); err != nil {
				errs <- fmt.Errorf("agent %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every workflow completed as retired.
	for _, id := range ids {
		d, err := h.tc.DescribeWorkflowExecution(h.ctx, workflows.WorkflowID(id), "")
		if err != nil {
			t.Fatal(err)
		}
		if s := d.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			t.Errorf("agent %s: workflow %s", id, s)
		}
	}
	// At the issuer: one card per generation, two generations (initial + rotation), all closed.
	byAgent := h.cardsByAgent()
	for _, id := range ids {
		gens := byAgent[id]
		if len(gens) != 2 {
			t.Errorf("agent %s: %d cards at the issuer, want 2 (initial and rotated)", id, len(gens))
		}
		for g, c := range gens {
			if c.Status != "closed" {
				t.Errorf("agent %s: card gen %d is %s after retirement", id, g, c.Status)
			}
		}
		cards, err := h.st.ListCards(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(cards) != len(gens) {
			t.Errorf("agent %s: %d cards in the database, %d at the issuer", id, len(cards), len(gens))
		}
		for _, c := range cards {
			if c.Status != "closed" {
				t.Errorf("agent %s: database says card gen %d is %s", id, c.Generation, c.Status)
			}
		}
		// Each of the burst's declines is in the ledger once, and counted once in daily spend.
		n, err := countRows(h, `SELECT count(*) FROM ledger_events WHERE agent_id = ? AND kind = 'authorization' AND approved = ?`, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if n != burstSize {
			t.Errorf("agent %s: %d declines in the ledger, want %d", id, n, burstSize)
		}
	}
	st := h.sim.Stats()
	lost := int64(0)
	if h.lossy != nil {
		lost = h.lossy.count.Load()
	}
	t.Logf("issuer: %d requests, %d answered 429, %d failed with injected 5xx, %d executed with the response lost, %d idempotent replays",
		st.Requests, st.RateLimited, st.ErrorsInjected, lost, st.IdempotentReplays)
	if st.ErrorsInjected == 0 || st.RateLimited == 0 || lost == 0 {
		t.Errorf("the faults were not exercised: %+v, %d lost", st, lost)
	}
}

const burstSize = workflows.DefaultMaxDeclines

// lifecycle drives one agent through its life under faults.
func (h *harness) lifecycle(id string) error {
	ctx, cancel := context.WithTimeout(h.ctx, 8*time.Minute)
	defer cancel()
	wait := func(what string, cond func(workflows.StateView) bool) (workflows.StateView, error) {
		var st workflows.StateView
		var err error
		for ctx.Err() == nil {
			if st, err = h.state(id); err == nil && cond(st) {
				return st, nil
			}
			time.Sleep(250 * time.Millisecond)
		}
		return st, fmt.Errorf("%s: last state %s gen %d resets %d (%v)", what, st.Status, st.Generation, st.Resets, err)
	}
	t0 := time.Now()
	step := func(what string) { h.t.Logf("%s: %s after %s", id, what, time.Since(t0).Round(100*time.Millisecond)) }
	st, err := wait("first card and a reset", func(s workflows.StateView) bool { return s.Card != nil && s.Resets >= 1 })
	if err != nil {
		return err
	}
	step("issued and reset")
	if _, err := h.starter.Rotate(ctx, id, workflows.ReasonRequest{Reason: "resilience: rotate under faults"}); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	st, err = wait("rotated", func(s workflows.StateView) bool { return s.Card != nil && s.Card.Generation == 2 })
	if err != nil {
		return err
	}
	step("rotated")
	for range burstSize {
		var out struct {
			Approved bool `json:"approved"`
		}
		if err := h.simDo(http.MethodPost, "/v1/simulate/authorizations", map[string]any{
			"card_id": st.Card.ID, "amount_usd": "2.00", "force_decline": "spending_limit"}, &out); err != nil {
			return fmt.Errorf("decline: %w", err)
		}
	}
	if _, err := wait("frozen by the burst", func(s workflows.StateView) bool { return s.Status == workflows.StatusFrozen }); err != nil {
		return err
	}
	step("frozen by a decline burst")
	if _, err := h.starter.Unfreeze(ctx, id, workflows.ReasonRequest{Reason: "resilience: reviewed"}); err != nil {
		return fmt.Errorf("unfreeze: %w", err)
	}
	step("unfrozen")
	if _, err := h.starter.Retire(ctx, id, workflows.ReasonRequest{Reason: "resilience: done"}); err != nil {
		return fmt.Errorf("retire: %w", err)
	}
	step("retired")
	return nil
}

func countRows(h *harness, q string, args ...any) (int, error) {
	var n int
	err := h.st.DB().GetContext(h.ctx, &n, h.st.DB().Rebind(q), args...)
	return n, err
}
