package api

import (
	"context"
	"time"
)

// RedeliveryOptions tune the redelivery loop.
type RedeliveryOptions struct {
	// Every is the pause between sweeps; 5s when zero.
	Every time.Duration
	// Grace leaves events younger than this to the webhook request that is still delivering
	// them; 10s when zero.
	Grace time.Duration
	// Batch is the most events signalled per sweep; 500 when zero.
	Batch int
}

// StartRedelivery runs, until ctx is done, a loop that signals ledger events that were
// recorded but never reached their workflow (Temporal was down when their webhook came in).
// Every API replica may run it: the workflow ignores an event id it has already seen. The
// returned channel is closed when the loop has stopped.
func StartRedelivery(ctx context.Context, d Deps, o RedeliveryOptions) <-chan struct{} {
	s := d.withDefaults()
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.ctl == nil {
			s.Logger.Warn("event redelivery disabled: no Temporal client")
			return
		}
		t := time.NewTicker(o.Every)
		defer t.Stop()
		failing := false
		for {
			n, err := s.ctl.RedeliverPending(ctx, o.Grace, o.Batch)
			switch {
			case err != nil && ctx.Err() == nil:
				if !failing {
					s.Logger.Warn("event redelivery paused: Temporal unreachable", "delivered", n, "error", err)
				}
				failing = true
			case n > 0 || failing:
				s.Logger.Info("redelivered card events", "count", n)
				failing = false
			}
			if n == o.Batch && err == nil && ctx.Err() == nil {
				continue // more are waiting
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}
