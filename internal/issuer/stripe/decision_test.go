package stripe_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/stripe"
)

// requestObject is the issuing.authorization of an issuing_authorization.request: pending,
// not yet approved, amount 0, the amount asked in pending_request.
func requestObject(cardID string, pending int64) map[string]any {
	return map[string]any{
		"id": "iauth_req1", "object": "issuing.authorization", "amount": 0, "currency": "usd", "approved": false,
		"status": "pending", "created": 1700000100, "card": map[string]any{"id": cardID, "object": "issuing.card"},
		"merchant_data": map[string]any{"name": "OpenAI", "network_id": "1234567890", "category_code": "5734",
			"category": "computer_software_stores"},
		"pending_request": map[string]any{"amount": pending, "currency": "usd", "merchant_amount": pending,
			"merchant_currency": "usd", "is_amount_controllable": false},
		"request_history": []any{},
	}
}

func TestParseDecisionRequest(t *testing.T) {
	a := newAdapter(t, "http://127.0.0.1:1")
	var _ issuer.Decider = a
	now := time.Now()
	h, body := signedEvent(t, "evt_req1", "issuing_authorization.request", requestObject("ic_9", 2599), nil, now)
	req, err := a.ParseDecisionRequest(h, body, now)
	if err != nil {
		t.Fatal(err)
	}
	want := issuer.DecisionRequest{AuthorizationID: "iauth_req1", CardID: "ic_9", AmountMinor: 2599, Currency: "USD",
		MerchantName: "OpenAI", MerchantID: "1234567890", MCC: "5734", At: time.Unix(1700000100, 0).UTC()}
	if req != want {
		t.Fatalf("request:\n got %+v\nwant %+v", req, want)
	}
	if a.DecisionDeadline() != 2*time.Second {
		t.Fatalf("deadline %v", a.DecisionDeadline())
	}

	// The id is the one the authorization's own events carry, so the two meet in the workflow.
	created := requestObject("ic_9", 0)
	created["approved"], created["amount"] = true, 2599
	ch, cbody := signedEvent(t, "evt_created", "issuing_authorization.created", created, nil, now)
	evs, err := a.VerifyWebhook(ch, cbody, now)
	if err != nil || len(evs) != 1 || evs[0].AuthorizationID != req.AuthorizationID || evs[0].ID != req.AuthorizationID {
		t.Fatalf("created event: %v %+v", err, evs)
	}

	// Without pending_request the authorization's amount is what is asked.
	obj := requestObject("ic_9", 0)
	delete(obj, "pending_request")
	obj["amount"] = 700
	h2, body2 := signedEvent(t, "evt_req2", "issuing_authorization.request", obj, nil, now)
	if req, err := a.ParseDecisionRequest(h2, body2, now); err != nil || req.AmountMinor != 700 {
		t.Fatalf("no pending_request: %v %+v", err, req)
	}

	// The same request at the normal webhook endpoint moves no money.
	if evs, err := a.VerifyWebhook(h, body, now); err != nil || len(evs) != 0 {
		t.Fatalf("request at the webhook endpoint: %v %+v", err, evs)
	}
}

func TestParseDecisionRequestRefuses(t *testing.T) {
	a := newAdapter(t, "http://127.0.0.1:1")
	now := time.Now()
	kind := func(err error) issuer.ErrorKind {
		var ie *issuer.Error
		if !errors.As(err, &ie) {
			return ""
		}
		return ie.Kind
	}
	obj := requestObject("ic_9", 2599)

	stale, sbody := signedEvent(t, "evt_old", "issuing_authorization.request", obj, nil, now.Add(-6*time.Minute))
	future, fbody := signedEvent(t, "evt_future", "issuing_authorization.request", obj, nil, now.Add(6*time.Minute))
	good, body := signedEvent(t, "evt_req", "issuing_authorization.request", obj, nil, now)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-2] = ' '
	other, _ := stripe.New(stripe.Config{APIKey: mockKey, WebhookSecret: "whsec_other"})
	fresh := fmt.Sprintf("t=%d", now.Unix())
	staleSig := stale.Get("Stripe-Signature")
	for name, tc := range map[string]struct {
		a    *stripe.Adapter
		h    http.Header
		body []byte
	}{
		"stale":                   {a, stale, sbody},
		"future":                  {a, future, fbody},
		"tampered":                {a, good, tampered},
		"other secret":            {other, good, body},
		"no signature":            {a, http.Header{}, body},
		"two timestamps":          {a, http.Header{"Stripe-Signature": {fresh + "," + staleSig}}, sbody},
		"two timestamps reversed": {a, http.Header{"Stripe-Signature": {staleSig + "," + fresh}}, sbody},
		"two headers":             {a, http.Header{"Stripe-Signature": {fresh, staleSig}}, sbody},
	} {
		if req, err := tc.a.ParseDecisionRequest(tc.h, tc.body, now); kind(err) != issuer.KindUnauthorized {
			t.Errorf("%s: %+v %v; want unauthorized", name, req, err)
		}
	}
	noSecret, _ := stripe.New(stripe.Config{APIKey: mockKey})
	if _, err := noSecret.ParseDecisionRequest(good, body, now); kind(err) != issuer.KindUnauthorized {
		t.Errorf("no secret configured: %v", err)
	}

	// Genuine events that are not authorization requests are invalid here.
	for _, typ := range []string{"issuing_authorization.created", "issuing_authorization.updated", "issuing_card.updated"} {
		h, b := signedEvent(t, "evt_"+typ, typ, obj, nil, now)
		if _, err := a.ParseDecisionRequest(h, b, now); kind(err) != issuer.KindInvalid {
			t.Errorf("%s: %v; want invalid", typ, err)
		}
	}
	noCard := requestObject("", 100)
	delete(noCard, "card")
	h, b := signedEvent(t, "evt_nocard", "issuing_authorization.request", noCard, nil, now)
	if _, err := a.ParseDecisionRequest(h, b, now); kind(err) != issuer.KindInvalid {
		t.Errorf("no card: %v; want invalid", err)
	}
}

