package bench

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// Freezes measured inside the fleet-reset scenario: bursts on agents that do not reset there,
// a few on the quiet stack before the fleet exists, many spread through the reset; the quiet
// ones are the during-reset figure's floor (same stack, same run, same definition).

// recordPauses stamps each card's pause when the simulator answers it.
func recordPauses(paused *stamps) func(reqEvent) {
	return func(e reqEvent) {
		if id, action, ok := cardAction(e.Path); ok && action == "pause" && e.Method == http.MethodPost && e.Status == http.StatusOK {
			paused.set(id, e.End)
		}
	}
}

// burst is one decline burst's freeze: the simulator answering its 5th decline, then the
// card's pause.
type burst struct {
	agentID             string
	lastDecline, paused time.Time
}

func (b burst) ms() float64 { return ms(b.paused.Sub(b.lastDecline)) }

// burstToPause sends a decline burst on card and measures from the simulator answering its
// last decline to the simulator answering the card's pause.
func (s *stack) burstToPause(ctx context.Context, agentID, card string, paused *stamps) (burst, error) {
	done := paused.arm(card)
	for range workflows.DefaultMaxDeclines {
		if _, err := s.decline(ctx, card, cardwarden.ReasonSpendingLimit); err != nil {
			return burst{}, err
		}
	}
	b := burst{agentID: agentID, lastDecline: time.Now()}
	select {
	case b.paused = <-done:
		return b, nil
	case <-time.After(time.Minute):
		return b, fmt.Errorf("card %s not paused within a minute of its decline burst", card)
	case <-ctx.Done():
		return b, ctx.Err()
	}
}

// burstsDuring runs one burst per agent (agentIDs[i] owns cards[i]), started evenly over
// [at, at+span), concurrently.
func (s *stack) burstsDuring(ctx context.Context, agentIDs, cards []string, at time.Time, span time.Duration, paused *stamps) ([]burst, error) {
	out := make([]burst, len(cards))
	err := parallel(ctx, len(cards), len(cards), func(ctx context.Context, i int) error {
		time.Sleep(time.Until(at.Add(span * time.Duration(i) / time.Duration(len(cards)))))
		var err error
		out[i], err = s.burstToPause(ctx, agentIDs[i], cards[i], paused)
		return err
	})
	return out, err
}

// decisionRounds is an open-loop run of purchases: each agent buys perAgent times, interval
// apart.
type decisionRounds struct {
	perAgent int
	interval time.Duration
}

// timedDecisionRound is what the API answered the simulator's decision requests of a run.
type timedDecisionRound struct {
	lat          []float64 // ms, at the API
	late         int       // answered at or after the simulator's deadline
	simFallbacks int64     // the simulator gave up waiting and applied its fallback
	fallbacks    int       // answered in time, but by the agent's fallback (the workflow did not answer)
}

// fallbackDecisions counts the decisions on cards answered by the agent's fallback.
func (s *stack) fallbackDecisions(ctx context.Context, cards []string) (int, error) {
	q, args, err := sqlx.In(`SELECT COUNT(*) FROM decisions WHERE fallback AND issuer_card_id IN (?)`, cards)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.store.DB().GetContext(ctx, &n, s.store.DB().Rebind(q), args...); err != nil {
		return 0, fmt.Errorf("count fallback decisions: %w", err)
	}
	return n, nil
}

// timedPurchases makes the purchases and times their decisions at the API.
func (s *stack) timedPurchases(ctx context.Context, cards []string, rounds decisionRounds) (timedDecisionRound, error) {
	var out timedDecisionRound
	if len(cards) == 0 {
		return out, nil
	}
	dl := &decisionLog{}
	s.apiRec.set(dl.record)
	defer s.apiRec.set(nil)
	dl.take(true)
	f0 := s.sim.Stats().DecisionsFallback
	fb0, err := s.fallbackDecisions(ctx, cards)
	if err != nil {
		return out, err
	}
	if _, _, err := s.purchaseRound(ctx, cards, rounds.perAgent, rounds.interval); err != nil {
		return out, err
	}
	fb1, err := s.fallbackDecisions(ctx, cards)
	if err != nil {
		return out, err
	}
	out.fallbacks = fb1 - fb0
	out.lat, _ = dl.take(false)
	out.simFallbacks = s.sim.Stats().DecisionsFallback - f0
	for _, v := range out.lat {
		if v >= ms(authDeadline) {
			out.late++
		}
	}
	return out, nil
}

func burstMillis(bs []burst) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		out[i] = b.ms()
	}
	return out
}

// freezeStages is where one freeze spent its time, in ms, read from the agent's workflow
// history (server timestamps; the bench, the server and the simulator share a clock): from
// the simulator answering the last decline to the server recording the card-event signal that
// completed the burst (webhook delivery, ledger, signal); to the start of the workflow task
// that handled it (queued behind other workflow tasks); that task's run up to scheduling
// PauseCard; the activity waiting on the urgent queue (and any retries); its call to the
// simulator's answer.
type freezeStages struct {
	Ingest, TaskWait, TaskRun, ActivityWait, ActivityRun float64
	Attempts                                             int32
}

