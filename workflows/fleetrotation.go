package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// FleetRotation rotates every active agent's card, a bounded batch at a time. The Temporal
// Schedule FleetRotationScheduleID starts it (starter.EnsureFleetRotationSchedule); it can also
// be started by hand with a FleetRotationInput.
//
// It rotates through each agent's own "rotate" update, so the AgentCard workflow stays the only
// code that issues cards, with the same idempotency keys and grace period as any rotation. Its
// activities (ActivityListFleet, ActivityRotateAgent) are implemented by activities.Fleet, which
// drives the agents through package starter.
//
// Re-running it for the same scheduled time rotates no agent twice: RotateAgent skips an agent
// whose current card was issued at or after the scheduled time, and sends the update with an
// update id derived from the scheduled time, which Temporal runs at most once per workflow run.
const (
	FleetRotationWorkflowType = "FleetRotation"
	// FleetRotationScheduleID is the id of the Temporal Schedule that starts FleetRotation.
	FleetRotationScheduleID = "fleet-rotation"

	// ActivityListFleet lists the agents to rotate (fa.ListFleet).
	ActivityListFleet = "ListFleet"
	// ActivityRotateAgent rotates one agent (fa.RotateAgent).
	ActivityRotateAgent = "RotateAgent"

	// DefaultFleetBatchSize is how many agents rotate at once when the input does not say: each
	// rotation issues a card, and the issuer queue's rate limit paces the batch.
	DefaultFleetBatchSize = 10
	// MaxFleetBatchSize bounds the batch size.
	MaxFleetBatchSize = 100

	// Outcomes of RotateAgent.
	FleetRotated = "rotated"
	FleetSkipped = "skipped"
)

// SearchAttrScheduledStartTime is set by Temporal on workflows a Schedule starts: the time
// the action was scheduled for, the same for every retry or re-run of that action.
const SearchAttrScheduledStartTime = "TemporalScheduledStartTime"

// fleetAgentsPerRun bounds one run's history: each agent costs about seven events.
var fleetAgentsPerRun = 500

// maxFleetFailures bounds the failures listed in the result.
const maxFleetFailures = 100

// FleetRotationInput configures a fleet rotation. Every field is optional:
// `temporal workflow start --type FleetRotation --task-queue cardwarden --input '{}'`.
type FleetRotationInput struct {
	// Label rotates only agents whose policy has this label (a team, say).
	Label string `json:"label,omitempty"`
	// Query is an extra visibility clause for choosing agents, e.g. "Issuer = 'sim'".
	Query string `json:"query,omitempty"`
	// BatchSize is how many agents rotate concurrently; DefaultFleetBatchSize when 0.
	BatchSize int `json:"batch_size,omitempty"`
	// ScheduledAt is the rotation's idempotency time. Agents whose card was issued at or after
	// it are skipped. A scheduled run uses its TemporalScheduledStartTime; a manual run its own
	// start time. Give it to re-run a rotation without rotating anyone twice.
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Reason goes into each agent's audit log; "fleet rotation <time>" when empty.
	Reason string `json:"reason,omitempty"`

	// Progress is set only by continue-as-new.
	Progress *FleetProgress `json:"progress,omitempty"`
}

// FleetProgress carries a rotation across continue-as-new.
type FleetProgress struct {
	ScheduledAt time.Time           `json:"scheduled_at"`
	Remaining   []string            `json:"remaining"`
	Result      FleetRotationResult `json:"result"`
}

// FleetRotationResult is what a fleet rotation did.
type FleetRotationResult struct {
	ScheduledAt time.Time      `json:"scheduled_at"`
	Agents      int            `json:"agents"`
	Rotated     int            `json:"rotated"`
	Skipped     int            `json:"skipped"`
	Failed      int            `json:"failed"`
	Failures    []FleetFailure `json:"failures,omitempty"`
}

// FleetFailure is one agent that could not be rotated.
type FleetFailure struct {
	AgentID string `json:"agent_id"`
	Error   string `json:"error"`
}

// ListFleetInput chooses the agents of a fleet rotation: running AgentCard workflows whose
// CardStatus is active, narrowed by Label and Query.
type ListFleetInput struct {
	Label string `json:"label,omitempty"`
	Query string `json:"query,omitempty"`
}

// ListFleetResult lists agent ids, sorted.
type ListFleetResult struct {
	AgentIDs []string `json:"agent_ids"`
}

// RotateAgentInput asks for one agent's rotation on behalf of the fleet rotation scheduled
// at ScheduledAt.
type RotateAgentInput struct {
	AgentID     string    `json:"agent_id"`
	ScheduledAt time.Time `json:"scheduled_at"`
	Reason      string    `json:"reason"`
	Actor       string    `json:"actor"`
}