// A separate signing secret for the authorization endpoint replaces the webhook one there only.
func TestParseDecisionRequestAuthorizationSecret(t *testing.T) {
	a, err := stripe.New(stripe.Config{APIKey: mockKey, WebhookSecret: "whsec_events", AuthorizationSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h, body := signedEvent(t, "evt_req", "issuing_authorization.request", requestObject("ic_9", 100), nil, now)
	if _, err := a.ParseDecisionRequest(h, body, now); err != nil {
		t.Fatalf("authorization secret: %v", err)
	}
	if _, err := a.VerifyWebhook(h, body, now); !errors.Is(err, issuer.ErrUnauthorized) {
		t.Fatalf("webhook endpoint with the authorization secret: %v", err)
	}
}

func TestWriteDecision(t *testing.T) {
	a := newAdapter(t, "http://127.0.0.1:1")
	for _, d := range []issuer.Decision{{Approved: true}, {Approved: false, Reason: "merchant_blocked"}} {
		rec := httptest.NewRecorder()
		a.WriteDecision(rec, d)
		if rec.Code != http.StatusOK || rec.Header().Get("Stripe-Version") != stripego.APIVersion ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%+v: %d %v", d, rec.Code, rec.Header())
		}
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%+v: body %q: %v", d, rec.Body.String(), err)
		}
		if got["approved"] != d.Approved {
			t.Fatalf("%+v: body %q", d, rec.Body.String())
		}
		meta, _ := got["metadata"].(map[string]any)
		if d.Reason == "" && got["metadata"] != nil || d.Reason != "" && meta["cardwarden_reason"] != d.Reason {
			t.Fatalf("%+v: metadata in %q", d, rec.Body.String())
		}
		if len(got) > 2 {
			t.Fatalf("%+v: unexpected fields in %q", d, rec.Body.String())
		}
	}
}

// FuzzParseDecisionRequest: any genuinely signed body is read into a well-formed request or
// refused as invalid, never a panic, and never a request without an authorization or card.
func FuzzParseDecisionRequest(f *testing.F) {
	a := fuzzAdapter(f, fuzzSecret)
	addStripeSeeds(f)
	for _, s := range []string{
		`{"id":"evt_r","object":"event","type":"issuing_authorization.request","data":{"object":{"id":"iauth_1","card":{"id":"ic_1"},"currency":"usd","pending_request":{"amount":1500,"currency":"eur"},"merchant_data":{"category_code":"5734"}}}}`,
		`{"id":"evt_r","object":"event","type":"issuing_authorization.request","data":{"object":{"id":"iauth_1","card":"ic_1","amount":-5,"pending_request":null}}}`,
		`{"id":"evt_r","object":"event","type":"issuing_authorization.request","data":{"object":{"id":"iauth_1","card":{"id":"ic_1"},"pending_request":{"amount":"x"}}}}`,
		`{"id":"evt_r","object":"event","type":"issuing_authorization.request","data":null}`,
	} {
		f.Add([]byte(s), int64(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, _ int64) {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: fuzzSecret, Timestamp: fuzzNow})
		req, err := a.ParseDecisionRequest(http.Header{"Stripe-Signature": {sp.Header}}, body, fuzzNow)
		if err != nil {
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Kind != issuer.KindInvalid {
				t.Fatalf("genuinely signed body %q: %v; want invalid", body, err)
			}
			return
		}
		if !strings.HasPrefix(req.AuthorizationID, "iauth_") || req.CardID == "" || req.AmountMinor < 0 ||
			req.Currency != strings.ToUpper(req.Currency) {
			t.Fatalf("body %q read as %+v", body, req)
		}
	})
}
