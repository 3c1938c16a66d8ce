package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/worker"
	"github.com/cardwarden/cardwarden/workflows"
)

// runReset: 2,000 agents whose daily reset falls on the same instant, the issuer limited to
// 100 requests/s: how long until every card has today's limit, against N / rate, and how many
// 429s the simulator answered (must be 0). The floor is the same number of simulator calls
// scheduled at once on a task queue rate limited to the same rate.
func runReset(ctx context.Context, o Options, r *Result) error {
	n := o.size(2000, 200)
	rate := o.ResetRate
	if rate <= 0 {
		rate = DefaultResetRate
	}
	r.Title = fmt.Sprintf("fleet reset: N agents reset at one instant, issuer limit %d req/s", rate)
	r.Params["agents"], r.Params["issuer_rate_limit"] = n, rate

	// cardwarden's workers as production runs them with --issuer-rate-limit: the issuer queue
	// capped at the issuer's rate server-side and paced in the worker at worker.IssuerPacing.
	wcfg := worker.Config{IssuerRatePerSecond: float64(rate)}
	r.Params["issuer_pacing"] = worker.IssuerPacing
	// decisions: the simulator asks cardwarden about every purchase not forced to decline (the
	// decision agents' purchases; the bursts' declines are forced and never asked).
	s, err := newStack(ctx, o, stackConfig{name: "reset", inProcessWorker: true, workerConfig: &wcfg, floorRate: float64(rate), decisions: true})
	if err != nil {
		return err
	}
	defer s.close()

	// The floor first, on a quiet server: N timers firing at one instant, each then making
	// one call through the same simulator under the same limit. Its calls read a handful of
	// cards of its own.
	var floorCards []string
	for i := range 20 {
		c, err := s.simClient.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: fmt.Sprintf("bench-floor-%s-%d", s.prefix, i), Label: "bench floor", Currency: "USD"})
		if err != nil {
			return err
		}
		floorCards = append(floorCards, c.ID)
	}
	if err := s.sim.SetFaults(issuersim.Faults{RateLimit: rate}); err != nil {
		return err
	}
	fl, err := s.runFloorReset(ctx, o, n, floorCards, float64(rate))
	if err != nil {
		return err
	}
	if err := s.sim.SetFaults(issuersim.Faults{}); err != nil {
		return err
	}
	floorTime, floorPeak, floorLimited, fTimes, f0 := fl.took, fl.peak, fl.limited, fl.done, fl.at
	if fl.late > 0 {
		r.note("the machine started the floor's workflows too slowly: the last one started %.1fs after their timers fired, which inflates the floor's time by up to that much", fl.late.Seconds())
	}

	// The reset instant (a six-field cron, to the second) is when all agents can be
	// provisioned; a calibration batch (reset once a year, so never here) measures how fast
	// that is on this machine now.
	calBase, decN := max(n/20, 10), o.size(30, 5)
	cal := calBase + decN
	calPolicy := func(id string) workflows.Policy {
		p := basePolicy(id, "25")
		p.ResetCron, p.RotateCron = "0 0 1 1 *", workflows.RotateOff
		return p
	}
	c0 := time.Now()
	if err := s.startAgents(ctx, n, cal, calPolicy); err != nil {
		return err
	}
	if _, err := s.waitProvisionedFrom(ctx, n, cal, 5*time.Minute); err != nil {
		return err
	}
	calRate := float64(cal) / time.Since(c0).Seconds()
	// Freezes on the quiet stack first: the during-reset freezes' floor. The calibration agents
	// never reset here; the first quiet ones burst now, the rest during the reset.
	quietN, duringN := min(10, calBase/2), min(30, calBase-min(10, calBase/2))
	sentinels, err := s.cardIDs(ctx, n, quietN+duringN)
	if err != nil {
		return err
	}
	paused := newStamps()
	s.simRec.set(recordPauses(paused))
	sentinelAgents := make([]string, len(sentinels))
	for i := range sentinels {
		sentinelAgents[i] = s.agentID(n + i)
	}
	var quietBursts []burst
	for i, c := range sentinels[:quietN] {
		b, err := s.burstToPause(ctx, sentinelAgents[i], c, paused)
		if err != nil {
			return fmt.Errorf("quiet freeze: %w", err)
		}
		quietBursts = append(quietBursts, b)
	}
	quiet := burstMillis(quietBursts)
	s.simRec.set(nil)
	// Purchases decided in real time (issue 15) on the quiet stack: the during-reset
	// decisions' floor. The last decN calibration agents buy; each purchase's decision is
	// timed at the API.
	deciders, err := s.cardIDs(ctx, n+calBase, decN)
	if err != nil {
		return err
	}
	decisionRound := decisionRounds{perAgent: 3, interval: time.Second}
	quietDecisions, err := s.timedPurchases(ctx, deciders, decisionRound)
	if err != nil {
		return fmt.Errorf("quiet decisions: %w", err)
	}
	margin := time.Duration(float64(n)/calRate*1.25*float64(time.Second)) + 8*time.Second
	ideal := time.Duration(float64(n) / float64(rate) * float64(time.Second))
	at := time.Now().Add(margin).UTC().Truncate(time.Second).Add(time.Second)
	r.Params["reset_at"] = at
	// The fleet's reset_spread as the README tells an operator to set it: the time the issuer's
	// rate limit takes for the fleet's limit updates, so the wakes come no faster than they.
	resetSpread := fleetResetSpread(n, rate)
	r.Params["reset_spread"] = resetSpread.String()
	policy := func(id string) workflows.Policy {
		p := basePolicy(id, "25")
		p.ResetCron = fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour())
		p.RotateCron = workflows.RotateOff
		p.ResetSpread = workflows.Duration(resetSpread)
		return p
	}
	o.progress("reset: provisioning runs at %.0f agents/s; starting %d agents whose reset is at %s (in %.0fs)", calRate, n, at.Format(time.TimeOnly), time.Until(at).Seconds())
	p0 := time.Now()
	if err := s.startAgents(ctx, 0, n, policy); err != nil {
		return err
	}
	if _, err := s.waitProvisionedFrom(ctx, 0, n, time.Until(at)-5*time.Second); err != nil {
		return fmt.Errorf("agents not provisioned before the reset instant: %w", err)
	}
	o.progress("reset: %d agents provisioned in %.1fs", n, time.Since(p0).Seconds())
	// The agents are ready (a sample of 200 asked): card issued, no reset yet.
	step := max(1, n/200)
	if err := parallel(ctx, (n+step-1)/step, startConcurrency, func(ctx context.Context, k int) error {
		i := k * step
		var err error
		for attempt := 0; attempt < 10; attempt++ {
			var st workflows.StateView
			if st, err = s.starter.State(ctx, s.agentID(i)); err == nil {
				if st.Resets != 0 || st.Card == nil {
					return fmt.Errorf("agent %s not ready for the reset: %d resets, card %v", s.agentID(i), st.Resets, st.Card)
				}
				return nil
			}
			time.Sleep(500 * time.Millisecond)
		}
		return err
	}); err != nil {
		return err
	}
	if time.Until(at) < time.Second {
		return fmt.Errorf("setup overran the reset instant %s", at.Format(time.TimeOnly))
	}
	o.progress("reset: ready; waiting %.0fs for the reset", time.Until(at).Seconds())
	cards, err := s.cardIDs(ctx, 0, n)
	if err != nil {
		return err
	}
	// From here on the simulator enforces the issuer's limit.
	if err := s.sim.SetFaults(issuersim.Faults{RateLimit: rate}); err != nil {
		return err
	}
	// Agents that do not reset here have decline bursts spread from the reset instant to the
	// end of N/rate, while the resets' workflow tasks and limit updates fill the queues: how
	// long does a freeze wait?
	log := newSimLog()
	pauses := recordPauses(paused)
	s.simRec.set(func(e reqEvent) { log.record(e); pauses(e) })
	defer s.simRec.set(nil)
	limited0 := s.sim.Stats().RateLimited
	type burstsResult struct {
		bursts []burst
		err    error
	}
	burstDone := make(chan burstsResult, 1)
	go func() {
		d, err := s.burstsDuring(ctx, sentinelAgents[quietN:], sentinels[quietN:], at, ideal, paused)
		burstDone <- burstsResult{d, err}
	}()
	type decisionsResult struct {
		d   timedDecisionRound
		err error
	}
	decisionsDone := make(chan decisionsResult, 1)
	go func() {
		time.Sleep(time.Until(at))
		d, err := s.timedPurchases(ctx, deciders, decisionRounds{perAgent: 3, interval: ideal / 3})
		decisionsDone <- decisionsResult{d, err}
	}()

	deadline := time.Until(at) + 4*time.Duration(n/rate)*time.Second + 2*time.Minute
	if err := waitFor(ctx, deadline, 200*time.Millisecond, func() (bool, error) {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.limits) >= n, nil
	}); err != nil {
		log.mu.Lock()
		got := len(log.limits)
		log.mu.Unlock()
		return fmt.Errorf("%d of %d cards got their reset limit: %w", got, n, err)
	}
	time.Sleep(2 * time.Second) // anything doubled shows up now
	during := <-burstDone
	if during.err != nil {
		return fmt.Errorf("freezes during the reset: %w", during.err)
	}
	duringMs := burstMillis(during.bursts)
	decided := <-decisionsDone
	if decided.err != nil {
		return fmt.Errorf("decisions during the reset: %w", decided.err)
	}
	log.mu.Lock()
	var firstUpdates, listings, firstListings []time.Time
	doubled, relisted := 0, 0
	for _, c := range cards {
		u := log.limits[c]
		if len(u) > 0 {
			firstUpdates = append(firstUpdates, slices.MinFunc(u, func(a, b time.Time) int { return a.Compare(b) }))
		}
		if len(u) > 1 {
			doubled++
		}
		l := log.listings[c]
		listings = append(listings, l...)
		if len(l) > 0 {
			firstListings = append(firstListings, slices.MinFunc(l, func(a, b time.Time) int { return a.Compare(b) }))
		}
		if len(l) > 1 {
			relisted++
		}
	}
	cwLimited := log.limited
	cwPeak := peakPerSecond(log.starts)
	cwRequests := len(log.starts)
	log.mu.Unlock()
	limitedStats := s.sim.Stats().RateLimited - limited0
	finish := latest(firstUpdates).Sub(at)
	listed := latest(listings).Sub(at)
	o.progress("reset: cardwarden reset %d cards in %.1fs (N/rate %.0fs), %d requests, %d × 429", n, finish.Seconds(), ideal.Seconds(), cwRequests, limitedStats)
	r.metric("time to reset all vs N/rate", "s", finish.Seconds()).withFloor(ideal.Seconds()).target("ratio <= 1.15", finish.Seconds() <= 1.15*ideal.Seconds())
	r.metric("time to reset all vs measured floor", "s", finish.Seconds()).withFloor(floorTime.Seconds())
	r.metric("issuer requests", "count", float64(cwRequests)).withFloor(float64(n))
	r.metric("issuer 429s", "count", float64(limitedStats)).withFloor(float64(floorLimited)).target("cardwarden = 0", limitedStats == 0)
	r.metric("peak requests in any 1s", "req", float64(cwPeak)).withFloor(float64(floorPeak))
	r.metric("reconciliation listings done", "s", listed.Seconds())
	r.metric("quiet freeze p99", "ms", percentile(quiet, 99))
	r.metric("freeze during the reset p99", "ms", percentile(duringMs, 99)).withFloor(percentile(quiet, 99)).
		target("ratio <= 3 (quiet freeze p99 of this run)", percentile(duringMs, 99) <= 3*percentile(quiet, 99))
	r.metric("freeze during the reset p50", "ms", percentile(duringMs, 50)).withFloor(percentile(quiet, 50))
	r.note("freezes during the reset, in the order their bursts started (ms): %.0f; quiet: %.0f", duringMs, quiet)
	s.stageFigures(ctx, r, "quiet freeze", quietBursts)
	s.stageFigures(ctx, r, "freeze during the reset", during.bursts)
	r.metric("decision during the reset p50", "ms", percentile(decided.d.lat, 50)).withFloor(percentile(quietDecisions.lat, 50))
	r.metric("decision during the reset p99", "ms", percentile(decided.d.lat, 99)).withFloor(percentile(quietDecisions.lat, 99))
	r.metric("decisions answered ≥ 2 s during the reset", "count", float64(decided.d.late)).target("= 0", decided.d.late == 0)
	r.metric("simulator fallbacks during the reset (no answer in time)", "count", float64(decided.d.simFallbacks)).target("= 0", decided.d.simFallbacks == 0)
	// An answer in time can still be the agent's fallback (decline by default): the workflow
	// did not answer within the decision budget. The quiet run's count is the floor.
	r.metric("decisions during the reset answered by the agent's fallback", "count", float64(decided.d.fallbacks)).
		withFloor(float64(quietDecisions.fallbacks)).target("= 0", decided.d.fallbacks == 0)
	r.note("decisions: %d agents that do not reset here buy %d times each, spread from the reset instant over N/rate (%d purchases), against the same agents' %d purchases on the quiet stack; each timed at the API from the simulator's decision request to its answer",
		decN, 3, len(decided.d.lat), len(quietDecisions.lat))
	r.check("no reset skipped", len(firstUpdates) == n, "%d of %d cards got today's limit", len(firstUpdates), n)
	r.check("no reset doubled", doubled == 0 && relisted == 0, "%d cards with more than one limit update, %d listed more than once", doubled, relisted)
	if cwLimited != int(limitedStats) {
		r.note("the recorder saw %d 429s, the simulator counted %d", cwLimited, limitedStats)
	}
	// The workflows agree: a sample of agents report exactly one reset.
	sample := min(n, 200)
	wrong := 0
	for i := 0; i < n; i += max(1, n/sample) {
		st, err := s.starter.State(ctx, s.agentID(i))
		if err != nil || st.Resets != 1 {
			wrong++
		}
	}
	r.check("workflows report one reset", wrong == 0, "%d of %d sampled agents report a reset count other than 1", wrong, sample)
	local, tasks, sampled, err := s.resetTasks(ctx, n, sample)
	if err != nil {
		return fmt.Errorf("sampled resets' histories: %w", err)
	}
	r.metric("resets applied in the waking workflow task (sampled)", "%", 100*float64(local)/float64(sampled))
	r.metric("workflow tasks per reset (sampled)", "tasks", float64(tasks)/float64(sampled)).withFloor(2)
	r.note("workflow tasks per reset: from the timer that woke the agent to the task that armed its next wait, in %d sampled agents' histories; %d of them applied the limit in the waking task (UpdateLimitNow, a local activity), the rest scheduled UpdateLimit on the paced queue. The floor's workflows take 2 (the timer's and the activity's)", sampled, local)
	r.note("the reset instant carries one issuer call per agent, the limit update; the ending day's reconciliation listing runs in the 15 minutes before the reset at a point fixed by the agent id (%d listings in the measured window: agents started inside their lead skip it, as in production)", len(listings))
	r.note("cardwarden paces its issuer calls at %.0f%% of the issuer's limit (worker.IssuerPacing, leaving room for jitter against a sliding-window limit), so its best possible time is %s = N / (%.2f × rate); the agents' reset_spread is that too, so they wake to apply the reset no faster than their limit updates can go", 100*worker.IssuerPacing, resetSpread, worker.IssuerPacing)
	r.note("freezes: %d bursts on agents that do not reset here, started evenly from the reset instant over N/rate, against %d bursts on the quiet stack before the fleet exists; each measured from the simulator answering the burst's 5th decline to it answering the card's pause", duringN, quietN)
	r.note("floor: %d workflows whose timers fire at one instant, each then making one simulator call (GET card) on a task queue capped at %d/s and paced at exactly %d/s in its worker; run on the same stack before cardwarden's agents exist", n, rate, rate)
	r.Series = []Series{
		{Name: "cardwarden: cards with today's limit", Points: cumulative(at, firstUpdates, 300)},
		{Name: "cardwarden: reconciliation listings", Points: cumulative(at, firstListings, 300)},
		{Name: "floor: rate-limited calls done", Points: cumulative(f0, fTimes, 300)},
		{Name: "N / rate", Points: [][2]float64{{0, 0}, {ideal.Seconds(), float64(n)}}},
	}
	r.chart = func(r *Result) string {
		return lineChart("Fleet reset", fmt.Sprintf("%d agents reset at the same instant; issuer limit %d req/s; 429s: cardwarden %d, floor %d", n, rate, limitedStats, floorLimited),
			"seconds after the reset instant", "cards done", r.Series, nil)
	}
	return nil
}

