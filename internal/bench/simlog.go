package bench

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// simLog records the simulator's API traffic during a window.
type simLog struct {
	mu       sync.Mutex
	starts   []time.Time            // every API request (not /v1/sim/*)
	limited  int                    // answered 429
	limits   map[string][]time.Time // card → limit updates answered 200
	listings map[string][]time.Time // card → reconciliation listings answered 200
	pauses   map[string]time.Time   // card → pause answered 200
}

func newSimLog() *simLog {
	return &simLog{limits: map[string][]time.Time{}, listings: map[string][]time.Time{}, pauses: map[string]time.Time{}}
}

func (l *simLog) record(e reqEvent) {
	if strings.HasPrefix(e.Path, "/v1/sim/") || strings.HasPrefix(e.Path, "/v1/simulate/") {
		return // the control plane and simulated purchases are not API traffic
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts = append(l.starts, e.Start)
	if e.Status == http.StatusTooManyRequests {
		l.limited++
	}
	if id, action, ok := cardAction(e.Path); ok && e.Status == http.StatusOK {
		switch {
		case action == "limits" && e.Method == http.MethodPost:
			l.limits[id] = append(l.limits[id], e.End)
		case action == "authorizations" && e.Method == http.MethodGet:
			l.listings[id] = append(l.listings[id], e.End)
		case action == "pause" && e.Method == http.MethodPost:
			l.pauses[id] = e.End
		}
	}
}

// peakPerSecond is the most requests that started within any one-second window.
func peakPerSecond(ts []time.Time) int {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range s {
		for s[i].Sub(s[j]) >= time.Second {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
