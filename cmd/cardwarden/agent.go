package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// ctlFlags are the connection and output flags of the agent and schedule commands. Their
// defaults reach `cardwarden dev` (make dev) on this machine without any flag.
type ctlFlags struct {
	temporal config.Temporal
	dbURL    string
	apiURL   string
	json     bool
	timeout  time.Duration
}

func bindCtlFlags(fs *pflag.FlagSet, f *ctlFlags) {
	config.BindTemporal(fs, &f.temporal)
	bindDatabaseURL(fs, &f.dbURL)
	fs.StringVar(&f.apiURL, "api-url", config.Env("CARDWARDEN_API_URL", "http://"+config.DefaultHTTPListen), "cardwarden HTTP API base URL (env CARDWARDEN_API_URL)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table, for scripts")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for the agent's workflow (a rotation waits for the issuer)")
}

// session is one command's connections.
type session struct {
	tc    client.Client
	store *store.Store
	ctl   *starter.Client
}

func (s *session) close() {
	if s.tc != nil {
		s.tc.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// connect dials Temporal (with the payload codec when CARDWARDEN_CODEC_KEY is set, so this
// client reads and writes what the workers do) and, when withStore is set, opens the database.
func (f *ctlFlags) connect(cmd *cobra.Command, withStore bool) (*session, error) {
	ctx := cmd.Context()
	// The SDK logs to stdout by default, which would corrupt --json output.
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cdc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	opts, err := f.temporal.ClientOptions(logger)
	if err != nil {
		return nil, usageError{err}
	}
	opts.DataConverter = codec.DataConverter(cdc)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tc, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w (is `cardwarden dev` running? set --address or TEMPORAL_ADDRESS)",
			f.temporal.Address, f.temporal.Namespace, err)
	}
	s := &session{tc: tc}
	if withStore {
		st, err := openStore(ctx, f.dbURL, false, logger)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%w (the agent's token is stored there; run `cardwarden migrate`, or use --database-url)", err)
		}
		s.store = st
	}
	rules, err := outboundRules()
	if err != nil {
		s.close()
		return nil, err
	}
	vlt, err := optionalVault()
	if err != nil {
		s.close()
		return nil, err
	}
	s.ctl = starter.New(tc, starter.Options{Store: s.store, Logger: logger, DataConverter: opts.DataConverter,
		Outbound: rules, Vault: vlt})
	return s, nil
}

// cliErr gives control errors their exit codes: not found 3, invalid input 2, the rest 1.
func cliErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, starter.ErrAgentNotFound), errors.Is(err, starter.ErrScheduleNotFound):
		return notFoundError{err}
	case errors.Is(err, starter.ErrInvalidPolicy), errors.Is(err, starter.ErrInvalidRequest):
		return usageError{err}
	default:
		return err
	}
}

// exactArgs wants the named positional arguments, as a usage error otherwise.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageError{fmt.Errorf("%s wants %s, got %d argument(s)\n\n%s", cmd.CommandPath(), strings.Join(names, " "), len(args), cmd.UsageString())}
		}
		return nil
	}
}

// groupCmd is a parent command: a missing or unknown subcommand is a usage error.
func groupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Long: long, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %s\n\n%s", args[0], cmd.CommandPath(), cmd.UsageString())}
			}
			return usageError{fmt.Errorf("%s needs a subcommand\n\n%s", cmd.CommandPath(), cmd.UsageString())}
		},
	}
}

// actor names the person running the CLI in the audit log.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func newAgentCmd() *cobra.Command {
	var f ctlFlags
	cmd := groupCmd("agent", "Create, inspect and control agents and their cards",
		`Drive agents' AgentCard workflows through Temporal: create an agent (and its credential-pull
token), list and show agents, rotate, freeze, unfreeze, change the budget, retire, and pull an
agent's card with its token. Defaults reach `+"`cardwarden dev`"+` on this machine.

Exit codes: 0 ok, 1 failure (Temporal or the API refused or is unreachable), 2 usage error
(bad flag, invalid policy or request), 3 agent not found.`)
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

