// Package bench measures cardwarden against its physical floor: for every scenario it runs
// cardwarden and the least Temporal work that could do the same job side by side, on the same
// server, simulator and database, in the same run, and reports the ratio. Ratios, not absolute
// timings, are what carry from this machine to another. docs/benchmarks.md describes each scenario,
// its floor and its target.
//
// The embedded stack links go.temporal.io/server (through internal/devstack), so this package is
// large to build; only cmd/cardwarden imports it.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Scenario names, in the order "all" runs them.
var Scenarios = []string{"freeze", "authorize", "onboard", "ingest", "reset", "history", "memory"}

// Options configure a benchmark run.
type Options struct {
	// Scenarios to run; "all" or empty means every scenario.
	Scenarios []string
	// Quick runs a small version of each scenario (under a minute each).
	Quick bool
	// OutDir receives <scenario>.json, <scenario>.svg and summary.json.
	OutDir string
	// Address is an external Temporal frontend; empty starts an embedded server per scenario.
	Address   string
	Namespace string
	// TemporalFile runs the embedded server file-backed in a temp dir (internal/devstack, as
	// `cardwarden dev` does) instead of Temporal's in-memory test server.
	TemporalFile bool
	// DatabaseURL is the application database; empty means a SQLite file per scenario.
	DatabaseURL string
	// WorkerCommand runs `cardwarden worker` (and `cardwarden bench floor-worker`) as child
	// processes for the memory scenario: the cardwarden binary's path. Empty skips the
	// scenario with a note.
	WorkerCommand string
	// TempDir holds the per-scenario state; os.TempDir() when empty.
	TempDir  string
	KeepTemp bool
	// ResetRate is the reset scenario's issuer rate limit in requests per second;
	// DefaultResetRate when zero.
	ResetRate int
	// AuthorizeRate is the authorize scenario's offered purchases per second across its
	// agents; DefaultAuthorizeRate (quick: DefaultAuthorizeRateQuick) when zero.
	AuthorizeRate float64
	// Scale multiplies the default sizes (agents, events, bursts); 1 when zero.
	Scale float64
	// Logger receives component logs (written to OutDir/bench.log by the command).
	Logger *slog.Logger
	// Progress receives one line per step, for people watching.
	Progress io.Writer
}

// DefaultResetRate is the issuer rate limit of the reset scenario, as the issue sets it.
const DefaultResetRate = 100

// Metric is one measured figure, with its floor and ratio when it has one.
type Metric struct {
	Name       string   `json:"name"`
	Unit       string   `json:"unit"`
	Cardwarden float64  `json:"cardwarden"`
	Floor      *float64 `json:"floor,omitempty"`
	// Ratio is cardwarden ÷ floor.
	Ratio *float64 `json:"ratio,omitempty"`
	// Target is the goal, e.g. "ratio <= 3" or "value < 100".
	Target string `json:"target,omitempty"`
	Pass   *bool  `json:"pass,omitempty"`
}

// Check is a correctness check made during a scenario (exactly once, no 429s, …).
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Result is one scenario's outcome, written to <scenario>.json.
type Result struct {
	Scenario  string         `json:"scenario"`
	Title     string         `json:"title"`
	Quick     bool           `json:"quick"`
	StartedAt time.Time      `json:"started_at"`
	Seconds   float64        `json:"seconds"`
	Params    map[string]any `json:"params"`
	Metrics   []Metric       `json:"metrics"`
	Checks    []Check        `json:"checks"`
	Notes     []string       `json:"notes,omitempty"`
	Error     string         `json:"error,omitempty"`
	Skipped   string         `json:"skipped,omitempty"`
	Series    []Series       `json:"series,omitempty"`
	chart     func(r *Result) string
}

// Series is chart data: named (x, y) points.
type Series struct {
	Name   string       `json:"name"`
	XLabel string       `json:"x_label,omitempty"`
	YLabel string       `json:"y_label,omitempty"`
	Points [][2]float64 `json:"points"`
}

func (r *Result) metric(name, unit string, cw float64) *Metric {
	r.Metrics = append(r.Metrics, Metric{Name: name, Unit: unit, Cardwarden: cw})
	return &r.Metrics[len(r.Metrics)-1]
}

// withFloor sets the floor and the ratio cardwarden ÷ floor.
func (m *Metric) withFloor(floor float64) *Metric {
	m.Floor = &floor
	if floor != 0 {
		ratio := m.Cardwarden / floor
		m.Ratio = &ratio
	}
	return m
}

// target records the goal and whether it was met.
func (m *Metric) target(desc string, pass bool) *Metric {
	m.Target = desc
	m.Pass = &pass
	return m
}

func (r *Result) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// size scales a default size.
func (o Options) size(full, quick int) int {
	n := full
	if o.Quick {
		n = quick
	}
	if o.Scale > 0 {
		n = int(float64(n)*o.Scale + 0.5)
	}
	return max(n, 1)
}

