// Package tzdb loads time zones from a copy of the IANA database pinned inside the binary
// (tzdata 2025c, copied from Go 1.26's lib/time/zoneinfo.zip).
//
// Workflow code must compute the same instants on every worker and on every replay. The
// standard library prefers the host's /usr/share/zoneinfo, which differs between machines and
// changes with OS updates, so a reset could land at a different instant on replay than it did
// when it ran. Loading from this pinned copy makes zone rules a property of the code version.
// To update it, copy a newer $GOROOT/lib/time/zoneinfo.zip here; like any change to workflow
// logic, that needs a thought about running workflows.
package tzdb

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"sync"
	"time"
)

//go:embed zoneinfo.zip
var zoneinfoZip []byte

// Version is the IANA tzdata release this package holds.
const Version = "2025c"

var (
	indexOnce sync.Once
	index     map[string]*zip.File
	indexErr  error

	cacheMu sync.Mutex
	cache   = map[string]*time.Location{}
)

// LoadLocation returns the named IANA zone from the pinned database. "UTC" and "" are UTC;
// "Local" is refused because it depends on the host.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("unknown time zone %q: the host's local zone is not allowed, name an IANA zone", name)
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if loc, ok := cache[name]; ok {
		return loc, nil
	}
	indexOnce.Do(buildIndex)
	if indexErr != nil {
		return nil, indexErr
	}
	f, ok := index[name]
	if !ok {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	cache[name] = loc
	return loc, nil
}

func buildIndex() {
	r, err := zip.NewReader(bytes.NewReader(zoneinfoZip), int64(len(zoneinfoZip)))
	if err != nil {
		indexErr = fmt.Errorf("embedded tzdata: %w", err)
		return
	}
	index = make(map[string]*zip.File, len(r.File))
	for _, f := range r.File {
		index[f.Name] = f
	}
}
