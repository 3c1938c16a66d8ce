package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/workflows"
)

// simDo calls the simulator's API with the bench key.
func (s *stack) simDo(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.simURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+simAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := sharedHTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("simulator %s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// decline makes the simulator decline a purchase on card and returns the event id.
func (s *stack) decline(ctx context.Context, cardID string, reason cardwarden.DeclineReason) (string, error) {
	var out struct {
		Approved bool   `json:"approved"`
		EventID  string `json:"event_id"`
	}
	err := s.simDo(ctx, http.MethodPost, "/v1/simulate/authorizations", map[string]any{
		"card_id": cardID, "amount_usd": "1.00", "merchant": "bench-merchant", "force_decline": string(reason),
	}, &out)
	if err == nil && out.Approved {
		err = fmt.Errorf("authorization on %s approved, want a decline", cardID)
	}
	return out.EventID, err
}

// runFreeze: from the webhook that completes a decline burst arriving at cardwarden's API to
// the card being paused at the simulator, over many bursts; the floor is one signal round trip
// plus one activity that pauses a card at the simulator, on the same server.
func runFreeze(ctx context.Context, o Options, r *Result) error {
	r.Title = "freeze latency: decline burst webhook → card paused at the issuer"
	agents := o.size(14, 5)
	bursts := o.size(70, 30)
	const perBurst = workflows.DefaultMaxDeclines
	r.Params["agents"], r.Params["bursts"], r.Params["declines_per_burst"] = agents, bursts, perBurst

	s, err := newStack(ctx, o, stackConfig{name: "freeze", inProcessWorker: true})
	if err != nil {
		return err
	}
	defer s.close()

	policy := func(id string) workflows.Policy {
		p := basePolicy(id, "1000")
		p.RotateCron = workflows.RotateOff
		p.Anomaly.RevokeAfterFreezes = 100 // every burst freezes; none revokes
		return p
	}
	if err := s.startAgents(ctx, 0, agents, policy); err != nil {
		return err
	}
	if _, err := s.waitProvisioned(ctx, agents, 2*time.Minute, nil); err != nil {
		return err
	}
	cards, err := s.cardIDs(ctx, 0, agents)
	if err != nil {
		return err
	}

	// The floor: its own card, its own entity workflow on the floor worker.
	floorCard, err := s.simClient.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: "bench-floor-" + s.prefix, Label: "bench floor", Currency: "USD"})
	if err != nil {
		return err
	}
	floorWID := "bench-floor-pause-" + s.prefix
	if _, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: floorWID, TaskQueue: floorQueue}, floorWFPause, floorCard.ID); err != nil {
		return err
	}

	arrivals := newStamps() // webhook id → arrival at the API
	paused := newStamps()   // card id → pause answered by the simulator
	s.apiRec.set(func(e reqEvent) {
		if e.Method == http.MethodPost && e.Path == "/v1/webhooks/sim" {
			arrivals.set(e.Header.Get("webhook-id"), e.Start)
		}
	})
	s.simRec.set(func(e reqEvent) {
		if id, action, ok := cardAction(e.Path); ok && action == "pause" && e.Status == http.StatusOK {
			paused.set(id, e.End)
		}
	})
	defer s.apiRec.set(nil)
	defer s.simRec.set(nil)

	var cw, floor []float64
	warmup := 3
	for i := -warmup; i < bursts; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a := (i + warmup) % agents
		agentID, card := s.agentID(a), cards[a]

		// cardwarden: a burst of declines through the simulator, its webhooks, the API, the
		// ledger and the workflow's detector.
		done := paused.arm(card)
		var events []string
		for range perBurst {
			id, err := s.decline(ctx, card, cardwarden.ReasonSpendingLimit)
			if err != nil {
				return err
			}
			events = append(events, id)
		}
		var t1 time.Time
		select {
		case t1 = <-done:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("burst %d: card of agent %s not paused within 30s", i, agentID)
		case <-ctx.Done():
			return ctx.Err()
		}
		// The API records an arrival when its handler returns, which can be after the pause
		// it caused; the arrival time itself is when the request came in.
		var t0 time.Time
		for _, ev := range events {
			var at time.Time
			if err := waitFor(ctx, 10*time.Second, time.Millisecond, func() (bool, error) {
				var ok bool
				at, ok = arrivals.get(ev)
				return ok, nil
			}); err != nil {
				return fmt.Errorf("burst %d: webhook %s never reached the API but the card was paused", i, ev)
			}
			if at.After(t0) {
				t0 = at
			}
		}
		// The pause is done at the issuer; the workflow records the freeze when the activity
		// result comes back. Unfreeze once it has, for the next burst.
		if err := waitFor(ctx, 30*time.Second, 5*time.Millisecond, func() (bool, error) {
			st, err := s.starter.State(ctx, agentID)
			return err == nil && st.Status == workflows.StatusFrozen, err
		}); err != nil {
			return fmt.Errorf("burst %d: agent %s not frozen: %w", i, agentID, err)
		}
		if _, err := s.starter.Unfreeze(ctx, agentID, workflows.ReasonRequest{Reason: "bench: next burst", Actor: "bench"}); err != nil {
			return fmt.Errorf("unfreeze %s: %w", agentID, err)
		}

		// The floor: one signal, one activity that pauses a card at the simulator.
		fdone := paused.arm(floorCard.ID)
		f0 := time.Now()
		if err := s.tc.SignalWorkflow(ctx, floorWID, "", floorSignalName, 1); err != nil {
			return err
		}
		var f1 time.Time
		select {
		case f1 = <-fdone:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("floor round trip %d: no pause within 30s", i)
		}
		if i >= 0 {
			cw = append(cw, ms(t1.Sub(t0)))
			floor = append(floor, ms(f1.Sub(f0)))
		}
	}
	_ = s.tc.SignalWorkflow(ctx, floorWID, "", floorSignalName, -1)

	for _, p := range []float64{50, 95, 99} {
		m := r.metric(fmt.Sprintf("p%.0f", p), "ms", percentile(cw, p)).withFloor(percentile(floor, p))
		if p == 99 {
			m.target("ratio <= 1.5", *m.Ratio <= 1.5) // issue 16; 3× before the stops started eagerly
		}
	}
	r.metric("max", "ms", slices.Max(cw)).withFloor(slices.Max(floor))
	r.check("every burst froze its card", len(cw) == bursts, "%d bursts, %d freezes measured", bursts, len(cw))
	r.note("start: arrival at POST /v1/webhooks/sim of the last webhook of the %d-decline burst; end: the simulator answering the pause", perBurst)
	r.note("floor: client SignalWorkflow → workflow task → activity → simulator pause, on a floor worker in the same process")
	r.Series = []Series{{Name: "cardwarden", Points: cdf(cw)}, {Name: "floor (signal + 1 activity)", Points: cdf(floor)}}
	r.chart = func(r *Result) string {
		return lineChart("Freeze latency (CDF)", fmt.Sprintf("%d bursts of %d declines; webhook arrival → card paused at the simulator", bursts, perBurst),
			"latency (ms)", "fraction of bursts", r.Series, nil)
	}
	return nil
}
