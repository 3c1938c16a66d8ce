package bench

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// runStats is what one run's history holds.
type runStats struct {
	RunID      string `json:"run_id"`
	Events     int    `json:"events"`
	Signals    int    `json:"signals"`
	Tasks      int    `json:"workflow_tasks"`
	Days       int    `json:"days"` // resets (cardwarden) or day timers (floor)
	Activities int    `json:"activities"`
	Continued  bool   `json:"continued_as_new"`
}

// runChain reads every run of a workflow id, newest first, following continue-as-new links.
// day says which history event marks a simulated day.
func runChain(ctx context.Context, c client.Client, wid string, day func(*historypb.HistoryEvent) bool) ([]runStats, error) {
	var out []runStats
	runID := ""
	for range 100 {
		it := c.GetWorkflowHistory(ctx, wid, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		rs := runStats{RunID: runID}
		if runID == "" {
			rs.RunID = "latest"
		}
		prev := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, err
			}
			rs.Events++
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				a := ev.GetWorkflowExecutionStartedEventAttributes()
				prev = a.GetContinuedExecutionRunId()
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
				rs.Signals++
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				rs.Tasks++
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				rs.Activities++
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				rs.Continued = true
			}
			if day(ev) {
				rs.Days++
			}
		}
		out = append(out, rs)
		if prev == "" {
			return out, nil
		}
		runID = prev
	}
	return out, nil
}

// runHistory: history events per run and runs per simulated agent-year at 50 declines a day,
// on the real server with time compressed (a "day" is a few seconds: reset_cron "@every 3s").
// The floor is an entity workflow that receives the same signals and wakes on the same daily
// timer, doing nothing else.
func runHistory(ctx context.Context, o Options, r *Result) error {
	r.Title = "history: events per run and runs per agent-year at 50 declines/day"
	const declinesPerDay = 50
	day := 3 * time.Second // whole seconds: "@every" rounds down to them
	limit := 90 * time.Second
	if o.Quick {
		limit = 24 * time.Second
	}
	weekly := 7 * day
	r.Params["simulated_day"], r.Params["declines_per_day"], r.Params["time_limit"] = day.String(), declinesPerDay, limit.String()

	s, err := newStack(ctx, o, stackConfig{name: "history", inProcessWorker: true})
	if err != nil {
		return err
	}
	defer s.close()
	agent := s.agentID(0)
	p := basePolicy(agent, "100")
	p.ResetCron = fmt.Sprintf("@every %s", day)
	p.RotateCron = fmt.Sprintf("@every %s", weekly)
	p.RotationGrace = workflows.Duration(time.Second)
	if _, err := s.starter.StartAgent(ctx, p); err != nil {
		return err
	}
	if _, err := s.waitProvisioned(ctx, 1, time.Minute, nil); err != nil {
		return err
	}
	cards, err := s.cardIDs(ctx, 0, 1)
	if err != nil {
		return err
	}
	wid := workflows.WorkflowID(agent)
	floorWID := "bench-floor-history-" + s.prefix
	if _, err := s.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: floorWID, TaskQueue: floorQueue}, floorWFHistory, day, 0); err != nil {
		return err
	}
	firstRun := func(id string) string {
		d, err := s.tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return ""
		}
		return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	}
	cwFirst, floorFirst := firstRun(wid), firstRun(floorWID)

	// 50 declines per simulated day, evenly spread in event time (so no burst), one at a time.
	gap := day / declinesPerDay
	eventGap := 24 * time.Hour / declinesPerDay
	base := time.Now().UTC()
	t0 := time.Now()
	sent := 0
	nextCheck := time.Now().Add(time.Second)
	cwDone, floorDone := false, false
	for time.Since(t0) < limit && !(cwDone && floorDone) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ev := cardwarden.Event{
			ID: fmt.Sprintf("evt_hist_%s_%07d", s.prefix, sent), Issuer: "sim", Kind: cardwarden.KindAuthorization, CardID: cards[0],
			AuthorizationID: fmt.Sprintf("auth_hist_%07d", sent), Approved: false, DeclineReason: cardwarden.ReasonSpendingLimit,
			RawReason: "spending_limit", AmountMinor: 100, Currency: "USD", MerchantName: "bench-merchant",
			OccurredAt: base.Add(time.Duration(sent) * eventGap),
			Recorded:   true, // as the webhook path's signals are: this measures their history
		}
		if err := s.tc.SignalWorkflow(ctx, wid, "", workflows.SignalCardEvent, ev); err != nil {
			return fmt.Errorf("signal agent: %w", err)
		}
		if err := s.tc.SignalWorkflow(ctx, floorWID, "", floorSignalName, sent); err != nil {
			return fmt.Errorf("signal floor: %w", err)
		}
		sent++
		if time.Now().After(nextCheck) {
			cwDone = firstRun(wid) != cwFirst
			floorDone = firstRun(floorWID) != floorFirst
			nextCheck = time.Now().Add(time.Second)
		}
		if d := time.Until(t0.Add(time.Duration(sent) * gap)); d > 0 {
			time.Sleep(d)
		}
	}
	elapsed := time.Since(t0)
	time.Sleep(day) // let the last signals land
	o.progress("history: %d signals over %.0fs (%.1f simulated days); first run completed: cardwarden %v, floor %v",
		sent, elapsed.Seconds(), elapsed.Seconds()/day.Seconds(), cwDone, floorDone)

	isReset := func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
			e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == workflows.ActivityReconcile
	}
	isDayTimer := func(e *historypb.HistoryEvent) bool { return e.GetEventType() == enumspb.EVENT_TYPE_TIMER_FIRED }
	cwRuns, err := runChain(ctx, s.tc, wid, isReset)
	if err != nil {
		return err
	}
	floorRuns, err := runChain(ctx, s.tc, floorWID, isDayTimer)
	if err != nil {
		return err
	}
	r.Params["cardwarden_runs"], r.Params["floor_runs"] = cwRuns, floorRuns

	cw, fl := summarize(cwRuns), summarize(floorRuns)
	r.metric("events per simulated day", "events", cw.perDay).withFloor(fl.perDay)
	r.metric("max events in any run", "events", float64(cw.maxEvents)).withFloor(float64(fl.maxEvents)).
		target("cardwarden <= 10000", cw.maxEvents <= 10_000)
	if cw.completedRuns > 0 {
		m := r.metric("events per completed run", "events", cw.eventsPerRun)
		if fl.completedRuns > 0 {
			m.withFloor(fl.eventsPerRun)
		}
		m = r.metric("days per run", "days", cw.daysPerRun)
		if fl.completedRuns > 0 {
			m.withFloor(fl.daysPerRun)
		}
	}
	cwYear, cwHow := cw.runsPerYear()
	flYear, flHow := fl.runsPerYear()
	r.metric("runs per agent-year", "runs", cwYear).withFloor(flYear)
	r.metric("signals per workflow task", "signals", cw.signalsPerTask).withFloor(fl.signalsPerTask)
	r.note("cardwarden runs-per-year %s; floor %s", cwHow, flHow)
	r.note("a simulated day is %s (reset_cron \"@every %s\", rotate_cron \"@every %s\"); declines are sent one every %s with event times %s apart, so none is a burst",
		day, day, weekly, gap, eventGap)
	r.note("events per day counts every history event of every run (including the run still open) over the resets (cardwarden) or day timers (floor) it holds")
	var stReset int
	if st, err := s.starter.State(ctx, agent); err == nil {
		r.check("every signal counted", st.SignalsTotal == int64(sent), "%d sent, workflow counted %d", sent, st.SignalsTotal)
		stReset = st.Resets
	}
	r.check("no run over 10,000 events", cw.maxEvents <= 10_000, "largest run: %d events", cw.maxEvents)
	r.Params["resets_reported"] = stReset
	var cwPts, flPts [][2]float64
	for i, rs := range reverse(cwRuns) {
		cwPts = append(cwPts, [2]float64{float64(i + 1), float64(rs.Events)})
	}
	for i, rs := range reverse(floorRuns) {
		flPts = append(flPts, [2]float64{float64(i + 1), float64(rs.Events)})
	}
	cats := []string{"events/day", "max events/run ÷ 10", "runs/year × 10"}
	r.chart = func(r *Result) string {
		return barChart("History per agent", fmt.Sprintf("%d declines/day, daily reset, weekly rotation; %d signals on the real server", declinesPerDay, sent),
			"", cats, []string{"cardwarden", "floor (signals + daily timer)"},
			[][]float64{{cw.perDay, float64(cw.maxEvents) / 10, cwYear * 10}, {fl.perDay, float64(fl.maxEvents) / 10, flYear * 10}})
	}
	r.Series = []Series{{Name: "cardwarden events per run", Points: cwPts}, {Name: "floor events per run", Points: flPts}}
	return nil
}

