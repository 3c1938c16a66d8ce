package sim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

const fuzzSecret = "whsec_ZnV6ei13ZWJob29rLXNlY3JldA=="

var fuzzNow = time.Unix(1_795_874_458, 0)

func fuzzAdapter(f *testing.F) *sim.Adapter {
	a, err := sim.New(sim.Config{BaseURL: "http://127.0.0.1:1", APIKey: "k", WebhookSecret: fuzzSecret})
	if err != nil {
		f.Fatal(err)
	}
	return a
}

func addEventSeeds(f *testing.F) {
	seeds := []string{
		`{"id":"evt_1","type":"authorization.created","created_at":"2026-11-28T14:00:58.9Z","card_id":"card_1","data":{"card_id":"card_1","authorization_id":"auth_1","approved":false,"reason":"spending_limit","amount_minor":1250,"currency":"usd","merchant":"ACME","mcc":"5734"}}`,
		`{"id":"evt_2","type":"capture.created","created_at":"2026-11-28T14:00:58Z","card_id":"card_1","data":{"card_id":"card_1","authorization_id":"auth_1","transaction_id":"txn_1","approved":true,"amount_minor":1400,"currency":"usd","authorized_minor":1250,"overcapture_minor":150}}`,
		`{"id":"evt_3","type":"force_capture.created","created_at":"2026-11-28T14:00:58Z","card_id":"card_1","data":{"card_id":"card_1","approved":true,"amount_minor":30000,"currency":"usd"}}`,
		`{"id":"evt_4","type":"refund.created","card_id":"card_1","data":{"amount_minor":-5}}`,
		`{"id":"evt_5","type":"reversal.created","card_id":"card_1","data":null}`,
		`{"id":"evt_6","type":"card.updated","card_id":"card_1","data":{"id":"card_1","status":"paused"}}`,
		`{"id":"evt_7","type":"authorization.created","data":"not an object"}`,
		`{"id":"evt_8","type":"authorization.created","created_at":"yesterday","data":{}}`,
		`{"id":"evt_9","type":"authorization.created","data":{"amount_minor":1e400}}`,
		`{"id":"evt_10","type":"authorization.created","data":{"amount_minor":9223372036854775808}}`,
		`[]`, `null`, ``, `{"id":1}`, `{"id":"evt_11"`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), "evt_fallback")
	}
}

// webhookID is the id a genuine sender would put in webhook-id: the event's own id.
func webhookID(body []byte, fallback string) string {
	var w struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &w) == nil && w.ID != "" {
		return w.ID
	}
	return fallback
}

// FuzzVerifyWebhook signs arbitrary bodies with the right key, as a compromised or buggy issuer
// could, and checks the adapter never panics, only ever fails with an issuer.Error of kind
// invalid (the signature is genuine), and returns only well-formed money events belonging to
// the delivery.
func FuzzVerifyWebhook(f *testing.F) {
	a := fuzzAdapter(f)
	key, err := stdwebhooks.DecodeSecret(fuzzSecret)
	if err != nil {
		f.Fatal(err)
	}
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, fallback string) {
		id := webhookID(body, fallback)
		h := http.Header{}
		stdwebhooks.Sign(h, key, id, fuzzNow, body)
		if h.Get(stdwebhooks.HeaderID) != id || id == "" {
			return // not something a genuine sender can sign
		}
		evs, err := a.VerifyWebhook(h, body, fuzzNow)
		if err != nil {
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Kind != issuer.KindInvalid {
				t.Fatalf("genuinely signed body %q: error %v, want an issuer.Error of kind invalid", body, err)
			}
			if evs != nil {
				t.Fatalf("events returned with an error: %+v", evs)
			}
			return
		}
		for _, ev := range evs {
			if ev.ID != id || ev.Issuer != sim.Name {
				t.Fatalf("event %+v does not belong to delivery %q", ev, id)
			}
			switch ev.Kind {
			case cardwarden.KindAuthorization, cardwarden.KindCapture, cardwarden.KindForceCapture, cardwarden.KindRefund, cardwarden.KindReversal:
			default:
				t.Fatalf("unknown kind in %+v", ev)
			}
			if ev.Currency != strings.ToUpper(ev.Currency) {
				t.Fatalf("currency not normalized: %+v", ev)
			}
			if !ev.Approved && ev.Kind == cardwarden.KindAuthorization && ev.DeclineReason == "" {
				t.Fatalf("declined authorization without a normalized reason: %+v", ev)
			}
		}
	})
}

// FuzzVerifyWebhookForged: whatever is posted without the key (a made-up signature, the right
// signature over another body, another key's signature) is rejected as unauthorized.
func FuzzVerifyWebhookForged(f *testing.F) {
	a := fuzzAdapter(f)
	key, _ := stdwebhooks.DecodeSecret(fuzzSecret)
	addEventSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		id := webhookID(body, "evt_forged")
		unauthorized := func(what string, h http.Header, b []byte) {
			t.Helper()
			evs, err := a.VerifyWebhook(h, b, fuzzNow)
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Kind != issuer.KindUnauthorized || len(evs) != 0 {
				t.Fatalf("%s: %+v, %v; want unauthorized", what, evs, err)
			}
		}
		h := http.Header{}
		stdwebhooks.Sign(h, []byte("another key"), id, fuzzNow, body)
		unauthorized("other key", h, body)
		h.Set(stdwebhooks.HeaderSignature, sig)
		unauthorized("made-up signature", h, body)
		stdwebhooks.Sign(h, key, id, fuzzNow, body)
		if _, err := a.VerifyWebhook(h, append(body, ' '), fuzzNow); err == nil {
			t.Fatal("signature over another body verified")
		}
		stale := fuzzNow.Add(-stdwebhooks.Tolerance - time.Second)
		stdwebhooks.Sign(h, key, id, stale, body)
		unauthorized("stale", h, body)
	})
}
