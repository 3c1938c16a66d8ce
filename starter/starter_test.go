package starter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

func TestAgentQuery(t *testing.T) {
	q, err := AgentQuery(ListOptions{Status: workflows.StatusFrozen, Issuer: "sim"})
	require.NoError(t, err)
	require.Equal(t, "WorkflowType = 'AgentCard' AND ExecutionStatus = 'Running' AND CardStatus = 'frozen' AND Issuer = 'sim'", q)

	q, err = AgentQuery(ListOptions{AgentID: "support-bot", IncludeClosed: true})
	require.NoError(t, err)
	require.Equal(t, "WorkflowType = 'AgentCard' AND AgentId = 'support-bot'", q)

	q, err = AgentQuery(ListOptions{IncludeClosed: true, Query: "StartTime > '2026-01-01T00:00:00Z'"})
	require.NoError(t, err)
	require.Equal(t, "WorkflowType = 'AgentCard' AND (StartTime > '2026-01-01T00:00:00Z')", q)

	// Nothing a caller passes as a value can change the query.
	_, err = AgentQuery(ListOptions{AgentID: "x' OR 'a'='a", Status: "active' OR WorkflowType = 'x", Issuer: "sim' OR 1=1"})
	var fe workflows.FieldErrors
	require.True(t, errors.As(err, &fe))
	require.Len(t, fe, 3)
	require.Equal(t, "agent_id", fe[0].Field)
	require.Equal(t, "status", fe[1].Field)
	require.Equal(t, "issuer", fe[2].Field)
}

func TestPolicyDiffNamesFields(t *testing.T) {
	a, err := workflows.Policy{AgentID: "a", DailyLimitUSD: money.MustParse("50")}.Normalize()
	require.NoError(t, err)
	require.Empty(t, policyDiff(a, a))
	b := a
	b.DailyLimitUSD = money.MustParse("40")
	b.Label = "team-x"
	d := policyDiff(a, b)
	require.Contains(t, d, `daily_limit_usd is "50.00", not "40.00"`)
	require.Contains(t, d, "label is unset")
}

func TestTokens(t *testing.T) {
	tok, err := NewToken()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, TokenPrefix))
	require.Len(t, HashToken(tok), 64)
	other, err := NewToken()
	require.NoError(t, err)
	require.NotEqual(t, tok, other)
	require.NotEqual(t, HashToken(tok), HashToken(other))
}

func TestCalendarString(t *testing.T) {
	weekly := client.ScheduleCalendarSpec{
		Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: 0}}, Hour: []client.ScheduleRange{{Start: 3}},
		DayOfMonth: []client.ScheduleRange{{Start: 1, End: 31}}, Month: []client.ScheduleRange{{Start: 1, End: 12}},
		DayOfWeek: []client.ScheduleRange{{Start: 1}},
	}
	require.Equal(t, "0 3 * * 1", calendarString(weekly))
	every15 := client.ScheduleCalendarSpec{Minute: []client.ScheduleRange{{Start: 0, End: 59, Step: 15}}, Hour: []client.ScheduleRange{{Start: 9, End: 17}, {Start: 20}}}
	require.Equal(t, "0-59/15 9-17,20 * * *", calendarString(every15))
	require.Equal(t, []string{"every 24h0m0s"}, describeSpec(client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: 24 * time.Hour}}}))
}

func TestScheduleSpecValidation(t *testing.T) {
	_, err := ScheduleSpec{Cron: []string{"0 3 * * MON", "nope"}, TimeZone: "Mars/Base", BatchSize: 500}.validate()
	var fe workflows.FieldErrors
	require.True(t, errors.As(err, &fe))
	fields := []string{}
	for _, f := range fe {
		fields = append(fields, f.Field)
	}
	require.Equal(t, []string{"schedule.timezone", "schedule.cron[1]", "schedule.batch_size"}, fields)
	_, err = ScheduleSpec{}.validate()
	require.ErrorContains(t, err, "give a cron spec")
	s, err := DefaultScheduleSpec().validate()
	require.NoError(t, err)
	require.Equal(t, "UTC", s.TimeZone)
}

func TestStartAgentRejectsInvalidPolicyWithoutCallingTemporal(t *testing.T) {
	tc := &mocks.Client{} // any call would fail the test: no expectations are set
	c := New(tc, Options{Issuers: []string{"sim"}})
	_, err := c.StartAgentJSON(context.Background(), []byte(`{"agent_id":"a","daily_limit_usd":10,"timezone":"Mars/Base"}`))
	require.ErrorIs(t, err, ErrInvalidPolicy)
	require.Equal(t, "policy.timezone", FieldOf(err))
	require.Contains(t, err.Error(), "start agent a: invalid policy: policy.timezone")

	_, err = c.StartAgentJSON(context.Background(), []byte(`{"agent_id":"a","daily_limit_usd":10,"colour":"red"}`))
	require.Equal(t, "policy.colour", FieldOf(err))

	_, err = c.StartAgent(context.Background(), workflows.Policy{AgentID: "a", DailyLimitUSD: 1000, Issuer: "stripe"})
	require.ErrorIs(t, err, ErrInvalidPolicy)
	require.Equal(t, "policy.issuer", FieldOf(err))
	tc.AssertExpectations(t)
}

func TestUpdateValidatesLocally(t *testing.T) {
	c := New(&mocks.Client{}, Options{})
	_, err := c.Freeze(context.Background(), "a", workflows.ReasonRequest{Reason: strings.Repeat("x", 501)})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.Equal(t, "request.reason", FieldOf(err))
	_, err = c.SetBudget(context.Background(), "a", workflows.BudgetRequest{})
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = c.Rotate(context.Background(), "../etc", workflows.ReasonRequest{})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.Equal(t, "agent_id", FieldOf(err))
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	tc := &mocks.Client{}
	c := New(tc, Options{})

	err := c.classify(ctx, "freeze", "a", temporal.NewApplicationError("card is already frozen", workflows.ErrTypeInvalidRequest))
	require.ErrorIs(t, err, ErrRejected)
	require.Equal(t, "freeze agent a: rejected: card is already frozen", err.Error())

	err = c.classify(ctx, "rotate", "a", temporal.NewApplicationError("issue card generation 2: issuer down", "errorString"))
	require.ErrorIs(t, err, ErrUpdateFailed)

	require.ErrorIs(t, c.classify(ctx, "state", "a", serviceerror.NewUnavailable("connection refused")), ErrUnavailable)
	require.ErrorIs(t, c.classify(ctx, "state", "a", context.DeadlineExceeded), ErrTimeout)

	// NotFound: never existed vs. ended.
	tc.On("DescribeWorkflowExecution", mock.Anything, "agent/ghost", "").Return(nil, serviceerror.NewNotFound("nope")).Once()
	require.ErrorIs(t, c.classify(ctx, "rotate", "ghost", serviceerror.NewNotFound("workflow not found")), ErrAgentNotFound)
	tc.On("DescribeWorkflowExecution", mock.Anything, "agent/old", "").Return(&workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED},
	}, nil).Once()
	err = c.classify(ctx, "rotate", "old", serviceerror.NewNotFound("workflow execution already completed"))
	require.ErrorIs(t, err, ErrRejected)
	require.Contains(t, err.Error(), "Completed")
	tc.AssertExpectations(t)
}