type chainSummary struct {
	perDay, eventsPerRun, daysPerRun, signalsPerTask float64
	maxEvents, completedRuns                         int
}

func summarize(runs []runStats) chainSummary {
	var s chainSummary
	events, days, signals, tasks := 0, 0, 0, 0
	cEvents, cDays := 0, 0
	for _, r := range runs {
		events += r.Events
		days += r.Days
		signals += r.Signals
		tasks += r.Tasks
		s.maxEvents = max(s.maxEvents, r.Events)
		if r.Continued {
			s.completedRuns++
			cEvents += r.Events
			cDays += r.Days
		}
	}
	if days > 0 {
		s.perDay = float64(events) / float64(days)
	}
	if tasks > 0 {
		s.signalsPerTask = float64(signals) / float64(tasks)
	}
	if s.completedRuns > 0 {
		s.eventsPerRun = float64(cEvents) / float64(s.completedRuns)
		s.daysPerRun = float64(cDays) / float64(s.completedRuns)
	}
	return s
}

// serverSuggestsAt is the server's default history length at which it suggests continue-as-new
// (limit.historyCount.suggestContinueAsNew), used only to estimate when no run completed.
const serverSuggestsAt = 4 * 1024

func (s chainSummary) runsPerYear() (float64, string) {
	if s.completedRuns > 0 && s.daysPerRun > 0 {
		return 365 / s.daysPerRun, fmt.Sprintf("measured: 365 / %.1f days per completed run", s.daysPerRun)
	}
	if s.perDay > 0 {
		d := serverSuggestsAt / s.perDay
		return 365 / d, fmt.Sprintf("estimated (no run completed in time): continue-as-new at the server's suggestion, %d events = %.1f days", serverSuggestsAt, d)
	}
	return 0, "no data"
}

func reverse[T any](xs []T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[len(xs)-1-i] = x
	}
	return out
}
