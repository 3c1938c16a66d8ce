package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/workflows"
)

// ScheduleSpec says when the fleet rotation runs and what it does. At least one of Cron,
// Calendars and Every is needed.
type ScheduleSpec struct {
	// Cron lists five-field cron specs ("0 3 * * MON") or descriptors ("@weekly"), in TimeZone.
	Cron []string `json:"cron,omitempty"`
	// Calendars are Temporal calendar specs, for what cron cannot say.
	Calendars []client.ScheduleCalendarSpec `json:"-"`
	// Every runs at a fixed interval (at least a minute).
	Every time.Duration `json:"every,omitempty"`
	// TimeZone is the IANA zone Cron and Calendars are read in; UTC when empty.
	TimeZone string `json:"timezone"`
	// Jitter spreads each run's start randomly over up to this long.
	Jitter time.Duration `json:"jitter,omitempty"`
	// Paused creates or leaves the schedule paused.
	Paused bool `json:"paused"`
	// Note explains the schedule's state (why it is paused) to other operators.
	Note string `json:"note,omitempty"`
	// BatchSize, Label and Query are the FleetRotation input (see workflows.FleetRotationInput).
	BatchSize int    `json:"batch_size,omitempty"`
	Label     string `json:"label,omitempty"`
	Query     string `json:"query,omitempty"`
}

// DefaultScheduleSpec is weekly, Monday 03:00 UTC: the policy's default rotate_cron, so agents
// that rotate by themselves at that time are skipped by the fleet rotation rather than rotated
// twice.
func DefaultScheduleSpec() ScheduleSpec {
	return ScheduleSpec{Cron: []string{workflows.DefaultRotateCron}, TimeZone: "UTC"}
}

// ScheduleInfo describes the fleet-rotation schedule.
type ScheduleInfo struct {
	ID         string        `json:"id"`
	Spec       []string      `json:"spec"` // human-readable: "0 3 * * 1", "every 24h0m0s"
	TimeZone   string        `json:"timezone"`
	Paused     bool          `json:"paused"`
	Note       string        `json:"note,omitempty"`
	BatchSize  int           `json:"batch_size"`
	Label      string        `json:"label,omitempty"`
	Query      string        `json:"query,omitempty"`
	NextRuns   []time.Time   `json:"next_runs"`
	RecentRuns []ScheduleRun `json:"recent_runs"`
	Running    []string      `json:"running"` // workflow ids of runs in progress
	Actions    int           `json:"actions"` // runs started so far
	CreatedAt  time.Time     `json:"created_at"`
}

// ScheduleRun is one run the schedule started.
type ScheduleRun struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	WorkflowID  string    `json:"workflow_id"`
	RunID       string    `json:"run_id"`
	// Status is the run's workflow status (Running, Completed, Failed, …; its latest run when
	// it continued as new), and Result, once it has completed, what it did.
	Status string                         `json:"status,omitempty"`
	Result *workflows.FleetRotationResult `json:"result,omitempty"`
}

func (s ScheduleSpec) validate() (ScheduleSpec, error) {
	var errs workflows.FieldErrors
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if _, err := workflows.LoadLocation(s.TimeZone); err != nil {
		errs = append(errs, workflows.FieldError{Field: "schedule.timezone", Msg: err.Error()})
	}
	for i, c := range s.Cron {
		if _, err := workflows.ParseCron(c); err != nil {
			errs = append(errs, workflows.FieldError{Field: fmt.Sprintf("schedule.cron[%d]", i), Msg: err.Error()})
		}
	}
	if s.Every != 0 && s.Every < time.Minute {
		errs = append(errs, workflows.FieldError{Field: "schedule.every", Msg: fmt.Sprintf("must be at least 1m, got %s", s.Every)})
	}
	if len(s.Cron) == 0 && len(s.Calendars) == 0 && s.Every == 0 {
		errs = append(errs, workflows.FieldError{Field: "schedule", Msg: "give a cron spec, a calendar or an interval"})
	}
	if s.BatchSize < 0 || s.BatchSize > workflows.MaxFleetBatchSize {
		errs = append(errs, workflows.FieldError{Field: "schedule.batch_size", Msg: fmt.Sprintf("must be between 1 and %d, got %d", workflows.MaxFleetBatchSize, s.BatchSize)})
	}
	if s.Jitter < 0 {
		errs = append(errs, workflows.FieldError{Field: "schedule.jitter", Msg: "must not be negative"})
	}
	if len(errs) > 0 {
		return s, errs
	}
	return s, nil
}

