package workflows_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/workflows"
)

// fake implements every activity of workflows/contract.go in memory, with an issuer that
// honours idempotency keys like a real one, and records every call for assertions.
type fake struct {
	mu   sync.Mutex
	caps issuer.Capabilities

	cards      map[string]*fakeCard // by id
	byKey      map[string]*fakeCard
	issued     []workflows.IssueCardInput // every IssueCard call, failed ones included
	limits     []limitCall
	paused     []string
	resumed    []string
	closed     []string
	alerts     []workflows.AlertInput
	statuses   []workflows.Status
	audits     []workflows.AuditInput
	agents     []workflows.UpsertAgentInput
	reconciles []workflows.ReconcileInput
	pushes     []workflows.PushCredentialsInput
	failPush   bool // every PushCredentials fails, non-retryably
	recorded   []workflows.RecordEventInput
	failRecord bool // every RecordEvent fails, non-retryably

	calls         []string            // "Activity card-id" of every issuer call, in order
	atIssuer      []cardwarden.Event  // events the issuer has; Reconcile with IncludeAll lists them
	failLimit     map[string]int      // fail the next n UpdateLimit calls on a card, non-retryably
	localRefused  bool                // UpdateLimitNow finds no room in the pacer
	failIssue     int                 // fail the next n IssueCard calls, non-retryably
	failIssueType string              // with this error type (default IssuerUnauthorized)
	missed        []cardwarden.Event  // returned by the next Reconcile
	failReconcile bool                // every Reconcile fails, non-retryably
	queues        map[string][]string // activity name → task queue of each call (card actions)
	notConfigured bool
	snapshot      workflows.AgentSnapshot
}

type fakeCard struct {
	seq    int
	id     string
	status issuer.CardStatus
	limits []issuer.SpendLimit
	input  workflows.IssueCardInput
}

type limitCall struct {
	CardID  string
	Limits  []issuer.SpendLimit
	ResetAt time.Time
}

func newFake() *fake {
	return &fake{
		caps: issuer.Capabilities{
			LimitIntervals:  []issuer.Interval{issuer.PerAuthorization, issuer.Daily, issuer.AllTime},
			UpdatableLimits: true, Pause: true, Reveal: true,
		},
		cards: map[string]*fakeCard{}, byKey: map[string]*fakeCard{},
	}
}

func (f *fake) IssuerInfo(_ context.Context, in workflows.IssuerInfoInput) (workflows.IssuerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notConfigured {
		return workflows.IssuerInfo{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("issuer %q is not configured (configured: sim)", in.Issuer), workflows.ErrTypeIssuerNotConfigured, nil)
	}
	return workflows.IssuerInfo{Name: in.Issuer, Capabilities: f.caps}, nil
}

func (f *fake) UpsertAgent(_ context.Context, in workflows.UpsertAgentInput) (workflows.AgentSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents = append(f.agents, in)
	return f.snapshot, nil
}

func (f *fake) SetAgentStatus(_ context.Context, in workflows.SetAgentStatusInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, in.Status)
	return nil
}

func (f *fake) Audit(_ context.Context, in workflows.AuditInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audits = append(f.audits, in)
	return nil
}

func (f *fake) SendAlert(_ context.Context, in workflows.AlertInput) (workflows.AlertResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.alerts {
		if a.Kind == in.Kind && a.Period == in.Period {
			return workflows.AlertResult{Delivered: true, Duplicate: true}, nil
		}
	}
	f.alerts = append(f.alerts, in)
	return workflows.AlertResult{Delivered: true}, nil
}

func (f *fake) IssueCard(_ context.Context, in workflows.IssueCardInput) (workflows.IssuedCard, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, in)
	f.calls = append(f.calls, "IssueCard gen"+fmt.Sprint(in.Generation))
	if f.failIssue > 0 {
		f.failIssue--
		typ := f.failIssueType
		if typ == "" {
			typ = workflows.ErrTypeIssuerUnauthorized
		}
		return workflows.IssuedCard{}, temporal.NewNonRetryableApplicationError("issuer create card: simulated failure", typ, nil)
	}
	if c, ok := f.byKey[in.IdempotencyKey]; ok {
		if !reflect.DeepEqual(c.input, in) {
			return workflows.IssuedCard{}, temporal.NewNonRetryableApplicationError("same idempotency key, different request",
				workflows.ErrTypeIssuerConflict, nil)
		}
		return c.issued(), nil
	}
	c := &fakeCard{seq: len(f.cards) + 1, id: fmt.Sprintf("card-%d", len(f.cards)+1), status: issuer.CardActive, limits: in.Limits, input: in}
	f.cards[c.id] = c
	f.byKey[in.IdempotencyKey] = c
	return c.issued(), nil
}