func newAgentCreateCmd(f *ctlFlags) *cobra.Command {
	var (
		id, label, iss, tz, resetCron, rotateCron, grace, ttl, retireAt, alertURL, policyFile string
		daily, monthly                                                                        string
		noToken                                                                               bool
	)
	cmd := &cobra.Command{
		Use:   "create --id ID --daily-limit USD",
		Short: "Create an agent: start its workflow (issuing its card) and print its credential-pull token",
		Long: `Start the agent's AgentCard workflow, which issues its card, and give the agent a
credential-pull token. The token is printed only this once and stored as a hash: hand it to
the agent, which pulls its card with GET /v1/agents/{id}/card (or ` + "`cardwarden agent credentials`" + `).

Creating an agent that already runs with the same policy changes nothing and prints no token;
with a different policy it fails (use set-budget, or retire and create again).`,
		Example: `  cardwarden agent create --id support-bot --daily-limit 50
  cardwarden agent create --id research --daily-limit 25.50 --monthly-limit 400 --timezone Europe/Berlin --json
  cardwarden agent create --policy policy.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc := map[string]any{}
			if policyFile != "" {
				b, err := readFileOrStdin(cmd, policyFile)
				if err != nil {
					return usageError{err}
				}
				if err := json.Unmarshal(b, &doc); err != nil {
					return usageError{fmt.Errorf("--policy %s: not a JSON object: %w", policyFile, err)}
				}
			}
			for flag, field := range map[string]string{
				"id": "agent_id", "label": "label", "issuer": "issuer", "daily-limit": "daily_limit_usd", "monthly-limit": "monthly_limit_usd",
				"timezone": "timezone", "reset-cron": "reset_cron", "rotate-cron": "rotate_cron", "rotation-grace": "rotation_grace",
				"card-ttl": "card_ttl", "retire-at": "retire_at",
			} {
				if fl := cmd.Flags().Lookup(flag); fl.Changed {
					doc[field] = fl.Value.String()
				}
			}
			if alertURL != "" {
				alerts, _ := doc["alerts"].(map[string]any)
				if alerts == nil {
					alerts = map[string]any{}
				}
				alerts["webhook_url"] = alertURL
				doc["alerts"] = alerts
			}
			raw, _ := json.Marshal(doc)
			rules, err := outboundRules()
			if err != nil {
				return err
			}
			p, err := workflows.ParsePolicyWith(raw, rules)
			if err != nil {
				return usageError{fmt.Errorf("invalid policy: %w%s", err, flagHint(starter.FieldOf(err)))}
			}
			s, err := f.connect(cmd, !noToken)
			if err != nil {
				return err
			}
			defer s.close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			var a starter.Agent
			var tok string
			if noToken {
				a, err = s.ctl.StartAgent(ctx, p)
			} else {
				a, tok, err = s.ctl.CreateAgent(ctx, p, actor())
			}
			if err != nil {
				return cliErr(err)
			}
			return printCreated(cmd.OutOrStdout(), f.json, a, tok, noToken)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&id, "id", "", "agent id (required unless in --policy)")
	fs.StringVar(&daily, "daily-limit", "", "daily budget in USD, e.g. 50 or 12.50 (required unless in --policy)")
	fs.StringVar(&monthly, "monthly-limit", "", "optional monthly cap in USD")
	fs.StringVar(&label, "label", "", "label (a team, say; fleet rotation can select by it)")
	fs.StringVar(&iss, "issuer", "", "issuer: sim (default), stripe or aipaymentproxy")
	fs.StringVar(&tz, "timezone", "", "IANA time zone of the daily reset (default UTC)")
	fs.StringVar(&resetCron, "reset-cron", "", `daily reset cron spec (default "0 0 * * *")`)
	fs.StringVar(&rotateCron, "rotate-cron", "", `rotation cron spec, or "off" (default "0 3 * * MON")`)
	fs.StringVar(&grace, "rotation-grace", "", "how long a replaced card stays open (default 1h)")
	fs.StringVar(&ttl, "card-ttl", "", "card lifetime (default 720h)")
	fs.StringVar(&retireAt, "retire-at", "", "RFC 3339 time at which the agent retires")
	fs.StringVar(&alertURL, "alert-webhook", "", "URL that receives the agent's alerts")
	fs.StringVar(&policyFile, "policy", "", "policy JSON file (- for stdin); flags override its fields")
	fs.BoolVar(&noToken, "no-token", false, "start the agent without touching the database (issue a token later through the API)")
	return cmd
}

// flagHint maps a policy field back to the flag that sets it.
func flagHint(field string) string {
	flags := map[string]string{
		"policy.agent_id": "--id", "policy.daily_limit_usd": "--daily-limit", "policy.monthly_limit_usd": "--monthly-limit",
		"policy.timezone": "--timezone", "policy.reset_cron": "--reset-cron", "policy.rotate_cron": "--rotate-cron",
		"policy.rotation_grace": "--rotation-grace", "policy.card_ttl": "--card-ttl", "policy.retire_at": "--retire-at",
		"policy.issuer": "--issuer", "policy.label": "--label", "policy.alerts.webhook_url": "--alert-webhook",
	}
	if fl, ok := flags[field]; ok {
		return " (set it with " + fl + ")"
	}
	return ""
}

func readFileOrStdin(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's own --policy-file, read with the operator's permissions
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return b, nil
}

func printCreated(w io.Writer, asJSON bool, a starter.Agent, tok string, noToken bool) error {
	if asJSON {
		out := map[string]any{"agent": a, "created": a.Created}
		if tok != "" {
			out["token"] = tok
		}
		return printJSON(w, out)
	}
	tw := table(w)
	state := "created"
	if !a.Created {
		state = "already running (unchanged)"
	}
	fmt.Fprintf(tw, "agent\t%s\n", a.AgentID)
	fmt.Fprintf(tw, "status\t%s\n", state)
	fmt.Fprintf(tw, "workflow\t%s (run %s)\n", a.WorkflowID, a.RunID)
	fmt.Fprintf(tw, "issuer\t%s\n", a.Policy.Issuer)
	fmt.Fprintf(tw, "daily limit\t%s %s (resets %q %s)\n", a.Policy.DailyLimitUSD, a.Policy.Currency, a.Policy.ResetCron, a.Policy.Timezone)
	switch {
	case tok != "":
		fmt.Fprintf(tw, "token\t%s\n", tok)
		fmt.Fprintf(tw, "\tshown only now; the agent pulls its card with it:\n")
		fmt.Fprintf(tw, "\tcardwarden agent credentials %s --token <token>\n", a.AgentID)
	case noToken:
		fmt.Fprintf(tw, "token\tnot issued (--no-token); POST /v1/agents/%s/token issues one\n", a.AgentID)
	default:
		fmt.Fprintf(tw, "token\talready issued, not shown again; replace it with: cardwarden agent credentials %s --rotate-token\n", a.AgentID)
	}
	return tw.Flush()
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
			s, err := f.connect(cmd, false)
			if err != nil {
				return err
			}
			defer s.close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			agents, err := s.ctl.ListAgents(ctx, starter.ListOptions{Status: workflows.Status(status), Issuer: iss, IncludeClosed: all, Query: query, Limit: limit})
			if err != nil {
				return cliErr(err)
			}
			if f.json {
				if agents == nil {
					agents = []starter.AgentSummary{}
				}
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
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only agents with this status: active, frozen, revoked, retired")
	cmd.Flags().StringVar(&iss, "issuer", "", "only agents on this issuer")
	cmd.Flags().BoolVar(&all, "all", false, "include agents whose workflow has ended (retired)")
	cmd.Flags().StringVar(&query, "query", "", "extra Temporal visibility clause, e.g. \"StartTime > '2026-01-01T00:00:00Z'\"")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many agents (0: all)")
	return cmd
}

func newAgentShowCmd(f *ctlFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an agent's state: status, card (last4 only), budget, schedule",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := f.connect(cmd, false)
			if err != nil {
				return err
			}
			defer s.close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := s.ctl.State(ctx, args[0])
			if err != nil {
				return cliErr(err)
			}
			return printState(cmd.OutOrStdout(), f.json, st)
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
		fmt.Fprintf(tw, "this month\tspent %s of %s%s\n", b.SpentMonthUSD, *b.MonthlyLimitUSD, left)
	}
	fmt.Fprintf(tw, "next reset\t%s (%s)\n", ts(st.NextReset), st.Timezone)
	if st.NextRotation != nil {
		fmt.Fprintf(tw, "next rotation\t%s\n", ts(*st.NextRotation))
	}
	if st.RetireAt != nil {
		fmt.Fprintf(tw, "retires\t%s\n", ts(*st.RetireAt))
	}
	fmt.Fprintf(tw, "counts\t%d rotations, %d reissues, %d resets, %d freezes, %d revocations, %d events\n",
		st.Rotations, st.Reissues, st.Resets, st.Freezes, st.Revocations, st.SignalsTotal)
	for _, d := range st.RecentDeclines {
		fmt.Fprintf(tw, "declined\t%s  %s %s  %s  %s\n", ts(d.At), d.AmountUSD, d.Reason, d.Merchant, d.CardID)
	}
	return tw.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newAgentReasonCmd(f *ctlFlags, name, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := f.connect(cmd, false)
			if err != nil {
				return err
			}
			defer s.close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			req := workflows.ReasonRequest{Reason: reason, Actor: actor()}
			var st workflows.StateView
			switch name {
			case "rotate":
				st, err = s.ctl.Rotate(ctx, args[0], req)
			case "freeze":
				st, err = s.ctl.Freeze(ctx, args[0], req)
			case "unfreeze":
				st, err = s.ctl.Unfreeze(ctx, args[0], req)
			case "retire":
				st, err = s.ctl.Retire(ctx, args[0], req)
			}
			if err != nil {
				return cliErr(err)
			}
			return printState(cmd.OutOrStdout(), f.json, st)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newAgentSetBudgetCmd(f *ctlFlags) *cobra.Command {
	var daily, monthly, reason string
	var clearMonthly bool
	cmd := &cobra.Command{
		Use:     "set-budget ID",
		Short:   "Change the agent's daily and/or monthly limit (applied to the card at once)",
		Example: `  cardwarden agent set-budget support-bot --daily-limit 40 --reason "quiet week"`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
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
					return usageError{fmt.Errorf("%s %q: %w", a.flag, a.value, err)}
				}
				amt := money.Amount(m)
				*a.dst = &amt
			}
			if err := req.Validate(); err != nil {
				return usageError{fmt.Errorf("%w (use --daily-limit, --monthly-limit or --clear-monthly-limit)", err)}
			}
			s, err := f.connect(cmd, false)
			if err != nil {
				return err
			}
			defer s.close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			st, err := s.ctl.SetBudget(ctx, args[0], req)
			if err != nil {
				return cliErr(err)
			}
			return printState(cmd.OutOrStdout(), f.json, st)
		},
	}
	cmd.Flags().StringVar(&daily, "daily-limit", "", "new daily limit in USD")
	cmd.Flags().StringVar(&monthly, "monthly-limit", "", "new monthly cap in USD")
	cmd.Flags().BoolVar(&clearMonthly, "clear-monthly-limit", false, "remove the monthly cap")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newAgentCredentialsCmd(f *ctlFlags) *cobra.Command {
	var token string
	var rotate bool
	cmd := &cobra.Command{
		Use:   "credentials ID",
		Short: "Pull the agent's current card (number, CVC, expiry) with its token, or replace its token",
		Long: `Pull the agent's current card from the cardwarden API (GET /v1/agents/{id}/card) with the
agent's own credential-pull token, exactly as the agent itself would. The reveal is rate
limited and written to the audit log.

With --rotate-token, replace the agent's token instead (through the database) and print the
new one; the old one stops working at once.`,
		Example: `  cardwarden agent credentials support-bot --token cwa_…
  CARDWARDEN_AGENT_TOKEN=cwa_… cardwarden agent credentials support-bot --json
  cardwarden agent credentials support-bot --rotate-token`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if rotate {
				s, err := f.connect(cmd, true)
				if err != nil {
					return err
				}
				defer s.close()
				ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
				defer cancel()
				tok, err := s.ctl.RotateToken(ctx, id, actor())
				if err != nil {
					return cliErr(err)
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), map[string]string{"agent_id": id, "token": tok})
				}
				tw := table(cmd.OutOrStdout())
				fmt.Fprintf(tw, "agent\t%s\ntoken\t%s\n\tshown only now; the old token no longer works\n", id, tok)
				return tw.Flush()
			}
			if token == "" {
				return usageError{errors.New("give the agent's token with --token or CARDWARDEN_AGENT_TOKEN (or replace it with --rotate-token)")}
			}
			return pullCard(cmd, f, id, token)
		},
	}
	config.SecretVar(cmd.Flags(), &token, "token", "CARDWARDEN_AGENT_TOKEN", "", "the agent's credential-pull token")
	cmd.Flags().BoolVar(&rotate, "rotate-token", false, "replace the agent's token and print the new one")
	return cmd
}

// pullCard calls the API as the agent does.
func pullCard(cmd *cobra.Command, f *ctlFlags, id, token string) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	url := strings.TrimRight(f.apiURL, "/") + "/v1/agents/" + id + "/card"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError{fmt.Errorf("--api-url %q: %w", f.apiURL, err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the cardwarden API at %s: %w (is `cardwarden dev` or `cardwarden serve` running? set --api-url)", f.apiURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		err := fmt.Errorf("credentials of agent %s: %s (HTTP %d %s)", id, e.Error.Message, resp.StatusCode, e.Error.Code)
		if resp.StatusCode == http.StatusNotFound {
			return notFoundError{err}
		}
		return err
	}
	if f.json {
		_, err := cmd.OutOrStdout().Write(body)
		return err
	}
	var c struct {
		AgentID    string `json:"agent_id"`
		CardID     string `json:"card_id"`
		Generation int    `json:"generation"`
		Status     string `json:"status"`
		Number     string `json:"number"`
		CVC        string `json:"cvc"`
		ExpMonth   int    `json:"exp_month"`
		ExpYear    int    `json:"exp_year"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("credentials of agent %s: unexpected answer from the API", id)
	}
	tw := table(cmd.OutOrStdout())
	fmt.Fprintf(tw, "agent\t%s\n", c.AgentID)
	fmt.Fprintf(tw, "card\t%s (generation %d, %s)\n", c.CardID, c.Generation, c.Status)
	fmt.Fprintf(tw, "number\t%s\n", c.Number)
	fmt.Fprintf(tw, "cvc\t%s\n", c.CVC)
	fmt.Fprintf(tw, "expires\t%02d/%d\n", c.ExpMonth, c.ExpYear)
	return tw.Flush()
}
