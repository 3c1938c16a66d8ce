package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

func newAgentCreateCmd(f *ctlFlags) *cobra.Command {
	var (
		id, label, iss, tz, resetCron, rotateCron, grace, ttl, spreadWindow, retireAt, alertURL, policyFile string
		daily, monthly, team                                                                                string
	)
	cmd := &cobra.Command{
		Use:   "create --id ID --daily-limit USD",
		Short: "Create an agent: start its workflow (issuing its card) and print its credential-pull token",
		Long: `Create the agent through the API (POST /v1/agents): its AgentCard workflow starts and issues
its card, and the agent gets a credential-pull token, all in one request or not at all. The token is printed only this once and stored as a hash: hand it to
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
				"card-ttl": "card_ttl", "retire-at": "retire_at", "team": "team_id", "reset-spread": "reset_spread",
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
			// The policy's shape is checked here, so a typo is a usage error naming the flag; its
			// URLs are the server's to judge (its outbound rules decide).
			rules, err := devOutboundRules()
			if err != nil {
				return err
			}
			_, err = workflows.ParsePolicyWith(raw, rules)
			if err != nil {
				return usageError{fmt.Errorf("invalid policy: %w%s", err, flagHint(starter.FieldOf(err)))}
			}
			return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
				var created struct {
					Agent starter.Agent `json:"agent"`
					Token string        `json:"token"`
				}
				// One request: the API starts the workflow and issues the token together, and
				// the call is retried under one Idempotency-Key, so a lost answer neither
				// leaves a half-created agent nor creates it twice.
				if err := c.post(ctx, "/v1/agents", json.RawMessage(raw), &created); err != nil {
					return err
				}
				return printCreated(cmd.OutOrStdout(), f.json, created.Agent, created.Token)
			})
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
	fs.StringVar(&spreadWindow, "reset-spread", "", "window after each reset instant over which a fleet's agents apply it (default 10s; a large fleet: agents / (0.9 × issuer req/s))")
	fs.StringVar(&retireAt, "retire-at", "", "RFC 3339 time at which the agent retires")
	fs.StringVar(&team, "team", "", "the team whose budget the agent shares (cardwarden team create)")
	fs.StringVar(&alertURL, "alert-webhook", "", "URL that receives the agent's alerts")
	fs.StringVar(&policyFile, "policy", "", "policy JSON file (- for stdin); flags override its fields")
	return cmd
}

// flagHint maps a policy field back to the flag that sets it.
func flagHint(field string) string {
	flags := map[string]string{
		"policy.agent_id": "--id", "policy.daily_limit_usd": "--daily-limit", "policy.monthly_limit_usd": "--monthly-limit",
		"policy.timezone": "--timezone", "policy.reset_cron": "--reset-cron", "policy.rotate_cron": "--rotate-cron",
		"policy.rotation_grace": "--rotation-grace", "policy.card_ttl": "--card-ttl", "policy.retire_at": "--retire-at",
		"policy.issuer": "--issuer", "policy.label": "--label", "policy.alerts.webhook_url": "--alert-webhook",
		"policy.team_id": "--team", "policy.reset_spread": "--reset-spread",
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

func printCreated(w io.Writer, asJSON bool, a starter.Agent, tok string) error {
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
	default:
		fmt.Fprintf(tw, "token\talready issued, not shown again; replace it with: cardwarden agent credentials %s --rotate-token\n", a.AgentID)
	}
	return tw.Flush()
}
