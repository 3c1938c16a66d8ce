package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Fleet holds the FleetRotation workflow's activities. They act on other agents' workflows (a
// visibility query, each agent's state query and rotate update) through package starter, like
// any other program that drives agents: the fleet rotation is one more client of the agents.
type Fleet struct {
	agents *starter.Client
}

// NewFleet returns the fleet activities over a Temporal client.
func NewFleet(tc client.Client, logger *slog.Logger) *Fleet {
	return &Fleet{agents: starter.New(tc, starter.Options{Logger: logger})}
}

// ListFleet lists the running agents whose card is active, narrowed by the input's query and,
// when given, label (read from each agent's state, since labels are not search attributes).
func (a *Fleet) ListFleet(ctx context.Context, in workflows.ListFleetInput) (workflows.ListFleetResult, error) {
	agents, err := a.agents.ListAgents(ctx, starter.ListOptions{Status: workflows.StatusActive, Query: in.Query})
	if err != nil {
		if errors.Is(err, starter.ErrInvalidRequest) {
			return workflows.ListFleetResult{}, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidRequest, err)
		}
		return workflows.ListFleetResult{}, err
	}
	ids := make([]string, 0, len(agents))
	for i, ag := range agents {
		if in.Label != "" {
			activity.RecordHeartbeat(ctx, i)
			st, err := a.agents.State(ctx, ag.AgentID)
			if err != nil {
				if errors.Is(err, starter.ErrAgentNotFound) || errors.Is(err, starter.ErrRejected) {
					continue
				}
				return workflows.ListFleetResult{}, err
			}
			if st.Label != in.Label {
				continue
			}
		}
		ids = append(ids, ag.AgentID)
	}
	slices.Sort(ids)
	return workflows.ListFleetResult{AgentIDs: ids}, nil
}

// RotateAgent rotates one agent for the fleet rotation scheduled at in.ScheduledAt, unless its
// card is already from that rotation or later, or it is not active (a frozen or revoked card is
// a human's call; rotating would reactivate it). The rotate update's id is derived from the
// scheduled time, so an activity retry after a lost response never rotates twice.
func (a *Fleet) RotateAgent(ctx context.Context, in workflows.RotateAgentInput) (workflows.RotateAgentResult, error) {
	res := workflows.RotateAgentResult{AgentID: in.AgentID, Outcome: workflows.FleetSkipped}
	st, err := a.agents.State(ctx, in.AgentID)
	switch {
	case errors.Is(err, starter.ErrAgentNotFound), errors.Is(err, starter.ErrRejected):
		res.Detail = "agent is gone"
		return res, nil
	case err != nil:
		return res, err
	}
	res.Generation = st.Generation
	if st.Status != workflows.StatusActive {
		res.Detail = fmt.Sprintf("agent is %s", st.Status)
		return res, nil
	}
	if st.Card != nil && !st.Card.IssuedAt.Before(in.ScheduledAt) {
		res.Detail = "card already issued at " + st.Card.IssuedAt.UTC().Format(time.RFC3339)
		return res, nil
	}
	view, err := a.agents.RotateOnce(ctx, in.AgentID, workflows.FleetRotationUpdateID(in.ScheduledAt),
		workflows.ReasonRequest{Reason: in.Reason, Actor: in.Actor})
	switch {
	case errors.Is(err, starter.ErrAgentNotFound), errors.Is(err, starter.ErrRejected):
		// Retired or frozen between the state query and the update: nothing to rotate.
		res.Detail = err.Error()
		return res, nil
	case errors.Is(err, starter.ErrInvalidRequest):
		return res, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidRequest, err)
	case errors.Is(err, starter.ErrUpdateFailed):
		// The workflow ran the rotation and it failed (the issuer refused); it keeps the old
		// card and retries the issue on its own schedule, and a retry here would only be
		// answered with the same outcome for the same update id.
		return res, temporal.NewNonRetryableApplicationError(err.Error(), "RotationFailed", err)
	case err != nil:
		return res, err
	}
	res.Outcome, res.Generation, res.Detail = workflows.FleetRotated, view.Generation, ""
	if view.Card != nil {
		res.Detail = "new card ****" + view.Card.Last4
	}
	return res, nil
}
