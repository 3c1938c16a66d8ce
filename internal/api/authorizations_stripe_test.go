package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stripe"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

const stripeSecret = "whsec_cardwarden_api_test"

// decidingControl is fakeControl whose agent workflows decide by a rule of the test's.
type decidingControl struct {
	*fakeControl
	mu    sync.Mutex
	asked []workflows.AuthorizeRequest
}

func (d *decidingControl) Authorize(_ context.Context, agentID string, req workflows.AuthorizeRequest) (workflows.AuthorizeResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, req)
	if req.MCC == "7995" {
		return workflows.AuthorizeResult{Approved: false, Reason: "merchant_category_blocked"}, nil
	}
	return workflows.AuthorizeResult{Approved: true, Reason: "approved"}, nil
}

func (d *decidingControl) ReserveTeam(context.Context, string, workflows.TeamReserveRequest) (workflows.TeamReserveResult, error) {
	return workflows.TeamReserveResult{Approved: true}, nil
}

func (d *decidingControl) ReleaseTeam(context.Context, string, string) error { return nil }

// stripeRequest is an issuing_authorization.request event for cardID, signed like Stripe does.
func stripeRequest(t *testing.T, typ, authID, cardID, mcc string, amount int64, ts time.Time) (string, []byte) {
	t.Helper()
	obj := map[string]any{
		"id": authID, "object": "issuing.authorization", "amount": 0, "currency": "usd", "approved": false, "status": "pending",
		"created": ts.Unix(), "card": map[string]any{"id": cardID, "object": "issuing.card"},
		"merchant_data":   map[string]any{"name": "ACME Games", "network_id": "net_42", "category_code": mcc, "category": "betting_casino_gambling"},
		"pending_request": map[string]any{"amount": amount, "currency": "usd", "merchant_amount": amount, "merchant_currency": "usd"},
	}
	body, err := json.Marshal(map[string]any{"id": "evt_" + authID, "object": "event", "type": typ, "api_version": "2025-08-27.basil",
		"created": ts.Unix(), "livemode": false, "data": map[string]any{"object": obj}})
	require.NoError(t, err)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: stripeSecret, Timestamp: ts})
	return sp.Header, body
}

