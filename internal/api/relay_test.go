package api

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/starter"
)

// gatedControl delivers events only as fast as the test lets it: each DeliverEvents call
// waits for a value on gate and returns it.
type gatedControl struct {
	Control
	gate chan error
	mu   sync.Mutex
	got  map[string][][]string // agent → the event ids of each signal
}

func (g *gatedControl) DeliverEvents(_ context.Context, agentID string, evs []cardwarden.Event) error {
	err := <-g.gate
	if err == nil {
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.ID
		}
		g.mu.Lock()
		g.got[agentID] = append(g.got[agentID], ids)
		g.mu.Unlock()
	}
	return err
}

func (g *gatedControl) signals(agentID string) [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]string(nil), g.got[agentID]...)
}

// deferrals counts what the relay reports it left to the sweep.
type deferrals struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *deferrals) ObserveEvent(cardwarden.Event)  {}
func (d *deferrals) WebhookRejected(string, string) {}
func (d *deferrals) EventsDeferred(reason string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n[reason] += n
}

func (d *deferrals) counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.n)
}

func newGated() *gatedControl {
	return &gatedControl{gate: make(chan error), got: map[string][][]string{}}
}

// release lets n signals through, one at a time.
func release(g *gatedControl, n int) {
	go func() {
		for range n {
			g.gate <- nil
		}
	}()
}

// idle waits until the relay has nothing queued or in flight.
func idle(t *testing.T, r *relay) {
	t.Helper()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.busy) == 0
	}, 5*time.Second, time.Millisecond)
}

// taken waits until every queued event is taken into a signal.
func taken(t *testing.T, r *relay) {
	t.Helper()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.n == 0
	}, 5*time.Second, time.Millisecond)
}

func evt(i int) cardwarden.Event { return cardwarden.Event{ID: fmt.Sprintf("evt_%03d", i)} }

// An agent's events that arrive while its signal is in flight go together, in order, in its
// next signal; each event is delivered once.
func TestRelayBatchesAnAgentsEventsBehindItsSignal(t *testing.T) {
	g := newGated()
	r := newRelay(g, slog.Default(), RelayOptions{Signals: 1})
	require.True(t, r.add("a", evt(0)))
	taken(t, r)
	for i := 1; i <= 50; i++ {
		require.True(t, r.add("a", evt(i)))
	}
	require.True(t, r.add("b", evt(100)))
	release(g, 3)
	idle(t, r)

	var ids []string
	for _, sig := range g.signals("a") {
		ids = append(ids, sig...)
	}
	want := make([]string, 51)
	for i := range want {
		want[i] = evt(i).ID
	}
	require.Equal(t, want, ids, "agent a's events, each once, in order")
	require.Len(t, g.signals("a"), 2, "51 events in two signals: the first, then the 50 that queued behind it")
	require.Equal(t, [][]string{{"evt_100"}}, g.signals("b"))
}

// At most Held events wait in memory; the rest are left to the redelivery sweep (they are in
// the ledger either way).
func TestRelayHoldsABoundedQueue(t *testing.T) {
	g := newGated()
	r := newRelay(g, slog.Default(), RelayOptions{Signals: 1, Held: 3})
	obs := &deferrals{n: map[string]int{}}
	r.obs = obs
	require.True(t, r.add("a", evt(0)))
	taken(t, r)
	for i := 1; i <= 3; i++ {
		require.True(t, r.add("a", evt(i)), "event %d", i)
	}
	require.False(t, r.add("a", evt(4)), "a fourth waiting event was held")
	release(g, 2)
	idle(t, r)
	require.Equal(t, [][]string{{"evt_000"}, {"evt_001", "evt_002", "evt_003"}}, g.signals("a"))
	require.Equal(t, map[string]int{metrics.DeferredQueueFull: 1}, obs.counts())
}

// When Temporal is unreachable the relay stops trying for a while: events go to the sweep
// rather than each waiting out a signal timeout. Other failures do not pause it.
func TestRelayPausesWhileTemporalIsUnreachable(t *testing.T) {
	g := newGated()
	r := newRelay(g, slog.Default(), RelayOptions{Pause: 200 * time.Millisecond})
	obs := &deferrals{n: map[string]int{}}
	r.obs = obs
	require.True(t, r.add("a", evt(0)))
	g.gate <- fmt.Errorf("store: %w", context.DeadlineExceeded)
	idle(t, r)
	require.True(t, r.add("a", evt(1)), "a failure other than Temporal's paused the relay")
	g.gate <- nil
	idle(t, r)

	require.True(t, r.add("a", evt(2)))
	g.gate <- &starter.Error{Kind: starter.ErrUnavailable, Op: "signal", Msg: "down"}
	idle(t, r)
	require.False(t, r.add("a", evt(3)), "queued while Temporal was just found unreachable")
	require.Eventually(t, func() bool {
		if !r.add("a", evt(4)) {
			return false
		}
		g.gate <- nil
		return true
	}, 5*time.Second, 10*time.Millisecond, "the relay never resumed")
	idle(t, r)
	require.Equal(t, [][]string{{"evt_001"}, {"evt_004"}}, g.signals("a"))
	// evt_000 failed; evt_002 found Temporal unreachable, evt_003 came while paused (and so
	// did any try of evt_004 before the pause ended).
	got := obs.counts()
	require.Equal(t, 1, got[metrics.DeferredFailed])
	require.GreaterOrEqual(t, got[metrics.DeferredTemporalUnreachable], 2)
	require.Zero(t, got[metrics.DeferredQueueFull])
}
