package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// startConcurrency is how many agent starts are in flight at once, as a busy control plane
// (or a fleet import) would issue them.
const startConcurrency = 32

// basePolicy is the policy every benchmark agent starts from.
func basePolicy(agentID string, dailyUSD string) workflows.Policy {
	return workflows.Policy{AgentID: agentID, DailyLimitUSD: money.MustParse(dailyUSD)}
}

// startAgents starts agents first..first+n-1 through cardwarden's own client (starter), n at a
// time up to startConcurrency, and returns when every start call has returned.
func (s *stack) startAgents(ctx context.Context, first, n int, policy func(id string) workflows.Policy) error {
	return parallel(ctx, n, startConcurrency, func(ctx context.Context, i int) error {
		id := s.agentID(first + i)
		if _, err := s.starter.StartAgent(ctx, policy(id)); err != nil {
			return fmt.Errorf("start agent %s: %w", id, err)
		}
		return nil
	})
}

// provisioned counts this stack's agents whose first card is issued, vaulted and recorded.
// IssueCard vaults the credentials before it records the card, so a card row stands for both;
// the range on agent_id uses the cards index (a LIKE would scan the table on SQLite, which
// at 10,000 agents polled every few milliseconds costs the machine more than the agents do).
func (s *stack) provisioned(ctx context.Context) (int, error) {
	return s.count(ctx, `SELECT count(*) FROM cards WHERE agent_id >= ? AND agent_id < ? AND generation = 1`, s.prefix+"-", s.prefix+"-~")
}

// pollEvery is how often to poll for n agents: often enough to time small batches, seldom
// enough to cost nothing at scale.
func pollEvery(n int) time.Duration {
	if n <= 2000 {
		return 50 * time.Millisecond
	}
	return 250 * time.Millisecond
}

// waitProvisioned polls until want agents are provisioned, recording progress, and returns
// the time the last one was seen.
func (s *stack) waitProvisioned(ctx context.Context, want int, timeout time.Duration, tl *timeline) (time.Time, error) {
	var done time.Time
	err := waitFor(ctx, timeout, pollEvery(want), func() (bool, error) {
		n, err := s.provisioned(ctx)
		if err != nil {
			return false, err
		}
		now := time.Now()
		if tl != nil {
			tl.add(now, float64(n))
		}
		if n >= want {
			done = now
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		n, _ := s.provisioned(ctx)
		return time.Time{}, fmt.Errorf("%d of %d agents provisioned: %w", n, want, err)
	}
	return done, nil
}

// waitProvisionedFrom waits until agents first..first+n-1 are all provisioned.
func (s *stack) waitProvisionedFrom(ctx context.Context, first, n int, timeout time.Duration) (time.Time, error) {
	var done time.Time
	lo, hi := s.agentID(first), s.agentID(first+n-1)
	q := `SELECT count(*) FROM cards WHERE agent_id >= ? AND agent_id <= ? AND generation = 1`
	err := waitFor(ctx, timeout, pollEvery(n), func() (bool, error) {
		got, err := s.count(ctx, q, lo, hi)
		if err != nil {
			return false, err
		}
		done = time.Now()
		return got >= n, nil
	})
	if err != nil {
		got, _ := s.count(ctx, q, lo, hi)
		return time.Time{}, fmt.Errorf("%d of %d agents provisioned: %w", got, n, err)
	}
	return done, nil
}

// cardIDs returns the current card of each agent first..first+n-1.
func (s *stack) cardIDs(ctx context.Context, first, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range n {
		c, err := s.store.CurrentCard(ctx, s.agentID(first+i))
		if err != nil {
			return nil, err
		}
		ids[i] = c.IssuerCardID
	}
	return ids, nil
}

// parallel runs fn(i) for i in [0, n), in order of i, with at most c running at once; the
// first error cancels the rest and is returned.
func parallel(ctx context.Context, n, c int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	sem := make(chan struct{}, max(c, 1))
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// stamps is a concurrent map from a key to the time something happened to it.
type stamps struct {
	mu      sync.Mutex
	at      map[string]time.Time
	waiters map[string]chan time.Time
	n       atomic.Int64
}

func newStamps() *stamps {
	return &stamps{at: map[string]time.Time{}, waiters: map[string]chan time.Time{}}
}

// set records t for key, keeping the first time, and wakes a waiter.
func (s *stamps) set(key string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[key]; !ok {
		s.at[key] = t
		s.n.Add(1)
	}
	if ch, ok := s.waiters[key]; ok {
		select {
		case ch <- t:
		default:
		}
	}
}

func (s *stamps) get(key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[key]
	return t, ok
}

// arm forgets key and returns a channel that receives the next time it is set.
func (s *stamps) arm(key string) <-chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.at, key)
	ch := make(chan time.Time, 1)
	s.waiters[key] = ch
	return ch
}
