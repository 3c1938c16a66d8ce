package issuersim

import (
	"strings"
	"sync"
	"time"
)

// The simulator's own API rate limit: a sliding one-second window, answered with 429 and
// Retry-After like a real issuer's; simulated purchases do not count against it.

// windowLimiter admits at most limit requests in any sliding one-second window. A sliding
// log (not a token bucket) makes "the 21st request within a second is refused" exact, and
// lets stats prove the peak never exceeded the limit.
type windowLimiter struct {
	mu    sync.Mutex
	limit int
	ring  []time.Time // admitted request times, when limited
	next  int
	// recent holds admitted times within the last second for the peak statistic.
	recent []time.Time
	peak   int
}

// admit applies the API rate limit. Simulated purchases (/v1/simulate/*) stand for
// card-network traffic, which a real issuer does not count against it.
func (s *Server) admit(path string) (bool, time.Duration) {
	if strings.HasPrefix(path, "/v1/simulate/") {
		return true, 0
	}
	return s.limiter.allow(time.Now())
}

func newWindowLimiter(limit int) *windowLimiter {
	l := &windowLimiter{}
	l.setLimit(limit)
	return l
}

func (l *windowLimiter) setLimit(limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit, l.next = limit, 0
	l.ring = nil
	if limit > 0 {
		l.ring = make([]time.Time, limit)
	}
}

func (l *windowLimiter) allow(now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limit > 0 {
		oldest := l.ring[l.next]
		if !oldest.IsZero() && now.Sub(oldest) < time.Second {
			return false, oldest.Add(time.Second).Sub(now)
		}
		l.ring[l.next] = now
		l.next = (l.next + 1) % l.limit
	}
	cut := 0
	for cut < len(l.recent) && now.Sub(l.recent[cut]) >= time.Second {
		cut++
	}
	l.recent = append(l.recent[cut:], now)
	l.peak = max(l.peak, len(l.recent))
	return true, 0
}

func (l *windowLimiter) peakPerSecond() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak
}
