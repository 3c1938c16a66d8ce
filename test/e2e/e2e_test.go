package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/common/dynamicconfig"
	srvtemporal "go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// TestDeclineBurstFreezesCardEndToEnd: start an agent, spend until declined, fire a decline
// burst through the simulator's signed webhooks, and see the card paused at the simulator,
// the state frozen, the ledger rows and the alert; then a human unfreezes and retires it.
func TestDeclineBurstFreezesCardEndToEnd(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	p := workflows.Policy{
		AgentID: "e2e", DailyLimitUSD: money.MustParse("20"),
		Anomaly: workflows.AnomalyPolicy{MaxDeclines: 3, Window: workflows.Duration(time.Minute)},
	}
	run := s.start(t, "e2e", p) // a typed Policy, as the starter sends it
	st := s.waitState(t, "e2e", "a card", func(v workflows.StateView) bool { return v.Card != nil })
	cardID := st.Card.ID

	for i, want := range []bool{true, true, false} { // 8 + 8 fit in 20.00; the third does not
		if ok, reason := s.purchase(t, cardID, 800); ok != want {
			t.Fatalf("purchase %d: approved=%v (%s)", i, ok, reason)
		}
	}
	s.waitState(t, "e2e", "spend from webhooks", func(v workflows.StateView) bool {
		return v.Budget.SpentTodayUSD.String() == "16.00" && len(v.RecentDeclines) == 1
	})
	for range 2 { // two more declines: three within a minute is a burst
		if ok, _ := s.purchase(t, cardID, 800); ok {
			t.Fatal("purchase over the limit approved")
		}
	}
	st = s.waitState(t, "e2e", "frozen", func(v workflows.StateView) bool { return v.Status == workflows.StatusFrozen })
	if st.Card.Status != "paused" || !strings.Contains(st.StatusReason, "decline burst") || st.Freezes != 1 {
		t.Fatalf("frozen state: %+v", st)
	}
	if c, err := s.adapter.GetCard(ctx, cardID); err != nil || c.Status != issuer.CardPaused {
		t.Fatalf("card at the simulator: %+v %v", c, err)
	}
	if ok, reason := s.purchase(t, cardID, 100); ok || reason != string(cardwarden.ReasonCardPaused) {
		t.Fatalf("a frozen card approved a purchase: %v %s", ok, reason)
	}
	rows, err := s.store.CardEvents(ctx, "sim", cardID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var approved, declined int
	for _, r := range rows {
		if r.AgentID != "e2e" || r.Source != "webhook" {
			t.Fatalf("ledger row: %+v", r)
		}
		if r.Approved {
			approved++
		} else {
			declined++
		}
	}
	if approved != 2 || declined < 3 {
		t.Fatalf("ledger: %d approved, %d declined", approved, declined)
	}
	waitFor(t, "the frozen alert", func() bool {
		alerts, _ := s.store.ListAlerts(ctx, "e2e", 20)
		for _, a := range alerts {
			if a.Kind == workflows.AlertFrozen && a.Status == "sent" {
				return true
			}
		}
		return false
	})
	waitFor(t, "search attributes", func() bool {
		resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: `AgentId = "e2e" AND CardStatus = "frozen" AND Issuer = "sim"`,
		})
		return err == nil && len(resp.Executions) == 1
	})

	// A validator rejects what makes no sense without touching state.
	if _, err := s.update(ctx, "e2e", workflows.UpdateFreeze, workflows.ReasonRequest{Reason: "again"}); err == nil || !strings.Contains(err.Error(), "already frozen") {
		t.Fatalf("freeze of a frozen card: %v", err)
	}
	v, err := s.update(ctx, "e2e", workflows.UpdateUnfreeze, workflows.ReasonRequest{Reason: "reviewed", Actor: "ops"})
	if err != nil || v.Status != workflows.StatusActive {
		t.Fatalf("unfreeze: %+v %v", v, err)
	}
	if c, _ := s.adapter.GetCard(ctx, cardID); c.Status != issuer.CardActive {
		t.Fatalf("card not resumed: %s", c.Status)
	}
	if _, err := s.update(ctx, "e2e", workflows.UpdateRetire, workflows.ReasonRequest{Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	var res workflows.Result
	if err := run.Get(ctx, &res); err != nil || res.Status != workflows.StatusRetired {
		t.Fatalf("result: %+v %v", res, err)
	}
	if c, _ := s.adapter.GetCard(ctx, cardID); c.Status != issuer.CardClosed {
		t.Fatalf("retired agent's card is %s", c.Status)
	}
	s.record(t, run.GetID(), run.GetRunID(), "decline_burst.json")
}

// TestHandStartedPolicy is `temporal workflow start --input '{...}'`: a hand-typed policy
// issues a card; a bad one fails at once, naming the field, without a card.
func TestHandStartedPolicy(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	good := s.start(t, "demo", rawJSON(`{"agent_id":"demo","daily_limit_usd":25}`))
	st := s.waitState(t, "demo", "a card", func(v workflows.StateView) bool { return v.Card != nil })
	if st.Budget.DailyLimitUSD.String() != "25.00" || st.Generation != 1 {
		t.Fatalf("state: %+v", st)
	}
	if cards, _ := s.store.ListCards(ctx, "demo"); len(cards) != 1 || cards[0].IssuerCardID != st.Card.ID {
		t.Fatalf("store: %+v", cards)
	}
	// `temporal workflow signal --name card-event --input '{...}'`: the workflow counts the
	// event and records it in the ledger itself.
	if err := s.c.SignalWorkflow(ctx, workflows.WorkflowID("demo"), "", workflows.SignalCardEvent, rawJSON(
		`{"id":"evt_cli_1","kind":"authorization","card_id":"`+st.Card.ID+`","approved":true,"amount_minor":200,"currency":"usd"}`)); err != nil {
		t.Fatal(err)
	}
	s.waitState(t, "demo", "the signalled spend", func(v workflows.StateView) bool { return v.Budget.SpentTodayUSD.String() == "2.00" })
	// Several events in one signal, a JSON array (as the webhook relay sends them): each
	// counted and recorded once, the repeated evt_cli_1 not again.
	if err := s.c.SignalWorkflow(ctx, workflows.WorkflowID("demo"), "", workflows.SignalCardEvent, rawJSON(`[
		{"id":"evt_cli_2","kind":"authorization","card_id":"`+st.Card.ID+`","approved":true,"amount_minor":100,"currency":"usd"},
		{"id":"evt_cli_1","kind":"authorization","card_id":"`+st.Card.ID+`","approved":true,"amount_minor":200,"currency":"usd"},
		{"id":"evt_cli_3","kind":"authorization","card_id":"`+st.Card.ID+`","approved":true,"amount_minor":50,"currency":"usd"}]`)); err != nil {
		t.Fatal(err)
	}
	s.waitState(t, "demo", "the spend of the array", func(v workflows.StateView) bool { return v.Budget.SpentTodayUSD.String() == "3.50" })
	deadline := time.Now().Add(30 * time.Second)
	for _, want := range []struct {
		id     string
		amount int64
	}{{"evt_cli_1", 200}, {"evt_cli_2", 100}, {"evt_cli_3", 50}} {
		for {
			le, err := s.store.GetEvent(ctx, "sim", want.id)
			if err == nil && le.AgentID == "demo" && le.Source == store.SourceSignal && le.AmountMinor == want.amount {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hand-sent event %s not in the ledger: %+v %v", want.id, le, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	bad := s.start(t, "bad", rawJSON(`{"agent_id":"bad","daily_limit_usd":25,"timezone":"Mars/Base"}`))
	err := bad.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeInvalidPolicy ||
		!strings.Contains(appErr.Error(), `policy.timezone: unknown time zone "Mars/Base"`) {
		t.Fatalf("bad policy: %v", err)
	}
	if cards, _ := s.store.ListCards(ctx, "bad"); len(cards) != 0 {
		t.Fatalf("a card was issued for a bad policy: %+v", cards)
	}
	if _, err := s.update(ctx, "demo", workflows.UpdateRetire, workflows.ReasonRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := good.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	s.record(t, good.GetID(), good.GetRunID(), "hand_started.json")
	s.record(t, bad.GetID(), bad.GetRunID(), "invalid_policy.json")
}

// TestScheduleOnRealServer runs resets, rotations and grace-period closes with second-scale
// schedules on real timers, to record a history full of them.
func TestScheduleOnRealServer(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	retire := time.Now().Add(9 * time.Second).UTC().Truncate(time.Second)
	run := s.start(t, "sched", rawJSON(fmt.Sprintf(`{"agent_id":"sched","daily_limit_usd":10,
		"reset_cron":"@every 2s","rotate_cron":"@every 3s","rotation_grace":"1s","retire_at":%q}`, retire.Format(time.RFC3339))))
	st := s.waitState(t, "sched", "a card", func(v workflows.StateView) bool { return v.Card != nil })
	s.purchase(t, st.Card.ID, 300)
	var res workflows.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Resets < 2 || res.Rotations < 1 || res.Generation != res.Rotations+1 {
		t.Fatalf("result: %+v", res)
	}
	cards, _ := s.store.ListCards(ctx, "sched")
	for i, c := range cards {
		if c.Generation != i+1 || c.Status != "closed" {
			t.Fatalf("card %d: %+v", i, c)
		}
	}
	s.record(t, run.GetID(), run.GetRunID(), "schedule.json")
}

// TestContinueAsNewWhenTheServerSuggestsIt lowers the server's suggestion threshold so a short
// run continues as new, and checks nothing is lost across the boundary.
func TestContinueAsNewWhenTheServerSuggestsIt(t *testing.T) {
	s := newStack(t, temporaltest.WithBaseServerOptions(srvtemporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		dynamicconfig.HistoryCountSuggestContinueAsNew.Key():        []dynamicconfig.ConstrainedValue{{Value: 60}},
	})))
	ctx := context.Background()
	run := s.start(t, "can", rawJSON(`{"agent_id":"can","daily_limit_usd":25,"anomaly":{"max_declines":1000}}`))
	st := s.waitState(t, "can", "a card", func(v workflows.StateView) bool { return v.Card != nil })
	const n = 40
	for i := range n {
		signal(t, s, "can", st.Card.ID, i)
	}
	st = s.waitState(t, "can", "every signal", func(v workflows.StateView) bool { return v.SignalsTotal == n })
	if st.Run < 2 || st.Budget.SpentTodayUSD.String() != "0.40" || st.Generation != 1 {
		t.Fatalf("after continue-as-new: %+v", st)
	}
	first := s.history(t, run.GetID(), run.GetRunID())
	last := first.Events[len(first.Events)-1]
	if last.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
		t.Fatalf("first run ended with %s", last.GetEventType())
	}
	s.record(t, run.GetID(), run.GetRunID(), "continue_as_new.json")
	if _, err := s.update(ctx, "can", workflows.UpdateRetire, workflows.ReasonRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestSignalStormKeepsHistoryBounded sends more card events than one run may take and checks
// on the server's own history that every run stayed under 10,000 events and every event
// was counted once.
func TestSignalStormKeepsHistoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("signal storm skipped in -short mode")
	}
	s := newStack(t)
	ctx := context.Background()
	run := s.start(t, "storm", rawJSON(`{"agent_id":"storm","daily_limit_usd":1000,"anomaly":{"max_declines":10000}}`))
	st := s.waitState(t, "storm", "a card", func(v workflows.StateView) bool { return v.Card != nil })
	const n = workflows.MaxSignalsPerRun + 300
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				signal(t, s, "storm", st.Card.ID, i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	st = s.waitState(t, "storm", "every signal", func(v workflows.StateView) bool { return v.SignalsTotal == n })
	if st.Budget.SpentTodayUSD.String() != money.Format(n) {
		t.Fatalf("spend %s, want %s", st.Budget.SpentTodayUSD, money.Format(n))
	}
	runID, runs := run.GetRunID(), 0
	for runID != "" {
		runs++
		h := s.history(t, run.GetID(), runID)
		t.Logf("run %d: %d history events", runs, len(h.Events))
		if len(h.Events) > 10_000 {
			t.Errorf("run %d has %d history events", runs, len(h.Events))
		}
		runID = h.Events[len(h.Events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
	}
	if runs < 2 {
		t.Fatalf("%d signals fit in %d run(s)", n, runs)
	}
	if _, err := s.update(ctx, "storm", workflows.UpdateRetire, workflows.ReasonRequest{}); err != nil {
		t.Fatal(err)
	}
}

// signal sends the i-th 1-cent approved authorization straight to the workflow.
// signal sends a $0.01 approval as the webhook path does (after the ledger has it).
func signal(t *testing.T, s *stack, agentID, cardID string, i int) {
	t.Helper()
	ev := cardwarden.Event{ID: fmt.Sprintf("evt-%s-%d", agentID, i), Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: cardID,
		AuthorizationID: fmt.Sprintf("auth-%s-%d", agentID, i), Approved: true, AmountMinor: 1, Currency: "USD", OccurredAt: time.Now(),
		Recorded: true}
	if err := s.c.SignalWorkflow(context.Background(), workflows.WorkflowID(agentID), "", workflows.SignalCardEvent, ev); err != nil {
		t.Error(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
