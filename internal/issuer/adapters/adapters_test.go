package adapters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no issuers configured must be an error")
	}
	env := map[string]string{
		EnvSimURL: "http://127.0.0.1:8090", EnvStripeAPIKey: "sk_test_x", EnvStripeURL: "http://127.0.0.1:12111",
		EnvAIPPAPIKey: "aipp_x", EnvAIPPURL: "http://127.0.0.1:8090",
	}
	reg, err := New(FromEnv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(reg.Names()); got != "[aipaymentproxy sim stripe]" {
		t.Fatalf("names: %s", got)
	}
	reg, err = New(Config{Sim: SimConfig{BaseURL: "http://127.0.0.1:8090"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get("stripe"); err == nil {
		t.Fatal("stripe must be absent without its key")
	}
	if _, err := New(Config{AIPP: AIPPConfig{BaseURL: "http://x"}}); err == nil {
		t.Fatal("AIPP URL without a key must be an error")
	}
	if _, err := New(Config{Sim: SimConfig{BaseURL: "not a url"}}); err == nil {
		t.Fatal("bad sim URL accepted")
	}
}

// TestSimDefaultsWork: a registry built from just the simulator's URL talks to a simulator
// started with its defaults.
func TestSimDefaultsWork(t *testing.T) {
	s, err := issuersim.NewServer(issuersim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	reg, err := New(Config{Sim: SimConfig{BaseURL: ts.URL}, AIPP: AIPPConfig{BaseURL: ts.URL, APIKey: issuersim.DefaultAPIKey}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sim", "aipaymentproxy"} {
		is, err := reg.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := is.CreateCard(context.Background(), issuer.CreateCardRequest{IdempotencyKey: "k-" + name, Limits: []issuer.SpendLimit{{AmountMinor: 1000, Interval: issuer.AllTime}}})
		if err != nil || c.Status != issuer.CardActive {
			t.Fatalf("%s: %+v %v", name, c, err)
		}
	}
}

// TestStripeAuthorizationSecret: CARDWARDEN_STRIPE_AUTHORIZATION_SECRET verifies Stripe's
// authorization requests; the webhook secret still verifies its webhooks.
func TestStripeAuthorizationSecret(t *testing.T) {
	env := map[string]string{EnvStripeAPIKey: "sk_test_x", EnvStripeURL: "http://127.0.0.1:1",
		EnvStripeWebhookSecret: "whsec_events", EnvStripeAuthorizationSecret: "whsec_authorizations"}
	reg, err := New(FromEnv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	is, err := reg.Get("stripe")
	if err != nil {
		t.Fatal(err)
	}
	dec, ok := is.(issuer.Decider)
	if !ok {
		t.Fatal("the stripe adapter does not decide authorizations")
	}
	now := time.Now()
	body := []byte(`{"id":"evt_1","object":"event","type":"issuing_authorization.request","api_version":"2025-08-27.basil","created":` +
		strconv.FormatInt(now.Unix(), 10) + `,"data":{"object":{"id":"iauth_1","object":"issuing.authorization","card":{"id":"ic_1"},` +
		`"currency":"usd","pending_request":{"amount":100,"currency":"usd"}}}}`)
	sign := func(secret string) http.Header {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: now})
		return http.Header{"Stripe-Signature": {sp.Header}}
	}
	if req, err := dec.ParseDecisionRequest(sign("whsec_authorizations"), body, now); err != nil || req.AuthorizationID != "iauth_1" {
		t.Fatalf("authorization secret: %+v %v", req, err)
	}
	if _, err := dec.ParseDecisionRequest(sign("whsec_events"), body, now); !errors.Is(err, issuer.ErrUnauthorized) {
		t.Fatalf("webhook secret at the authorization endpoint: %v", err)
	}
}
