package starter

import (
	"fmt"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
)

// describeSpec renders a schedule spec the way people wrote it. Temporal stores cron
// expressions as structured calendars, so they come back as calendars and are printed in cron
// form again ("0 3 * * 1").
func describeSpec(s client.ScheduleSpec) []string {
	var out []string
	out = append(out, s.CronExpressions...)
	for _, c := range s.Calendars {
		out = append(out, calendarString(c))
	}
	for _, iv := range s.Intervals {
		d := "every " + iv.Every.String()
		if iv.Offset > 0 {
			d += " offset " + iv.Offset.String()
		}
		out = append(out, d)
	}
	if s.Jitter > 0 {
		out = append(out, "jitter "+s.Jitter.String())
	}
	return out
}

// calendarString prints a calendar spec as "minute hour day-of-month month day-of-week",
// prefixed with seconds and suffixed with years only when they are not the default.
func calendarString(c client.ScheduleCalendarSpec) string {
	fields := []string{
		rangesString(c.Minute, 0, 59),
		rangesString(c.Hour, 0, 23),
		rangesString(c.DayOfMonth, 1, 31),
		rangesString(c.Month, 1, 12),
		rangesString(c.DayOfWeek, 0, 6),
	}
	if sec := rangesString(c.Second, 0, 59); sec != "0" && sec != "*" {
		fields = append([]string{sec}, fields...)
	}
	if len(c.Year) > 0 {
		fields = append(fields, rangesString(c.Year, 0, 0))
	}
	s := strings.Join(fields, " ")
	if c.Comment != "" {
		s += " (" + c.Comment + ")"
	}
	return s
}

// rangesString prints ranges in cron syntax; a single range covering lo..hi is "*".
func rangesString(rs []client.ScheduleRange, lo, hi int) string {
	if len(rs) == 0 {
		return "*"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		end := max(r.End, r.Start)
		step := max(r.Step, 1)
		if len(rs) == 1 && r.Start == lo && end == hi && step == 1 && hi > lo {
			return "*"
		}
		p := strconv.Itoa(r.Start)
		if end > r.Start {
			p = fmt.Sprintf("%d-%d", r.Start, end)
		}
		if step > 1 {
			p += "/" + strconv.Itoa(step)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}
