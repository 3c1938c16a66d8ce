package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

func newScheduleCmd() *cobra.Command {
	var f ctlFlags
	cmd := groupCmd("schedule", "Manage the fleet-rotation schedule (Temporal Schedule \"fleet-rotation\")",
		`The Temporal Schedule "fleet-rotation" starts the FleetRotation workflow, which rotates every
active agent's card through its own rotate update, a bounded batch at a time, so the issuer's
rate limit holds. Re-running a rotation for the same scheduled time rotates no agent twice.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 schedule not found.`)
	bindCtlFlags(cmd.PersistentFlags(), &f)
	cmd.AddCommand(
		newScheduleCreateCmd(&f),
		scheduleCmd(&f, "describe", "Show the schedule: spec, state, next and recent runs", func(ctx context.Context, ctl *starter.Client, out io.Writer) error {
			info, err := ctl.DescribeFleetRotationSchedule(ctx)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(out, info)
			}
			return printSchedule(out, info)
		}),
		scheduleCmd(&f, "trigger", "Start a fleet rotation now (skipped while one is in progress)", func(ctx context.Context, ctl *starter.Client, out io.Writer) error {
			if err := ctl.TriggerFleetRotation(ctx); err != nil {
				return err
			}
			return report(out, f.json, "triggered", "fleet rotation triggered (skipped if one is already running); follow it with: cardwarden schedule describe")
		}),
		newSchedulePauseCmd(&f, "pause", "Pause the schedule", (*starter.Client).PauseFleetRotation),
		newSchedulePauseCmd(&f, "unpause", "Resume a paused schedule", (*starter.Client).UnpauseFleetRotation),
		scheduleCmd(&f, "delete", "Delete the schedule (a rotation in progress finishes)", func(ctx context.Context, ctl *starter.Client, out io.Writer) error {
			if err := ctl.DeleteFleetRotationSchedule(ctx); err != nil {
				return err
			}
			return report(out, f.json, "deleted", "schedule "+workflows.FleetRotationScheduleID+" deleted")
		}),
	)
	return cmd
}

func newScheduleCreateCmd(f *ctlFlags) *cobra.Command {
	var spec starter.ScheduleSpec
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
			if len(spec.Cron) == 0 && spec.Every == 0 {
				spec.Cron = starter.DefaultScheduleSpec().Cron
			}
			return f.withAgents(cmd, false, func(ctx context.Context, ctl *starter.Client) error {
				info, created, err := ctl.EnsureFleetRotationSchedule(ctx, spec)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), map[string]any{"schedule": info, "created": created})
				}
				what := "updated"
				if created {
					what = "created"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s %s\n", info.ID, what)
				return printSchedule(cmd.OutOrStdout(), info)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&spec.Cron, "cron", nil, `cron spec in --timezone, repeatable (default "0 3 * * MON")`)
	fs.DurationVar(&spec.Every, "every", 0, "run at this interval instead of (or besides) cron, e.g. 24h")
	fs.StringVar(&spec.TimeZone, "timezone", "UTC", "IANA time zone of the cron specs")
	fs.DurationVar(&spec.Jitter, "jitter", 0, "spread each run's start randomly over up to this long")
	fs.BoolVar(&spec.Paused, "paused", false, "create (or leave) the schedule paused")
	fs.StringVar(&spec.Note, "note", "", "note for other operators (why it is paused)")
	fs.IntVar(&spec.BatchSize, "batch-size", workflows.DefaultFleetBatchSize, "agents rotated at once")
	fs.StringVar(&spec.Label, "label", "", "rotate only agents with this label")
	fs.StringVar(&spec.Query, "query", "", "extra Temporal visibility clause choosing agents, e.g. \"Issuer = 'sim'\"")
	return cmd
}

// scheduleCmd is a schedule subcommand without flags of its own.
func scheduleCmd(f *ctlFlags, name, short string, run func(ctx context.Context, ctl *starter.Client, out io.Writer) error) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAgents(cmd, false, func(ctx context.Context, ctl *starter.Client) error {
				return run(ctx, ctl, cmd.OutOrStdout())
			})
		},
	}
}

func newSchedulePauseCmd(f *ctlFlags, name, short string, set func(*starter.Client, context.Context, string) error) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.withAgents(cmd, false, func(ctx context.Context, ctl *starter.Client) error {
				if err := set(ctl, ctx, cmp.Or(note, name+"d by "+actor())); err != nil {
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
		fmt.Fprintf(tw, "%s\t%s  %s\n", label, r.ScheduledAt.Format(time.RFC3339), r.WorkflowID)
	}
	if len(info.Running) > 0 {
		fmt.Fprintf(tw, "running\t%s\n", strings.Join(info.Running, ", "))
	}
	fmt.Fprintf(tw, "runs so far\t%d\n", info.Actions)
	return tw.Flush()
}
