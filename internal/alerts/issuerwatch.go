package alerts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// DefaultIssuerDownAfter is how long an issuer may fail every call before IssuerWatch alerts.
const DefaultIssuerDownAfter = 5 * time.Minute

// IssuerWatch raises the fleet-level "issuer-unreachable" alert when an issuer has failed
// every call for longer than After. It is fed by the instrumented issuer
// (metrics.InstrumentIssuer's observer), so it sees exactly the calls activities make, and it
// keeps no state another replica needs: each replica watches its own calls, and the alert's
// period (issuer + the UTC hour the outage crossed After) lets the store collapse replicas
// that see the same outage into one alert.
//
// Only failures that mean "no usable answer" count: transient errors, rate limiting, timeouts,
// network failures and rejected credentials. An issuer that answers "not found" or "invalid"
// is reachable.
type IssuerWatch struct {
	After      time.Duration // DefaultIssuerDownAfter when zero
	Dispatcher *Dispatcher
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu   sync.Mutex
	down map[string]*outage
}

type outage struct {
	since   time.Time
	lastErr string
	calls   int
	alerted bool
}

// Unreachable reports whether an issuer call's error means the issuer gave no usable answer.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	return issuer.Retryable(err) || errors.Is(err, issuer.ErrUnauthorized)
}

func (w *IssuerWatch) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *IssuerWatch) after() time.Duration {
	if w.After > 0 {
		return w.After
	}
	return DefaultIssuerDownAfter
}

// Observe records the outcome of one call to the named issuer. Any answer ends an outage; a
// call the caller cancelled counts for nothing.
func (w *IssuerWatch) Observe(issuerName string, err error) {
	if errors.Is(err, context.Canceled) {
		return // our caller gave up: says nothing about the issuer
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !Unreachable(err) {
		delete(w.down, issuerName)
		return
	}
	if w.down == nil {
		w.down = map[string]*outage{}
	}
	o := w.down[issuerName]
	if o == nil {
		o = &outage{since: w.now()}
		w.down[issuerName] = o
	}
	o.calls++
	o.lastErr = err.Error()
}

// Down lists the issuers currently failing, with when they started failing.
func (w *IssuerWatch) Down() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.down))
	for name, o := range w.down {
		out[name] = o.since
	}
	return out
}

// Check alerts for every outage older than After that has not been alerted yet. A delivery
// failure leaves the outage unalerted, so the next Check retries it.
func (w *IssuerWatch) Check(ctx context.Context) error {
	now := w.now()
	type due struct {
		name string
		o    outage
	}
	var dues []due
	w.mu.Lock()
	for name, o := range w.down {
		if !o.alerted && now.Sub(o.since) >= w.after() {
			dues = append(dues, due{name, *o})
		}
	}
	w.mu.Unlock()
	slices.SortFunc(dues, func(a, b due) int { return a.o.since.Compare(b.o.since) })
	var errs []error
	for _, d := range dues {
		crossed := d.o.since.Add(w.after()).UTC()
		a := Alert{
			Kind:   KindIssuerUnreachable,
			Period: d.name + "/" + crossed.Format("2006-01-02T15"),
			Message: fmt.Sprintf("issuer %s has failed every call for %s (since %s, %d calls); last error: %s",
				d.name, now.Sub(d.o.since).Round(time.Second), d.o.since.UTC().Format(time.RFC3339), d.o.calls, d.o.lastErr),
			At: now,
		}
		if _, err := w.Dispatcher.Dispatch(ctx, a, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		w.mu.Lock()
		if o := w.down[d.name]; o != nil && o.since.Equal(d.o.since) {
			o.alerted = true
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Run calls Check every interval (After/5, at least a second, when interval is zero) until
// ctx ends.
func (w *IssuerWatch) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = max(w.after()/5, time.Second)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.Check(ctx); err != nil {
				w.Dispatcher.log().WarnContext(ctx, "issuer-unreachable alert not delivered; will retry", "error", err)
			}
		}
	}
}
