package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/config"
)

func newAgentCredentialsCmd(f *ctlFlags) *cobra.Command {
	var token string
	var rotate bool
	cmd := &cobra.Command{
		Use:   "credentials ID",
		Short: "Pull the agent's current card (number, CVC, expiry) with its token, or replace its token",
		Long: `Pull the agent's current card from the cardwarden API (GET /v1/agents/{id}/card) with the
agent's own credential-pull token, exactly as the agent itself would. The reveal is rate
limited and written to the audit log.

With --rotate-token, replace the agent's token instead (POST /v1/agents/{id}/token, with the
admin token) and print the new one; the old one stops working at once.`,
		Example: `  cardwarden agent credentials support-bot --token cwa_…
  CARDWARDEN_AGENT_TOKEN=cwa_… cardwarden agent credentials support-bot --json
  cardwarden agent credentials support-bot --rotate-token`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if rotate {
				return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
					var out struct {
						Token string `json:"token"`
					}
					if err := c.post(ctx, agentPath(id, "token"), nil, &out); err != nil {
						return err
					}
					tok := out.Token
					if f.json {
						return printJSON(cmd.OutOrStdout(), map[string]string{"agent_id": id, "token": tok})
					}
					tw := table(cmd.OutOrStdout())
					fmt.Fprintf(tw, "agent\t%s\ntoken\t%s\n\tshown only now; the old token no longer works\n", id, tok)
					return tw.Flush()
				})
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

// pullCard calls the API as the agent does, with the agent's own token.
func pullCard(cmd *cobra.Command, f *ctlFlags, id, token string) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	var body json.RawMessage
	ac := newAPIClient(f.apiURL, token)
	ac.retries = 0 // a refused pull is audited; do not repeat it
	if err := cliErr(ac.get(ctx, agentPath(id, "card"), nil, &body)); err != nil {
		return fmt.Errorf("credentials of agent %s: %w", id, err)
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
