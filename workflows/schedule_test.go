package workflows

import (
	"slices"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNextFireLocalMidnightAcrossDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	sched, err := ParseCron("0 0 * * *")
	if err != nil {
		t.Fatal(err)
	}
	// 2027: DST starts Sun 14 March 02:00 EST, ends Sun 7 November 02:00 EDT.
	cases := []struct {
		from string // UTC
		want string // UTC
	}{
		{"2027-03-13T17:00:00Z", "2027-03-14T05:00:00Z"}, // Sat noon EST -> Sun midnight EST (UTC-5)
		{"2027-03-14T05:00:00Z", "2027-03-15T04:00:00Z"}, // -> Mon midnight EDT (UTC-4): a 23-hour day
		{"2027-03-15T04:00:00Z", "2027-03-16T04:00:00Z"},
		{"2027-11-06T04:00:00Z", "2027-11-07T04:00:00Z"}, // Sat midnight EDT -> Sun midnight EDT
		{"2027-11-07T04:00:00Z", "2027-11-08T05:00:00Z"}, // -> Mon midnight EST: a 25-hour day
		{"2027-11-08T05:00:00Z", "2027-11-09T05:00:00Z"},
	}
	for _, c := range cases {
		from, _ := time.Parse(time.RFC3339, c.from)
		got := NextFire(sched, ny, from)
		if got.Format(time.RFC3339) != c.want {
			t.Errorf("NextFire after %s = %s, want %s", c.from, got.Format(time.RFC3339), c.want)
		}
		if l := got.In(ny); l.Hour() != 0 || l.Minute() != 0 {
			t.Errorf("%s is not local midnight: %s", got, l)
		}
		if got.Location() != time.UTC {
			t.Errorf("NextFire must return UTC, got %s", got.Location())
		}
	}
}

func TestNextFireWeeklyRotationAcrossDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	sched, _ := ParseCron("0 3 * * MON")
	at := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	for range 4 {
		at = NextFire(sched, ny, at)
		if l := at.In(ny); l.Weekday() != time.Monday || l.Hour() != 3 {
			t.Fatalf("not Monday 03:00 local: %s", l)
		}
	}
}

func TestCatchupCollapsesMissedInstants(t *testing.T) {
	sched, _ := ParseCron("0 0 * * *")
	due := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	latest, skipped := Catchup(sched, time.UTC, due, due.Add(3*24*time.Hour+time.Hour))
	if !latest.Equal(due.Add(3*24*time.Hour)) || skipped != 3 {
		t.Fatalf("got %s, %d", latest, skipped)
	}
	latest, skipped = Catchup(sched, time.UTC, due, due)
	if !latest.Equal(due) || skipped != 0 {
		t.Fatalf("on time: %s, %d", latest, skipped)
	}
}

func TestLoadLocationIsPinned(t *testing.T) {
	if _, err := LoadLocation("Local"); err == nil {
		t.Fatal("Local must be refused")
	}
	if _, err := LoadLocation("Mars/Base"); err == nil {
		t.Fatal("unknown zone accepted")
	}
	a, _ := LoadLocation("Europe/Berlin")
	b, _ := LoadLocation("Europe/Berlin")
	if a != b {
		t.Fatal("locations are not cached")
	}
	if l, _ := LoadLocation(""); l != time.UTC {
		t.Fatal("empty is UTC")
	}
}

// A six-field spec has seconds first; five fields mean second 0.
func TestParseCronTakesOptionalSeconds(t *testing.T) {
	from := time.Date(2027, 1, 4, 10, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Time{
		"30 15 23 * * *": time.Date(2027, 1, 4, 23, 15, 30, 0, time.UTC),
		"15 23 * * *":    time.Date(2027, 1, 4, 23, 15, 0, 0, time.UTC),
	} {
		sched, err := ParseCron(spec)
		if err != nil {
			t.Fatalf("%q: %v", spec, err)
		}
		if got := NextFire(sched, time.UTC, from); !got.Equal(want) {
			t.Errorf("%q fires at %s, want %s", spec, got, want)
		}
	}
	if _, err := ParseCron("0 0 0 0 0 0 0"); err == nil {
		t.Error("a seven-field spec was accepted")
	}
}

// Every local day gets exactly one reset, whatever DST does to the local time it names.
func TestNextFireOneResetPerLocalDayAcrossDST(t *testing.T) {
	cases := []struct {
		zone, spec string
		from, to   time.Time
		want       []string // fires on the DST day and the day after, UTC
	}{
		// New York falls back on 2026-11-01 at 02:00 EDT: 01:30 happens twice.
		{"America/New_York", "30 1 * * *", utc("2026-10-31T12:00:00Z"), utc("2026-11-02T12:00:00Z"),
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		// Berlin falls back on 2026-10-25 at 03:00 CEST: 02:30 happens twice.
		{"Europe/Berlin", "30 2 * * *", utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"),
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		// New York springs forward on 2026-03-08 at 02:00 EST: 02:30 does not exist, so the
		// reset comes at the first instant after the gap, 03:00 EDT.
		{"America/New_York", "30 2 * * *", utc("2026-03-07T12:00:00Z"), utc("2026-03-09T12:00:00Z"),
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"America/New_York", "0 2 * * *", utc("2026-03-07T12:00:00Z"), utc("2026-03-09T12:00:00Z"),
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"}},
	}
	for _, c := range cases {
		loc := mustLoc(t, c.zone)
		sched, err := ParseCron(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for at := NextFire(sched, loc, c.from); at.Before(c.to); at = NextFire(sched, loc, at) {
			got = append(got, at.Format(time.RFC3339))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %q: fires %v, want %v", c.zone, c.spec, got, c.want)
		}
	}
}

// Asked from inside the repeated hour, after its first occurrence fired, the next reset is the
// next day's: the second occurrence of the same wall time is not a second reset.
func TestNextFireFromInsideTheRepeatedHour(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	sched, _ := ParseCron("30 1 * * *")
	// 06:10Z is 01:10 EST, the second pass through 01:xx on 2026-11-01.
	if got := NextFire(sched, ny, utc("2026-11-01T06:10:00Z")); !got.Equal(utc("2026-11-02T06:30:00Z")) {
		t.Fatalf("got %s", got)
	}
	if got := PrevFire(sched, ny, utc("2026-11-01T06:40:00Z")); !got.Equal(utc("2026-11-01T05:30:00Z")) {
		t.Fatalf("PrevFire got %s", got)
	}
}

// A year of daily resets at awkward local times in zones with DST: one per local day, never two.
func TestNextFireYearHasOneResetPerLocalDay(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"} {
		loc := mustLoc(t, zone)
		for _, spec := range []string{"0 0 * * *", "30 1 * * *", "30 2 * * *", "0 3 * * *"} {
			sched, _ := ParseCron(spec)
			days := map[string]int{}
			from := utc("2026-01-01T00:00:00Z")
			at := from
			for {
				at = NextFire(sched, loc, at)
				if at.After(from.AddDate(1, 0, 0)) {
					break
				}
				days[LocalDay(at, loc)]++
			}
			first, last := LocalDay(NextFire(sched, loc, from), loc), LocalDay(at, loc)
			for d := first; d < last; {
				if days[d] != 1 {
					t.Errorf("%s %q: %d resets on %s", zone, spec, days[d], d)
				}
				tt, _ := time.Parse("2006-01-02", d)
				d = tt.AddDate(0, 0, 1).Format("2006-01-02")
			}
		}
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
