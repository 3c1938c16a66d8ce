package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func apiErr(m map[string]any) (code, field string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

// Every endpoint of the management API and the credential pull, on the real stack.
func TestAPIEndToEnd(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	adm := e2eAdminToken

	status, _ := e.httpDo("GET", "/healthz", "", nil)
	require.Equal(t, 200, status)
	status, m := e.httpDo("GET", "/readyz", "", nil)
	require.Equal(t, 200, status, "%v", m)

	// 401 without or with a wrong admin token.
	status, m = e.httpDo("POST", "/v1/agents", "", []byte(`{"agent_id":"api-bot","daily_limit_usd":30}`))
	require.Equal(t, 401, status)
	require.Equal(t, "unauthorized", first(apiErr(m)))
	status, _ = e.httpDo("GET", "/v1/agents", "cwadm_wrong", nil)
	require.Equal(t, 401, status)

	// 422 names the field; nothing is started.
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"api-bot","daily_limit_usd":-3}`))
	require.Equal(t, 422, status)
	code, field := apiErr(m)
	require.Equal(t, "invalid_policy", code)
	require.Equal(t, "policy.daily_limit_usd", field)
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"api-bot","daily_limit_usd":30,"issuer":"visa"}`))
	require.Equal(t, 422, status, "an issuer that is not configured")
	require.Equal(t, "policy.issuer", second(apiErr(m)))
	status, _ = e.httpDo("GET", "/v1/agents/api-bot", adm, nil)
	require.Equal(t, 404, status)

	// 413 for an oversized body.
	status, m = e.httpDo("POST", "/v1/agents", adm, bytes.Repeat([]byte(" "), 65<<10))
	require.Equal(t, 413, status)
	require.Equal(t, "payload_too_large", first(apiErr(m)))

	// 201, then 200 (idempotent), then 409 (different policy).
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"api-bot","daily_limit_usd":30}`))
	require.Equal(t, 201, status, "%v", m)
	token := m["token"].(string)
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"api-bot","daily_limit_usd":"30.00"}`))
	require.Equal(t, 200, status, "%v", m)
	require.Nil(t, m["token"])
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"api-bot","daily_limit_usd":31}`))
	require.Equal(t, 409, status)
	require.Equal(t, "agent_exists", first(apiErr(m)))
	status, m = e.httpDo("POST", "/v1/agents", adm, []byte(`{"agent_id":"other-bot","daily_limit_usd":10}`))
	require.Equal(t, 201, status)
	otherToken := m["token"].(string)

	st := e.waitCard("api-bot", 1)
	e.waitCard("other-bot", 1)

	require.Eventually(t, func() bool {
		status, m := e.httpDo("GET", "/v1/agents", adm, nil)
		agents, _ := m["agents"].([]any)
		return status == 200 && len(agents) == 2
	}, 30*time.Second, 100*time.Millisecond)
	status, _ = e.httpDo("GET", "/v1/agents?status=bogus", adm, nil)
	require.Equal(t, 422, status)

	status, m = e.httpDo("GET", "/v1/agents/api-bot", adm, nil)
	require.Equal(t, 200, status)
	require.Equal(t, "active", m["status"])
	require.Equal(t, st.Card.Last4, m["card"].(map[string]any)["last4"])
	status, m = e.httpDo("GET", "/v1/agents/ghost", adm, nil)
	require.Equal(t, 404, status)
	require.Equal(t, "agent_not_found", first(apiErr(m)))

	// Credential pull: the agent's own token only.
	status, m = e.httpDo("GET", "/v1/agents/api-bot/card", token, nil)
	require.Equal(t, 200, status, "%v", m)
	number, cvc := e.reveal(st.Card.ID)
	require.Equal(t, number, m["number"])
	require.Equal(t, cvc, m["cvc"])
	require.True(t, strings.HasSuffix(number, st.Card.Last4))
	for _, tok := range []string{otherToken, adm, "", "cwa_made_up"} {
		status, m = e.httpDo("GET", "/v1/agents/api-bot/card", tok, nil)
		require.Equal(t, 401, status, "token %q", tok)
		require.Nil(t, m["number"])
	}

	// Updates: 200, 409 when the state forbids, 422 on bad input, 404 on a missing agent.
	status, m = e.httpDo("POST", "/v1/agents/api-bot/freeze", adm, []byte(`{"reason":"investigating"}`))
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "frozen", m["status"])
	status, m = e.httpDo("POST", "/v1/agents/api-bot/freeze", adm, nil)
	require.Equal(t, 409, status)
	require.Equal(t, "rejected", first(apiErr(m)))
	status, m = e.httpDo("POST", "/v1/agents/api-bot/unfreeze", adm, nil)
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "active", m["status"])
	status, m = e.httpDo("POST", "/v1/agents/api-bot/unfreeze", adm, nil)
	require.Equal(t, "rejected", first(apiErr(m)))
	require.Equal(t, 409, status)
	status, m = e.httpDo("POST", "/v1/agents/api-bot/budget", adm, []byte(`{"daily_limit_usd":"0"}`))
	require.Equal(t, 422, status)
	require.Equal(t, "request.daily_limit_usd", second(apiErr(m)))
	status, m = e.httpDo("POST", "/v1/agents/api-bot/budget", adm, []byte(`{"daily_limit_usd":"45.50","reason":"more work"}`))
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "45.50", m["budget"].(map[string]any)["daily_limit_usd"])
	status, m = e.httpDo("POST", "/v1/agents/api-bot/rotate", adm, []byte(`{"reason":"x","extra":1}`))
	require.Equal(t, 422, status)
	require.Equal(t, "request.extra", second(apiErr(m)))
	status, m = e.httpDo("POST", "/v1/agents/api-bot/rotate", adm, []byte(`{"reason":"api test"}`))
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 2, m["generation"])
	newCardID := m["card"].(map[string]any)["id"].(string)
	status, _ = e.httpDo("POST", "/v1/agents/ghost/rotate", adm, nil)
	require.Equal(t, 404, status)

	// The pull follows the rotation.
	status, m = e.httpDo("GET", "/v1/agents/api-bot/card", token, nil)
	require.Equal(t, 200, status)
	require.Equal(t, newCardID, m["card_id"])

	// Token rotation.
	status, m = e.httpDo("POST", "/v1/agents/api-bot/token", adm, nil)
	require.Equal(t, 200, status)
	newToken := m["token"].(string)
	status, _ = e.httpDo("GET", "/v1/agents/api-bot/card", token, nil)
	require.Equal(t, 401, status)
	status, _ = e.httpDo("GET", "/v1/agents/api-bot/card", newToken, nil)
	require.Equal(t, 200, status)
	status, _ = e.httpDo("POST", "/v1/agents/api-bot/token", "", nil)
	require.Equal(t, 401, status)

	// Retire; afterwards updates are 409 and the card is gone.
	status, m = e.httpDo("POST", "/v1/agents/api-bot/retire", adm, []byte(`{"reason":"end of test"}`))
	require.Equal(t, 200, status, "%v", m)
	require.Equal(t, "retired", m["status"])
	status, m = e.httpDo("POST", "/v1/agents/api-bot/rotate", adm, nil)
	require.Equal(t, 409, status, "%v", m)
	require.Eventually(t, func() bool {
		status, _ := e.httpDo("GET", "/v1/agents/api-bot/card", newToken, nil)
		return status == 401
	}, 30*time.Second, 100*time.Millisecond, "a retired agent's token is revoked")

	audit, err := e.store.ListAudit(ctx, "api-bot", 100)
	require.NoError(t, err)
	var reveals int
	for _, a := range audit {
		if a.Action == "card.reveal" {
			reveals++
		}
	}
	require.Equal(t, 3, reveals, "every reveal is audited")
}

func first(a, _ string) string  { return a }
func second(_, b string) string { return b }
