package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// runOnboard: agents fully provisioned per second (workflow started, card issued, secrets
// vaulted, card recorded); the floor is a workflow with one no-op activity, started the same
// way at the same concurrency.
func runOnboard(ctx context.Context, o Options, r *Result) error {
	r.Title = "onboarding: agents fully provisioned per second"
	n := o.size(1000, 100)
	r.Params["agents"], r.Params["start_concurrency"] = n, startConcurrency

	s, err := newStack(ctx, o, stackConfig{name: "onboard", inProcessWorker: true})
	if err != nil {
		return err
	}
	defer s.close()
	policy := func(id string) workflows.Policy { return basePolicy(id, "25") }

	// Warm both paths up (connections, caches, the first workflow tasks).
	const warm = 10
	if err := s.startAgents(ctx, 0, warm, policy); err != nil {
		return err
	}
	if _, err := s.waitProvisioned(ctx, warm, time.Minute, nil); err != nil {
		return err
	}
	floorDone := &doneTimes{}
	s.floor.onNoop(floorDone.add)
	if err := runFloorNoops(ctx, s, "warm", warm); err != nil {
		return err
	}
	if err := floorDone.wait(ctx, warm, time.Minute); err != nil {
		return err
	}

	// Rounds alternate the floor and cardwarden, so a change in the machine's load (other
	// work on a shared machine) hits both alike.
	rounds := 5
	if o.Quick {
		rounds = 2
	}
	per := (n + rounds - 1) / rounds
	var cwTime, floorTime time.Duration
	cwDone, floorDoneN := 0, 0
	var cwSeries, floorSeries [][2]float64
	for round := 0; round < rounds && cwDone < n; round++ {
		k := min(per, n-cwDone)
		floorDone.reset()
		f0 := time.Now()
		if err := runFloorNoops(ctx, s, fmt.Sprintf("r%d", round), k); err != nil {
			return err
		}
		if err := floorDone.wait(ctx, k, 5*time.Minute); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		for _, p := range cumulative(f0, floorDone.snapshot(), 100) {
			floorSeries = append(floorSeries, [2]float64{floorTime.Seconds() + p[0], float64(floorDoneN) + p[1]})
		}
		floorTime += latest(floorDone.snapshot()).Sub(f0)
		floorDoneN += k

		tl := newTimeline(time.Now())
		c0 := time.Now()
		startErr := make(chan error, 1)
		go func() { startErr <- s.startAgents(ctx, warm+cwDone, k, policy) }()
		c1, err := s.waitProvisioned(ctx, warm+cwDone+k, 10*time.Minute, tl)
		if err != nil {
			return err
		}
		if err := <-startErr; err != nil {
			return err
		}
		for _, p := range tl.snapshot() {
			cwSeries = append(cwSeries, [2]float64{cwTime.Seconds() + p[0], p[1] - warm})
		}
		cwTime += c1.Sub(c0)
		cwDone += k
		o.progress("onboard: round %d: floor %d in %.1fs, cardwarden %d in %.1fs", round+1, k, latest(floorDone.snapshot()).Sub(f0).Seconds(), k, c1.Sub(c0).Seconds())
	}
	cwRate := float64(cwDone) / cwTime.Seconds()
	floorRate := float64(floorDoneN) / floorTime.Seconds()

	r.metric("rate", "agents/s", cwRate).withFloor(floorRate).target("ratio >= 0.9", cwRate/floorRate >= 0.9)
	r.metric("time for all", "s", cwTime.Seconds()).withFloor(floorTime.Seconds())

	// Every step of provisioning happened exactly once.
	cards, _ := s.count(ctx, `SELECT count(*) FROM cards WHERE agent_id LIKE ?`, s.prefix+"-%")
	vaulted, _ := s.count(ctx, `SELECT count(*) FROM card_vault v JOIN cards c ON v.issuer = c.issuer AND v.issuer_card_id = c.issuer_card_id WHERE c.agent_id LIKE ?`, s.prefix+"-%")
	agentsRows, _ := s.count(ctx, `SELECT count(*) FROM agents WHERE agent_id LIKE ?`, s.prefix+"-%")
	issuedAudit, _ := s.count(ctx, `SELECT count(*) FROM audit_log WHERE action = 'card-issued' AND agent_id LIKE ?`, s.prefix+"-%")
	simCards := s.sim.Stats().CardsCreated
	total := cwDone + warm
	r.check("one card per agent", cards == total && int(simCards) == total, "%d agents, %d cards recorded, %d created at the simulator", total, cards, simCards)
	r.check("secrets vaulted", vaulted == total, "%d vault entries", vaulted)
	r.check("agents and audit recorded", agentsRows == total && issuedAudit == total, "%d agent rows, %d card-issued audit entries", agentsRows, issuedAudit)
	r.note("provisioned = the card recorded in the application database, which IssueCard does after vaulting its credentials (polled every %s; vault entries checked at the end); cardwarden starts through starter.StartAgent (one start, eager: the bench client also runs the worker, as in cardwarden dev), %d at a time", pollEvery(per), startConcurrency)
	r.note("floor: ExecuteWorkflow of a workflow whose only activity is a no-op, %d at a time; done when the activity ran", startConcurrency)
	r.note("%d rounds alternate the floor and cardwarden (%d each per round); times are summed per side", rounds, per)
	r.Series = []Series{{Name: "cardwarden (provisioned)", Points: cwSeries}, {Name: "floor (no-op activity done)", Points: floorSeries}}
	r.chart = func(r *Result) string {
		return lineChart("Onboarding", fmt.Sprintf("%d agents, %d concurrent starts; cardwarden %.0f/s, floor %.0f/s", n, startConcurrency, cwRate, floorRate),
			"seconds", "agents done", r.Series, nil)
	}
	return nil
}

func runFloorNoops(ctx context.Context, s *stack, tag string, n int) error {
	return parallel(ctx, n, startConcurrency, func(ctx context.Context, i int) error {
		_, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-floor-noop-%s-%s-%d", s.prefix, tag, i), TaskQueue: floorQueue}, floorWFNoop)
		return err
	})
}

// doneTimes collects completion times reported by floor activities.
type doneTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (d *doneTimes) add(t time.Time) {
	d.mu.Lock()
	d.times = append(d.times, t)
	d.mu.Unlock()
}

func (d *doneTimes) reset() {
	d.mu.Lock()
	d.times = nil
	d.mu.Unlock()
}

func (d *doneTimes) snapshot() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.times...)
}

func (d *doneTimes) wait(ctx context.Context, n int, timeout time.Duration) error {
	return waitFor(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.times) >= n, nil
	})
}

func latest(ts []time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}
