package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// The authorize scenario: the simulator asks cardwarden about every purchase (its decision
// hook → POST /v1/authorizations/sim → the agent's authorize update) while many agents buy at
// once; the floor is a bare Temporal Update round trip at the same concurrency.

const (
	authMaxPerPurchaseMinor = 500 // the agents' max_per_purchase_usd, $5
	authDailyLimitUSD       = "1000"
	authDeadline            = issuersim.DefaultDecisionTimeout
)

// DefaultAuthorizeRate is the purchases per second the authorize scenario offers across all
// its agents (quick: DefaultAuthorizeRateQuick).
const (
	DefaultAuthorizeRate      = 50
	DefaultAuthorizeRateQuick = 20
)

// authAmounts cycle through each agent's purchases: one in five is over the per-purchase
// maximum and must be declined with max_per_purchase.
var authAmounts = []int64{100, 250, 400, 600, 150}

func authAmount(agent, k int) int64 { return authAmounts[(agent+k)%len(authAmounts)] }

// timedDecisions is the starter the API is given in the authorize scenario: the same client,
// with its authorize updates timed, so the decision's time splits into the update and the
// rest of the endpoint.
type timedDecisions struct {
	*starter.Client
	log decisionLog
}

func (t *timedDecisions) Authorize(ctx context.Context, agentID string, req workflows.AuthorizeRequest) (workflows.AuthorizeResult, error) {
	t0 := time.Now()
	res, err := t.Client.Authorize(ctx, agentID, req)
	t.log.record(reqEvent{Method: http.MethodPost, Path: "/v1/authorizations/update", Status: http.StatusOK, Start: t0, End: time.Now()})
	return res, err
}

// purchaseResult is the simulator's answer to one simulated purchase.
type purchaseResult struct {
	agent           int
	AmountMinor     int64  `json:"amount_minor"`
	Approved        bool   `json:"approved"`
	Reason          string `json:"reason"`
	AuthorizationID string `json:"authorization_id"`
}

// decisionLog collects the decision requests the API served, timed at the API.
type decisionLog struct {
	mu      sync.Mutex
	lat     []float64 // ms
	non200  int
	enabled bool
}

func (l *decisionLog) record(e reqEvent) {
	if e.Method != http.MethodPost || !strings.HasPrefix(e.Path, "/v1/authorizations/") {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled {
		return
	}
	l.lat = append(l.lat, ms(e.End.Sub(e.Start)))
	if e.Status != http.StatusOK {
		l.non200++
	}
}

func (l *decisionLog) take(enable bool) (lat []float64, non200 int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lat, non200 = l.lat, l.non200
	l.lat, l.non200, l.enabled = nil, 0, enable
	return lat, non200
}

// schedule is when each of an open-loop round's calls starts: agent a's k-th call at
// k×interval plus a's own offset (agents spread evenly over one interval), whether or not its
// earlier ones have been answered. fn runs once per call; schedule returns when all have.
func schedule(ctx context.Context, agents, perAgent int, interval time.Duration, fn func(ctx context.Context, a, k int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	t0 := time.Now()
	for k := range perAgent {
		for a := range agents {
			at := t0.Add(time.Duration(k)*interval + time.Duration(a)*interval/time.Duration(agents))
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(at)):
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(ctx, a, k); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}()
		}
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return time.Since(t0), firstErr
}

// purchaseRound has every agent buy perAgent times, one purchase every interval, all agents
// at once, and returns the simulator's answers and how long the round took.
func (s *stack) purchaseRound(ctx context.Context, cards []string, perAgent int, interval time.Duration) ([]purchaseResult, time.Duration, error) {
	var mu sync.Mutex
	var out []purchaseResult
	wall, err := schedule(ctx, len(cards), perAgent, interval, func(ctx context.Context, a, k int) error {
		res := purchaseResult{agent: a}
		if err := s.simDo(ctx, http.MethodPost, "/v1/simulate/authorizations", map[string]any{
			"card_id": cards[a], "amount_minor": authAmount(a, k), "merchant": "bench-model-provider",
			"merchant_id": "bench-merchant-1", "mcc": "5734",
		}, &res); err != nil {
			return err
		}
		mu.Lock()
		out = append(out, res)
		mu.Unlock()
		return nil
	})
	return out, wall, err
}

// floorRound sends the same updates on the same schedule to the floor's update workflows,
// timing each round trip at the client.
func (s *stack) floorRound(ctx context.Context, wids []string, perAgent int, interval time.Duration) ([]float64, time.Duration, error) {
	var mu sync.Mutex
	var lat []float64
	wall, err := schedule(ctx, len(wids), perAgent, interval, func(ctx context.Context, a, k int) error {
		req := workflows.AuthorizeRequest{AuthorizationID: fmt.Sprintf("floor-%d-%d-%d", a, k, time.Now().UnixNano()),
			CardID: "floor-card", AmountMinor: authAmount(a, k), Currency: "usd", Merchant: "bench-model-provider",
			MerchantID: "bench-merchant-1", MCC: "5734", At: time.Now().UTC()}
		u0 := time.Now()
		h, err := s.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: wids[a], UpdateName: floorUpdateName,
			Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return fmt.Errorf("floor update: %w", err)
		}
		var ok bool
		if err := h.Get(ctx, &ok); err != nil {
			return fmt.Errorf("floor update: %w", err)
		}
		d := ms(time.Since(u0))
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
		return nil
	})
	return lat, wall, err
}

