package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/testdb"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// signedPost delivers body to url signed like the simulator signs (Standard Webhooks).
func signedPost(t *testing.T, url, id string, ts time.Time, body []byte) (int, map[string]any) {
	t.Helper()
	key, err := stdwebhooks.DecodeSecret(e2eWebhookSecret)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	require.NoError(t, err)
	stdwebhooks.Sign(req.Header, key, id, ts, body)
	return doRequest(t, req)
}

func doRequest(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// simAuthEvent is a simulator "authorization.created" event body.
func simAuthEvent(id, cardID string, amountMinor int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "type": "authorization.created", "created_at": time.Now().UTC(), "card_id": cardID,
		"data": map[string]any{"card_id": cardID, "authorization_id": "auth_" + id, "approved": true,
			"amount_minor": amountMinor, "currency": "usd", "merchant": "Acme Compute"},
	})
	return b
}

// Issuer webhooks end to end: a simulated purchase reaches the workflow through the webhook; a
// replay is acknowledged and counted once (in the ledger, the daily spend and the workflow's
// budget; the workflow may receive a signal twice when redelivery races a slow webhook, and
// ignores an event id it has seen); stale or bad signatures are refused; an event that
// arrives while Temporal is down is answered 503, kept in the ledger and redelivered.
func TestWebhooksEndToEnd(t *testing.T) {
	e := newE2E(t)
	ctx := context.Background()
	_, _, err := e.ctl.CreateAgent(ctx, workflows.Policy{AgentID: "hook-bot", DailyLimitUSD: money.MustParse("100")}, "test")
	require.NoError(t, err)
	st := e.waitCard("hook-bot", 1)
	cardID := st.Card.ID

	// A purchase at the simulator: its webhook is verified, recorded and signalled.
	auth := e.authorize(cardID, "12.34", nil)
	require.Equal(t, true, auth["approved"])
	st = e.waitState("hook-bot", "the purchase is counted", func(s workflows.StateView) bool {
		return s.Budget.SpentTodayUSD.String() == "12.34"
	})
	require.EqualValues(t, 1, testdb.CountEvents(t, e.store))

	// Replay the exact delivery (same id, signature, timestamp): acknowledged, not counted again.
	var delivered capturedWebhook
	for _, h := range e.webhooks() {
		if bytes.Contains(h.body, []byte(auth["authorization_id"].(string))) {
			delivered = h
		}
	}
	require.NotNil(t, delivered.body, "the simulator's delivery was not captured")
	req, err := http.NewRequest("POST", e.apiURL+"/v1/webhooks/sim", bytes.NewReader(delivered.body))
	require.NoError(t, err)
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "Content-Type"} {
		req.Header.Set(k, delivered.header.Get(k))
	}
	status, m := doRequest(t, req)
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 1, m["duplicates"])
	require.EqualValues(t, 0, m["new"])
	require.EqualValues(t, 1, testdb.CountEvents(t, e.store))
	st, err = e.ctl.State(ctx, "hook-bot")
	require.NoError(t, err)
	require.Equal(t, "12.34", st.Budget.SpentTodayUSD.String())
	days, err := e.store.SpendSeries(ctx, "hook-bot", "2000-01-01", "2100-01-01")
	require.NoError(t, err)
	require.Len(t, days, 1)
	require.EqualValues(t, 1234, days[0].SpentMinor)

	// Stale timestamp, tampered body, unknown issuer, oversized body.
	status, m = signedPost(t, e.apiURL+"/v1/webhooks/sim", "evt_stale", time.Now().Add(-10*time.Minute), simAuthEvent("evt_stale", cardID, 100))
	require.Equal(t, 401, status)
	require.Equal(t, "invalid_signature", first(apiErr(m)))
	req, _ = http.NewRequest("POST", e.apiURL+"/v1/webhooks/sim", bytes.NewReader(bytes.Replace(delivered.body, []byte("1234"), []byte("1"), 1)))
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		req.Header.Set(k, delivered.header.Get(k))
	}
	status, _ = doRequest(t, req)
	require.Equal(t, 401, status, "a body that does not match its signature")
	status, m = signedPost(t, e.apiURL+"/v1/webhooks/visa", "evt_x", time.Now(), simAuthEvent("evt_x", cardID, 100))
	require.Equal(t, 404, status)
	require.Equal(t, "unknown_issuer", first(apiErr(m)))
	status, m = signedPost(t, e.apiURL+"/v1/webhooks/sim", "evt_big", time.Now(), bytes.Repeat([]byte("x"), api.MaxWebhookBody+1))
	require.Equal(t, 413, status)
	require.Equal(t, "payload_too_large", first(apiErr(m)))

	// An event for a card no agent owns: recorded as orphaned, alerted, no workflow started.
	status, m = signedPost(t, e.apiURL+"/v1/webhooks/sim", "evt_orphan", time.Now(), simAuthEvent("evt_orphan", "card_nobody", 999))
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 1, m["orphaned"])
	orphan, err := e.store.GetEvent(ctx, "sim", "evt_orphan")
	require.NoError(t, err)
	require.True(t, orphan.Orphaned)
	alerts, err := e.store.ListAlerts(ctx, "", 10)
	require.NoError(t, err)
	require.Condition(t, func() bool {
		for _, a := range alerts {
			if a.Kind == starter.AlertOrphanedEvent && strings.Contains(a.Period, "evt_orphan") {
				return true
			}
		}
		return false
	}, "orphaned_event alert: %+v", alerts)

	// Temporal down: an API replica whose Temporal is unreachable records the event and
	// acknowledges it (the ledger keeps it; its relay cannot deliver it); the running
	// redelivery loop of the healthy replica delivers it.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := dead.Addr().String()
	dead.Close()
	deadClient, err := client.NewLazyClient(client.Options{HostPort: deadAddr, Namespace: e.ns})
	require.NoError(t, err)
	defer deadClient.Close()
	down := httptest.NewServer(api.New(api.Deps{Store: e.store, Logger: e.logger, Issuers: e.reg,
		Control: starter.New(deadClient, starter.Options{Store: e.store, Logger: e.logger, SignalTimeout: 2 * time.Second})}))
	defer down.Close()
	status, m = signedPost(t, down.URL+"/v1/webhooks/sim", "evt_down", time.Now(), simAuthEvent("evt_down", cardID, 500))
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 1, m["new"])
	stored, err := e.store.GetEvent(ctx, "sim", "evt_down")
	require.NoError(t, err, "an acknowledged event is in the ledger")
	require.Equal(t, "hook-bot", stored.AgentID)
	e.waitState("hook-bot", "the redelivered event is counted", func(s workflows.StateView) bool {
		return s.Budget.SpentTodayUSD.String() == "17.34"
	})
	require.Eventually(t, func() bool {
		ev, err := e.store.GetEvent(ctx, "sim", "evt_down")
		return err == nil && ev.SignalledAt.Valid
	}, 30*time.Second, 50*time.Millisecond)

	// The issuer's own retry of that delivery, now to a healthy replica: a duplicate.
	status, m = signedPost(t, e.apiURL+"/v1/webhooks/sim", "evt_down", time.Now(), simAuthEvent("evt_down", cardID, 500))
	require.Equal(t, 200, status)
	require.EqualValues(t, 1, m["duplicates"])
	st, err = e.ctl.State(ctx, "hook-bot")
	require.NoError(t, err)
	require.Equal(t, "17.34", st.Budget.SpentTodayUSD.String())
}
