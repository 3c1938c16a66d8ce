package starter_test

// This file is a caller outside the module: it imports only public packages (the root's
// architecture test checks), so it compiles only while everything a program needs to drive
// agents through starter can be named from outside. What it runs needs no Temporal server:
// each call is refused before any request is made.

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// orchestrator is what another program's orchestrator would write against starter.
type orchestrator struct {
	agents *starter.Client
}

func newOrchestrator(tc client.Client) *orchestrator {
	return &orchestrator{agents: starter.New(tc, starter.Options{SignalTimeout: 5 * time.Second})}
}

func (o *orchestrator) hire(ctx context.Context, id string, daily string) (starter.Agent, error) {
	amount, err := money.Parse(daily)
	if err != nil {
		return starter.Agent{}, err
	}
	return o.agents.StartAgent(ctx, workflows.Policy{AgentID: id, DailyLimitUSD: money.Amount(amount), Timezone: "Europe/Berlin"})
}

func (o *orchestrator) steer(ctx context.Context, id string) (workflows.StateView, error) {
	monthly := money.MustParse("400")
	if _, err := o.agents.SetBudget(ctx, id, workflows.BudgetRequest{MonthlyLimitUSD: &monthly, Reason: "quarter plan"}); err != nil {
		return workflows.StateView{}, err
	}
	req := workflows.ReasonRequest{Reason: "suspicious spend", Actor: "orchestrator"}
	if _, err := o.agents.Freeze(ctx, id, req); err != nil && !errors.Is(err, starter.ErrRejected) {
		return workflows.StateView{}, err
	}
	for _, update := range []func(context.Context, string, workflows.ReasonRequest) (workflows.StateView, error){
		o.agents.Unfreeze, o.agents.Rotate,
	} {
		if _, err := update(ctx, id, req); err != nil {
			return workflows.StateView{}, err
		}
	}
	if _, err := o.agents.RotateOnce(ctx, id, "nightly:2027-01-05", req); err != nil {
		return workflows.StateView{}, err
	}
	return o.agents.State(ctx, id)
}

func (o *orchestrator) fleet(ctx context.Context) ([]starter.AgentSummary, error) {
	if _, _, err := o.agents.EnsureFleetRotationSchedule(ctx, starter.DefaultScheduleSpec()); err != nil {
		return nil, err
	}
	return o.agents.ListAgents(ctx, starter.ListOptions{Status: workflows.StatusFrozen, Limit: 100})
}

func (o *orchestrator) report(ctx context.Context, ev cardwarden.Event) (starter.EventResult, error) {
	return o.agents.ReportEvent(ctx, "sim", ev)
}

func (o *orchestrator) retire(ctx context.Context, id string) (workflows.StateView, error) {
	return o.agents.Retire(ctx, id, workflows.ReasonRequest{Reason: "project over"})
}

func TestACallerOutsideTheModule(t *testing.T) {
	ctx := context.Background()
	o := newOrchestrator(nil) // no request below reaches Temporal
	var _ = []any{o.steer, o.fleet, o.retire}

	_, err := o.hire(ctx, "bad id!", "50")
	if !errors.Is(err, starter.ErrInvalidPolicy) || starter.FieldOf(err) != "policy.agent_id" {
		t.Fatalf("hire with a bad id: %v (field %q)", err, starter.FieldOf(err))
	}
	var se *starter.Error
	if !errors.As(err, &se) || se.Op != "start" {
		t.Fatalf("hire: %#v", err)
	}
	if _, err := o.agents.Freeze(ctx, "bad id!", workflows.ReasonRequest{}); !errors.Is(err, starter.ErrInvalidRequest) {
		t.Fatalf("freeze a bad id: %v", err)
	}
	ev := cardwarden.Event{ID: "evt_1", Kind: cardwarden.KindAuthorization, CardID: "card_1", Approved: true, AmountMinor: 1250, Currency: "USD"}
	if _, err := o.report(ctx, ev); !errors.Is(err, starter.ErrNoStore) {
		t.Fatalf("report without the server's database: %v", err)
	}
	if q, err := starter.AgentQuery(starter.ListOptions{Issuer: "sim"}); err != nil || q == "" {
		t.Fatalf("query: %q %v", q, err)
	}
	if len(starter.PushKey("cwa_token")) != 32 || starter.HashToken("cwa_token") == "" {
		t.Fatal("token helpers")
	}
}
