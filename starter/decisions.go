package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// Real-time decisions and teams (README, "Deciding each purchase" and "Teams").

// Authorize asks the agent's workflow to decide one purchase (the authorize update). The same
// authorization id always gets the same decision.
func (c *Client) Authorize(ctx context.Context, agentID string, req workflows.AuthorizeRequest) (workflows.AuthorizeResult, error) {
	var out workflows.AuthorizeResult
	err := c.call(ctx, workflows.UpdateAuthorize, agentID, workflows.WorkflowID(agentID), req, &out)
	return out, err
}

// Team is a team's workflow as StartTeam found or started it.
type Team struct {
	TeamID     string               `json:"team_id"`
	WorkflowID string               `json:"workflow_id"`
	RunID      string               `json:"run_id"`
	Created    bool                 `json:"created"`
	Policy     workflows.TeamPolicy `json:"policy"`
}

// StartTeam starts the team's workflow (team/<id>), or returns the running one: a retried
// call never starts a second. An invalid policy is ErrInvalidPolicy naming the field.
func (c *Client) StartTeam(ctx context.Context, p workflows.TeamPolicy) (Team, error) {
	np, err := p.Normalize()
	if err != nil {
		return Team{}, invalidPolicy(p.TeamID, err)
	}
	wid := workflows.TeamWorkflowID(np.TeamID)
	desc, err := c.tc.DescribeWorkflowExecution(ctx, wid, "")
	var notFound *serviceerror.NotFound
	switch {
	case err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return Team{TeamID: np.TeamID, WorkflowID: wid, RunID: desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), Policy: np}, nil
	case err != nil && !errors.As(err, &notFound):
		return Team{}, c.classify(ctx, "start team", np.TeamID, err)
	}
	run, err := c.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       wid,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "team " + np.TeamID,
	}, workflows.TeamWorkflowType, workflows.TeamInput{TeamPolicy: np})
	if err != nil {
		return Team{}, c.classify(ctx, "start team", np.TeamID, err)
	}
	c.log.Info("team started", "team_id", np.TeamID, "run_id", run.GetRunID())
	return Team{TeamID: np.TeamID, WorkflowID: wid, RunID: run.GetRunID(), Created: true, Policy: np}, nil
}

// TeamState is the team's state query.
func (c *Client) TeamState(ctx context.Context, teamID string) (workflows.TeamView, error) {
	if err := checkAgentID("team state", teamID); err != nil {
		return workflows.TeamView{}, err
	}
	v, err := c.tc.QueryWorkflow(ctx, workflows.TeamWorkflowID(teamID), "", workflows.QueryState)
	if err != nil {
		return workflows.TeamView{}, c.classify(ctx, "team state", teamID, err)
	}
	var out workflows.TeamView
	if err := v.Get(&out); err != nil {
		return workflows.TeamView{}, fmt.Errorf("team state %s: decode: %w", teamID, err)
	}
	return out, nil
}

// ReserveTeam asks the team whether a purchase fits its allowance, reserving it if so.
func (c *Client) ReserveTeam(ctx context.Context, teamID string, req workflows.TeamReserveRequest) (workflows.TeamReserveResult, error) {
	var out workflows.TeamReserveResult
	err := c.call(ctx, workflows.UpdateTeamReserve, teamID, workflows.TeamWorkflowID(teamID), req, &out)
	return out, err
}

// ReleaseTeam gives back a reservation whose purchase was declined after all.
func (c *Client) ReleaseTeam(ctx context.Context, teamID string, authorizationID string) error {
	var out workflows.TeamView
	return c.call(ctx, workflows.UpdateTeamRelease, teamID, workflows.TeamWorkflowID(teamID), workflows.TeamReleaseRequest{AuthorizationID: authorizationID}, &out)
}

// SetTeamBudget changes the team's daily and/or monthly limit.
func (c *Client) SetTeamBudget(ctx context.Context, teamID string, req workflows.BudgetRequest) (workflows.TeamView, error) {
	var out workflows.TeamView
	err := c.call(ctx, workflows.UpdateSetBudget, teamID, workflows.TeamWorkflowID(teamID), req, &out)
	return out, err
}

// call sends one update to a workflow and decodes its result.
func (c *Client) call(ctx context.Context, name, id, workflowID string, req validator, out any) error {
	if err := checkAgentID(name, id); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return invalidRequest(name, id, err)
	}
	h, err := c.tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: name, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return c.classify(ctx, name, id, err)
	}
	if err := h.Get(ctx, out); err != nil {
		return c.classify(ctx, name, id, err)
	}
	return nil
}
