package starter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cardwarden/cardwarden/workflows"
)

// Kinds of failure. Every error the Client returns for one of these matches it with errors.Is.
var (
	// ErrAgentNotFound: no workflow was ever started for the agent.
	ErrAgentNotFound = errors.New("agent not found")
	// ErrInvalidPolicy: the policy is invalid; nothing was started. FieldOf names the field.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrInvalidRequest: an update's payload or a query's filter is invalid; nothing was sent.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrRejected: the agent's workflow refused the update in its current state (freezing a
	// frozen card, anything on a retired agent). Nothing changed.
	ErrRejected = errors.New("rejected")
	// ErrAgentExists: the agent runs with a different policy than the one given to StartAgent.
	ErrAgentExists = errors.New("agent exists with a different policy")
	// ErrUpdateFailed: the workflow accepted the update but could not carry it out (for
	// example the issuer refused a new card); the message says why.
	ErrUpdateFailed = errors.New("update failed")
	// ErrUnavailable: Temporal could not be reached. Safe to retry.
	ErrUnavailable = errors.New("temporal unavailable")
	// ErrTimeout: the workflow did not answer in time, usually because no worker is running.
	ErrTimeout = errors.New("timed out waiting for the agent's workflow")
	// ErrUnauthorized: an agent token did not match.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrScheduleNotFound: the fleet-rotation schedule does not exist.
	ErrScheduleNotFound = errors.New("schedule not found")
	// ErrNoStore: the operation needs the application database, and the Client has none.
	ErrNoStore = errors.New("no application database configured")
)

// Error is the error type of this package: what was done to which agent, and which kind of
// failure it was.
type Error struct {
	Kind    error  // one of the Err* values above
	Op      string // "start", "rotate", "state", …
	AgentID string
	Msg     string
	Fields  workflows.FieldErrors // set for ErrInvalidPolicy and ErrInvalidRequest
	Err     error                 // the cause, when there is one
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.AgentID != "" {
		b.WriteString(" agent ")
		b.WriteString(e.AgentID)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	return b.String()
}

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// FieldOf returns the first invalid field an error names ("policy.timezone"), or "".
func FieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) && len(e.Fields) > 0 {
		return e.Fields[0].Field
	}
	var fe workflows.FieldErrors
	if errors.As(err, &fe) && len(fe) > 0 {
		return fe[0].Field
	}
	var f workflows.FieldError
	if errors.As(err, &f) {
		return f.Field
	}
	return ""
}

func fieldErrors(err error) workflows.FieldErrors {
	var fe workflows.FieldErrors
	if errors.As(err, &fe) {
		return fe
	}
	var f workflows.FieldError
	if errors.As(err, &f) {
		return workflows.FieldErrors{f}
	}
	return nil
}

func invalidPolicy(agentID string, err error) error {
	return &Error{Kind: ErrInvalidPolicy, Op: "start", AgentID: agentID, Msg: err.Error(), Fields: fieldErrors(err), Err: err}
}

func invalidRequest(op, agentID string, err error) error {
	return &Error{Kind: ErrInvalidRequest, Op: op, AgentID: agentID, Msg: err.Error(), Fields: fieldErrors(err), Err: err}
}

// classify turns a Temporal error into an *Error. A NotFound from an update or signal is
// either an agent that never existed or one whose workflow has ended (retired); the two are
// told apart by describing the workflow, because callers must answer them differently.
func (c *Client) classify(ctx context.Context, op, agentID string, err error) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return done
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		if st, ok := c.closedStatus(ctx, agentID); ok {
			return &Error{Kind: ErrRejected, Op: op, AgentID: agentID, Err: err,
				Msg: fmt.Sprintf("the agent's workflow has ended (%s): it is retired or failed; start it again to give it a card", st)}
		}
		return &Error{Kind: ErrAgentNotFound, Op: op, AgentID: agentID, Err: err}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.ErrTypeInvalidRequest:
			return &Error{Kind: ErrRejected, Op: op, AgentID: agentID, Msg: appErr.Message(), Err: err}
		case workflows.ErrTypeInvalidPolicy:
			return &Error{Kind: ErrInvalidPolicy, Op: op, AgentID: agentID, Msg: appErr.Message(), Err: err}
		default:
			return &Error{Kind: ErrUpdateFailed, Op: op, AgentID: agentID, Msg: appErr.Message(), Err: err}
		}
	}
	if isTimeout(err) {
		return &Error{Kind: ErrTimeout, Op: op, AgentID: agentID, Err: err,
			Msg: "no answer from the agent's workflow in time (is a cardwarden worker running?)"}
	}
	if IsUnavailable(err) {
		return &Error{Kind: ErrUnavailable, Op: op, AgentID: agentID, Msg: err.Error(), Err: err}
	}
	var queryFailed *serviceerror.QueryFailed
	if errors.As(err, &queryFailed) {
		return &Error{Kind: ErrUpdateFailed, Op: op, AgentID: agentID, Msg: queryFailed.Message, Err: err}
	}
	// A namespace that is missing, or lacks cardwarden's search attributes, is a deployment not
	// set up yet, not a bad request: say how to fix it.
	var nsNotFound *serviceerror.NamespaceNotFound
	var invalidArg *serviceerror.InvalidArgument
	if errors.As(err, &nsNotFound) || (errors.As(err, &invalidArg) && strings.Contains(invalidArg.Message, "search attribute")) {
		return &Error{Kind: ErrUnavailable, Op: op, AgentID: agentID, Err: err,
			Msg: "the Temporal namespace is not set up for cardwarden (run `cardwarden setup`): " + err.Error()}
	}
	if invalidArg != nil {
		return &Error{Kind: ErrInvalidRequest, Op: op, AgentID: agentID, Msg: invalidArg.Message, Err: err}
	}
	if agentID != "" {
		return fmt.Errorf("%s agent %s: %w", op, agentID, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// closedStatus reports the status of the agent's latest run when it is closed.
func (c *Client) closedStatus(ctx context.Context, agentID string) (string, bool) {
	if agentID == "" {
		return "", false
	}
	desc, err := c.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(agentID), "")
	if err != nil {
		return "", false
	}
	st := desc.GetWorkflowExecutionInfo().GetStatus()
	if st == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || st == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		return "", false
	}
	return statusName(st), true
}

func isTimeout(err error) bool {
	var updTimeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &updTimeout) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) ||
		status.Code(err) == codes.DeadlineExceeded
}

// IsUnavailable reports whether err means Temporal could not be reached (as opposed to Temporal
// answering with an error).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &unavailable) {
		return true
	}
	return status.Code(err) == codes.Unavailable
}

// statusName is a workflow status as people write it: "Running", "Completed", ….
func statusName(s enumspb.WorkflowExecutionStatus) string {
	name := strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_")
	parts := strings.Split(strings.ToLower(name), "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}
