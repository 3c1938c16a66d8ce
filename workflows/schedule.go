package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/cardwarden/cardwarden/workflows/tzdb"
)

// LoadLocation loads an IANA time zone from the tzdata pinned in the binary (package tzdb), so
// schedule math gives the same instants on every worker and on every replay.
func LoadLocation(name string) (*time.Location, error) { return tzdb.LoadLocation(name) }

// cronParser takes standard five-field specs, six-field ones whose first field is the second
// (as Temporal's own cron strings), and descriptors (@daily, @weekly, @every 6h). Seconds let
// a fleet stagger its resets within a minute.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronProbe is the instant ParseCron checks a spec fires after. Any fixed instant works:
// robfig/cron searches five years ahead, which covers every satisfiable spec.
var cronProbe = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseCron parses a five-field cron spec (or six, with seconds first). Time zone prefixes are refused: the zone is the
// policy's timezone, and robfig/cron would load a CRON_TZ zone from the host's database.
func ParseCron(spec string) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=") {
		return nil, errors.New("time zone prefixes are not allowed here; set policy.timezone")
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %v", spec, err)
	}
	if sched.Next(cronProbe).IsZero() {
		return nil, fmt.Errorf("cron spec %q never fires", spec)
	}
	return sched, nil
}

// NextFire returns the first instant strictly after t at which spec fires in loc, as UTC.
// Feeding it workflow.Now makes it deterministic; evaluating in loc makes "0 0 * * *" mean
// local midnight on both sides of a DST change.
func NextFire(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	return sched.Next(t.In(loc)).UTC()
}

// Catchup returns the latest instant of sched at or before now, starting from due (an instant
// that was due at or before now), and how many earlier instants it skipped. A worker that was
// down for three days does one reset, not three back to back.
func Catchup(sched cron.Schedule, loc *time.Location, due, now time.Time) (latest time.Time, skipped int) {
	latest = due
	for {
		next := NextFire(sched, loc, latest)
		if next.IsZero() || next.After(now) {
			return latest, skipped
		}
		latest = next
		skipped++
	}
}

// LocalDay is the calendar day of t in loc, as YYYY-MM-DD.
func LocalDay(t time.Time, loc *time.Location) string { return t.In(loc).Format("2006-01-02") }

// LocalMonth is the calendar month of t in loc, as YYYY-MM.
func LocalMonth(t time.Time, loc *time.Location) string { return t.In(loc).Format("2006-01") }

// earliest returns the earliest non-zero time, or zero when all are zero.
func earliest(ts ...time.Time) time.Time {
	ts = slices.DeleteFunc(ts, func(t time.Time) bool { return t.IsZero() })
	if len(ts) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}
