package starter

import (
	"context"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// checkAgentID checks the policy's agent id rule before any call, so a malformed id is an
// invalid request rather than a "not found".
func checkAgentID(op, agentID string) error {
	if err := workflows.CheckAgentID(agentID); err != nil {
		return invalidRequest(op, agentID, workflows.FieldErrors{{Field: "agent_id", Msg: err.Error()}})
	}
	return nil
}

// Rotate issues the agent a new card now; the old one stays open for the policy's
// rotation_grace. From frozen or revoked it also makes the agent active again (a human's
// approval to reissue).
func (c *Client) Rotate(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateRotate, agentID, "", req)
}

// Freeze pauses the agent's card at the issuer (or lowers its limit to what it has spent where
// the issuer cannot pause). ErrRejected when it is already frozen or revoked.
func (c *Client) Freeze(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateFreeze, agentID, "", req)
}

// Unfreeze resumes a frozen card, or issues a new one for a revoked agent. ErrRejected when the
// agent is active.
func (c *Client) Unfreeze(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateUnfreeze, agentID, "", req)
}

// Retire closes every card of the agent and completes its workflow.
func (c *Client) Retire(ctx context.Context, agentID string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateRetire, agentID, "", req)
}

// SetBudget changes the daily and/or monthly limit and applies it to the card at once.
func (c *Client) SetBudget(ctx context.Context, agentID string, req workflows.BudgetRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateSetBudget, agentID, "", req)
}

// RotateOnce is Rotate under an update id: Temporal runs an update id once per workflow run and
// answers a repeat with the first outcome, so a retried call (the fleet rotation's, after a lost
// response) never rotates twice.
func (c *Client) RotateOnce(ctx context.Context, agentID, updateID string, req workflows.ReasonRequest) (workflows.StateView, error) {
	return c.update(ctx, workflows.UpdateRotate, agentID, updateID, req)
}

type validator interface{ Validate() error }

// update sends one update and waits for its outcome. The payload is validated here first so a
// malformed request is ErrInvalidRequest without a round trip; the workflow's validator then
// decides whether the update is allowed in the agent's current state (ErrRejected if not).
// A non-empty updateID makes the update idempotent: Temporal runs an update id once per run
// and answers a repeat with the first outcome.
func (c *Client) update(ctx context.Context, name, agentID, updateID string, req validator) (workflows.StateView, error) {
	if err := checkAgentID(name, agentID); err != nil {
		return workflows.StateView{}, err
	}
	if err := req.Validate(); err != nil {
		return workflows.StateView{}, invalidRequest(name, agentID, err)
	}
	h, err := c.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(agentID),
		UpdateID:     updateID,
		UpdateName:   name,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.StateView{}, c.classify(ctx, name, agentID, err)
	}
	var view workflows.StateView
	if err := h.Get(ctx, &view); err != nil {
		return workflows.StateView{}, c.classify(ctx, name, agentID, err)
	}
	c.log.Info("agent updated", "agent_id", agentID, "update", name, "status", view.Status, "generation", view.Generation)
	return view, nil
}
