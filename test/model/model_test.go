package model_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

var (
	flagSequences   = flag.Int("model.sequences", 0, "sequences to run (default 12, or CARDWARDEN_MODEL_SEQUENCES)")
	flagConcurrency = flag.Int("model.concurrency", 0, "sequences run at once (default 12, or CARDWARDEN_MODEL_CONCURRENCY)")
	flagSeed        = flag.Uint64("model.seed", 0, "first seed (default: from the clock; printed)")
	flagOnly        = flag.String("model.ops", "", "replay one sequence: seed:op-indexes, as a failure prints it")
)

// The reset schedule every sequence runs on: a budget period of ten seconds, so a sequence
// crosses several resets (and the lead-time reconciliation before each) in half a minute.
const (
	resetCron = "*/10 * * * * *"
	period    = 10 * time.Second
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBudgetInvariantModel runs seeded random sequences against one stack and checks each
// against the simulator's records. `make test` runs a short batch; CARDWARDEN_MODEL_SEQUENCES=1000
// (make test-resilience) a long one.
func TestBudgetInvariantModel(t *testing.T) {
	n := *flagSequences
	if n == 0 {
		n = envInt("CARDWARDEN_MODEL_SEQUENCES", 12)
	}
	conc := *flagConcurrency
	if conc == 0 {
		conc = envInt("CARDWARDEN_MODEL_CONCURRENCY", 12)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var only *sequence
	if *flagOnly != "" {
		seq, err := parseReplay(*flagOnly)
		if err != nil {
			t.Fatal(err)
		}
		only, n = &seq, 1
	}
	t.Logf("model: %d sequences from seed %d, %d at a time", n, seed, conc)

	chaos := &chaos{s: s, rng: rand.New(rand.NewPCG(seed, 7))}
	chaosDone := make(chan struct{})
	go func() { defer close(chaosDone); chaos.run(ctx) }()

	var (
		mu       sync.Mutex
		failures []*result
		totals   tally
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				seq := generate(seed + uint64(i))
				if only != nil {
					seq = *only
				}
				r := run(ctx, s, seq, fmt.Sprintf("m%d-%d", seed%100000, i))
				mu.Lock()
				totals.add(r)
				if len(r.violations) > 0 {
					failures = append(failures, r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cancel()
	<-chaosDone
	t.Logf("model: %d sequences, %d operations, %d purchases (%d approved), %d card changes, %d credits, %d overspend events, %d resets crossed",
		totals.sequences, totals.ops, totals.purchases, totals.approved, totals.cardChanges, totals.credits, totals.overspends, totals.resets)
	t.Logf("model: %d purchases decided in real time by cardwarden", s.asked.Load())
	t.Logf("model: faults: %d issuer 5xx, %d lost responses, %d 429s, %d webhooks dropped, %d fault changes",
		s.sim.Stats().ErrorsInjected, s.lossy.lost.Load(), s.sim.Stats().RateLimited, s.sim.Stats().WebhooksDropped, chaos.changes.Load())
	for _, r := range failures {
		s.dumpHistory(r.agent)
		t.Errorf("sequence seed %d (agent %s) violated the invariant:\n  %s\n  operations: %s",
			r.seq.seed, r.agent, strings.Join(r.violations, "\n  "), r.seq)
	}
	if len(failures) > 0 {
		shrink(t, s, failures[0])
	}
	if n > 1 && s.asked.Load() == 0 {
		t.Errorf("no purchase was decided in real time")
	}
	// A whole batch must exercise every kind of seam; one replayed sequence need not.
	if only == nil && (totals.approved == 0 || totals.cardChanges == 0 || totals.credits == 0 || totals.overspends == 0) {
		t.Errorf("the model exercised too little: %+v", totals)
	}
}

// tally counts what a batch exercised.
type tally struct {
	sequences, ops, purchases, approved, cardChanges, credits, overspends, resets int
}

func (t *tally) add(r *result) {
	t.sequences++
	t.ops += len(r.seq.ops)
	t.purchases += r.purchases
	t.approved += r.approved
	t.cardChanges += r.cardChanges
	t.credits += r.credits
	t.overspends += r.overspends
	t.resets += r.resets
}

// ---- the chaos: issuer faults that come and go for the whole batch ----

type chaos struct {
	s       *stack
	rng     *rand.Rand
	changes atomic.Int64
}

func (c *chaos) run(ctx context.Context) {
	for {
		pick := func(xs ...float64) float64 { return xs[c.rng.IntN(len(xs))] }
		f := issuersim.Faults{
			ErrorRate:         pick(0, 0, 0.1, 0.2),
			RateLimit:         int(pick(0, 0, 30)),
			LatencyMS:         int64(pick(0, 0, 30, 150)),
			DuplicateWebhooks: pick(0, 0.2),
			ReorderWebhooks:   c.rng.IntN(2) == 0,
			WebhookDelayMS:    int64(pick(0, 0, 800, 2000)),
			DropWebhooks:      pick(0, 0, 0.05),
		}
		c.s.faults(f, int64(pick(0, 0, 5)))
		c.changes.Add(1)
		select {
		case <-ctx.Done():
			c.s.faults(issuersim.Faults{}, 0)
			return
		case <-time.After(time.Duration(1500+c.rng.IntN(2500)) * time.Millisecond):
		}
	}
}

// ---- sequences ----

type opKind string

const (
	opBuy          opKind = "buy"           // N purchases at once on the current card (and old ones)
	opRaceRotate   opKind = "race-rotate"   // purchases on the current card while it is rotated, then spend all the new one allows
	opRaceBudget   opKind = "race-budget"   // purchases while the daily limit changes
	opFreeze       opKind = "freeze"        // freeze, purchases racing it
	opUnfreeze     opKind = "unfreeze"      // unfreeze
	opCapture      opKind = "capture"       // capture a pending authorization at Pct% (partial, exact, over)
	opReverse      opKind = "reverse"       // reverse Pct% of a pending hold
	opRefund       opKind = "refund"        // refund Pct% of a capture
	opForce        opKind = "force"         // force-post Amount on a card (any, closed ones too)
	opRetireCreate opKind = "retire-create" // retire, then create the same agent again
	opWait         opKind = "wait"          // let time pass (resets happen on their own)
)

type op struct {
	Kind   opKind
	N      int
	Amount int64
	Pct    int
	Daily  int64
	Wait   time.Duration
	Old    bool
}

func (o op) String() string {
	switch o.Kind {
	case opBuy, opRaceRotate, opFreeze:
		s := fmt.Sprintf("%s(%dx%s", o.Kind, o.N, money.Format(o.Amount))
		if o.Old {
			s += ",old"
		}
		return s + ")"
	case opRaceBudget:
		return fmt.Sprintf("%s(%dx%s,daily=%s)", o.Kind, o.N, money.Format(o.Amount), money.Format(o.Daily))
	case opCapture, opReverse, opRefund:
		return fmt.Sprintf("%s(%d%%)", o.Kind, o.Pct)
	case opForce:
		return fmt.Sprintf("%s(%s)", o.Kind, money.Format(o.Amount))
	case opWait:
		return fmt.Sprintf("%s(%s)", o.Kind, o.Wait)
	}
	return string(o.Kind)
}

type sequence struct {
	seed    uint64
	daily   int64
	monthly int64 // 0: none
	// decided: cardwarden decides each purchase in real time (odd seeds), with a per-purchase
	// maximum of 40 % of the daily limit that declines some.
	decided bool
	ops     []op
	keep    []int // indexes of the generated ops kept (all, or a shrunk subset)
}

func (s sequence) String() string {
	parts := make([]string, len(s.ops))
	for i, o := range s.ops {
		parts[i] = o.String()
	}
	monthly := ""
	if s.monthly > 0 {
		monthly = ", monthly " + money.Format(s.monthly)
	}
	if s.decided {
		monthly += ", decided in real time"
	}
	return fmt.Sprintf("daily %s%s: %s (replay: -model.ops=%s)", money.Format(s.daily), monthly, strings.Join(parts, " "), s.replayArg())
}

func (s sequence) replayArg() string {
	idx := make([]string, len(s.keep))
	for i, k := range s.keep {
		idx[i] = strconv.Itoa(k)
	}
	return fmt.Sprintf("%d:%s", s.seed, strings.Join(idx, ","))
}

func parseReplay(arg string) (sequence, error) {
	seedStr, idxStr, _ := strings.Cut(arg, ":")
	seed, err := strconv.ParseUint(seedStr, 10, 64)
	if err != nil {
		return sequence{}, fmt.Errorf("-model.ops %q: seed: %w", arg, err)
	}
	full := generate(seed)
	if idxStr == "" {
		return full, nil
	}
	var keep []int
	for _, f := range strings.Split(idxStr, ",") {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 || i >= len(full.ops) {
			return sequence{}, fmt.Errorf("-model.ops %q: bad index %q", arg, f)
		}
		keep = append(keep, i)
	}
	return full.subset(keep), nil
}

func (s sequence) subset(keep []int) sequence {
	full := generate(s.seed)
	out := sequence{seed: s.seed, daily: full.daily, monthly: full.monthly, decided: full.decided, keep: keep}
	for _, k := range keep {
		out.ops = append(out.ops, full.ops[k])
	}
	return out
}

// generate builds the sequence of a seed: the same seed, the same operations.
func generate(seed uint64) sequence {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	daily := []int64{500, 1000, 2000}[rng.IntN(3)]
	s := sequence{seed: seed, daily: daily, decided: seed%2 == 1}
	if rng.IntN(3) == 0 {
		s.monthly = daily * 5 / 2
	}
	amount := func() int64 { return 1 + rng.Int64N(daily/2) }
	n := 18 + rng.IntN(12)
	for range n {
		var o op
		switch r := rng.IntN(100); {
		case r < 28:
			o = op{Kind: opBuy, N: 1 + rng.IntN(5), Amount: amount(), Old: rng.IntN(4) == 0}
		case r < 38:
			o = op{Kind: opRaceRotate, N: 1 + rng.IntN(4), Amount: amount(), Old: rng.IntN(2) == 0}
		case r < 46:
			o = op{Kind: opRaceBudget, N: 1 + rng.IntN(4), Amount: amount(), Daily: []int64{daily / 2, daily, daily * 2, 300}[rng.IntN(4)]}
		case r < 51:
			o = op{Kind: opFreeze, N: rng.IntN(3), Amount: amount()}
		case r < 58:
			o = op{Kind: opUnfreeze}
		case r < 68:
			o = op{Kind: opCapture, Pct: []int{40, 100, 100, 130, 250}[rng.IntN(5)]}
		case r < 74:
			o = op{Kind: opReverse, Pct: []int{30, 100}[rng.IntN(2)]}
		case r < 80:
			o = op{Kind: opRefund, Pct: []int{50, 100}[rng.IntN(2)]}
		case r < 85:
			o = op{Kind: opForce, Amount: 1 + rng.Int64N(daily/3)}
		case r < 88:
			o = op{Kind: opRetireCreate}
		default:
			o = op{Kind: opWait, Wait: time.Duration(300+rng.IntN(2700)) * time.Millisecond}
		}
		s.ops = append(s.ops, o)
		s.keep = append(s.keep, len(s.keep))
	}
	return s
}

// ---- running a sequence ----

// result is what a run observed and what its checks found.
type result struct {
	seq        sequence
	agent      string
	violations []string

	purchases, approved, cardChanges, credits, overspends, resets int
}

// budgetChange is a set-budget as the driver saw it: while it runs, either limit may be the
// one the issuer enforces; after, the new one if it succeeded, else the old. One answered with
// a timeout (HTTP 504: the workflow had not finished it in time) has an unknown outcome: the
// workflow may still apply it, so either limit stays possible.
type budgetChange struct {
	start, end time.Time
	old, new   int64
	ok         bool
	unknown    bool
}

type runner struct {
	ctx   context.Context
	s     *stack
	seq   sequence
	agent string
	rng   *rand.Rand
	res   *result

	mu       sync.Mutex
	cards    []string // every card id the agent ever had, oldest first
	pending  []auth   // approved authorizations still held
	captured []txn    // captures that can still be refunded
	budget   []budgetChange
	daily    int64
	created  []time.Time
}

type auth struct {
	id, card string
	held     int64
}

type txn struct {
	id   string
	left int64
}

func run(ctx context.Context, s *stack, seq sequence, agent string) *result {
	if seq.decided {
		s.decided.Store(agent, true)
	}
	r := &runner{ctx: ctx, s: s, seq: seq, agent: agent, rng: rand.New(rand.NewPCG(seq.seed, 99)),
		res: &result{seq: seq, agent: agent}, daily: seq.daily}
	if err := r.create(); err != nil {
		r.res.violations = append(r.res.violations, "create: "+err.Error())
		return r.res
	}
	for _, o := range seq.ops {
		r.do(o)
		time.Sleep(time.Duration(100+r.rng.IntN(300)) * time.Millisecond)
	}
	r.res.violations = append(r.res.violations, r.check()...)
	// Checked: retire the agent, so a batch keeps only the agents of the sequences in flight
	// alive. Left running, every finished agent went on resetting every ten seconds and
	// reconciling under the batch's issuer faults; after ~180 of 1,000 sequences the live
	// agents' issuer calls swamped the issuer queue and new agents waited minutes for a card.
	// Best effort: an agent that stays (already retired, or Temporal slow) only adds load.
	_ = r.update("retire", map[string]any{"reason": "sequence checked"})
	return r.res
}

func (r *runner) policy() map[string]any {
	p := map[string]any{
		"agent_id": r.agent, "daily_limit_usd": money.Format(r.seq.daily), "reset_cron": resetCron,
		"rotate_cron": "off", "rotation_grace": "2s", "anomaly": map[string]any{"window": "3s", "max_declines": 6},
	}
	if r.seq.monthly > 0 {
		p["monthly_limit_usd"] = money.Format(r.seq.monthly)
	}
	if r.seq.decided {
		p["max_per_purchase_usd"] = money.Format(r.seq.daily * 2 / 5)
	}
	return p
}

func (r *runner) create() error {
	r.mu.Lock()
	r.created = append(r.created, time.Now())
	r.daily = r.seq.daily
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
	defer cancel()
	for {
		err := r.s.apiPost(ctx, "/v1/agents", r.policy(), nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, err := r.current(true)
	return err
}

// current is the agent's current card id (waiting for one when wait is set).
func (r *runner) current(wait bool) (string, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := r.s.state(r.ctx, r.agent)
		if err == nil && st.Card != nil {
			r.remember(st.Card.ID)
			for _, c := range st.ClosingCards {
				r.remember(c.ID)
			}
			return st.Card.ID, nil
		}
		if !wait || time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("no card (status %s)", st.Status)
			}
			return "", err
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (r *runner) remember(card string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.cards, card) {
		r.cards = append(r.cards, card)
	}
}

// buy makes a purchase attempt as a merchant would and remembers an approved hold.
func (r *runner) buy(card string, amount int64) bool {
	var out struct {
		Approved        bool   `json:"approved"`
		AuthorizationID string `json:"authorization_id"`
	}
	if err := r.s.simPost(r.ctx, "/v1/simulate/authorizations", map[string]any{"card_id": card, "amount_minor": amount, "merchant": "Model API"}, &out); err != nil {
		return false // an injected failure: the purchase did not happen
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.purchases++
	if out.Approved {
		r.res.approved++
		r.pending = append(r.pending, auth{id: out.AuthorizationID, card: card, held: amount})
	}
	return out.Approved
}

// burst makes n purchases at once, on the current card and, with old, on every earlier one.
func (r *runner) burst(n int, amount int64, old bool) {
	card, _ := r.current(false)
	targets := []string{}
	if card != "" {
		targets = append(targets, card)
	}
	if old {
		r.mu.Lock()
		targets = append(targets, r.cards...)
		r.mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, c := range targets {
		for range n {
			wg.Add(1)
			go func() { defer wg.Done(); r.buy(c, amount) }()
		}
	}
	wg.Wait()
}

// timedOut reports an answer that says nothing about the outcome: the API's 504 (the agent's
// workflow did not finish the update in time) or no answer at all.
func timedOut(err error) bool {
	var ne net.Error
	return err != nil && (strings.Contains(err.Error(), ": 504 ") || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()))
}

func (r *runner) update(path string, body any) error {
	return r.s.apiPost(r.ctx, "/v1/agents/"+r.agent+"/"+path, body, nil)
}

func (r *runner) do(o op) {
	switch o.Kind {
	case opBuy:
		r.burst(o.N, o.Amount, o.Old)
	case opRaceRotate:
		card, _ := r.current(false)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.update("rotate", map[string]any{"reason": "model"}) }()
		for range o.N {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(r.rng.IntN(20)) * time.Millisecond)
				if card != "" {
					r.buy(card, o.Amount)
				}
			}()
		}
		wg.Wait()
		r.res.cardChanges++
		// Then spend everything the new card allows, as an agent that found fresh money would.
		if next, err := r.current(false); err == nil {
			for range 6 {
				if !r.buy(next, o.Amount) {
					break
				}
			}
			if o.Old && card != "" {
				r.buy(card, o.Amount)
			}
		}
	case opRaceBudget:
		r.mu.Lock()
		bc := budgetChange{start: time.Now(), old: r.daily, new: o.Daily}
		r.mu.Unlock()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.update("budget", map[string]any{"daily_limit_usd": money.Format(o.Daily)})
			r.mu.Lock()
			bc.end, bc.ok, bc.unknown = time.Now(), err == nil, timedOut(err)
			switch {
			case bc.ok:
				r.daily = o.Daily
			case bc.unknown:
				r.daily = max(bc.old, bc.new)
			}
			r.budget = append(r.budget, bc)
			r.mu.Unlock()
		}()
		r.burst(o.N, o.Amount, false)
		wg.Wait()
	case opFreeze:
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.update("freeze", map[string]any{"reason": "model"}) }()
		r.burst(o.N, o.Amount, false)
		wg.Wait()
	case opUnfreeze:
		if r.update("unfreeze", map[string]any{"reason": "model"}) == nil {
			r.res.cardChanges++
		}
	case opCapture:
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.mu.Unlock()
			return
		}
		i := r.rng.IntN(len(r.pending))
		a := r.pending[i]
		r.pending = slices.Delete(r.pending, i, i+1)
		r.mu.Unlock()
		amt := max(1, a.held*int64(o.Pct)/100)
		var out struct {
			TransactionID string `json:"transaction_id"`
			EventID       string `json:"event_id"`
		}
		if r.s.simPost(r.ctx, "/v1/simulate/captures", map[string]any{"authorization_id": a.id, "amount_minor": amt}, &out) == nil {
			r.mu.Lock()
			r.captured = append(r.captured, txn{id: out.TransactionID, left: amt})
			if amt > a.held {
				r.res.overspends++
			}
			r.mu.Unlock()
			if amt < a.held {
				r.settle(out.EventID) // a partial capture gives the rest of the hold back
			}
		}
	case opReverse:
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.mu.Unlock()
			return
		}
		i := r.rng.IntN(len(r.pending))
		a := r.pending[i]
		amt := max(1, a.held*int64(o.Pct)/100)
		if amt >= a.held {
			amt = a.held
			r.pending = slices.Delete(r.pending, i, i+1)
		} else {
			r.pending[i].held -= amt
		}
		r.mu.Unlock()
		var out struct {
			EventID string `json:"event_id"`
		}
		if r.s.simPost(r.ctx, "/v1/simulate/reversals", map[string]any{"authorization_id": a.id, "amount_minor": amt}, &out) == nil {
			r.settle(out.EventID)
		}
	case opRefund:
		r.mu.Lock()
		if len(r.captured) == 0 {
			r.mu.Unlock()
			return
		}
		i := r.rng.IntN(len(r.captured))
		c := r.captured[i]
		amt := max(1, c.left*int64(o.Pct)/100)
		if amt >= c.left {
			amt = c.left
			r.captured = slices.Delete(r.captured, i, i+1)
		} else {
			r.captured[i].left -= amt
		}
		r.mu.Unlock()
		var out struct {
			EventID string `json:"event_id"`
		}
		if r.s.simPost(r.ctx, "/v1/simulate/refunds", map[string]any{"transaction_id": c.id, "amount_minor": amt}, &out) == nil {
			r.settle(out.EventID)
		}
	case opForce:
		r.mu.Lock()
		if len(r.cards) == 0 {
			r.mu.Unlock()
			return
		}
		card := r.cards[r.rng.IntN(len(r.cards))]
		r.mu.Unlock()
		if r.s.simPost(r.ctx, "/v1/simulate/force_captures", map[string]any{"card_id": card, "amount_minor": o.Amount}, nil) == nil {
			r.mu.Lock()
			r.res.overspends++
			r.mu.Unlock()
		}
	case opRetireCreate:
		if err := r.update("retire", map[string]any{"reason": "model"}); err != nil {
			return
		}
		r.res.cardChanges++
		if err := r.create(); err != nil {
			r.res.violations = append(r.res.violations, "create again after retire: "+err.Error())
		}
	case opWait:
		time.Sleep(o.Wait)
	}
}