func (c *fakeCard) issued() workflows.IssuedCard {
	return workflows.IssuedCard{ID: c.id, Last4: fmt.Sprintf("%04d", 4000+c.seq),
		ExpiresAt: time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)}
}

func (f *fake) card(id string) (*fakeCard, error) {
	c, ok := f.cards[id]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("no such card "+id, workflows.ErrTypeIssuerNotFound, nil)
	}
	return c, nil
}

func (f *fake) PushCredentials(_ context.Context, in workflows.PushCredentialsInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes = append(f.pushes, in)
	if f.failPush {
		return temporal.NewNonRetryableApplicationError("endpoint answered 410", "PushRejected", nil)
	}
	return nil
}

func (f *fake) RecordEvent(_ context.Context, in workflows.RecordEventInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, in)
	if f.failRecord {
		return temporal.NewNonRetryableApplicationError("card belongs to no agent", "EventCardNotAgents", nil)
	}
	return nil
}

func (f *fake) UpdateLimit(ctx context.Context, in workflows.UpdateLimitInput) error {
	f.onQueue(ctx)
	return f.applyLimit(in)
}

// UpdateLimitNow is a reset's local try: refused (false, no issuer call) when localRefused, as
// by a worker whose share of the issuer's limit has no room; a failed call reports false.
func (f *fake) UpdateLimitNow(ctx context.Context, in workflows.UpdateLimitInput) (workflows.LimitApplied, error) {
	f.onQueue(ctx)
	f.mu.Lock()
	refused := f.localRefused
	f.mu.Unlock()
	if refused || f.applyLimit(in) != nil {
		return workflows.LimitApplied{}, nil
	}
	return workflows.LimitApplied{Applied: true, CardID: in.CardID, ResetAt: in.ResetAt}, nil
}

func (f *fake) applyLimit(in workflows.UpdateLimitInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("UpdateLimit %s %d", in.CardID, in.Limits[0].AmountMinor))
	if f.failLimit[in.CardID] > 0 {
		f.failLimit[in.CardID]--
		return temporal.NewNonRetryableApplicationError("issuer update limits: simulated outage", workflows.ErrTypeIssuerTransient, nil)
	}
	c, err := f.card(in.CardID)
	if err != nil {
		return err
	}
	if c.status == issuer.CardClosed {
		return temporal.NewNonRetryableApplicationError("card closed", workflows.ErrTypeIssuerAlreadyClosed, nil)
	}
	c.limits = in.Limits
	f.limits = append(f.limits, limitCall{CardID: in.CardID, Limits: in.Limits, ResetAt: in.ResetAt})
	return nil
}

func (f *fake) PauseCard(ctx context.Context, in workflows.CardActionInput) error {
	f.onQueue(ctx)
	return f.setStatus(in.CardID, issuer.CardPaused, &f.paused)
}

func (f *fake) ResumeCard(ctx context.Context, in workflows.CardActionInput) error {
	f.onQueue(ctx)
	return f.setStatus(in.CardID, issuer.CardActive, &f.resumed)
}

func (f *fake) CloseCard(ctx context.Context, in workflows.CardActionInput) error {
	f.onQueue(ctx)
	return f.setStatus(in.CardID, issuer.CardClosed, &f.closed)
}

