package starter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/workflows"
)

// Agent is an agent's workflow as StartAgent found or started it.
type Agent struct {
	AgentID    string           `json:"agent_id"`
	WorkflowID string           `json:"workflow_id"`
	RunID      string           `json:"run_id"`
	Created    bool             `json:"created"` // false when the agent was already running
	Policy     workflows.Policy `json:"policy"`  // the normalized policy it runs with
}

// StartAgentJSON is StartAgent for a policy given as JSON (the same document `temporal workflow
// start --input` takes). Unknown fields are rejected with the field named.
func (c *Client) StartAgentJSON(ctx context.Context, policy []byte) (Agent, error) {
	p, err := workflows.ParsePolicyWith(policy, c.outbound)
	if err != nil {
		return Agent{}, invalidPolicy(agentIDOf(policy), err)
	}
	return c.StartAgent(ctx, p)
}

// agentIDOf digs the agent id out of a policy that failed to parse, for the error message.
func agentIDOf(policy []byte) string {
	var doc struct {
		AgentID string `json:"agent_id"`
	}
	_ = json.Unmarshal(policy, &doc)
	return doc.AgentID
}

// StartAgent starts the agent's AgentCard workflow, or returns the one already running: it is
// idempotent, so a retried call never starts a second workflow or issues a second card.
//
// The policy is validated here first; an invalid one returns ErrInvalidPolicy naming the field,
// and nothing is started. When the agent is already running with a different policy the running
// agent is returned together with ErrAgentExists: change a budget with SetBudget, or retire the
// agent and start it again.
func (c *Client) StartAgent(ctx context.Context, p workflows.Policy) (Agent, error) {
	np, err := p.Normalize()
	if err != nil {
		return Agent{}, invalidPolicy(p.AgentID, err)
	}
	if err := np.CheckOutbound(c.outbound); err != nil {
		return Agent{}, invalidPolicy(np.AgentID, err)
	}
	if len(c.issuers) > 0 && !slices.Contains(c.issuers, np.Issuer) {
		return Agent{}, invalidPolicy(np.AgentID, workflows.FieldErrors{{Field: "policy.issuer",
			Msg: fmt.Sprintf("%q is not configured (configured: %s)", np.Issuer, strings.Join(c.issuers, ", "))}})
	}
	// Start first, look second: a new agent (the common case, and a fleet's onboarding) costs
	// one round trip. Only when the id is taken is the running agent read and compared.
	for retired := false; ; retired = true {
		run, err := c.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       workflows.WorkflowID(np.AgentID),
			TaskQueue:                workflows.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			// The SDK would otherwise hand back the running run as if it had started it.
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			// Where this client also runs the worker (cardwarden dev, serve with its worker), the
			// first workflow task comes back in the start's answer instead of through matching;
			// elsewhere the SDK asks for nothing.
			EnableEagerStart:      true,
			TypedSearchAttributes: workflows.SearchAttributes(np.AgentID, np.Issuer),
			StaticSummary:         "agent " + np.AgentID,
			StaticDetails:         staticDetails(np),
		}, workflows.WorkflowType, np)
		var running *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil:
			c.log.Info("agent started", "agent_id", np.AgentID, "run_id", run.GetRunID(), "issuer", np.Issuer)
			return Agent{AgentID: np.AgentID, WorkflowID: workflows.WorkflowID(np.AgentID), RunID: run.GetRunID(), Created: true, Policy: np}, nil
		case !errors.As(err, &running):
			return Agent{}, c.classify(ctx, "start", np.AgentID, err)
		}
		// Running (started by an earlier or a concurrent call): the same policy is this call's
		// agent; another policy is ErrAgentExists.
		a, err := c.existing(ctx, np, running.RunId)
		if !errors.Is(err, errRetiring) {
			return a, err
		}
		if retired {
			return Agent{}, &Error{Kind: ErrUnavailable, Op: "start", AgentID: np.AgentID,
				Msg: "the agent was retired again while this call started it; try again", Err: err}
		}
		// Retired, still finishing (its last alerts and card closes): returning it would
		// "create" an agent that ends a moment later. Wait for it to end, then start anew.
		if err := c.awaitEnd(ctx, np.AgentID, running.RunId); err != nil {
			return Agent{}, err
		}
	}
}

// errRetiring: the running workflow is a retired agent's, finishing.
var errRetiring = errors.New("agent retired, its workflow still finishing")

// retireGrace bounds how long a start waits for a retired agent's workflow to end.
const retireGrace = 30 * time.Second

// awaitEnd waits for a retired agent's run to end. A run that ends in any other way (failed,
// terminated) has ended all the same: only not ending in time is an error.
func (c *Client) awaitEnd(ctx context.Context, agentID, runID string) error {
	wctx, cancel := context.WithTimeout(ctx, retireGrace)
	defer cancel()
	if err := c.tc.GetWorkflow(wctx, workflows.WorkflowID(agentID), runID).Get(wctx, nil); err != nil && wctx.Err() != nil {
		return &Error{Kind: ErrUnavailable, Op: "start", AgentID: agentID,
			Msg: fmt.Sprintf("the agent was retired and its workflow has not ended within %s; try again", retireGrace), Err: err}
	}
	return nil
}