// settle waits until what a round of purchases set off is done, so the next round (the
// floor's, perhaps) does not run on its backlog: every webhook delivered, and every agent's
// workflow caught up (a query waits for the workflow's pending task).
func (s *stack) settle(ctx context.Context, agents int) error {
	if err := waitFor(ctx, 2*time.Minute, 100*time.Millisecond, func() (bool, error) {
		return s.sim.Stats().WebhooksPending == 0, nil
	}); err != nil {
		return fmt.Errorf("webhooks not delivered: %w", err)
	}
	return parallel(ctx, agents, startConcurrency, func(ctx context.Context, i int) error {
		_, err := s.starter.State(ctx, s.agentID(i))
		return err
	})
}

// runAuthorize: decision latency at the API while every agent buys at once, against a bare
// Update round trip at the same concurrency, alternating in rounds; throughput, answers past
// the simulator's deadline, fallbacks, and whether the decisions and the simulator's own
// records agree.
func runAuthorize(ctx context.Context, o Options, r *Result) error {
	r.Title = "purchase decisions: simulator hook → API → the agent's authorize update"
	agents := o.size(200, 20)
	perAgent := o.size(5, 6) // purchases per agent per round
	rounds := 3
	rate := float64(DefaultAuthorizeRate)
	if o.Quick {
		rounds, rate = 2, DefaultAuthorizeRateQuick
	}
	if o.AuthorizeRate > 0 {
		rate = o.AuthorizeRate
	}
	interval := time.Duration(float64(agents) / rate * float64(time.Second))
	r.Params["agents"], r.Params["purchases_per_agent_per_round"], r.Params["rounds"] = agents, perAgent, rounds
	r.Params["offered_rate"], r.Params["per_agent_interval_ms"], r.Params["deadline_ms"] = rate, interval.Milliseconds(), authDeadline.Milliseconds()

	s, err := newStack(ctx, o, stackConfig{name: "authorize", inProcessWorker: true, decisions: true})
	if err != nil {
		return err
	}
	defer s.close()

	maxPer := money.FromMinor(authMaxPerPurchaseMinor)
	policy := func(id string) workflows.Policy {
		p := basePolicy(id, authDailyLimitUSD)
		p.RotateCron = workflows.RotateOff
		p.MaxPerPurchaseUSD = &maxPer
		p.Anomaly.MaxDeclines = 10_000 // the rule's declines are expected; none freezes
		return p
	}
	if err := s.startAgents(ctx, 0, agents, policy); err != nil {
		return err
	}
	if _, err := s.waitProvisioned(ctx, agents, 5*time.Minute, nil); err != nil {
		return err
	}
	cards, err := s.cardIDs(ctx, 0, agents)
	if err != nil {
		return err
	}
	wids := make([]string, agents)
	for i := range wids {
		wids[i] = fmt.Sprintf("bench-floor-update-%s-%05d", s.prefix, i)
		if _, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wids[i], TaskQueue: floorQueue}, floorWFUpdate); err != nil {
			return err
		}
	}
	defer func() {
		for _, id := range wids {
			_ = s.tc.SignalWorkflow(context.WithoutCancel(ctx), id, "", floorSignalName, nil)
		}
	}()

	dl := &decisionLog{}
	s.apiRec.set(dl.record)
	defer s.apiRec.set(nil)
	stats0 := s.sim.Stats()

	// A warm-up round of one purchase and one floor update each, not measured.
	var purchases []purchaseResult
	warm, _, err := s.purchaseRound(ctx, cards, 1, interval)
	if err != nil {
		return err
	}
	purchases = append(purchases, warm...)
	if err := s.settle(ctx, agents); err != nil {
		return err
	}
	if _, _, err := s.floorRound(ctx, wids, 1, interval); err != nil {
		return err
	}
	o.progress("authorize: %d agents ready; %d rounds of %d purchases each, %.0f purchases/s offered", agents, rounds, perAgent, rate)

	var cw, upd, floor []float64
	var cwWall, floorWall time.Duration
	non200 := 0
	for round := range rounds {
		cwFirst := round%2 == 0
		for _, cwTurn := range []bool{cwFirst, !cwFirst} {
			if cwTurn {
				dl.take(true)
				s.updates.log.take(true)
				got, wall, err := s.purchaseRound(ctx, cards, perAgent, interval)
				lat, bad := dl.take(false)
				ulat, _ := s.updates.log.take(false)
				upd = append(upd, ulat...)
				if err != nil {
					return err
				}
				purchases = append(purchases, got...)
				cw, cwWall, non200 = append(cw, lat...), cwWall+wall, non200+bad
				o.progress("authorize: round %d: %d decisions in %.1fs, p99 %.0f ms", round+1, len(lat), wall.Seconds(), percentile(lat, 99))
				if err := s.settle(ctx, agents); err != nil {
					return err
				}
			} else {
				lat, wall, err := s.floorRound(ctx, wids, perAgent, interval)
				if err != nil {
					return err
				}
				floor, floorWall = append(floor, lat...), floorWall+wall
				o.progress("authorize: round %d: floor %d updates in %.1fs, p99 %.0f ms", round+1, len(lat), wall.Seconds(), percentile(lat, 99))
			}
		}
	}
	stats1 := s.sim.Stats()
	simFallback := stats1.DecisionsFallback - stats0.DecisionsFallback
	asked := stats1.DecisionsAsked - stats0.DecisionsAsked

	late := 0
	for _, v := range cw {
		if v >= ms(authDeadline) {
			late++
		}
	}
	r.metric("decision p50", "ms", percentile(cw, 50)).withFloor(percentile(floor, 50))
	m := r.metric("decision p99", "ms", percentile(cw, 99)).withFloor(percentile(floor, 99))
	m.target("ratio <= 2", *m.Ratio <= 2)
	r.metric("decision max", "ms", slices.Max(cw)).withFloor(slices.Max(floor))
	r.metric("of which authorize update p50", "ms", percentile(upd, 50)).withFloor(percentile(floor, 50))
	r.metric("of which authorize update p99", "ms", percentile(upd, 99)).withFloor(percentile(floor, 99))
	r.metric("throughput", "decisions/s", float64(len(cw))/cwWall.Seconds()).withFloor(float64(len(floor)) / floorWall.Seconds())
	r.metric("answers ≥ 2 s at the API", "count", float64(late)).target("= 0", late == 0)
	r.metric("simulator fallbacks (no answer in 2 s)", "count", float64(simFallback)).target("= 0", simFallback == 0)

	if err := authorizeChecks(ctx, s, r, cards, purchases, asked, non200); err != nil {
		return err
	}
	r.note("latency: POST /v1/authorizations/sim timed at the API's HTTP handler (the time the simulator waited, less the loopback); all %d agents buying at once, open loop: each agent one purchase every %s whether or not its last was answered (%.0f/s offered), %d per agent per round, %d rounds alternating with the floor", agents, interval, rate, perAgent, rounds)
	r.note("every purchase is decided by the agent's workflow (authorize update, max_per_purchase_usd $5: one in five is over it); approved ones then arrive as signed webhooks, as in production, which the floor does not have")
	r.note("floor: client UpdateWorkflow (wait for completion) to %d workflows of the bench's own whose handler answers at once, on the same schedule, timed at the client; each cardwarden round is followed by a wait until its webhooks are delivered and every agent's workflow has caught up", agents)
	r.note("decisions while a fleet-wide reset runs are measured in the reset scenario (decision during the reset p50/p99, answers ≥ 2 s, fallbacks)")
	r.note("of which authorize update: starter.Authorize as the API calls it (UpdateWorkflow to agent/<id>, wait for completion), timed around the call; the rest of a decision is the endpoint's own work (signature, the decisions, cards and agents tables, recording the answer)")
	r.Series = []Series{{Name: "cardwarden decision", Points: cdf(cw)}, {Name: "of which the authorize update", Points: cdf(upd)},
		{Name: "floor (bare Update round trip)", Points: cdf(floor)}}
	r.chart = func(r *Result) string {
		return lineChart("Decision latency (CDF)", fmt.Sprintf("%d agents buying at once, %.0f purchases/s; at the API vs a bare Update", agents, rate),
			"latency (ms)", "fraction of decisions", r.Series, nil)
	}
	return nil
}
