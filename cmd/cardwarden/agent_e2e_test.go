package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Every `cardwarden agent` command against a real Temporal server, worker, simulator and API.
func TestCLIAgentCommands(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()

	// Usage errors exit 2 before touching anything.
	_, errOut, code := e.cli("agent", "create", "--daily-limit", "50")
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "policy.agent_id")
	require.Contains(t, errOut, "--id")
	_, errOut, code = e.cli("agent", "create", "--id", "cli-bot", "--daily-limit", "50", "--timezone", "Mars/Base")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "policy.timezone")
	_, _, code = e.cli("agent", "frobnicate")
	require.Equal(t, exitUsage, code)
	_, _, code = e.cli("agent", "show")
	require.Equal(t, exitUsage, code)
	_, _, code = e.cli("agent", "create", "--id", "x", "--daily-limit", "5", "--no-such-flag")
	require.Equal(t, exitUsage, code)

	// create prints the agent and its token, once.
	var created struct {
		Agent   starter.Agent `json:"agent"`
		Token   string        `json:"token"`
		Created bool          `json:"created"`
	}
	e.cliJSON(&created, "agent", "create", "--id", "cli-bot", "--daily-limit", "50", "--label", "support")
	require.True(t, created.Created)
	require.True(t, strings.HasPrefix(created.Token, starter.TokenPrefix))
	require.Equal(t, "50.00", created.Agent.Policy.DailyLimitUSD.String())
	row, err := e.store.GetAgent(ctx, "cli-bot")
	require.NoError(t, err)
	require.Equal(t, starter.HashToken(created.Token), row.TokenHash, "only the token's hash is stored")
	token := created.Token

	out, _, code := e.cli("agent", "create", "--id", "cli-bot", "--daily-limit", "50", "--label", "support")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "already running")
	require.NotContains(t, out, token, "the token is never shown again")
	_, errOut, code = e.cli("agent", "create", "--id", "cli-bot", "--daily-limit", "75", "--label", "support")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "daily_limit_usd")

	st := e.waitCard("cli-bot", 1)

	// list (visibility is eventually consistent) and show.
	require.Eventually(t, func() bool {
		out, _, code := e.cli("agent", "list")
		return code == 0 && strings.Contains(out, "cli-bot") && strings.Contains(out, "active")
	}, 30*time.Second, 100*time.Millisecond)
	var list struct {
		Agents []starter.AgentSummary `json:"agents"`
	}
	e.cliJSON(&list, "agent", "list", "--status", "frozen")
	require.Empty(t, list.Agents)
	_, _, code = e.cli("agent", "list", "--status", "sleepy")
	require.Equal(t, exitUsage, code)

	out, _, code = e.cli("agent", "show", "cli-bot")
	require.Equal(t, 0, code)
	require.Contains(t, out, "****"+st.Card.Last4)
	require.Contains(t, out, "spent 0.00 of 50.00 USD")
	_, _, code = e.cli("agent", "show", "ghost")
	require.Equal(t, exitNotFound, code)

	// credentials with the agent's own token, and a wrong one.
	var card map[string]any
	e.cliJSON(&card, "agent", "credentials", "cli-bot", "--token", token)
	number, cvc := e.reveal(st.Card.ID)
	require.Equal(t, number, card["number"])
	require.Equal(t, cvc, card["cvc"])
	out, _, code = e.cli("agent", "credentials", "cli-bot", "--token", token)
	require.Equal(t, 0, code)
	require.Contains(t, out, number)
	_, errOut, code = e.cli("agent", "credentials", "cli-bot", "--token", "cwa_wrong")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "401")
	_, _, code = e.cli("agent", "credentials", "cli-bot")
	require.Equal(t, exitUsage, code)

	// freeze, freeze again (rejected), unfreeze.
	var view workflows.StateView
	e.cliJSON(&view, "agent", "freeze", "cli-bot", "--reason", "investigating")
	require.Equal(t, workflows.StatusFrozen, view.Status)
	_, errOut, code = e.cli("agent", "freeze", "cli-bot")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "already frozen")
	e.cliJSON(&view, "agent", "unfreeze", "cli-bot")
	require.Equal(t, workflows.StatusActive, view.Status)
	_, _, code = e.cli("agent", "unfreeze", "ghost")
	require.Equal(t, exitNotFound, code)

	// set-budget.
	e.cliJSON(&view, "agent", "set-budget", "cli-bot", "--daily-limit", "40", "--reason", "quiet week")
	require.Equal(t, "40.00", view.Budget.DailyLimitUSD.String())
	_, _, code = e.cli("agent", "set-budget", "cli-bot", "--daily-limit", "abc")
	require.Equal(t, exitUsage, code)
	_, _, code = e.cli("agent", "set-budget", "cli-bot")
	require.Equal(t, exitUsage, code)

	// rotate: a new generation, and the credentials follow it.
	e.cliJSON(&view, "agent", "rotate", "cli-bot", "--reason", "test")
	require.Equal(t, 2, view.Generation)
	require.Len(t, view.ClosingCards, 1)
	e.cliJSON(&card, "agent", "credentials", "cli-bot", "--token", token)
	require.Equal(t, view.Card.ID, card["card_id"])

	// rotate the token: the old one stops working.
	var rotated map[string]string
	e.cliJSON(&rotated, "agent", "credentials", "cli-bot", "--rotate-token")
	require.NotEqual(t, token, rotated["token"])
	_, _, code = e.cli("agent", "credentials", "cli-bot", "--token", token)
	require.Equal(t, exitFailure, code)
	e.cliJSON(&card, "agent", "credentials", "cli-bot", "--token", rotated["token"])

	// retire, then anything else is refused.
	e.cliJSON(&view, "agent", "retire", "cli-bot", "--reason", "done")
	require.Equal(t, workflows.StatusRetired, view.Status)
	_, errOut, code = e.cli("agent", "rotate", "cli-bot")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "rejected")
	require.Eventually(t, func() bool {
		out, _, code := e.cli("agent", "list", "--all")
		return code == 0 && strings.Contains(out, "retired")
	}, 30*time.Second, 100*time.Millisecond)

	// The human actions are in the audit log with the CLI as actor.
	audit, err := e.store.ListAudit(ctx, "cli-bot", 100)
	require.NoError(t, err)
	actions := map[string]bool{}
	for _, a := range audit {
		actions[a.Action] = true
	}
	for _, want := range []string{"token.issue", "token.rotate", "freeze", "unfreeze", "rotate", "set-budget", "retire", "card.reveal", "card.reveal_denied"} {
		require.True(t, actions[want], "audit log lacks %s: %v", want, actions)
	}
}
