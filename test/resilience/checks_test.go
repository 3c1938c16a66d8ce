//go:build resilience

package resilience

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cardwarden/cardwarden/workflows"
)

// resetInstants reads, from every run of the agent's workflow history, the instant each reset
// was for: the ResetAt of the limit update that gives the card its day (the simulator can update
// limits, so every reset makes one), applied in the waking task (UpdateLimitNow's marker) or
// on the paced queue (UpdateLimit). History holds only commands of completed workflow tasks,
// so a reset appears once however often the worker died while deciding it; a reset that really
// ran twice appears twice.
func (h *harness) resetInstants(agentID string) ([]time.Time, error) {
	var out []time.Time
	runID := ""
	for range 50 {
		it := h.tc.GetWorkflowHistory(h.ctx, workflows.WorkflowID(agentID), runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		prev := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, err
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				prev = ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				a := ev.GetActivityTaskScheduledEventAttributes()
				if a.GetActivityType().GetName() != workflows.ActivityUpdateLimit {
					continue
				}
				var in workflows.UpdateLimitInput
				if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &in); err != nil {
					return nil, err
				}
				if !in.ResetAt.IsZero() {
					out = append(out, in.ResetAt)
				}
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				at, err := localReset(ev.GetMarkerRecordedEventAttributes())
				if err != nil {
					return nil, err
				}
				if !at.IsZero() {
					out = append(out, at)
				}
			}
		}
		if prev == "" {
			break
		}
		runID = prev
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// localReset is the reset instant of a reset applied in the waking workflow task: a local
// activity marker of UpdateLimitNow whose result says it applied the limit (LimitApplied). Any
// other marker has none.
func localReset(m *historypb.MarkerRecordedEventAttributes) (time.Time, error) {
	if m.GetMarkerName() != "LocalActivity" {
		return time.Time{}, nil
	}
	dc := converter.GetDefaultDataConverter()
	var data struct{ ActivityType string }
	if err := dc.FromPayloads(m.GetDetails()["data"], &data); err != nil {
		return time.Time{}, fmt.Errorf("local activity marker: %w", err)
	}
	res, ok := m.GetDetails()["result"]
	if data.ActivityType != workflows.ActivityUpdateLimitNow || !ok {
		return time.Time{}, nil
	}
	var applied workflows.LimitApplied
	if err := dc.FromPayloads(res, &applied); err != nil {
		return time.Time{}, fmt.Errorf("UpdateLimitNow marker: %w", err)
	}
	if !applied.Applied {
		return time.Time{}, nil
	}
	return applied.ResetAt, nil
}

// checkResets verifies an agent's resets against an "@every period" schedule: none doubled,
// all on the schedule's chain, and the newest one current. It returns how many due instants
// were collapsed into a later reset (the workflow's documented catch-up after downtime).
func checkResets(instants []time.Time, period time.Duration, now time.Time, slack time.Duration) (collapsed int, err error) {
	if len(instants) == 0 {
		return 0, fmt.Errorf("no reset at all")
	}
	for i := 1; i < len(instants); i++ {
		gap := instants[i].Sub(instants[i-1])
		if gap == 0 {
			return 0, fmt.Errorf("reset for %s done twice", instants[i].Format(time.RFC3339))
		}
		if gap%period != 0 {
			return 0, fmt.Errorf("reset at %s is off the schedule (gap %s from the previous one)", instants[i].Format(time.RFC3339), gap)
		}
		collapsed += int(gap/period) - 1
	}
	last := instants[len(instants)-1]
	if behind := now.Sub(last); behind > period+slack {
		return collapsed, fmt.Errorf("last reset at %s is %s behind", last.Format(time.RFC3339), behind.Round(time.Second))
	}
	return collapsed, nil
}

// lossyIssuer sits in front of the simulator and, for a share of the card API's POSTs, lets the
// request execute and then drops the response, answering 502 — the failure idempotency keys
// exist for (the simulator's own injected faults fail before executing).
type lossyIssuer struct {
	next  http.Handler
	rate  float64
	n     atomic.Int64
	count atomic.Int64
}

func (l *lossyIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/cards") {
		l.next.ServeHTTP(w, r)
		return
	}
	// Deterministic share: every k-th POST, so the test is not flaky in how many it loses.
	k := int64(1 / l.rate)
	if l.n.Add(1)%k != 0 {
		l.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	l.count.Add(1)
	http.Error(w, `{"error":{"type":"api_error","code":"response_lost","message":"executed, response lost"}}`, http.StatusBadGateway)
}