func (s *stack) freezeStagesOf(ctx context.Context, b burst) (freezeStages, error) {
	it := s.tc.GetWorkflowHistory(ctx, workflows.WorkflowID(b.agentID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var signalled, taskStarted, scheduled, started time.Time
	var schedID int64
	var attempts int32
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return freezeStages{}, err
		}
		t := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			if schedID == 0 && ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == workflows.SignalCardEvent {
				signalled = t
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if schedID == 0 {
				taskStarted = t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if schedID == 0 && ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == workflows.ActivityPauseCard {
				schedID, scheduled = ev.GetEventId(), t
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := ev.GetActivityTaskStartedEventAttributes(); schedID != 0 && a.GetScheduledEventId() == schedID {
				started, attempts = t, a.GetAttempt()
			}
		}
		if !started.IsZero() {
			break
		}
	}
	if started.IsZero() || signalled.IsZero() {
		return freezeStages{}, fmt.Errorf("agent %s: no PauseCard after a card-event signal in its history", b.agentID)
	}
	return freezeStages{
		Ingest: ms(signalled.Sub(b.lastDecline)), TaskWait: ms(taskStarted.Sub(signalled)), TaskRun: ms(scheduled.Sub(taskStarted)),
		ActivityWait: ms(started.Sub(scheduled)), ActivityRun: ms(b.paused.Sub(started)), Attempts: attempts,
	}, nil
}

// stageFigures reports, for a set of freezes, each stage's p99 and the split of the slowest
// freezes, so a missed target says where the time went.
func (s *stack) stageFigures(ctx context.Context, r *Result, label string, bs []burst) {
	var stages []freezeStages
	for _, b := range bs {
		st, err := s.freezeStagesOf(ctx, b)
		if err != nil {
			r.note("%s: %v", label, err)
			return
		}
		stages = append(stages, st)
	}
	pick := func(f func(freezeStages) float64) []float64 {
		out := make([]float64, len(stages))
		for i, st := range stages {
			out[i] = f(st)
		}
		return out
	}
	cols := []struct {
		name string
		f    func(freezeStages) float64
	}{
		{"webhook → signal recorded", func(st freezeStages) float64 { return st.Ingest }},
		{"signal → workflow task started", func(st freezeStages) float64 { return st.TaskWait }},
		{"workflow task → PauseCard scheduled", func(st freezeStages) float64 { return st.TaskRun }},
		{"PauseCard scheduled → started", func(st freezeStages) float64 { return st.ActivityWait }},
		{"PauseCard started → simulator answered", func(st freezeStages) float64 { return st.ActivityRun }},
	}
	for _, c := range cols {
		r.metric(fmt.Sprintf("%s, of which %s p99", label, c.name), "ms", percentile(pick(c.f), 99))
	}
	order := make([]int, len(bs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(bs[b].ms(), bs[a].ms()) })
	var worst []string
	for _, i := range order[:min(5, len(order))] {
		st := stages[i]
		worst = append(worst, fmt.Sprintf("%.0f = %.0f + %.0f + %.0f + %.0f + %.0f (attempt %d)",
			bs[i].ms(), st.Ingest, st.TaskWait, st.TaskRun, st.ActivityWait, st.ActivityRun, st.Attempts))
	}
	r.note("%s, slowest freezes (ms) = webhook→signal + signal→task + task→PauseCard scheduled + scheduled→started + started→answered: %s",
		label, strings.Join(worst, "; "))
}

// resetTasks reads every step-th of n agents' histories (sample of them) and counts, for
// the reset, the workflow tasks from the timer that woke the agent to the task that scheduled
// nothing more for it, and the agents whose reset scheduled no UpdateLimit activity (applied by
// the local try in the waking task).
func (s *stack) resetTasks(ctx context.Context, n, sample int) (local, tasks, sampled int, err error) {
	for i := 0; i < n; i += max(1, n/sample) {
		it := s.tc.GetWorkflowHistory(ctx, workflows.WorkflowID(s.agentID(i)), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		woke, scheduled, count := false, false, 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return 0, 0, 0, err
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_TIMER_FIRED:
				woke = true
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				if woke {
					count++
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if woke && ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == workflows.ActivityUpdateLimit {
					scheduled = true
				}
			}
		}
		if !woke {
			continue
		}
		sampled++
		tasks += count
		if !scheduled {
			local++
		}
	}
	if sampled == 0 {
		return 0, 0, 0, fmt.Errorf("none of %d sampled agents has woken to reset", sample)
	}
	return local, tasks, sampled, nil
}
