package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// The team command group: a budget several agents share (README, Teams).

func newTeamCmd() *cobra.Command {
	var f ctlFlags
	cmd := groupCmd("team", "Create, inspect and change team budgets that agents share",
		`A team is a daily (and optionally monthly) budget that its agents share, held by the team's
own Temporal workflow (team/<id>); each agent stays capped by its own budget too. An agent joins
with "team_id" in its policy. Purchases are checked against the team where the issuer asks
cardwarden to decide each one (README, Deciding each purchase).

Exit codes: 0 ok, 1 failure, 2 usage error, 3 team not found.`)
	bindCtlFlags(cmd.PersistentFlags(), &f)
	cmd.AddCommand(newTeamCreateCmd(&f), newTeamShowCmd(&f), newTeamSetBudgetCmd(&f))
	return cmd
}

func teamPath(id, action string) string {
	return strings.TrimSuffix("/v1/teams/"+url.PathEscape(id)+"/"+action, "/")
}

func newTeamCreateCmd(f *ctlFlags) *cobra.Command {
	var p workflows.TeamPolicy
	var daily, monthly string
	cmd := &cobra.Command{
		Use:   "create ID --daily-limit USD",
		Short: "Start a team's workflow with its budget (a no-op if it runs already)",
		Example: `  cardwarden team create research --daily-limit 200 --monthly-limit 3000 --timezone Europe/Berlin
  cardwarden agent create researcher-1 --daily-limit 100 --team research`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.TeamID = args[0]
			if daily == "" {
				return usageError{fmt.Errorf("--daily-limit is required")}
			}
			for _, a := range []struct {
				flag, value string
				set         func(money.Amount)
			}{
				{"--daily-limit", daily, func(m money.Amount) { p.DailyLimitUSD = m }},
				{"--monthly-limit", monthly, func(m money.Amount) { p.MonthlyLimitUSD = &m }},
			} {
				if a.value == "" {
					continue
				}
				m, err := money.Parse(a.value)
				if err != nil {
					return usageError{fmt.Errorf("%s %q: %w", a.flag, a.value, err)}
				}
				a.set(money.Amount(m))
			}
			if _, err := p.Normalize(); err != nil {
				flags := map[string]string{"team.team_id": "ID", "team.daily_limit_usd": "--daily-limit", "team.monthly_limit_usd": "--monthly-limit",
					"team.timezone": "--timezone", "team.reset_cron": "--reset-cron", "team.label": "--label"}
				hint := ""
				if fl, ok := flags[starter.FieldOf(err)]; ok {
					hint = " (set it with " + fl + ")"
				}
				return usageError{fmt.Errorf("invalid team: %w%s", err, hint)}
			}
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var team starter.Team
				if err := c.post(ctx, "/v1/teams", p, &team); err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), team)
				}
				verb := "runs already"
				if team.Created {
					verb = "started"
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "team %s %s (workflow %s): %s a day\n", team.TeamID, verb, team.WorkflowID,
					money.Format(team.Policy.DailyLimitUSD.Minor())+" USD")
				return err
			})
		},
	}
	cmd.Flags().StringVar(&daily, "daily-limit", "", "the team's daily budget in USD (required)")
	cmd.Flags().StringVar(&monthly, "monthly-limit", "", "the team's monthly cap in USD")
	cmd.Flags().StringVar(&p.Timezone, "timezone", "", "IANA zone of the team's days (default UTC)")
	cmd.Flags().StringVar(&p.ResetCron, "reset-cron", "", "when a new budget day starts (default 0 0 * * *)")
	cmd.Flags().StringVar(&p.Label, "label", "", "a name for people")
	return cmd
}

func newTeamShowCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a team's budget, spend, reservations, members and recent decisions",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var v workflows.TeamView
				if err := c.get(ctx, teamPath(args[0], ""), nil, &v); err != nil {
					return err
				}
				return printTeam(cmd.OutOrStdout(), f.json, v)
			})
		},
	}
}

func newTeamSetBudgetCmd(f *ctlFlags) *cobra.Command {
	return newSetBudgetCmd(f, "Change the team's daily and/or monthly limit", `  cardwarden team set-budget research --daily-limit 250`,
		func(id string) string { return teamPath(id, "budget") }, printTeam)
}

func printTeam(w io.Writer, asJSON bool, v workflows.TeamView) error {
	if asJSON {
		return printJSON(w, v)
	}
	tw := table(w)
	fmt.Fprintf(tw, "team\t%s\n", v.TeamID)
	fmt.Fprintf(tw, "day\t%s (next reset %s)\n", v.Day, v.NextReset.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(tw, "daily limit\t%s USD\n", v.Policy.DailyLimitUSD)
	fmt.Fprintf(tw, "spent today\t%s USD\n", v.SpentTodayUSD)
	fmt.Fprintf(tw, "reserved\t%s USD\n", v.ReservedUSD)
	fmt.Fprintf(tw, "remaining today\t%s USD\n", v.RemainingTodayUSD)
	if v.Policy.MonthlyLimitUSD != nil {
		fmt.Fprintf(tw, "monthly limit\t%s USD (spent %s USD)\n", *v.Policy.MonthlyLimitUSD, v.SpentMonthUSD)
	}
	fmt.Fprintf(tw, "members\t%s\n", strings.Join(v.Members, ", "))
	for i, d := range v.Decisions {
		if i == 5 {
			break
		}
		verdict := "declined (" + d.Reason + ")"
		if d.Approved {
			verdict = "approved"
		}
		where := ""
		if d.Merchant != "" {
			where = " at " + d.Merchant
		}
		fmt.Fprintf(tw, "decision\t%s %s %s USD%s: %s\n", d.At.Format("15:04:05"), d.AgentID, d.AmountUSD, where, verdict)
	}
	return tw.Flush()
}
