package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

const schedulePath = "/v1/schedules/" + workflows.FleetRotationScheduleID

func newScheduleCmd() *cobra.Command {
	var f ctlFlags
	cmd := groupCmd("schedule", "Manage the fleet-rotation schedule (Temporal Schedule \"fleet-rotation\")",
		`The Temporal Schedule "fleet-rotation" starts the FleetRotation workflow, which rotates every
active agent's card through its own rotate update, a bounded batch at a time, so the issuer's
rate limit holds. Re-running a rotation for the same scheduled time rotates no agent twice.
These commands go through the cardwarden HTTP API with the admin token, like the agent commands.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 schedule not found.`)
	bindCtlFlags(cmd.PersistentFlags(), &f)
	cmd.AddCommand(
		newScheduleCreateCmd(&f),
		scheduleCmd(&f, "describe", "Show the schedule: spec, state, next runs and what recent runs rotated", func(ctx context.Context, c *apiClient, out io.Writer) error {
			var info starter.ScheduleInfo
			if err := c.get(ctx, schedulePath, nil, &info); err != nil {
				return err
			}
			if f.json {
				return printJSON(out, info)
			}
			return printSchedule(out, info)
		}),
		scheduleCmd(&f, "trigger", "Start a fleet rotation now (skipped while one is in progress)", func(ctx context.Context, c *apiClient, out io.Writer) error {
			if err := c.post(ctx, schedulePath+"/trigger", nil, nil); err != nil {
				return err
			}
			return report(out, f.json, "triggered", "fleet rotation triggered (skipped if one is already running); follow it with: cardwarden schedule describe")
		}),
		newSchedulePauseCmd(&f, "pause", "Pause the schedule"),
		newSchedulePauseCmd(&f, "unpause", "Resume a paused schedule"),
		scheduleCmd(&f, "delete", "Delete the schedule (a rotation in progress finishes)", func(ctx context.Context, c *apiClient, out io.Writer) error {
			if err := c.delete(ctx, schedulePath, nil); err != nil {
				return err
			}
			return report(out, f.json, "deleted", "schedule "+workflows.FleetRotationScheduleID+" deleted")
		}),
	)
	return cmd
}

func newScheduleCreateCmd(f *ctlFlags) *cobra.Command {
	var req struct {
		Cron      []string `json:"cron,omitempty"`
		Every     string   `json:"every,omitempty"`
		Timezone  string   `json:"timezone"`
		Jitter    string   `json:"jitter,omitempty"`
		Paused    bool     `json:"paused"`
		Note      string   `json:"note,omitempty"`
		BatchSize int      `json:"batch_size"`
		Label     string   `json:"label,omitempty"`
		Query     string   `json:"query,omitempty"`
	}
	var every, jitter time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the fleet-rotation schedule, or update it to these settings",
		Long: `Create the Temporal Schedule "fleet-rotation", or update it when it exists. Without a spec
it runs weekly, Monday 03:00 UTC.`,
		Example: `  cardwarden schedule create
  cardwarden schedule create --cron "0 4 * * SUN" --timezone America/New_York --batch-size 20
  cardwarden schedule create --every 24h --label payments --paused --note "enable after review"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every > 0 {
				req.Every = every.String()
			}
			if jitter > 0 {
				req.Jitter = jitter.String()
			}
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var out struct {
					Schedule starter.ScheduleInfo `json:"schedule"`
					Created  bool                 `json:"created"`
				}
				if err := c.post(ctx, schedulePath, req, &out); err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), out)
				}
				what := "updated"
				if out.Created {
					what = "created"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s %s\n", out.Schedule.ID, what)
				return printSchedule(cmd.OutOrStdout(), out.Schedule)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&req.Cron, "cron", nil, `cron spec in --timezone, repeatable (default "0 3 * * MON")`)
	fs.DurationVar(&every, "every", 0, "run at this interval instead of (or besides) cron, e.g. 24h")
	fs.StringVar(&req.Timezone, "timezone", "UTC", "IANA time zone of the cron specs")
	fs.DurationVar(&jitter, "jitter", 0, "spread each run's start randomly over up to this long")
	fs.BoolVar(&req.Paused, "paused", false, "create (or leave) the schedule paused")
	fs.StringVar(&req.Note, "note", "", "note for other operators (why it is paused)")
	fs.IntVar(&req.BatchSize, "batch-size", workflows.DefaultFleetBatchSize, "agents rotated at once")
	fs.StringVar(&req.Label, "label", "", "rotate only agents with this label")
	fs.StringVar(&req.Query, "query", "", "extra Temporal visibility clause choosing agents, e.g. \"Issuer = 'sim'\"")
	return cmd
}

// scheduleCmd is a schedule subcommand without flags of its own.
func scheduleCmd(f *ctlFlags, name, short string, run func(ctx context.Context, c *apiClient, out io.Writer) error) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				return run(ctx, c, cmd.OutOrStdout())
			})
		},
	}
}

func newSchedulePauseCmd(f *ctlFlags, name, short string) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				if note == "" {
					note = name + "d by " + actor()
				}
				if err := c.post(ctx, schedulePath+"/"+name, map[string]string{"note": note}, nil); err != nil {
					return err
				}
				return report(cmd.OutOrStdout(), f.json, name+"d", "schedule "+workflows.FleetRotationScheduleID+" "+name+"d")
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why, shown to other operators")
	return cmd
}

func report(w io.Writer, asJSON bool, result, msg string) error {
	if asJSON {
		return printJSON(w, map[string]string{"schedule": workflows.FleetRotationScheduleID, "result": result})
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

func printSchedule(w io.Writer, info starter.ScheduleInfo) error {
	tw := table(w)
	state := "active"
	if info.Paused {
		state = "paused"
	}
	if info.Note != "" {
		state += " (" + info.Note + ")"
	}
	fmt.Fprintf(tw, "schedule\t%s\n", info.ID)
	fmt.Fprintf(tw, "state\t%s\n", state)
	fmt.Fprintf(tw, "spec\t%s (%s)\n", strings.Join(info.Spec, "; "), info.TimeZone)
	sel := "every active agent"
	if info.Label != "" {
		sel = "active agents labelled " + info.Label
	}
	if info.Query != "" {
		sel += " where " + info.Query
	}
	fmt.Fprintf(tw, "rotates\t%s, %d at a time\n", sel, info.BatchSize)
	for i, t := range info.NextRuns {
		label := ""
		if i == 0 {
			label = "next runs"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, t.Format(time.RFC3339))
	}
	for i, r := range info.RecentRuns {
		label := ""
		if i == 0 {
			label = "recent runs"
		}
		outcome := r.Status
		if res := r.Result; res != nil {
			outcome = fmt.Sprintf("%s: %d agents, %d rotated, %d skipped, %d failed", r.Status, res.Agents, res.Rotated, res.Skipped, res.Failed)
		}
		fmt.Fprintf(tw, "%s\t%s  %s  %s\n", label, r.ScheduledAt.Format(time.RFC3339), r.WorkflowID, outcome)
	}
	if len(info.Running) > 0 {
		fmt.Fprintf(tw, "running\t%s\n", strings.Join(info.Running, ", "))
	}
	fmt.Fprintf(tw, "runs so far\t%d\n", info.Actions)
	return tw.Flush()
}
