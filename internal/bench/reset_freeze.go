package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// Freezes measured inside the fleet-reset scenario: bursts on agents that do not reset there,
// a few on the quiet stack before the fleet exists, many spread through the reset; the quiet
// ones are the during-reset figure's floor (same stack, same run, same definition).

// recordPauses stamps each card's pause when the simulator answers it.
func recordPauses(paused *stamps) func(reqEvent) {
	return func(e reqEvent) {
		if id, action, ok := cardAction(e.Path); ok && action == "pause" && e.Method == http.MethodPost && e.Status == http.StatusOK {
			paused.set(id, e.End)
		}
	}
}

// burstToPause sends a decline burst on card and measures from the simulator answering its
// last decline to the simulator answering the card's pause.
func (s *stack) burstToPause(ctx context.Context, card string, paused *stamps) (time.Duration, error) {
	done := paused.arm(card)
	for range workflows.DefaultMaxDeclines {
		if _, err := s.decline(ctx, card, cardwarden.ReasonSpendingLimit); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	select {
	case t1 := <-done:
		return t1.Sub(t0), nil
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("card %s not paused within a minute of its decline burst", card)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// burstsDuring runs one burst per card, started evenly over [at, at+span), concurrently, and
// returns each burst's freeze latency.
func (s *stack) burstsDuring(ctx context.Context, cards []string, at time.Time, span time.Duration, paused *stamps) ([]float64, error) {
	out := make([]float64, len(cards))
	err := parallel(ctx, len(cards), len(cards), func(ctx context.Context, i int) error {
		time.Sleep(time.Until(at.Add(span * time.Duration(i) / time.Duration(len(cards)))))
		d, err := s.burstToPause(ctx, cards[i], paused)
		out[i] = ms(d)
		return err
	})
	return out, err
}