func (s ScheduleSpec) temporalSpec() client.ScheduleSpec {
	spec := client.ScheduleSpec{CronExpressions: s.Cron, Calendars: s.Calendars, TimeZoneName: s.TimeZone, Jitter: s.Jitter}
	if s.Every > 0 {
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: s.Every}}
	}
	return spec
}

func (s ScheduleSpec) action() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		// Temporal appends the scheduled time to this id for each run.
		ID:        workflows.FleetRotationScheduleID,
		Workflow:  workflows.FleetRotationWorkflowType,
		TaskQueue: workflows.TaskQueue,
		Args:      []any{workflows.FleetRotationInput{BatchSize: s.BatchSize, Label: s.Label, Query: s.Query}},
	}
}

// schedulePolicies: a run still going when the next is due is not doubled (the issuer's rate
// limit is shared), and a run missed by less than an hour of downtime still happens.
func schedulePolicies() *client.SchedulePolicies {
	return &client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: time.Hour}
}

// EnsureFleetRotationSchedule creates the Temporal Schedule "fleet-rotation" or, when it exists,
// updates it to spec (including its paused state). It reports whether it created it.
func (c *Client) EnsureFleetRotationSchedule(ctx context.Context, spec ScheduleSpec) (ScheduleInfo, bool, error) {
	spec, err := spec.validate()
	if err != nil {
		return ScheduleInfo{}, false, invalidRequest("schedule", "", err)
	}
	pol := schedulePolicies()
	_, err = c.tc.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: workflows.FleetRotationScheduleID, Spec: spec.temporalSpec(), Action: spec.action(),
		Overlap: pol.Overlap, CatchupWindow: pol.CatchupWindow, Paused: spec.Paused, Note: spec.Note,
	})
	created := err == nil
	var exists *serviceerror.AlreadyExists
	if err != nil && (errors.Is(err, temporal.ErrScheduleAlreadyRunning) || errors.As(err, &exists)) {
		err = c.schedule().Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			ts := spec.temporalSpec()
			s.Spec = &ts
			s.Action = spec.action()
			s.Policy = pol
			if s.State == nil {
				s.State = &client.ScheduleState{}
			}
			s.State.Paused = spec.Paused
			s.State.Note = spec.Note
			return &client.ScheduleUpdate{Schedule: &s}, nil
		}})
	}
	if err != nil {
		return ScheduleInfo{}, false, c.scheduleErr("ensure", err)
	}
	info, err := c.DescribeFleetRotationSchedule(ctx)
	return info, created, err
}

func (c *Client) schedule() client.ScheduleHandle {
	return c.tc.ScheduleClient().GetHandle(context.Background(), workflows.FleetRotationScheduleID)
}

func (c *Client) scheduleErr(op string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &Error{Kind: ErrScheduleNotFound, Op: op + " schedule " + workflows.FleetRotationScheduleID, Err: err,
			Msg: "create it with `cardwarden schedule create`"}
	}
	return c.classify(context.Background(), op+" schedule "+workflows.FleetRotationScheduleID, "", err)
}