// Run runs the chosen scenarios one after another, each on a fresh stack, prints a table to w
// and writes JSON and SVG files into OutDir. It returns the results and an error when a
// scenario could not run (a missed target is not an error; it is in the results).
func Run(ctx context.Context, o Options, w io.Writer) ([]*Result, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.OutDir == "" {
		o.OutDir = "bench-out"
	}
	if err := os.MkdirAll(o.OutDir, 0o750); err != nil {
		return nil, err
	}
	names, err := selectScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	var results []*Result
	var errs []error
	finish := func(r *Result) {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s: %s", r.Scenario, r.Error))
			o.progress("scenario %s: FAILED after %.0fs: %s", r.Scenario, r.Seconds, r.Error)
		} else {
			o.progress("scenario %s: done in %.0fs", r.Scenario, r.Seconds)
		}
		if err := writeResult(o.OutDir, r); err != nil {
			errs = append(errs, err)
		}
		results = append(results, r)
		printResult(w, r)
	}
	// The memory scenario's measurement (resident memory) does not depend on timing and the
	// history scenario's (history events) barely does, while the first is long and CPU-bound
	// and the second mostly waits: when both are chosen they run together.
	together := slices.Contains(names, "memory") && slices.Contains(names, "history")
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		switch {
		case together && name == "memory":
			continue
		case together && name == "history":
			mem := make(chan *Result, 1)
			go func() { mem <- runScenario(ctx, o, "memory") }()
			finish(runScenario(ctx, o, "history"))
			finish(<-mem)
		default:
			finish(runScenario(ctx, o, name))
		}
	}
	summary, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(o.OutDir, "summary.json"), summary, 0o600); err != nil {
		errs = append(errs, err)
	}
	return results, errors.Join(errs...)
}

// runScenario runs one scenario, turning a panic into its error.
func runScenario(ctx context.Context, o Options, name string) *Result {
	o.progress("scenario %s: starting", name)
	r := &Result{Scenario: name, Quick: o.Quick, StartedAt: time.Now().UTC(), Params: map[string]any{}}
	func() {
		defer func() {
			if v := recover(); v != nil {
				r.Error = fmt.Sprintf("panic: %v", v)
			}
		}()
		if err := scenarioFuncs[name](ctx, o, r); err != nil {
			r.Error = err.Error()
		}
	}()
	r.Seconds = time.Since(r.StartedAt).Seconds()
	return r
}

var scenarioFuncs = map[string]func(context.Context, Options, *Result) error{
	"freeze":    runFreeze,
	"authorize": runAuthorize,
	"onboard":   runOnboard,
	"ingest":    runIngest,
	"reset":     runReset,
	"history":   runHistory,
	"memory":    runMemory,
}

func selectScenarios(in []string) ([]string, error) {
	if len(in) == 0 {
		return Scenarios, nil
	}
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "all":
				return Scenarios, nil
			case slices.Contains(Scenarios, part):
				if !slices.Contains(out, part) {
					out = append(out, part)
				}
			case part != "":
				return nil, fmt.Errorf("unknown scenario %q (want %s or all)", part, strings.Join(Scenarios, ", "))
			}
		}
	}
	if len(out) == 0 {
		return Scenarios, nil
	}
	return out, nil
}

func writeResult(dir string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, r.Scenario+".json"), b, 0o600); err != nil {
		return err
	}
	if r.chart != nil && r.Error == "" && r.Skipped == "" {
		if err := os.WriteFile(filepath.Join(dir, r.Scenario+".svg"), []byte(r.chart(r)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n== %s: %s (%.0fs%s)\n", r.Scenario, r.Title, r.Seconds, map[bool]string{true: ", quick"}[r.Quick])
	if r.Skipped != "" {
		fmt.Fprintf(w, "   skipped: %s\n", r.Skipped)
		return
	}
	if r.Error != "" {
		fmt.Fprintf(w, "   ERROR: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Metrics) > 0 {
		fmt.Fprintln(tw, "   metric\tunit\tcardwarden\tfloor\tratio\ttarget\t\t")
		for _, m := range r.Metrics {
			floor, ratio, pass := "-", "-", ""
			if m.Floor != nil {
				floor = fmtNum(*m.Floor)
			}
			if m.Ratio != nil {
				ratio = fmt.Sprintf("%.2f×", *m.Ratio)
			}
			if m.Pass != nil {
				pass = map[bool]string{true: "ok", false: "MISSED"}[*m.Pass]
			}
			fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Name, m.Unit, fmtNum(m.Cardwarden), floor, ratio, m.Target, pass)
		}
	}
	tw.Flush()
	for _, c := range r.Checks {
		fmt.Fprintf(w, "   check %-34s %s  %s\n", c.Name, map[bool]string{true: "ok", false: "FAILED"}[c.OK], c.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "   note: %s\n", n)
	}
}
