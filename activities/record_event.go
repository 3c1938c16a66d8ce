package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// RecordEvent records in the ledger an event the agent's workflow received by a card-event
// signal sent by hand (Temporal CLI or Web UI), which skipped the ledger the webhook path
// writes first. It goes through the same ledger.Record, so the event counts in the agent's
// daily spend exactly as a webhook would have counted it, once: an event id the ledger already
// has changes nothing. An event whose card is not this agent's is not written (it would count
// against another agent, or no one) and fails non-retryably, so the workflow alerts that its
// spend and the ledger's disagree.
func (a *Activities) RecordEvent(ctx context.Context, in workflows.RecordEventInput) error {
	res, err := a.ledger().RecordFor(ctx, in.Event, store.SourceSignal, in.AgentID)
	switch {
	case errors.Is(err, ledger.ErrNotOwner):
		owner := "no agent"
		if !res.Orphaned {
			owner = "agent " + res.AgentID
		}
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"event %s names card %s, which belongs to %s, not to agent %s; not recorded",
			in.Event.ID, in.Event.CardID, owner, in.AgentID), "EventCardNotAgents", nil)
	case err != nil:
		return fmt.Errorf("record hand-sent event: %w", err)
	}
	if res.New {
		a.log().InfoContext(ctx, "recorded a card event signalled by hand", "agent_id", in.AgentID, "issuer", in.Event.Issuer, "event_id", in.Event.ID)
	}
	return nil
}