// DescribeFleetRotationSchedule returns the schedule's spec, state, next and recent runs.
func (c *Client) DescribeFleetRotationSchedule(ctx context.Context) (ScheduleInfo, error) {
	d, err := c.schedule().Describe(ctx)
	if err != nil {
		return ScheduleInfo{}, c.scheduleErr("describe", err)
	}
	info := ScheduleInfo{ID: workflows.FleetRotationScheduleID, BatchSize: workflows.DefaultFleetBatchSize,
		Actions: d.Info.NumActions, CreatedAt: d.Info.CreatedAt.UTC(), NextRuns: []time.Time{}, RecentRuns: []ScheduleRun{}, Running: []string{}}
	if sp := d.Schedule.Spec; sp != nil {
		info.TimeZone = sp.TimeZoneName
		info.Spec = describeSpec(*sp)
	}
	if info.TimeZone == "" {
		info.TimeZone = "UTC"
	}
	if st := d.Schedule.State; st != nil {
		info.Paused, info.Note = st.Paused, st.Note
	}
	if a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok && len(a.Args) > 0 {
		if p, ok := a.Args[0].(*commonpb.Payload); ok {
			var in workflows.FleetRotationInput
			if err := c.dc.FromPayload(p, &in); err == nil {
				if in.BatchSize > 0 {
					info.BatchSize = in.BatchSize
				}
				info.Label, info.Query = in.Label, in.Query
			}
		}
	}
	for i, t := range d.Info.NextActionTimes {
		if i == 5 {
			break
		}
		info.NextRuns = append(info.NextRuns, t.UTC())
	}
	for _, r := range d.Info.RecentActions {
		run := ScheduleRun{ScheduledAt: r.ScheduleTime.UTC(), StartedAt: r.ActualTime.UTC()}
		if w := r.StartWorkflowResult; w != nil {
			run.WorkflowID, run.RunID = w.WorkflowID, w.FirstExecutionRunID
			c.runOutcome(ctx, &run)
		}
		info.RecentRuns = append(info.RecentRuns, run)
	}
	for _, w := range d.Info.RunningWorkflows {
		info.Running = append(info.Running, w.WorkflowID)
	}
	return info, nil
}

// TriggerFleetRotation starts a fleet rotation now. Like a scheduled run it is skipped while
// another one is still in progress, so two rotations never compete for the issuer's rate limit.
func (c *Client) TriggerFleetRotation(ctx context.Context) error {
	if err := c.schedule().Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		return c.scheduleErr("trigger", err)
	}
	return nil
}

// PauseFleetRotation pauses the schedule; note says why, for other operators.
func (c *Client) PauseFleetRotation(ctx context.Context, note string) error {
	if err := c.schedule().Pause(ctx, client.SchedulePauseOptions{Note: note}); err != nil {
		return c.scheduleErr("pause", err)
	}
	return nil
}

// UnpauseFleetRotation resumes the schedule.
func (c *Client) UnpauseFleetRotation(ctx context.Context, note string) error {
	if err := c.schedule().Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}); err != nil {
		return c.scheduleErr("unpause", err)
	}
	return nil
}

// DeleteFleetRotationSchedule deletes the schedule. Runs in progress finish.
func (c *Client) DeleteFleetRotationSchedule(ctx context.Context) error {
	if err := c.schedule().Delete(ctx); err != nil {
		return c.scheduleErr("delete", err)
	}
	return nil
}

// runOutcome fills in a recent run's status and, when it has completed, how many agents it
// rotated, skipped and failed. Best effort: a run whose history is gone keeps neither.
func (c *Client) runOutcome(ctx context.Context, run *ScheduleRun) {
	d, err := c.tc.DescribeWorkflowExecution(ctx, run.WorkflowID, "")
	if err != nil {
		return
	}
	st := d.GetWorkflowExecutionInfo().GetStatus()
	run.Status = statusName(st)
	if st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return
	}
	var res workflows.FleetRotationResult
	if err := c.tc.GetWorkflow(ctx, run.WorkflowID, "").Get(ctx, &res); err == nil {
		run.Result = &res
	}
}
