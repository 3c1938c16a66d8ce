package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/starter"
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

With --rotate-token, replace the agent's token instead (through the database) and print the
new one; the old one stops working at once.`,
		Example: `  cardwarden agent credentials support-bot --token cwa_…
  CARDWARDEN_AGENT_TOKEN=cwa_… cardwarden agent credentials support-bot --json
  cardwarden agent credentials support-bot --rotate-token`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if rotate {
				return f.withAgents(cmd, true, func(ctx context.Context, ctl *starter.Client) error {
					tok, err := ctl.RotateToken(ctx, id, actor())
					if err != nil {
						return err
					}
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
