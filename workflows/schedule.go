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
// Feeding it workflow.Now makes it deterministic. The spec is matched against the local wall
// clock, the way cron daemons read it, with the two DST rules that give every local day
// exactly one daily reset: a wall time that a fall-back repeats fires once, at its first
// occurrence, and a wall time that a spring-forward gap skips fires at the first instant after
// the gap. (robfig/cron alone fires a repeated time twice and a skipped one not at all.)
// "@every" specs count elapsed time and ignore the wall clock.
func NextFire(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	if _, ok := sched.(cron.ConstantDelaySchedule); ok {
		return sched.Next(t).UTC()
	}
	w := wall(t, loc)
	for {
		w = sched.Next(w) // in UTC, which has no DST: the plain wall-clock sequence
		if w.IsZero() {
			return time.Time{}
		}
		if at := fromWall(w, loc); at.After(t) {
			return at.UTC()
		}
	}
}

// PrevFire returns the latest instant at or before t at which spec fired in loc (by NextFire's
// rules), or zero when there is none within a year or the spec counts elapsed time.
func PrevFire(sched cron.Schedule, loc *time.Location, t time.Time) time.Time {
	if _, ok := sched.(cron.ConstantDelaySchedule); ok {
		return time.Time{}
	}
	for _, back := range []time.Duration{time.Hour, 26 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		var last time.Time
		for at := NextFire(sched, loc, t.Add(-back)); !at.IsZero() && !at.After(t); at = NextFire(sched, loc, at) {
			last = at
		}
		if !last.IsZero() {
			return last
		}
	}
	return time.Time{}
}

// wall is t's local date and time in loc, written as a UTC time.
func wall(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// fromWall is the first instant whose local time in loc is the wall time w, or, where a DST
// gap skips w, the first instant after the gap.
func fromWall(w time.Time, loc *time.Location) time.Time {
	at := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc)
	if wall(at, loc).Equal(w) {
		// Where a fall-back repeats w, time.Date may pick either occurrence: look for the
		// earlier one (DST shifts are at most a few hours, and mostly one).
		for _, d := range []time.Duration{3 * time.Hour, 2 * time.Hour, 90 * time.Minute, time.Hour, 45 * time.Minute, 30 * time.Minute, 15 * time.Minute} {
			if e := at.Add(-d); wall(e, loc).Equal(w) {
				return e
			}
		}
		return at
	}
	// In a gap: the local clock jumps over w somewhere within a few hours of at. Search for
	// the first whole second whose wall time is past w: that is the transition itself.
	lo, hi := at.Add(-3*time.Hour).Truncate(time.Second), at.Add(3*time.Hour).Truncate(time.Second)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
		if wall(mid, loc).After(w) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
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
