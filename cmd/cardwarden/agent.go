package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// The agent command group: list, show, rotate, freeze, unfreeze, set-budget and retire (this
// file), create (agent_create.go) and credentials (agent_credentials.go).

func newAgentCmd() *cobra.Command {
	var f ctlFlags
	cmd := groupCmd("agent", "Create, inspect and control agents and their cards",
		`Drive agents through the cardwarden HTTP API with the admin token: create an agent (and its
credential-pull token), list and show agents, rotate, freeze, unfreeze, change the budget,
retire, and pull an agent's card with its own token. One URL (--api-url) and one token
(CARDWARDEN_ADMIN_TOKEN) are all it needs; defaults reach `+"`cardwarden dev`"+` on this machine.

Exit codes: 0 ok, 1 failure (the API refused or is unreachable), 2 usage error (bad flag,
invalid policy or request), 3 agent not found.`)
	bindCtlFlags(cmd.PersistentFlags(), &f)
	cmd.AddCommand(
		newAgentCreateCmd(&f),
		newAgentListCmd(&f),
		newAgentShowCmd(&f),
		newAgentReasonCmd(&f, "rotate", "Issue the agent a new card now (the old one closes after the grace period)"),
		newAgentReasonCmd(&f, "freeze", "Freeze the agent's card at the issuer"),
		newAgentReasonCmd(&f, "unfreeze", "Unfreeze the agent's card (or issue a new one if it was revoked)"),
		newAgentReasonCmd(&f, "retire", "Close every card of the agent and end its workflow"),
		newAgentSetBudgetCmd(&f),
		newAgentCredentialsCmd(&f),
	)
	return cmd
}

