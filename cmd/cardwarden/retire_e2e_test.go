package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/workflows"
)

// Issue 12, item 12: after `retire` and a new `agent create` with the same id, the old token
// pulled the new card and the new agent got no token ("already issued, not shown again").
// Retirement revokes the token; the re-created agent gets a new one, and only that one works.
func TestRetiredAgentsTokenDiesAndTheNewAgentGetsANewOne(t *testing.T) {
	e := newE2E(t)
	adm := e2eAdminToken
	policy := []byte(`{"agent_id":"phoenix","daily_limit_usd":20}`)
	status, m := e.httpDo("POST", "/v1/agents", adm, policy)
	require.Equal(t, 201, status, "%v", m)
	oldToken := m["token"].(string)
	e.waitCard("phoenix", 1)
	status, _ = e.httpDo("GET", "/v1/agents/phoenix/card", oldToken, nil)
	require.Equal(t, 200, status)

	status, m = e.httpDo("POST", "/v1/agents/phoenix/retire", adm, []byte(`{"reason":"done"}`))
	require.Equal(t, 200, status, "%v", m)
	require.Eventually(t, func() bool {
		row, err := e.store.GetAgent(t.Context(), "phoenix")
		return err == nil && row.Status == string(workflows.StatusRetired) && row.TokenHash == ""
	}, 60*time.Second, 100*time.Millisecond, "retirement revokes the token")
	status, _ = e.httpDo("GET", "/v1/agents/phoenix/card", oldToken, nil)
	require.Equal(t, 401, status, "the retired agent's token")

	// The workflow ends after retirement; then the same id can be created again.
	var newToken string
	require.Eventually(t, func() bool {
		status, m = e.httpDo("POST", "/v1/agents", adm, policy)
		if status != 201 {
			return false
		}
		newToken, _ = m["token"].(string)
		return true
	}, 60*time.Second, 200*time.Millisecond, "re-create after retirement (last %d %v)", status, m)
	require.NotEmpty(t, newToken, "a re-created agent gets a new token, shown once")
	require.NotEqual(t, oldToken, newToken)

	e.waitState("phoenix", "a new card", func(st workflows.StateView) bool {
		return st.Status == workflows.StatusActive && st.Card != nil
	})
	require.Eventually(t, func() bool {
		status, _ := e.httpDo("GET", "/v1/agents/phoenix/card", newToken, nil)
		return status == 200
	}, 60*time.Second, 100*time.Millisecond, "the new token pulls the new card")
	status, _ = e.httpDo("GET", "/v1/agents/phoenix/card", oldToken, nil)
	require.Equal(t, 401, status, "the old token does not pull the new card")
}