// existing returns the running agent, with ErrAgentExists when its policy differs from want.
// When its state cannot be read in time (no worker yet) the agent is returned as is: the start
// is idempotent either way, only the comparison is skipped.
func (c *Client) existing(ctx context.Context, want workflows.Policy, runID string) (Agent, error) {
	a := Agent{AgentID: want.AgentID, WorkflowID: workflows.WorkflowID(want.AgentID), RunID: runID, Policy: want}
	qctx, cancel := context.WithTimeout(ctx, c.stateTO)
	defer cancel()
	st, err := c.State(qctx, want.AgentID)
	if err != nil {
		c.log.Warn("agent already running; could not compare its policy", "agent_id", want.AgentID, "error", err)
		return a, nil
	}
	a.Policy = st.Policy
	if st.Status == workflows.StatusRetired {
		return a, errRetiring
	}
	if diff := policyDiff(st.Policy, want); diff != "" {
		return a, &Error{Kind: ErrAgentExists, Op: "start", AgentID: want.AgentID,
			Msg: diff + " (change budgets with set-budget, or retire the agent and create it again)"}
	}
	return a, nil
}

// policyDiff names the top-level policy fields that differ, or returns "".
func policyDiff(have, want workflows.Policy) string {
	a, errA := toFields(have)
	b, errB := toFields(want)
	if errA != nil || errB != nil {
		return ""
	}
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if !bytes.Equal(a[k], b[k]) {
			diffs = append(diffs, fmt.Sprintf("%s is %s, not %s", k, orNone(a[k]), orNone(b[k])))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if _, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s is %s, not unset", k, a[k]))
		}
	}
	return strings.Join(diffs, "; ")
}

func toFields(p workflows.Policy) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(b, &m)
}

func orNone(b json.RawMessage) string {
	if len(b) == 0 {
		return "unset"
	}
	return string(b)
}

// CreateAgent starts the agent like StartAgent and gives it its credential-pull token. The
// token is returned only when it was created by this call (it is stored as a SHA-256 hash and
// can never be shown again); an agent that already has one gets "" and keeps its token
// (RotateToken replaces it). Without a Store, the token is "" too. actor is recorded in the
// audit log with the token's issue.
func (c *Client) CreateAgent(ctx context.Context, p workflows.Policy, actor string) (Agent, string, error) {
	a, err := c.StartAgent(ctx, p)
	if err != nil {
		return a, "", err
	}
	if c.store == nil {
		return a, "", nil
	}
	tok, err := c.IssueToken(ctx, a.Policy, actor)
	if err != nil {
		return a, "", err
	}
	return a, tok, nil
}

// State returns the agent's current state (the "state" query). It works for a retired agent
// too, as long as a worker runs.
func (c *Client) State(ctx context.Context, agentID string) (workflows.StateView, error) {
	if err := checkAgentID("state", agentID); err != nil {
		return workflows.StateView{}, err
	}
	v, err := c.tc.QueryWorkflow(ctx, workflows.WorkflowID(agentID), "", workflows.QueryState)
	if err != nil {
		return workflows.StateView{}, c.classify(ctx, "state", agentID, err)
	}
	var st workflows.StateView
	if err := v.Get(&st); err != nil {
		return workflows.StateView{}, fmt.Errorf("state agent %s: decode: %w", agentID, err)
	}
	return st, nil
}

// staticDetails is what the Temporal Web UI shows under an AgentCard run: the agent's card as
// it started (the live state is the state query's) and how to steer it.
func staticDetails(p workflows.Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "AgentCard of agent **%s**", p.AgentID)
	if p.Label != "" {
		fmt.Fprintf(&b, " (%s)", p.Label)
	}
	fmt.Fprintf(&b, ": one virtual card at issuer `%s`, daily limit %s %s", p.Issuer, p.DailyLimitUSD, p.Currency)
	if p.MonthlyLimitUSD != nil {
		fmt.Fprintf(&b, ", monthly limit %s %s", *p.MonthlyLimitUSD, p.Currency)
	}
	fmt.Fprintf(&b, ", days in %s, rotation `%s` (policy at start).\n\n", p.Timezone, p.RotateCron)
	fmt.Fprintf(&b, "Live state: query `%s`. Steer it with the updates `%s`, `%s`, `%s`, `%s` and `%s`; "+
		"issuer events arrive as the `%s` signal (one sent by hand is recorded in the ledger too).",
		workflows.QueryState, workflows.UpdateRotate, workflows.UpdateFreeze, workflows.UpdateUnfreeze, workflows.UpdateSetBudget,
		workflows.UpdateRetire, workflows.SignalCardEvent)
	return b.String()
}