func newAgentListCmd(f *ctlFlags) *cobra.Command {
	var status, iss, query string
	var all bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List agents (from Temporal's visibility store)",
		Example: `  cardwarden agent list
  cardwarden agent list --status frozen --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageError{fmt.Errorf("--limit must not be negative")}
			}
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				q := url.Values{}
				for k, v := range map[string]string{"status": status, "issuer": iss} {
					if v != "" {
						q.Set(k, v)
					}
				}
				if all {
					q.Set("include_closed", "true")
				}
				if query != "" {
					return usageError{fmt.Errorf("--query is not supported through the API; use --status, --issuer or --all (or the Temporal CLI)")}
				}
				agents := []starter.AgentSummary{}
				for {
					var page struct {
						Agents  []starter.AgentSummary `json:"agents"`
						HasMore bool                   `json:"has_more"`
					}
					q.Set("limit", "1000")
					if err := c.get(ctx, "/v1/agents", q, &page); err != nil {
						return err
					}
					agents = append(agents, page.Agents...)
					if !page.HasMore || len(page.Agents) == 0 || (limit > 0 && len(agents) >= limit) {
						break
					}
					q.Set("starting_after", page.Agents[len(page.Agents)-1].AgentID)
				}
				if limit > 0 && len(agents) > limit {
					agents = agents[:limit]
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), map[string]any{"agents": agents})
				}
				tw := table(cmd.OutOrStdout())
				fmt.Fprintln(tw, "AGENT\tSTATUS\tISSUER\tWORKFLOW\tSTARTED")
				for _, a := range agents {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.AgentID, a.Status, a.Issuer, a.WorkflowStatus, a.StartedAt.Format(time.RFC3339))
				}
				if len(agents) == 0 {
					fmt.Fprintln(tw, "(no agents)")
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only agents with this status: active, frozen, revoked, retired")
	cmd.Flags().StringVar(&iss, "issuer", "", "only agents on this issuer")
	cmd.Flags().BoolVar(&all, "all", false, "include agents whose workflow has ended (retired)")
	cmd.Flags().StringVar(&query, "query", "", "not supported through the API: use the Temporal CLI's workflow list --query")
	_ = cmd.Flags().MarkHidden("query")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many agents (0: all)")
	return cmd
}

func newAgentShowCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an agent's state: status, card (last4 only), budget, schedule",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var st workflows.StateView
				if err := c.get(ctx, agentPath(args[0], ""), nil, &st); err != nil {
					return err
				}
				return printState(cmd.OutOrStdout(), f.json, st)
			})
		},
	}
}

func printState(w io.Writer, asJSON bool, st workflows.StateView) error {
	if asJSON {
		return printJSON(w, st)
	}
	tw := table(w)
	fmt.Fprintf(tw, "agent\t%s\n", st.AgentID)
	if st.Label != "" {
		fmt.Fprintf(tw, "label\t%s\n", st.Label)
	}
	status := string(st.Status)
	if st.StatusReason != "" {
		status += " (" + st.StatusReason + ")"
	}
	fmt.Fprintf(tw, "status\t%s\n", status)
	fmt.Fprintf(tw, "issuer\t%s\n", st.Issuer)
	if c := st.Card; c != nil {
		fmt.Fprintf(tw, "card\t****%s  %s  generation %d  %s\n", c.Last4, c.ID, c.Generation, c.Status)
		fmt.Fprintf(tw, "\tissued %s, expires %s, rotates %s\n", ts(c.IssuedAt), ts(c.ExpiresAt), ts(c.RotateAt))
	} else {
		note := "none"
		if st.IssuePending {
			note = "none (issue pending, retrying)"
		}
		fmt.Fprintf(tw, "card\t%s\n", note)
	}
	for _, c := range st.ClosingCards {
		closeAt := ""
		if c.CloseAt != nil {
			closeAt = ts(*c.CloseAt)
		}
		fmt.Fprintf(tw, "closing\t****%s  %s  generation %d, closes %s\n", c.Last4, c.ID, c.Generation, closeAt)
	}
	b := st.Budget
	fmt.Fprintf(tw, "today (%s)\tspent %s of %s %s, %s left\n", b.Day, b.SpentTodayUSD, b.DailyLimitUSD, b.Currency, b.RemainingTodayUSD)
	if b.OverspendTodayUSD > 0 {
		fmt.Fprintf(tw, "overspend\t%s %s today\n", b.OverspendTodayUSD, b.Currency)
	}
	if b.MonthlyLimitUSD != nil {
		left := ""
		if b.RemainingMonthUSD != nil {
			left = ", " + b.RemainingMonthUSD.String() + " left"
		}
		fmt.Fprintf(tw, "this month\tspent %s of %s %s%s\n", b.SpentMonthUSD, *b.MonthlyLimitUSD, b.Currency, left)
	}
	// A retired agent has nothing coming: its workflow has ended.
	retired := st.Status == workflows.StatusRetired
	if !retired {
		fmt.Fprintf(tw, "next reset\t%s (%s)\n", ts(st.NextReset), st.Timezone)
	}
	if st.NextRotation != nil && !retired {
		fmt.Fprintf(tw, "next rotation\t%s\n", ts(*st.NextRotation))
	}
	if st.RetireAt != nil {
		fmt.Fprintf(tw, "retires\t%s\n", ts(*st.RetireAt))
	}
	fmt.Fprintf(tw, "counts\t%d rotations, %d reissues, %d resets, %d freezes, %d revocations, %d events\n",
		st.Rotations, st.Reissues, st.Resets, st.Freezes, st.Revocations, st.SignalsTotal)
	for _, d := range st.RecentDeclines {
		fmt.Fprintf(tw, "declined\t%s  %s %s  %s  %s  %s\n", ts(d.At), d.AmountUSD, b.Currency, d.Reason, d.Merchant, d.CardID)
	}
	return tw.Flush()
}

func newAgentReasonCmd(f *ctlFlags, name, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var st workflows.StateView
				if err := c.post(ctx, agentPath(args[0], name), workflows.ReasonRequest{Reason: reason, Actor: actor()}, &st); err != nil {
					return err
				}
				return printState(cmd.OutOrStdout(), f.json, st)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

// agentPath is the API path of an agent (and one of its actions). The id is escaped: a bad
// one is the API's to refuse (404), never a different path.
func agentPath(id, action string) string {
	p := "/v1/agents/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func newAgentSetBudgetCmd(f *ctlFlags) *cobra.Command {
	return newSetBudgetCmd(f, "Change the agent's daily and/or monthly limit (applied to the card at once)",
		`  cardwarden agent set-budget support-bot --daily-limit 40 --reason "quiet week"`,
		func(id string) string { return agentPath(id, "budget") }, printState)
}

// newSetBudgetCmd is the set-budget command of agents and teams: the same flags, posted to
// path(ID), the answer printed by print.
func newSetBudgetCmd[T any](f *ctlFlags, short, example string, path func(id string) string, print func(io.Writer, bool, T) error) *cobra.Command {
	var daily, monthly, reason string
	var clearMonthly bool
	cmd := &cobra.Command{
		Use:     "set-budget ID",
		Short:   short,
		Example: example,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := budgetRequest(daily, monthly, clearMonthly, reason)
			if err != nil {
				return err
			}
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var out T
				if err := c.post(ctx, path(args[0]), req, &out); err != nil {
					return err
				}
				return print(cmd.OutOrStdout(), f.json, out)
			})
		},
	}
	cmd.Flags().StringVar(&daily, "daily-limit", "", "new daily limit in USD")
	cmd.Flags().StringVar(&monthly, "monthly-limit", "", "new monthly cap in USD")
	cmd.Flags().BoolVar(&clearMonthly, "clear-monthly-limit", false, "remove the monthly cap")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

// budgetRequest reads the set-budget flags of an agent or a team.
func budgetRequest(daily, monthly string, clearMonthly bool, reason string) (workflows.BudgetRequest, error) {
	req := workflows.BudgetRequest{Reason: reason, Actor: actor(), ClearMonthlyLimit: clearMonthly}
	for _, a := range []struct {
		flag, value string
		dst         **money.Amount
	}{{"--daily-limit", daily, &req.DailyLimitUSD}, {"--monthly-limit", monthly, &req.MonthlyLimitUSD}} {
		if a.value == "" {
			continue
		}
		m, err := money.Parse(a.value)
		if err != nil {
			return req, usageError{fmt.Errorf("%s %q: %w", a.flag, a.value, err)}
		}
		amt := money.Amount(m)
		*a.dst = &amt
	}
	if err := req.Validate(); err != nil {
		return req, usageError{fmt.Errorf("%w (use --daily-limit, --monthly-limit or --clear-monthly-limit)", err)}
	}
	return req, nil
}
