package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/workflows"
)

func TestPacerSharesItsRoom(t *testing.T) {
	ctx := context.Background()
	var none *activities.Pacer
	if !none.Take(ctx, 0) || none.Rate() != 0 {
		t.Fatal("no pacer (no rate limit) must always have room")
	}
	if activities.NewPacer(0, 5) != nil {
		t.Fatal("a pacer of 0 calls a second is no limit")
	}
	p := activities.NewPacer(10, 2)
	for call := 1; call <= 2; call++ {
		if !p.Take(ctx, 0) {
			t.Fatalf("a burst of 2 has no room for call %d at once", call)
		}
	}
	if p.Take(ctx, 0) {
		t.Fatal("a third call at once found room")
	}
	if !p.Take(ctx, time.Second) {
		t.Fatal("no room within a second at 10 calls a second")
	}
	// A call paced elsewhere takes the room a local try would have had.
	p.Took()
	if p.Take(ctx, 50*time.Millisecond) {
		t.Fatal("room found after the queue took it")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if p.Take(cancelled, time.Second) {
		t.Fatal("a try whose context ended still took room")
	}
	p.SetShare(4)
	if p.Rate() != 2.5 {
		t.Fatalf("rate %v after SetShare(4) of 10 a second", p.Rate())
	}
}

// UpdateLimitNow calls the issuer only with room in the pacer, and reports a failed call as not
// applied rather than failing: the workflow then schedules UpdateLimit, which retries.
func TestUpdateLimitNowOnlyWithRoom(t *testing.T) {
	testdb.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		w.agent(t, `{"agent_id":"demo","daily_limit_usd":25}`)
		card := w.issue(t, 1)
		w.acts.Pacer = activities.NewPacer(0.001, 1) // one call now, the next in 1,000 s
		in := func(minor int64) workflows.UpdateLimitInput {
			return workflows.UpdateLimitInput{AgentID: "demo", Issuer: "sim", CardID: card.ID,
				Limits: []issuer.SpendLimit{{AmountMinor: minor, Interval: issuer.AllTime}}, DailyLimitMinor: minor,
				ResetAt: time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)}
		}
		for _, step := range []struct {
			minor     int64
			applied   bool
			atIssuer  int64
			cardID    string
			unlimited bool
		}{
			{minor: 4000, applied: true, atIssuer: 4000},
			{minor: 5000, applied: false, atIssuer: 4000}, // no room: the issuer is not called
			{minor: 6000, applied: false, atIssuer: 4000, cardID: "card_nope", unlimited: true},
		} {
			if step.unlimited {
				w.acts.Pacer = nil
			}
			u := in(step.minor)
			if step.cardID != "" {
				u.CardID = step.cardID
			}
			res, err := w.acts.UpdateLimitNow(ctx, u)
			if err != nil || res.Applied != step.applied {
				t.Fatalf("limit %d: applied %v, %v; want %v", step.minor, res.Applied, err, step.applied)
			}
			if res.Applied && (res.CardID != u.CardID || !res.ResetAt.Equal(u.ResetAt)) {
				t.Fatalf("applied %+v does not name the card and reset of %+v", res, u)
			}
			c, err := w.iss.GetCard(ctx, card.ID)
			if err != nil {
				t.Fatal(err)
			}
			if c.Limits[0].AmountMinor != step.atIssuer {
				t.Fatalf("after limit %d: the issuer has %d, want %d", step.minor, c.Limits[0].AmountMinor, step.atIssuer)
			}
		}
		if c, _ := st.CardByIssuerID(ctx, "sim", card.ID); c.DailyLimitMinor != 4000 {
			t.Fatalf("limit in store %d, want the applied 4000", c.DailyLimitMinor)
		}
	})
}
