package api

import (
	"cmp"
	"context"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden/starter"
)

// Schedules is what the fleet-rotation endpoints do (*starter.Client). A Control without it
// answers those endpoints 501.
type Schedules interface {
	EnsureFleetRotationSchedule(ctx context.Context, spec starter.ScheduleSpec) (starter.ScheduleInfo, bool, error)
	DescribeFleetRotationSchedule(ctx context.Context) (starter.ScheduleInfo, error)
	TriggerFleetRotation(ctx context.Context) error
	PauseFleetRotation(ctx context.Context, note string) error
	UnpauseFleetRotation(ctx context.Context, note string) error
	DeleteFleetRotationSchedule(ctx context.Context) error
}

var _ Schedules = (*starter.Client)(nil)

// scheduleRequest is the body of POST /v1/schedules/fleet-rotation: starter.ScheduleSpec with
// durations as Go duration strings ("24h").
type scheduleRequest struct {
	Cron      []string `json:"cron"`
	Every     string   `json:"every"`
	Timezone  string   `json:"timezone"`
	Jitter    string   `json:"jitter"`
	Paused    bool     `json:"paused"`
	Note      string   `json:"note"`
	BatchSize int      `json:"batch_size"`
	Label     string   `json:"label"`
	Query     string   `json:"query"`
}

type scheduleAnswer struct {
	Schedule starter.ScheduleInfo `json:"schedule"`
	Created  bool                 `json:"created"`
}

// withSchedules runs do with the schedule client, or answers 501.
func (s *server) withSchedules(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, sc Schedules) (any, error)) {
	sc, ok := s.ctl.(Schedules)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this server cannot manage schedules", "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), updateTimeout)
	defer cancel()
	v, err := do(ctx, sc)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// describeSchedule: GET /v1/schedules/fleet-rotation.
func (s *server) describeSchedule(w http.ResponseWriter, r *http.Request) {
	s.withSchedules(w, r, func(ctx context.Context, sc Schedules) (any, error) { return sc.DescribeFleetRotationSchedule(ctx) })
}

// ensureSchedule: POST /v1/schedules/fleet-rotation creates the schedule or updates it to the
// body's settings (weekly, Monday 03:00 UTC without a spec).
func (s *server) ensureSchedule(w http.ResponseWriter, r *http.Request) {
	var req scheduleRequest
	if !readRequest(w, r, &req) {
		return
	}
	spec := starter.ScheduleSpec{Cron: req.Cron, TimeZone: req.Timezone, Paused: req.Paused, Note: req.Note,
		BatchSize: req.BatchSize, Label: req.Label, Query: req.Query}
	for _, d := range []struct {
		field, v string
		dst      *time.Duration
	}{{"every", req.Every, &spec.Every}, {"jitter", req.Jitter, &spec.Jitter}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "invalid_request", d.field+" must be a duration such as \"24h\"", "schedule."+d.field)
			return
		}
		*d.dst = v
	}
	if len(spec.Cron) == 0 && spec.Every == 0 {
		spec.Cron = starter.DefaultScheduleSpec().Cron
	}
	s.withSchedules(w, r, func(ctx context.Context, sc Schedules) (any, error) {
		info, created, err := sc.EnsureFleetRotationSchedule(ctx, spec)
		return scheduleAnswer{Schedule: info, Created: created}, err
	})
}

// scheduleAction: POST …/trigger, DELETE /v1/schedules/fleet-rotation.
func (s *server) scheduleAction(do func(Schedules, context.Context) error, result string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.withSchedules(w, r, func(ctx context.Context, sc Schedules) (any, error) {
			return map[string]string{"schedule": "fleet-rotation", "result": result}, do(sc, ctx)
		})
	}
}

// pauseSchedule: POST …/pause and …/unpause with an optional {"note": "…"}.
func (s *server) pauseSchedule(do func(Schedules, context.Context, string) error, result string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Note string `json:"note"`
		}
		if !readRequest(w, r, &req) {
			return
		}
		s.withSchedules(w, r, func(ctx context.Context, sc Schedules) (any, error) {
			return map[string]string{"schedule": "fleet-rotation", "result": result}, do(sc, ctx, cmp.Or(req.Note, result+" through the API"))
		})
	}
}