// RotateAgentResult says whether the agent was rotated or skipped (and why).
type RotateAgentResult struct {
	AgentID    string `json:"agent_id"`
	Outcome    string `json:"outcome"` // FleetRotated or FleetSkipped
	Detail     string `json:"detail,omitempty"`
	Generation int    `json:"generation,omitempty"`
}

// FleetRotationUpdateID is the update id of a fleet rotation's rotate update: the same for
// every attempt and re-run for one scheduled time.
func FleetRotationUpdateID(scheduledAt time.Time) string {
	return "fleet-rotation:" + scheduledAt.UTC().Format(time.RFC3339Nano)
}

// FleetRotation is the workflow; see the constants above.
func FleetRotation(ctx workflow.Context, in FleetRotationInput) (FleetRotationResult, error) {
	batch := in.BatchSize
	if batch == 0 {
		batch = DefaultFleetBatchSize
	}
	if batch < 1 || batch > MaxFleetBatchSize {
		return FleetRotationResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("input.batch_size: must be between 1 and %d, got %d", MaxFleetBatchSize, in.BatchSize), ErrTypeInvalidRequest, nil)
	}
	logger := workflow.GetLogger(ctx)
	prog := in.Progress
	if prog == nil {
		at := fleetScheduledAt(ctx, in)
		var list ListFleetResult
		lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10},
		})
		if err := workflow.ExecuteActivity(lctx, fa.ListFleet, ListFleetInput{Label: in.Label, Query: in.Query}).Get(ctx, &list); err != nil {
			return FleetRotationResult{}, fmt.Errorf("list agents: %w", err)
		}
		prog = &FleetProgress{ScheduledAt: at, Remaining: list.AgentIDs,
			Result: FleetRotationResult{ScheduledAt: at, Agents: len(list.AgentIDs)}}
		logger.Info("fleet rotation started", "scheduled_at", at, "agents", len(list.AgentIDs), "batch_size", batch)
	}
	reason := in.Reason
	if reason == "" {
		reason = "fleet rotation " + prog.ScheduledAt.UTC().Format(time.RFC3339)
	}
	rctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A rotation waits for the new card, and card issues are paced by the issuer queue's
		// rate limit, so one can take a while; a stuck one must not hold the batch forever.
		StartToCloseTimeout:    5 * time.Minute,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5},
	})
	done := 0
	for len(prog.Remaining) > 0 {
		if done >= fleetAgentsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			logger.Info("fleet rotation continuing as new", "remaining", len(prog.Remaining))
			next := in
			next.Progress = prog
			return FleetRotationResult{}, workflow.NewContinueAsNewError(ctx, FleetRotationWorkflowType, next)
		}
		n := min(batch, len(prog.Remaining))
		ids := prog.Remaining[:n]
		futures := make([]workflow.Future, n)
		for i, id := range ids {
			futures[i] = workflow.ExecuteActivity(rctx, fa.RotateAgent, RotateAgentInput{
				AgentID: id, ScheduledAt: prog.ScheduledAt, Reason: reason, Actor: "schedule:" + FleetRotationScheduleID,
			})
		}
		for i, f := range futures {
			var r RotateAgentResult
			err := f.Get(ctx, &r)
			switch {
			case err != nil:
				prog.Result.Failed++
				if len(prog.Result.Failures) < maxFleetFailures {
					prog.Result.Failures = append(prog.Result.Failures, FleetFailure{AgentID: ids[i], Error: failureMessage(err)})
				}
				logger.Warn("agent not rotated", "agent_id", ids[i], "error", err)
			case r.Outcome == FleetRotated:
				prog.Result.Rotated++
			default:
				prog.Result.Skipped++
			}
		}
		prog.Remaining = append([]string(nil), prog.Remaining[n:]...)
		done += n
	}
	r := prog.Result
	logger.Info("fleet rotation finished", "agents", r.Agents, "rotated", r.Rotated, "skipped", r.Skipped, "failed", r.Failed)
	return r, nil
}

// fleetScheduledAt is the rotation's idempotency time: the input's, else the time the
// Schedule scheduled this run for, else the workflow's start time.
func fleetScheduledAt(ctx workflow.Context, in FleetRotationInput) time.Time {
	if in.ScheduledAt != nil && !in.ScheduledAt.IsZero() {
		return in.ScheduledAt.UTC()
	}
	key := temporal.NewSearchAttributeKeyTime(SearchAttrScheduledStartTime)
	if t, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(key); ok && !t.IsZero() {
		return t.UTC()
	}
	return workflow.GetInfo(ctx).WorkflowStartTime.UTC()
}
