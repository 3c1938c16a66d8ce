package activities

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/cardwarden/cardwarden/workflows"
)

// Pacer is one worker process's share of the issuer's rate limit, shared by the two ways a
// reset's limit update reaches the issuer: tried at once in the workflow's worker
// (UpdateLimitNow, a local activity: one workflow task per reset instead of two, and no
// activity dispatched through the server) when the share has room, or else on the paced issuer
// queue. Calls from the queue take their room whether or not it is there (the queue is paced
// already, by its worker and the server), so while the queue is busy the local tries find none
// and the process never calls faster than the share.
//
// A nil Pacer has room for every call: no rate limit is configured.
type Pacer struct {
	lim   *rate.Limiter
	whole float64 // the pace every process shares, in calls a second
}

// NewPacer returns a pacer of perSecond calls a second that has room for up to burst calls at
// once (at least one); none (nil) for perSecond <= 0.
func NewPacer(perSecond float64, burst int) *Pacer {
	if perSecond <= 0 {
		return nil
	}
	return &Pacer{lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1)), whole: perSecond}
}

// Take takes room for one call, waiting for it at most maxWait; false, having waited for
// nothing, when there is none in that time or ctx ends first.
func (p *Pacer) Take(ctx context.Context, maxWait time.Duration) bool {
	if p == nil {
		return true
	}
	r := p.lim.Reserve()
	d := r.Delay()
	if !r.OK() || d > maxWait {
		r.Cancel()
		return false
	}
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		r.Cancel()
		return false
	}
}

// Took counts a call that was paced elsewhere: the room it used is not there for Take.
func (p *Pacer) Took() {
	if p != nil {
		p.lim.Reserve()
	}
}

// SetShare makes this process's pace an equal share of the whole among processes (at least
// one).
func (p *Pacer) SetShare(processes int) {
	if p != nil {
		p.lim.SetLimitAt(time.Now(), rate.Limit(p.whole/float64(max(processes, 1))))
	}
}

// Rate is the share in calls a second; 0 for no limit.
func (p *Pacer) Rate() float64 {
	if p == nil {
		return 0
	}
	return float64(p.lim.Limit())
}

// localWait is how long a reset's local try waits for room in the pacer. Wakes spread over a
// window at the pacer's rate on average come unevenly (they are at points fixed by agent ids);
// a short wait evens them out, where refusing at once sent most to the queue. The workflow
// handles nothing else meanwhile, as it would while the queue's call ran.
const localWait = time.Second

// UpdateLimitNow applies a reset's limit update now if this process's share of the issuer's
// rate limit has room, and reports whether it did (LimitApplied). It never fails for the
// issuer's sake: a refused, failed or lost call reports not applied, and the workflow schedules
// UpdateLimit on the paced queue, which retries (setting a limit twice sets the same limit).
func (a *Activities) UpdateLimitNow(ctx context.Context, in workflows.UpdateLimitInput) (workflows.LimitApplied, error) {
	if !a.Pacer.Take(ctx, localWait) {
		return workflows.LimitApplied{}, nil
	}
	if err := a.UpdateLimit(ctx, in); err != nil {
		a.log().Info("reset's limit update left to the paced queue", "agent_id", in.AgentID, "card_id", in.CardID, "error", err)
		return workflows.LimitApplied{}, nil
	}
	return workflows.LimitApplied{Applied: true, CardID: in.CardID, ResetAt: in.ResetAt}, nil
}
