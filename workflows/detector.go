package workflows

import (
	"slices"
	"time"
)

// DeclineMark is one counted decline in the detector's window.
type DeclineMark struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Weight int       `json:"weight"`
}

// Detector is the decline-burst detector: a sliding window over declines by the events' own
// time (webhooks arrive late and out of order; the issuer's clock is the truth), with a weight
// per decline reason. It is plain data so the workflow carries it through continue-as-new.
type Detector struct {
	Marks []DeclineMark `json:"marks,omitempty"` // sorted by At
}

// Verdict is what a decline means.
type Verdict int

const (
	// VerdictNone: nothing to do.
	VerdictNone Verdict = iota
	// VerdictBurst: the weighted declines in one window reached max_declines; freeze.
	VerdictBurst
	// VerdictHard: the decline has a hard reason; revoke at once.
	VerdictHard
)

func (v Verdict) String() string {
	switch v {
	case VerdictBurst:
		return "burst"
	case VerdictHard:
		return "hard"
	default:
		return "none"
	}
}

// maxMarks bounds the window: a burst needs at most max_declines marks of weight >= 1.
const maxMarks = maxDeclinesCap + 1

// Weight is how much a decline with this reason counts.
func (a AnomalyPolicy) Weight(reason string) int {
	if w, ok := a.ReasonWeights[reason]; ok {
		return w
	}
	return 1
}

// IsHard reports whether a decline with this reason revokes the card.
func (a AnomalyPolicy) IsHard(reason string) bool { return slices.Contains(a.HardReasons, reason) }

// Observe adds a decline and returns the verdict and the heaviest weighted count of any window
// that contains it. The caller resets the detector after acting on a burst, so one burst
// freezes once.
func (d *Detector) Observe(cfg AnomalyPolicy, at time.Time, reason string) (Verdict, int) {
	if cfg.IsHard(reason) {
		return VerdictHard, 0
	}
	w := cfg.Weight(reason)
	if w <= 0 {
		return VerdictNone, 0
	}
	at = at.UTC()
	i, _ := slices.BinarySearchFunc(d.Marks, at, func(m DeclineMark, t time.Time) int {
		if m.At.After(t) {
			return 1
		}
		return -1 // equal times go before the new mark, keeping arrival order
	})
	d.Marks = slices.Insert(d.Marks, i, DeclineMark{At: at, Reason: reason, Weight: w})
	d.prune(cfg.Window.D())
	count := d.heaviestWindowAround(at, cfg.Window.D())
	if count >= cfg.MaxDeclines {
		return VerdictBurst, count
	}
	return VerdictNone, count
}

// FirstAt is the time of the oldest decline still in the window: where a burst began.
func (d *Detector) FirstAt() time.Time {
	if len(d.Marks) == 0 {
		return time.Time{}
	}
	return d.Marks[0].At
}

// Reset forgets every mark, after a freeze, revocation, or a human unfreeze.
func (d *Detector) Reset() { d.Marks = nil }

// prune drops marks that can no longer share a window with the newest one.
func (d *Detector) prune(window time.Duration) {
	if len(d.Marks) == 0 {
		return
	}
	cutoff := d.Marks[len(d.Marks)-1].At.Add(-window)
	k := 0
	for k < len(d.Marks) && d.Marks[k].At.Before(cutoff) {
		k++
	}
	if extra := len(d.Marks) - k - maxMarks; extra > 0 {
		k += extra
	}
	d.Marks = slices.Delete(d.Marks, 0, k)
}

// heaviestWindowAround returns the largest total weight of marks in any window
// [start, start+window] that contains at. The best window starts at some mark, so a
// two-pointer sweep over the sorted marks finds it in linear time.
func (d *Detector) heaviestWindowAround(at time.Time, window time.Duration) int {
	best, sum, j := 0, 0, 0
	for i, m := range d.Marks {
		end := m.At.Add(window)
		for j < len(d.Marks) && !d.Marks[j].At.After(end) {
			sum += d.Marks[j].Weight
			j++
		}
		if !m.At.After(at) && !at.After(end) && sum > best {
			best = sum
		}
		sum -= d.Marks[i].Weight
	}
	return best
}
