package starter_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Start an agent against `cardwarden dev`, freeze its card, change its budget and read its
// state. (Not run by `go test`: it needs the dev stack.)
func Example() {
	ctx := context.Background()
	tc, err := client.Dial(client.Options{HostPort: "127.0.0.1:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer tc.Close()
	s := starter.New(tc, starter.Options{})

	agent, err := s.StartAgent(ctx, workflows.Policy{AgentID: "support-bot", DailyLimitUSD: money.MustParse("50")})
	switch {
	case errors.Is(err, starter.ErrInvalidPolicy):
		log.Fatalf("fix %s: %v", starter.FieldOf(err), err)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("started", agent.AgentID, "new:", agent.Created)

	if _, err := s.Freeze(ctx, "support-bot", workflows.ReasonRequest{Reason: "investigating", Actor: "ops"}); errors.Is(err, starter.ErrRejected) {
		fmt.Println("not frozen:", err) // e.g. already frozen
	}
	daily := money.MustParse("40")
	if _, err := s.SetBudget(ctx, "support-bot", workflows.BudgetRequest{DailyLimitUSD: &daily}); err != nil {
		log.Fatal(err)
	}
	st, err := s.State(ctx, "support-bot")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Status, st.Budget.DailyLimitUSD, st.Budget.RemainingTodayUSD)
}

// The visibility query behind ListAgents, as `temporal workflow list --query` takes it.
func ExampleAgentQuery() {
	q, _ := starter.AgentQuery(starter.ListOptions{Status: workflows.StatusFrozen})
	fmt.Println(q)
	// Output: WorkflowType = 'AgentCard' AND ExecutionStatus = 'Running' AND CardStatus = 'frozen'
}