// settle waits until cardwarden has a credit (a refund, a reversal, a partial capture): the
// invariant is promised for credits cardwarden knows of before the agent spends them (README,
// "Money safety"). A credit whose webhook is lost is found by the reconciliation before the
// next reset.
func (r *runner) settle(eventID string) {
	r.mu.Lock()
	r.res.credits++
	r.mu.Unlock()
	deadline := time.Now().Add(3 * period)
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		if e, err := r.s.st.GetEvent(r.ctx, "sim", eventID); err == nil && e.SignalledAt.Valid {
			// Signalled: give the workflow a moment to apply it and lower the limit.
			if r.caughtUp() {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caughtUp reports whether the workflow's view of every card it holds matches the
// simulator's, and the current card's limit leaves no more than what is left of the period.
func (r *runner) caughtUp() bool {
	st, err := r.s.state(r.ctx, r.agent)
	if err != nil {
		return false
	}
	cards, err := r.s.simCards(r.ctx, r.agent)
	if err != nil {
		return false
	}
	usage := map[string]int64{}
	for _, c := range cards {
		usage[c.ID] = c.Spend.AllTimeMinor
	}
	views := append([]workflows.CardView{}, st.ClosingCards...)
	if st.Card != nil {
		views = append(views, *st.Card)
	}
	for _, v := range views {
		if v.SpentUSD.Minor() != usage[v.ID] {
			return false
		}
	}
	if c := st.Card; c != nil && c.LimitUSD != nil && st.Status == workflows.StatusActive &&
		c.LimitUSD.Minor()-c.SpentUSD.Minor() > st.Budget.RemainingTodayUSD.Minor() {
		return false // the credit's limit update has not reached the issuer yet
	}
	return true
}

// ---- checking ----

// check waits for the system to settle and checks the sequence against the simulator.
func (r *runner) check() []string {
	var out []string
	within := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(r.ctx, d) }
	ctx, cancel := within(3 * period)
	cards, events, err := r.issuerRecords(ctx)
	cancel()
	if err != nil {
		return []string{"read the simulator: " + err.Error()}
	}
	out = append(out, r.checkInvariant(events)...)
	// Everything the issuer recorded reaches the ledger (webhooks, or reconciliation of a lost
	// one before the next reset) and the workflow.
	// Under the batch's faults (429s, 5xx, slow calls) the workflow may lag well behind the
	// issuer; each check waits for it to catch up, for at most a minute.
	ctx, cancel = within(6 * period)
	defer cancel()
	if err := r.waitLedger(ctx, events); err != nil {
		out = append(out, err.Error())
	}
	ctx, cancel = within(6 * period)
	defer cancel()
	out = append(out, r.checkAlerts(ctx, events)...)
	ctx, cancel = within(6 * period)
	defer cancel()
	out = append(out, r.checkAgreement(ctx, cards, events)...)
	if len(out) > 0 {
		out = append(out, r.lateOrNever(cards, events, time.Now()))
	}
	return out
}

// issuerRecords reads the agent's cards and their events from the simulator, through faults.
func (r *runner) issuerRecords(ctx context.Context) ([]simCard, []cardwarden.Event, error) {
	for {
		cards, events, err := r.readIssuer(ctx)
		if err == nil || ctx.Err() != nil {
			return cards, events, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *runner) readIssuer(ctx context.Context) ([]simCard, []cardwarden.Event, error) {
	cards, err := r.s.simCards(ctx, r.agent)
	if err != nil {
		return nil, nil, err
	}
	var events []cardwarden.Event
	for _, c := range cards {
		evs, err := r.s.simEvents(ctx, c.ID)
		if err != nil {
			return nil, nil, err
		}
		events = append(events, evs...)
	}
	slices.SortStableFunc(events, func(a, b cardwarden.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return cards, events, nil
}

// allowance is the daily limit the issuer may have been enforcing at t.
func (r *runner) allowance(t time.Time) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	limit := r.seq.daily
	var lastCreate time.Time
	for _, c := range r.created {
		if !c.After(t) {
			lastCreate = c
		}
	}
	for _, b := range r.budget {
		if b.start.Before(lastCreate) {
			continue // a re-created agent starts from its policy again
		}
		switch {
		case t.Before(b.start):
		case t.Before(b.end) || b.unknown:
			limit = max(b.old, b.new)
		case b.ok:
			limit = b.new
		}
	}
	return limit
}

// checkInvariant checks, for every budget period, that what the issuer approved (net of the
// period's own reversals) never exceeded the allowance at the moment of each approval, and
// that a month's approvals never exceeded its cap.
func (r *runner) checkInvariant(events []cardwarden.Event) []string {
	sched, err := workflows.ParseCron(resetCron)
	if err != nil {
		return []string{err.Error()}
	}
	approvedAt := map[string]time.Time{}
	type step struct {
		at     time.Time
		amount int64 // + approval, - own reversal
		event  string
	}
	periods := map[time.Time][]step{}
	months := map[string]int64{}
	var out []string
	for _, ev := range events {
		start := workflows.PrevFire(sched, time.UTC, ev.OccurredAt)
		switch {
		case ev.Kind == cardwarden.KindAuthorization && ev.Approved:
			approvedAt[ev.AuthorizationID] = ev.OccurredAt
			periods[start] = append(periods[start], step{ev.OccurredAt, ev.AmountMinor, ev.ID})
		case ev.Kind == cardwarden.KindReversal:
			if a, ok := approvedAt[ev.AuthorizationID]; ok && workflows.PrevFire(sched, time.UTC, a).Equal(start) {
				periods[start] = append(periods[start], step{ev.OccurredAt, -ev.AmountMinor, ev.ID})
			}
		}
	}
	starts := make([]time.Time, 0, len(periods))
	for s := range periods {
		starts = append(starts, s)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	for _, p := range starts {
		r.res.resets++
		var cum int64
		month := p.Format("2006-01")
		for _, st := range periods[p] {
			cum += st.amount
			months[month] += st.amount
			if st.amount <= 0 {
				continue
			}
			if a := r.allowance(st.at); cum > a {
				out = append(out, fmt.Sprintf("period from %s: approval %s at %s took approved spend to %s, allowance %s",
					p.Format(time.TimeOnly), st.event, st.at.Format("15:04:05.000"), money.Format(cum), money.Format(a)))
			}
			if r.seq.monthly > 0 && months[month] > r.seq.monthly {
				out = append(out, fmt.Sprintf("month %s: approval %s took approved spend to %s, monthly cap %s",
					month, st.event, money.Format(months[month]), money.Format(r.seq.monthly)))
			}
		}
	}
	return out
}

// waitLedger waits until every event the issuer recorded is in the ledger and signalled.
func (r *runner) waitLedger(ctx context.Context, events []cardwarden.Event) error {
	remaining := events
	for {
		var pending []string
		remaining = slices.DeleteFunc(slices.Clone(remaining), func(ev cardwarden.Event) bool {
			why, waiting := r.unsignalled(ctx, ev)
			if waiting {
				pending = append(pending, why)
			}
			return !waiting
		})
		if len(remaining) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d events never reached cardwarden: %s", len(pending), strings.Join(pending, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unsignalled says why an issuer event is not in the ledger and signalled yet, if it is not (an
// event on no agent's card counts as arrived: there is no workflow to signal).
func (r *runner) unsignalled(ctx context.Context, ev cardwarden.Event) (string, bool) {
	what := fmt.Sprintf("%s %s (%s on %s)", ev.Kind, ev.ID, money.Format(ev.AmountMinor), ev.CardID)
	e, err := r.s.st.GetEvent(ctx, "sim", ev.ID)
	switch {
	case store.IsNotFound(err):
		return what + ": not in the ledger", true
	case err != nil:
		return what + ": ledger not read: " + err.Error(), true
	case !e.SignalledAt.Valid && e.AgentID != "":
		return fmt.Sprintf("%s: in the ledger (source %s, received %s), not signalled",
			what, e.Source, e.ReceivedAt.Format("15:04:05.000")), true
	}
	return "", false
}

// overspendEvents are the events no limit could stop, by the simulator's records: captures
// above what was still authorized, and force-posts.
func overspendEvents(events []cardwarden.Event) []cardwarden.Event {
	held := map[string]int64{}
	var out []cardwarden.Event
	for _, ev := range events {
		switch ev.Kind {
		case cardwarden.KindAuthorization:
			if ev.Approved {
				held[ev.AuthorizationID] += ev.AmountMinor
			}
		case cardwarden.KindReversal:
			held[ev.AuthorizationID] -= ev.AmountMinor
		case cardwarden.KindCapture:
			if ev.AmountMinor > held[ev.AuthorizationID] {
				out = append(out, ev)
			}
		case cardwarden.KindForceCapture:
			out = append(out, ev)
		}
	}
	return out
}

// checkAlerts checks that every overspend was alerted, by event.
func (r *runner) checkAlerts(ctx context.Context, events []cardwarden.Event) []string {
	want := overspendEvents(events)
	var missing []string
	for {
		alerts, err := r.s.st.ListAlerts(context.WithoutCancel(ctx), r.agent, 100000)
		if err != nil {
			return []string{"list alerts: " + err.Error()}
		}
		missing = missing[:0]
		for _, ev := range want {
			found := slices.ContainsFunc(alerts, func(a store.Alert) bool {
				return (a.Kind == workflows.AlertOverspend && strings.HasSuffix(a.Period, "/"+ev.ID)) ||
					(a.Kind == starter.AlertRetiredCardEvent && a.Period == "sim/"+ev.ID)
			})
			if !found {
				missing = append(missing, fmt.Sprintf("%s %s %s", ev.Kind, ev.ID, money.Format(ev.AmountMinor)))
			}
		}
		if len(missing) == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		return []string{fmt.Sprintf("overspend not alerted: %s", strings.Join(missing, ", "))}
	}
	return nil
}

// checkAgreement checks that the workflow, the ledger and the simulator agree to the cent:
// each card's usage, the period's and the month's spend, and each day's spend in the ledger.
func (r *runner) checkAgreement(ctx context.Context, cards []simCard, events []cardwarden.Event) []string {
	last := []string{"no comparison finished in time"}
	for ctx.Err() == nil {
		diff, err := r.disagreements(ctx, cards, events)
		switch {
		case err != nil && ctx.Err() != nil:
			// Out of time while reading: what disagreed last is the finding.
		case err != nil:
			return []string{err.Error()}
		case len(diff) == 0:
			return nil
		default:
			last = diff
			time.Sleep(300 * time.Millisecond)
		}
	}
	return append([]string{"workflow, ledger and simulator disagree:"}, last...)
}

// disagreements compares the workflow, the ledger and the simulator's records once.
func (r *runner) disagreements(ctx context.Context, cards []simCard, events []cardwarden.Event) ([]string, error) {
	records := spend.Fold(events)
	sched, err := workflows.ParseCron(resetCron)
	if err != nil {
		return nil, err
	}
	samePeriod := func(a, b time.Time) bool { return workflows.NextFire(sched, time.UTC, a).After(b) }
	var diff []string
	st, err := r.s.state(ctx, r.agent)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	usage := map[string]int64{}
	for _, c := range cards {
		usage[c.ID] = c.Spend.AllTimeMinor
		if got := spend.CardUsage(records, c.ID); got != c.Spend.AllTimeMinor {
			diff = append(diff, fmt.Sprintf("card %s: the simulator's events fold to %s, its usage is %s (test bug)", c.ID, money.Format(got), money.Format(c.Spend.AllTimeMinor)))
		}
	}
	views := append([]workflows.CardView{}, st.ClosingCards...)
	if st.Card != nil {
		views = append(views, *st.Card)
	}
	for _, v := range views {
		if v.SpentUSD.Minor() != usage[v.ID] {
			diff = append(diff, fmt.Sprintf("card %s: workflow usage %s, simulator %s", v.ID, v.SpentUSD, money.Format(usage[v.ID])))
		}
	}
	if !st.Budget.PeriodStart.IsZero() {
		want := spend.Sum(records, spend.Window{Start: st.Budget.PeriodStart})
		if st.Budget.SpentTodayUSD.Minor() != want.Spent || st.Budget.OverspendTodayUSD.Minor() != want.Overspend {
			diff = append(diff, fmt.Sprintf("period from %s: workflow spent %s (overspend %s), simulator %s (%s)",
				st.Budget.PeriodStart.Format(time.TimeOnly), st.Budget.SpentTodayUSD, st.Budget.OverspendTodayUSD, money.Format(want.Spent), money.Format(want.Overspend)))
		}
		ms := st.Budget.PeriodStart.UTC()
		monthStart := time.Date(ms.Year(), ms.Month(), 1, 0, 0, 0, 0, time.UTC)
		if want := spend.Sum(records, spend.Window{Start: monthStart, SamePeriod: samePeriod}); st.Budget.SpentMonthUSD.Minor() != want.Spent {
			diff = append(diff, fmt.Sprintf("month: workflow spent %s, simulator %s", st.Budget.SpentMonthUSD, money.Format(want.Spent)))
		}
	}
	days, err := r.s.st.SpendSeries(ctx, r.agent, "2000-01-01", "2999-12-31")
	if err != nil {
		return nil, fmt.Errorf("spend series: %w", err)
	}
	for _, d := range days {
		start, _ := time.Parse(time.DateOnly, d.Day)
		want := spend.Sum(records, spend.Window{Start: start, End: start.AddDate(0, 0, 1)})
		if d.SpentMinor != want.Spent || d.OverspendMinor != want.Overspend {
			diff = append(diff, fmt.Sprintf("ledger day %s: spent %s (overspend %s), simulator %s (%s)", d.Day,
				money.Format(d.SpentMinor), money.Format(d.OverspendMinor), money.Format(want.Spent), money.Format(want.Overspend)))
		}
	}
	return diff, nil
}

// lateOrNever follows a failed check for a while longer and says whether cardwarden caught up
// with the issuer late (the harness's waits were too short for the load) or not at all (a gap
// in recovery: webhooks, redelivery, reconciliation).
func (r *runner) lateOrNever(cards []simCard, events []cardwarden.Event, checkedAt time.Time) string {
	ctx, cancel := context.WithTimeout(r.ctx, 18*period)
	defer cancel()
	for {
		var pending []string
		for _, ev := range events {
			if why, waiting := r.unsignalled(ctx, ev); waiting {
				pending = append(pending, why)
			}
		}
		diff, err := r.disagreements(ctx, cards, events)
		if err == nil && len(pending) == 0 && len(diff) == 0 {
			return fmt.Sprintf("late: caught up %s after the check ended", time.Since(checkedAt).Round(time.Second))
		}
		if ctx.Err() != nil {
			return fmt.Sprintf("never: %s after the check still %d events pending (%s) and %d disagreements (%s)",
				time.Since(checkedAt).Round(time.Second), len(pending), strings.Join(pending, "; "), len(diff), strings.Join(diff, "; "))
		}
		time.Sleep(time.Second)
	}
}

// ---- shrinking ----

// shrink looks for a shorter sequence that still fails (dropping chunks of operations), and
// prints the shortest it found with the flag that replays it.
func shrink(t *testing.T, s *stack, failed *result) {
	best := failed.seq
	budget := 10
	for chunk := len(best.ops) / 2; chunk >= 1 && budget > 0; chunk /= 2 {
		for start := 0; start+chunk <= len(best.keep) && budget > 0; {
			keep := append(append([]int{}, best.keep[:start]...), best.keep[start+chunk:]...)
			cand := best.subset(keep)
			budget--
			r := run(context.Background(), s, cand, fmt.Sprintf("shrink-%d-%d", best.seed%100000, budget))
			if len(r.violations) > 0 {
				best = cand
				t.Logf("still fails with %d operations: %s", len(best.ops), r.violations[0])
				continue
			}
			start += chunk
		}
	}
	t.Errorf("shortest failing sequence found (seed %d): %s", best.seed, best)
}
