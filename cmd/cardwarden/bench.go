package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/bench"
	"github.com/cardwarden/cardwarden/internal/config"
)

func newBenchCmd() *cobra.Command {
	var (
		o          bench.Options
		scenario   string
		logLevel   string
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure cardwarden against its physical floor: freeze latency, purchase decisions, onboarding, ingest, fleet reset, history, memory",
		Long: `Run benchmark scenarios, each measuring cardwarden and the least Temporal work that could do
the same job side by side, on the same server, simulator and database, in the same run, and
report the ratio. By default every scenario gets a fresh embedded stack (Temporal server,
SQLite application database, issuer simulator, cardwarden's HTTP API and workers), so nothing
needs to be running. Prints a table and writes <scenario>.json and <scenario>.svg (and
summary.json, bench.log) into --out. docs/benchmarks.md explains every scenario and target.

Exit status: 0 when every scenario ran and every correctness check passed (a missed performance
target is reported, not an error); 1 otherwise.`,
		Example: `  cardwarden bench                       # everything, about 12 minutes on 2 cores
  cardwarden bench --quick               # a small version of each scenario
  cardwarden bench --scenario freeze,reset --out /tmp/bench`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			o.Scenarios = []string{scenario}
			if o.ResetRate <= 0 {
				return usageError{fmt.Errorf("--reset-rate %d: want a positive number of requests per second", o.ResetRate)}
			}
			if o.AuthorizeRate < 0 {
				return usageError{fmt.Errorf("--authorize-rate %g: want a positive number of purchases per second", o.AuthorizeRate)}
			}
			if o.Scale <= 0 {
				return usageError{fmt.Errorf("--scale %g: want a positive factor", o.Scale)}
			}
			if err := os.MkdirAll(o.OutDir, 0o750); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)}
			}
			logFile, err := os.Create(filepath.Join(o.OutDir, "bench.log"))
			if err != nil {
				return err
			}
			defer logFile.Close()
			o.Logger = slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: level}))
			o.Progress = cmd.ErrOrStderr()
			if exe, err := os.Executable(); err == nil {
				o.WorkerCommand = exe
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile) // #nosec G304 -- the operator's own --cpuprofile path
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			results, err := bench.Run(ctx, o, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				for _, c := range r.Checks {
					if !c.OK {
						failed++
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nresults in %s\n", o.OutDir)
			if failed > 0 {
				return fmt.Errorf("%d correctness checks failed", failed)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&scenario, "scenario", "all", "scenarios to run, comma-separated: freeze, authorize, onboard, ingest, reset, history, memory or all")
	fs.BoolVar(&o.Quick, "quick", false, "run a small version of each scenario (under a minute each)")
	fs.StringVar(&o.OutDir, "out", "bench-out", "directory for the JSON results, SVG charts and bench.log")
	fs.StringVar(&o.Address, "address", "", "Temporal frontend host:port to use instead of an embedded server per scenario")
	fs.StringVar(&o.Namespace, "namespace", bench.DefaultNamespace, "Temporal namespace (with --address): one of the bench's own, created if missing; the bench refuses one where other workers poll cardwarden's task queues, and ends the workflows it started")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "application database (postgres://… or sqlite://…); default a fresh SQLite file per scenario")
	fs.BoolVar(&o.TemporalFile, "temporal-file", false, "run the embedded Temporal server file-backed on SQLite in a temp dir, as cardwarden dev does (default: in memory)")
	fs.IntVar(&o.ResetRate, "reset-rate", bench.DefaultResetRate, "reset scenario: the simulator's rate limit in requests per second, which cardwarden's worker is configured with")
	fs.Float64Var(&o.AuthorizeRate, "authorize-rate", 0, fmt.Sprintf("authorize scenario: purchases per second offered across all agents (default %d, quick %d)", bench.DefaultAuthorizeRate, bench.DefaultAuthorizeRateQuick))
	fs.Float64Var(&o.Scale, "scale", 1, "multiply every scenario's size (agents, events, bursts)")
	fs.StringVar(&o.TempDir, "temp-dir", "", "directory for per-scenario state (default the system temp dir)")
	fs.BoolVar(&o.KeepTemp, "keep-temp", false, "keep per-scenario state (Temporal and application databases) for inspection")
	fs.StringVar(&logLevel, "log-level", "warn", "level of the component log written to <out>/bench.log")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the benchmark process (everything but child workers) to this file")
	_ = fs.MarkHidden("cpuprofile")
	cmd.AddCommand(newBenchFloorWorkerCmd())
	return cmd
}

// newBenchFloorWorkerCmd runs the memory scenario's floor worker in its own process.
func newBenchFloorWorkerCmd() *cobra.Command {
	var t config.Temporal
	cmd := &cobra.Command{
		Use:    "floor-worker",
		Short:  "Run the memory scenario's floor worker (used by cardwarden bench)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return bench.RunFloorWorker(ctx, t)
		},
	}
	config.BindTemporal(cmd.Flags(), &t)
	return cmd
}
