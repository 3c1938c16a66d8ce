package workflows

import (
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
