package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

const ingestConcurrency = 16

type ingestEvent struct {
	id, card string
	agent    int
	amount   int64
	body     []byte
}

// simEventBody is an authorization.created event exactly as the simulator would send it.
func simEventBody(id, card, auth string, amountMinor int64, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "type": "authorization.created", "created_at": at.UTC().Format(time.RFC3339Nano), "card_id": card,
		"data": map[string]any{"card_id": card, "authorization_id": auth, "approved": true, "amount_minor": amountMinor,
			"currency": "usd", "merchant": "bench-merchant", "mcc": "5734"},
	})
	return b
}

// postWebhook signs body as the simulator does and posts it to cardwarden's API.
func (s *stack) postWebhook(ctx context.Context, key []byte, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.apiURL+"/v1/webhooks/sim", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	stdwebhooks.Sign(req.Header, key, id, time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := sharedHTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// runIngest: signed webhooks per second through POST /v1/webhooks/sim into the ledger and the
// agents' workflows, with 10% duplicates, checking each event counted exactly once; the floor
// is plain inserts of the same number of rows into the same database.
func runIngest(ctx context.Context, o Options, r *Result) error {
	r.Title = "webhook ingest: signed events/s into ledger and workflows, 10% duplicates"
	agents := o.size(50, 10)
	unique := o.size(5000, 500)
	dups := unique / 10
	r.Params["agents"], r.Params["unique_events"], r.Params["duplicates"], r.Params["concurrency"] = agents, unique, dups, ingestConcurrency

	s, err := newStack(ctx, o, stackConfig{name: "ingest", inProcessWorker: true})
	if err != nil {
		return err
	}
	defer s.close()
	policy := func(id string) workflows.Policy {
		p := basePolicy(id, "1000000") // no threshold alert fires: this measures ingest alone
		p.RotateCron = workflows.RotateOff
		return p
	}
	if err := s.startAgents(ctx, 0, agents, policy); err != nil {
		return err
	}
	if _, err := s.waitProvisioned(ctx, agents, 2*time.Minute, nil); err != nil {
		return err
	}
	cards, err := s.cardIDs(ctx, 0, agents)
	if err != nil {
		return err
	}
	key, _ := stdwebhooks.DecodeSecret(webhookSecret)

	// Deliveries: every event once, plus 10% sent again later in the stream (possibly while
	// the first delivery is still in flight, as a retrying issuer does).
	rng := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- a fixed-seed, reproducible benchmark schedule, not a secret
	now := time.Now()
	events := make([]ingestEvent, unique)
	want := make([]int64, agents)
	for i := range events {
		a := i % agents
		id := fmt.Sprintf("evt_bench_%s_%06d", s.prefix, i)
		amt := int64(1 + i%7)
		events[i] = ingestEvent{id: id, card: cards[a], agent: a, amount: amt,
			body: simEventBody(id, cards[a], fmt.Sprintf("auth_bench_%s_%06d", s.prefix, i), amt, now)}
		want[a] += amt
	}
	dueAt := map[int][]int{} // position in the stream → duplicates to send right after it
	for range dups {
		orig := rng.IntN(unique)
		at := min(orig+1+rng.IntN(200), unique-1) // shortly after the original
		dueAt[at] = append(dueAt[at], orig)
	}
	order := make([]int, 0, unique+dups)
	for i := range unique {
		order = append(order, i)
		order = append(order, dueAt[i]...)
	}

	// Floor table: plain rows, primary key only.
	db := s.store.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_floor_events (id TEXT PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
		return err
	}
	defer func() { _, _ = db.ExecContext(context.Background(), `DROP TABLE bench_floor_events`) }()
	ins := db.Rebind(`INSERT INTO bench_floor_events (id, body) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`)

	// Rounds alternate cardwarden and the floor over consecutive slices of the stream, so a
	// change in the machine's load hits both alike.
	rounds := 5
	if o.Quick {
		rounds = 2
	}
	var non200 atomic.Int64
	var cwTime, drainTime, floorTime time.Duration
	pending := `SELECT count(*) FROM ledger_events WHERE signalled_at IS NULL AND orphaned = ? AND issuer_event_id LIKE ?`
	per := (len(order) + rounds - 1) / rounds
	for lo := 0; lo < len(order); lo += per {
		chunk := order[lo:min(lo+per, len(order))]
		c0 := time.Now()
		if err := parallel(ctx, len(chunk), ingestConcurrency, func(ctx context.Context, k int) error {
			ev := events[chunk[k]]
			code, err := s.postWebhook(ctx, key, ev.id, ev.body)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				non200.Add(1)
			}
			return nil
		}); err != nil {
			return err
		}
		cwTime += time.Since(c0)
		// The relay delivers after the answer: the round ends when every acknowledged event
		// has reached its workflow, so its work neither spills into the floor's round nor
		// goes uncounted.
		d0 := time.Now()
		if err := waitFor(ctx, time.Minute, 10*time.Millisecond, func() (bool, error) {
			n, err := s.count(ctx, pending, false, "evt_bench_"+s.prefix+"_%")
			return n == 0, err
		}); err != nil {
			return fmt.Errorf("ingest: acknowledged events not delivered to their workflows: %w", err)
		}
		drainTime += time.Since(d0)
		f0 := time.Now()
		if err := parallel(ctx, len(chunk), ingestConcurrency, func(ctx context.Context, k int) error {
			ev := events[chunk[k]]
			_, err := db.ExecContext(ctx, ins, ev.id, string(ev.body))
			return err
		}); err != nil {
			return err
		}
		floorTime += time.Since(f0)
	}
	cwRate := float64(len(order)) / cwTime.Seconds()
	floorRate := float64(len(order)) / floorTime.Seconds()
	deliveredRate := float64(len(order)) / (cwTime + drainTime).Seconds()
	o.progress("ingest: cardwarden %d deliveries acknowledged in %.1fs (%.0f/s), all in their workflows %.2fs later; floor %d inserts in %.1fs (%.0f/s)",
		len(order), cwTime.Seconds(), cwRate, drainTime.Seconds(), len(order), floorTime.Seconds(), floorRate)

	r.metric("deliveries", "events/s", cwRate).withFloor(floorRate).target("ratio >= 0.5", cwRate >= 0.5*floorRate)
	r.metric("unique events", "events/s", float64(unique)/cwTime.Seconds())
	r.metric("deliveries into workflows", "events/s", deliveredRate).withFloor(floorRate)

	// Exactly once: in the ledger, in daily spend, and in every workflow's budget.
	r.check("every delivery acknowledged", non200.Load() == 0, "%d of %d deliveries answered non-200", non200.Load(), len(order))
	ledger, _ := s.count(ctx, `SELECT count(*) FROM ledger_events WHERE issuer = 'sim' AND issuer_event_id LIKE ?`, "evt_bench_"+s.prefix+"_%")
	r.check("ledger holds each event once", ledger == unique, "%d rows for %d unique events (%d deliveries)", ledger, unique, len(order))
	unsignalled, _ := s.count(ctx, `SELECT count(*) FROM ledger_events WHERE signalled_at IS NULL AND issuer_event_id LIKE ?`, "evt_bench_"+s.prefix+"_%")
	r.check("every event signalled", unsignalled == 0, "%d recorded but not signalled", unsignalled)
	badSpend, badWF := 0, 0
	var firstBad string
	for a := range agents {
		var spent int64
		if err := db.GetContext(ctx, &spent, db.Rebind(`SELECT COALESCE(SUM(spent_minor), 0) FROM daily_spend WHERE agent_id = ?`), s.agentID(a)); err != nil {
			return err
		}
		if spent != want[a] {
			badSpend++
		}
		var got money.Amount
		werr := waitFor(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
			st, err := s.starter.State(ctx, s.agentID(a))
			if err != nil {
				return false, err
			}
			got = st.Budget.SpentTodayUSD
			return got.Minor() == want[a], nil
		})
		if werr != nil {
			badWF++
			if firstBad == "" {
				firstBad = fmt.Sprintf("agent %s: workflow spent %s, want %s", s.agentID(a), got, money.Amount(want[a]))
			}
		}
	}
	r.check("daily spend counts each event once", badSpend == 0, "%d of %d agents with a wrong daily_spend total", badSpend, agents)
	r.check("workflows count each event once", badWF == 0, "%d of %d agents with a wrong spent_today %s", badWF, agents, firstBad)
	r.note("cardwarden: %d clients POST signed authorization.created events; each 200 means verified and recorded in the ledger (with daily spend); the relay then signals each agent's events to its workflow", ingestConcurrency)
	r.note("deliveries into workflows: the same deliveries over the time until the last one's event was signalled (each round waits for its relay before the floor's round starts)")
	r.note("%d rounds alternate cardwarden and the floor over consecutive slices of the stream; times are summed per side", rounds)
	r.note("floor: INSERT … ON CONFLICT DO NOTHING of the same %d rows into the same %s database, %d at a time", len(order), s.store.Dialect(), ingestConcurrency)
	r.chart = func(r *Result) string {
		return barChart("Webhook ingest", fmt.Sprintf("%d deliveries (%d unique, %d duplicates), %d concurrent", len(order), unique, dups, ingestConcurrency),
			"events per second", []string{"acknowledged/s", "into workflows/s"}, []string{"cardwarden (verify, ledger; signal)", "floor (plain insert)"},
			[][]float64{{cwRate, deliveredRate}, {floorRate, floorRate}})
	}
	return nil
}