func (h *harness) postStripe(path, sig string, body []byte) (int, http.Header, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	req.Header.Set("Stripe-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	require.NoError(h.t, json.Unmarshal(raw, &m), "%s", raw)
	return resp.StatusCode, resp.Header, m
}

// TestStripeAuthorizationRequests: Stripe's issuing_authorization.request through api.New and
// a real Stripe adapter (real signatures; no network, as deciding needs no Stripe call).
func TestStripeAuthorizationRequests(t *testing.T) {
	var dc *decidingControl
	h := newHarness(t, func(d *Deps) {
		simAdapter, err := sim.New(sim.Config{BaseURL: "http://127.0.0.1:1", APIKey: "k", WebhookSecret: webhookSecret})
		require.NoError(t, err)
		stripeAdapter, err := stripe.New(stripe.Config{APIKey: "sk_test_api", BaseURL: "http://127.0.0.1:1", WebhookSecret: stripeSecret})
		require.NoError(t, err)
		d.Issuers = issuer.NewRegistry(simAdapter, stripeAdapter)
		dc = &decidingControl{fakeControl: d.Control.(*fakeControl)}
		d.Control = dc
	})
	ctx := context.Background()
	now := time.Now()
	h.now = now
	const path = "/v1/authorizations/stripe"
	stripeAnswer := func(status int, hdr http.Header, m map[string]any, approved bool, reason string) {
		t.Helper()
		require.Equal(t, 200, status, "%v", m)
		require.Equal(t, stripego.APIVersion, hdr.Get("Stripe-Version"))
		require.Equal(t, "application/json", hdr.Get("Content-Type"))
		require.Equal(t, map[string]any{"approved": approved, "metadata": map[string]any{"cardwarden_reason": reason}}, m)
	}

	// A card no agent owns: declined, recorded, no workflow asked.
	sig, body := stripeRequest(t, "issuing_authorization.request", "iauth_ghost", "ic_ghost", "5734", 1200, now)
	status, hdr, m := h.postStripe(path, sig, body)
	stripeAnswer(status, hdr, m, false, decideUnknownCard)
	d, err := h.store.GetDecision(ctx, "stripe", "iauth_ghost")
	require.NoError(t, err)
	require.Equal(t, store.Decision{Issuer: "stripe", AuthorizationID: "iauth_ghost", IssuerCardID: "ic_ghost", AmountMinor: 1200,
		Currency: "USD", Merchant: "ACME Games", MCC: "5734", Reason: decideUnknownCard, LatencyMS: d.LatencyMS, DecidedAt: d.DecidedAt}, d)

	// An agent's card: its workflow decides, from the request's fields.
	require.NoError(t, h.store.UpsertAgent(ctx, store.Agent{AgentID: "bot", Issuer: "stripe", Status: "active", Policy: "{}"}))
	require.NoError(t, h.store.RecordCard(ctx, store.Card{AgentID: "bot", Generation: 1, Issuer: "stripe", IssuerCardID: "ic_bot",
		Last4: "4242", ExpMonth: 11, ExpYear: 2031, Status: "active", DailyLimitMinor: 5000}))
	sig, body = stripeRequest(t, "issuing_authorization.request", "iauth_ok", "ic_bot", "5734", 2599, now)
	status, hdr, m = h.postStripe(path, sig, body)
	stripeAnswer(status, hdr, m, true, "approved")
	require.Len(t, dc.asked, 1)
	require.Equal(t, workflows.AuthorizeRequest{AuthorizationID: "iauth_ok", CardID: "ic_bot", AmountMinor: 2599, Currency: "USD",
		Merchant: "ACME Games", MerchantID: "net_42", MCC: "5734", At: time.Unix(now.Unix(), 0).UTC()}, dc.asked[0])
	d, err = h.store.GetDecision(ctx, "stripe", "iauth_ok")
	require.NoError(t, err)
	require.True(t, d.Approved)
	require.Equal(t, "bot", d.AgentID)

	sig, body = stripeRequest(t, "issuing_authorization.request", "iauth_casino", "ic_bot", "7995", 500, now)
	status, hdr, m = h.postStripe(path, sig, body)
	stripeAnswer(status, hdr, m, false, "merchant_category_blocked")

	// Stripe redelivers: the recorded answer, the workflow not asked again.
	status, hdr, m = h.postStripe(path, sig, body)
	stripeAnswer(status, hdr, m, false, "merchant_category_blocked")
	require.Len(t, dc.asked, 2)

	// Forged, stale and other events are refused and decide nothing.
	forged, fbody := stripeRequest(t, "issuing_authorization.request", "iauth_forged", "ic_bot", "5734", 100, now)
	fbody = bytes.Replace(fbody, []byte(`"amount":100`), []byte(`"amount":1`), 1)
	status, _, m = h.postStripe(path, forged, fbody)
	require.Equal(t, 401, status, "%v", m)
	stale, sbody := stripeRequest(t, "issuing_authorization.request", "iauth_stale", "ic_bot", "5734", 100, now.Add(-10*time.Minute))
	status, _, _ = h.postStripe(path, stale, sbody)
	require.Equal(t, 401, status)
	other, obody := stripeRequest(t, "issuing_authorization.created", "iauth_other", "ic_bot", "5734", 100, now)
	status, _, m = h.postStripe(path, other, obody)
	require.Equal(t, 400, status, "%v", m)
	for _, id := range []string{"iauth_forged", "iauth_stale", "iauth_other"} {
		_, err := h.store.GetDecision(ctx, "stripe", id)
		require.True(t, store.IsNotFound(err), "%s: %v", id, err)
	}
	require.Len(t, dc.asked, 2)

	// The request sent to the normal webhook endpoint moves no money: acknowledged, no ledger row.
	sig, body = stripeRequest(t, "issuing_authorization.request", "iauth_hook", "ic_bot", "5734", 900, now)
	status, _, m = h.postStripe("/v1/webhooks/stripe", sig, body)
	require.Equal(t, 200, status, "%v", m)
	require.EqualValues(t, 0, m["received"])
	for _, id := range []string{"evt_iauth_hook", "iauth_hook"} {
		_, err := h.store.GetEvent(ctx, "stripe", id)
		require.True(t, store.IsNotFound(err), "%s: %v", id, err)
	}
	_, err = h.store.GetDecision(ctx, "stripe", "iauth_hook")
	require.True(t, store.IsNotFound(err), "%v", err)
}