// onQueue records the task queue the running activity was scheduled on.
func (f *fake) onQueue(ctx context.Context) {
	info := activity.GetInfo(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queues == nil {
		f.queues = map[string][]string{}
	}
	f.queues[info.ActivityType.Name] = append(f.queues[info.ActivityType.Name], info.TaskQueue)
}

func (f *fake) setStatus(id string, to issuer.CardStatus, log *[]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.card(id)
	if err != nil {
		return err
	}
	if c.status == issuer.CardClosed && to != issuer.CardClosed {
		return temporal.NewNonRetryableApplicationError("card closed", workflows.ErrTypeIssuerAlreadyClosed, nil)
	}
	c.status = to
	*log = append(*log, id)
	f.calls = append(f.calls, fmt.Sprintf("%s %s", to, id))
	return nil
}

func (f *fake) Reconcile(_ context.Context, in workflows.ReconcileInput) (workflows.ReconcileResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconciles = append(f.reconciles, in)
	if f.failReconcile {
		return workflows.ReconcileResult{}, temporal.NewNonRetryableApplicationError("issuer down", workflows.ErrTypeIssuerUnauthorized, nil)
	}
	f.calls = append(f.calls, "Reconcile "+in.Reason)
	res := workflows.ReconcileResult{Checked: len(f.missed), Missed: f.missed}
	f.missed = nil
	if in.IncludeAll {
		for _, ev := range f.atIssuer {
			if slices.Contains(in.CardIDs, ev.CardID) && !ev.OccurredAt.Before(in.Since) {
				res.Events = append(res.Events, ev)
			}
		}
	}
	return res, nil
}

// inLeadBefore reports whether a reconciliation that ran at `at` belongs to the reset at
// reset: it runs in the 15 minutes before it.
func inLeadBefore(at, reset time.Time) bool {
	return at.Before(reset) && !at.Before(reset.Add(-15*time.Minute))
}

// lock runs fn with the fake locked, for reading what it recorded.
func (f *fake) lock(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fake) alertKinds() []string {
	var kinds []string
	f.lock(func() {
		for _, a := range f.alerts {
			kinds = append(kinds, a.Kind)
		}
	})
	return kinds
}

// harness runs one workflow execution in the SDK's time-skipping test environment.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	f   *fake
}

var quietLogger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

func newHarness(t *testing.T, f *fake, start time.Time) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger)
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.AgentCard, workflow.RegisterOptions{Name: workflows.WorkflowType})
	env.RegisterActivity(f)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID("demo"), TaskQueue: workflows.TaskQueue})
	env.SetStartTime(start)
	return &harness{t: t, env: env, f: f}
}

// run starts the workflow with a raw JSON input, as `temporal workflow start --input` does.
func (h *harness) run(input string) {
	h.env.ExecuteWorkflow(workflows.WorkflowType, rawJSON(input))
}

// at runs fn when the workflow's clock reaches start+d.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signal(ev cardwarden.Event) { h.env.SignalWorkflow(workflows.SignalCardEvent, ev) }

func (h *harness) state() workflows.StateView {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(workflows.QueryState)
	if err != nil {
		h.t.Fatalf("query state: %v", err)
	}
	var s workflows.StateView
	if err := v.Get(&s); err != nil {
		h.t.Fatalf("decode state: %v", err)
	}
	return s
}

// updateResult is filled in when an update finishes.
type updateResult struct {
	done      bool
	rejected  error
	err       error
	view      workflows.StateView
	authorize workflows.AuthorizeResult
}

func (h *harness) update(name string, arg any) *updateResult {
	r := &updateResult{}
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { r.done, r.rejected = true, err },
		OnComplete: func(v any, err error) {
			r.done, r.err = true, err
			switch x := v.(type) {
			case workflows.StateView:
				r.view = x
			case workflows.AuthorizeResult:
				r.authorize = x
			}
		},
	}, arg)
	return r
}

func (h *harness) result() workflows.Result {
	h.t.Helper()
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow failed: %v", err)
	}
	var r workflows.Result
	if err := h.env.GetWorkflowResult(&r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// rawJSON is a workflow argument that is already JSON, like the CLI's --input.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func decline(id, card string, at time.Time, reason cardwarden.DeclineReason) cardwarden.Event {
	return cardwarden.Event{ID: id, Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: card, AuthorizationID: "auth-" + id,
		Approved: false, DeclineReason: reason, AmountMinor: 500, Currency: "USD", MerchantName: "Model API", OccurredAt: at}
}

func approved(id, card string, at time.Time, amount int64) cardwarden.Event {
	return cardwarden.Event{ID: id, Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: card, AuthorizationID: "auth-" + id,
		Approved: true, AmountMinor: amount, Currency: "USD", MerchantName: "Model API", OccurredAt: at}
}
