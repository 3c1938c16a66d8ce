package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/starter"
)

// RelayOptions tune the webhook relay.
type RelayOptions struct {
	// Signals is the most signals in flight at once; 4 when zero. Fewer means more of an
	// agent's events ride in one signal while the signals ahead of it are answered: the relay
	// batches by itself as the load grows, and Temporal does a round trip per signal, not per
	// event.
	Signals int
	// Held is the most events waiting in memory; 10,000 when zero. Past it (or while Temporal
	// is unreachable) an event is left in the ledger for the redelivery sweep.
	Held int
	// Pause is how long the relay leaves new events to the sweep after Temporal was found
	// unreachable; 5s when zero.
	Pause time.Duration
}

// relay delivers recorded webhook events to their agents' workflows after the webhook was
// acknowledged. Each agent's events go in order; while an agent's signal waits for a slot or
// is in flight, its next events queue and go together in its next signal. Nothing it holds is
// the only copy: every event is in the ledger, unsignalled until delivered, so a process that
// stops with events queued loses none (StartRedelivery delivers them).
type relay struct {
	ctl   Control
	log   *slog.Logger
	obs   Observer // counts what is left to the sweep; nil counts nothing
	slots chan struct{}
	held  int
	pause time.Duration

	mu      sync.Mutex
	queued  map[string][]cardwarden.Event // agent → events waiting for its next signal
	busy    map[string]bool               // agents whose goroutine is delivering
	n       int                           // events queued
	resumes time.Time                     // until then, events are left to the sweep
}

func newRelay(ctl Control, log *slog.Logger, o RelayOptions) *relay {
	if o.Signals <= 0 {
		o.Signals = 4
	}
	if o.Held <= 0 {
		o.Held = 10_000
	}
	if o.Pause <= 0 {
		o.Pause = 5 * time.Second
	}
	return &relay{ctl: ctl, log: log, slots: make(chan struct{}, o.Signals), held: o.Held, pause: o.Pause,
		queued: map[string][]cardwarden.Event{}, busy: map[string]bool{}}
}

// add queues a recorded event for its agent's workflow and reports whether it did; false
// leaves it to the sweep.
func (r *relay) add(agentID string, ev cardwarden.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case time.Now().Before(r.resumes):
		r.deferred(metrics.DeferredTemporalUnreachable, 1)
		return false
	case r.n >= r.held:
		r.deferred(metrics.DeferredQueueFull, 1)
		return false
	}
	r.queued[agentID] = append(r.queued[agentID], ev)
	r.n++
	if !r.busy[agentID] {
		r.busy[agentID] = true
		go r.run(agentID)
	}
	return true
}

// run delivers an agent's queued events, a signal at a time, until none are left.
func (r *relay) run(agentID string) {
	for {
		r.slots <- struct{}{}
		r.mu.Lock()
		evs := r.queued[agentID]
		delete(r.queued, agentID)
		r.n -= len(evs)
		r.mu.Unlock()

		err := r.ctl.DeliverEvents(context.Background(), agentID, evs)
		<-r.slots

		r.mu.Lock()
		if err != nil {
			r.failed(agentID, len(evs), err)
		}
		if len(r.queued[agentID]) == 0 {
			delete(r.busy, agentID)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// failed logs a delivery that did not get through; the events wait in the ledger for the
// sweep. When Temporal is unreachable, new events go straight to the sweep for a while rather
// than each waiting out a signal timeout. Called with r.mu held.
func (r *relay) failed(agentID string, n int, err error) {
	if errors.Is(err, starter.ErrUnavailable) {
		r.deferred(metrics.DeferredTemporalUnreachable, n)
		if !time.Now().Before(r.resumes) {
			r.log.Warn("webhook relay paused: Temporal unreachable; recorded events wait for the redelivery sweep",
				"agent_id", agentID, "events", n, "error", err)
		}
		r.resumes = time.Now().Add(r.pause)
		return
	}
	r.deferred(metrics.DeferredFailed, n)
	r.log.Error("webhook relay: events recorded but not delivered; the redelivery sweep will retry",
		"agent_id", agentID, "events", n, "error", err)
}

func (r *relay) deferred(reason string, n int) {
	if r.obs != nil {
		r.obs.EventsDeferred(reason, n)
	}
}
