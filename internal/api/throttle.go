package api

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Throttle limits failed authentications: per client address (an IPv6 client by its /64, which
// one host usually owns whole) and, for the credential pull, per agent. Once a key has had
// Limit failures in the current window, every request for it is answered 429 with Retry-After
// until the window ends, before any token is compared or any row is read or written, so
// guessing costs the server nothing and fills no table.
//
// It is in memory, per process: with several API replicas an attacker gets each replica's
// budget, which is still nothing against 256-bit tokens. Behind a proxy every client has the
// proxy's address (forwarding headers are not trusted): raise the per-address limit there.
// The number of tracked keys is bounded, so random addresses or agent ids cannot grow it.
type Throttle struct {
	// PerAddress failures per Window from one client address; 20 when zero.
	PerAddress int
	// PerAgent failures per Window for one agent id, from anywhere; 50 when zero. A flood of
	// wrong tokens for one agent delays that agent's own pulls until the window ends.
	PerAgent int
	// Window is the counting window; one minute when zero.
	Window time.Duration
	// MaxKeys bounds the keys tracked; 100,000 when zero.
	MaxKeys int
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu   sync.Mutex
	keys map[string]*throttleEntry
}

type throttleEntry struct {
	start    time.Time
	failures int
}

func (t *Throttle) defaults() (perAddr, perAgent int, window time.Duration, maxKeys int, now time.Time) {
	perAddr, perAgent, window, maxKeys = t.PerAddress, t.PerAgent, t.Window, t.MaxKeys
	if perAddr <= 0 {
		perAddr = 20
	}
	if perAgent <= 0 {
		perAgent = 50
	}
	if window <= 0 {
		window = time.Minute
	}
	if maxKeys <= 0 {
		maxKeys = 100_000
	}
	if t.Now != nil {
		now = t.Now()
	} else {
		now = time.Now()
	}
	return
}

// clientKey is the throttling key of the request's peer address.
func clientKey(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "addr:" + r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + a.String()
}

// Blocked reports whether the request's address, or the agent (when agentID is not ""), is
// over its limit, and for how long.
func (t *Throttle) Blocked(r *http.Request, agentID string) (time.Duration, bool) {
	perAddr, perAgent, window, _, now := t.defaults()
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	check := func(key string, limit int) {
		e := t.keys[key]
		if e == nil || now.Sub(e.start) >= window || e.failures < limit {
			return
		}
		wait = max(wait, e.start.Add(window).Sub(now))
	}
	check(clientKey(r), perAddr)
	if agentID != "" {
		check("agent:"+agentID, perAgent)
	}
	return wait, wait > 0
}

// Failed counts a failed authentication against the request's address and the agent.
func (t *Throttle) Failed(r *http.Request, agentID string) {
	_, _, window, maxKeys, now := t.defaults()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keys == nil {
		t.keys = map[string]*throttleEntry{}
	}
	t.count(clientKey(r), now, window, maxKeys)
	if agentID != "" {
		t.count("agent:"+agentID, now, window, maxKeys)
	}
}

func (t *Throttle) count(key string, now time.Time, window time.Duration, maxKeys int) {
	e := t.keys[key]
	if e == nil {
		if len(t.keys) >= maxKeys {
			t.evict(now, window, maxKeys)
		}
		e = &throttleEntry{start: now}
		t.keys[key] = e
	} else if now.Sub(e.start) >= window {
		e.start, e.failures = now, 0
	}
	e.failures++
}

// evict drops expired keys and, while the map is still full, the oldest one.
func (t *Throttle) evict(now time.Time, window time.Duration, maxKeys int) {
	var oldest string
	var oldestAt time.Time
	for k, e := range t.keys {
		if now.Sub(e.start) >= window {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || e.start.Before(oldestAt) {
			oldest, oldestAt = k, e.start
		}
	}
	if len(t.keys) >= maxKeys && oldest != "" {
		delete(t.keys, oldest)
	}
}

// writeThrottled answers 429 with Retry-After in whole seconds (at least 1).
func writeThrottled(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "rate_limited",
		"too many failed authentications; retry after "+strconv.Itoa(secs)+"s", "")
}