// floorReset is the outcome of the fleet-reset floor.
type floorReset struct {
	at      time.Time // the instant the floor's timers fired
	took    time.Duration
	peak    int
	limited int64
	done    []time.Time
	late    time.Duration // how long after the timers fired the last floor workflow started
}

// runFloorReset starts n floor workflows whose timers fire at the same instant, each then
// making one rate-limited simulator call, and measures from that instant to the last call.
func (s *stack) runFloorReset(ctx context.Context, o Options, n int, cards []string, rate float64) (floorReset, error) {
	at := time.Now().Add(time.Duration(float64(n)/100*float64(time.Second)) + 3*time.Second)
	done := &doneTimes{}
	s.floor.onGet(done.add)
	log := newSimLog()
	if err := parallel(ctx, n, startConcurrency, func(ctx context.Context, i int) error {
		_, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench-floor-reset-%s-%05d", s.prefix, i), TaskQueue: floorQueue},
			floorWFTimer, at, cards[i%len(cards)])
		return err
	}); err != nil {
		return floorReset{}, err
	}
	late := time.Since(at)
	if late > 0 {
		o.progress("reset: warning: starting the floor took longer than planned; its timers fired %.1fs before the last start", late.Seconds())
	}
	time.Sleep(time.Until(at))
	s.simRec.set(log.record)
	defer s.simRec.set(nil)
	limited0 := s.sim.Stats().RateLimited
	if err := done.wait(ctx, n, 4*time.Duration(float64(n)/rate*float64(time.Second))+time.Minute); err != nil {
		return floorReset{}, fmt.Errorf("floor: %w", err)
	}
	fl := floorReset{at: at, done: done.snapshot(), limited: s.sim.Stats().RateLimited - limited0, late: max(late, 0)}
	fl.took = latest(fl.done).Sub(at)
	log.mu.Lock()
	fl.peak = peakPerSecond(log.starts)
	log.mu.Unlock()
	o.progress("reset: floor %d timers + rate-limited calls in %.1fs, %d × 429", n, fl.took.Seconds(), fl.limited)
	return fl, nil
}

// fleetResetSpread is the reset_spread for n agents sharing an instant on an issuer allowing
// rate requests a second: the time their limit updates take at the pace the worker keeps.
func fleetResetSpread(n, rate int) time.Duration {
	return time.Duration(float64(n) / (worker.IssuerPacing * float64(rate)) * float64(time.Second)).Round(100 * time.Millisecond)
}
