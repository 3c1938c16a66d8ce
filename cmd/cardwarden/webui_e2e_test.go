package main

import (
	"context"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// What the Temporal Web UI shows of an AgentCard run, read from a real server the way the UI
// reads it: the run's summary and details (DescribeWorkflowExecution's user metadata) and the
// descriptions of its query, updates and signal (the built-in __temporal_workflow_metadata
// query).
func TestWebUIShowsAgentCardSummaryAndHandlers(t *testing.T) {
	e := newE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := e.ctl.StartAgent(ctx, workflows.Policy{AgentID: "webui-agent", Label: "research bot", DailyLimitUSD: money.MustParse("25")})
	require.NoError(t, err)
	e.waitCard(a.AgentID, 1)

	desc, err := e.tc.DescribeWorkflowExecution(ctx, a.WorkflowID, "")
	require.NoError(t, err)
	md := desc.GetExecutionConfig().GetUserMetadata()
	require.NotNil(t, md, "the run has user metadata")
	var summary, details string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetSummary(), &summary))
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetDetails(), &details))
	require.Equal(t, "agent webui-agent", summary)
	for _, want := range []string{"**webui-agent**", "(research bot)", "issuer `sim`", "daily limit 25.00 USD", "query `state`", "`set-budget`", "`card-event`", "recorded in the ledger"} {
		require.Contains(t, details, want)
	}

	v, err := e.tc.QueryWorkflow(ctx, a.WorkflowID, "", "__temporal_workflow_metadata")
	require.NoError(t, err)
	var meta sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&meta))
	descriptions := map[string]string{}
	for _, q := range meta.GetDefinition().GetQueryDefinitions() {
		descriptions["query "+q.GetName()] = q.GetDescription()
	}
	for _, u := range meta.GetDefinition().GetUpdateDefinitions() {
		descriptions["update "+u.GetName()] = u.GetDescription()
	}
	for _, s := range meta.GetDefinition().GetSignalDefinitions() {
		descriptions["signal "+s.GetName()] = s.GetDescription()
	}
	for _, h := range []string{"query " + workflows.QueryState, "update " + workflows.UpdateRotate, "update " + workflows.UpdateFreeze,
		"update " + workflows.UpdateUnfreeze, "update " + workflows.UpdateRetire, "update " + workflows.UpdateSetBudget,
		"signal " + workflows.SignalCardEvent} {
		require.NotEmpty(t, descriptions[h], "%s has a description (got %v)", h, descriptions)
	}
	require.Contains(t, descriptions["signal "+workflows.SignalCardEvent], "recorded in the ledger by the workflow")
}
