package stripe_test

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/stripe"
)

const fuzzSecret = "whsec_fuzz_cardwarden"

var fuzzNow = time.Unix(1_795_874_458, 0)

func fuzzAdapter(f *testing.F, secret string) *stripe.Adapter {
	a, err := stripe.New(stripe.Config{APIKey: "sk_test_fuzz", BaseURL: "http://127.0.0.1:1", WebhookSecret: secret})
	if err != nil {
		f.Fatal(err)
	}
	return a
}

func addStripeSeeds(f *testing.F) {
	seeds := []string{
		`{"id":"evt_1","object":"event","type":"issuing_authorization.created","api_version":"2025-08-27.basil","created":1795874458,"data":{"object":{"id":"iauth_1","object":"issuing.authorization","amount":0,"currency":"usd","approved":false,"status":"closed","created":1795874458,"card":{"id":"ic_1","object":"issuing.card"},"merchant_data":{"name":"ACME","category_code":"5734"},"request_history":[{"approved":false,"amount":1500,"currency":"usd","reason":"spending_controls","created":1795874458}]}}}`,
		`{"id":"evt_2","object":"event","type":"issuing_authorization.updated","created":1795874458,"data":{"object":{"id":"iauth_1","object":"issuing.authorization","amount":0,"status":"reversed","card":"ic_1"},"previous_attributes":{"amount":1500,"status":"pending"}}}`,
		`{"id":"evt_3","object":"event","type":"issuing_transaction.created","created":1795874458,"data":{"object":{"id":"ipi_1","object":"issuing.transaction","type":"capture","amount":-2000,"currency":"usd","created":1795874458,"card":"ic_1","authorization":null}}}`,
		`{"id":"evt_4","object":"event","type":"issuing_transaction.created","data":{"object":{"id":"ipi_2","type":"refund","amount":500,"card":"ic_1","authorization":"iauth_1"}}}`,
		`{"id":"evt_5","object":"event","type":"issuing_authorization.updated","data":{"object":{"id":"iauth_2","status":"pending","amount":10},"previous_attributes":{"amount":"1500"}}}`,
		`{"id":"evt_6","object":"event","type":"issuing_card.updated","data":{"object":{"id":"ic_1","object":"issuing.card"}}}`,
		`{"id":"evt_7","object":"event","type":"issuing_authorization.created","data":{"object":{"request_history":[null]}}}`,
		`{"id":"evt_8","object":"event","type":"issuing_authorization.created","data":null}`,
		`{"id":"evt_9","object":"event","type":"issuing_transaction.created","data":{"object":{"amount":-9223372036854775808}}}`,
		`{"id":"evt_10","object":"event","type":"issuing_authorization.created","data":{"object":"iauth_1"}}`,
		`{}`, `[]`, `null`, ``, `{"id":"evt_11"`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), int64(0))
	}
}

// FuzzVerifyWebhook signs arbitrary bodies the way Stripe does (Stripe-Signature t=…,v1=…) and
// checks the adapter never panics, fails a genuinely signed body only as invalid, rejects
// timestamps outside five minutes either way as unauthorized, and returns only well-formed
// stripe events.
func FuzzVerifyWebhook(f *testing.F) {
	a := fuzzAdapter(f, fuzzSecret)
	addStripeSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte, offset int64) {
		if offset > 1<<32 || offset < -(1<<32) {
			return
		}
		ts := fuzzNow.Add(time.Duration(offset) * time.Second)
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: fuzzSecret, Timestamp: ts})
		h := http.Header{}
		h.Set("Stripe-Signature", sp.Header)
		evs, err := a.VerifyWebhook(h, body, fuzzNow)
		var ie *issuer.Error
		if offset < -300 || offset > 300 {
			if !errors.As(err, &ie) || ie.Kind != issuer.KindUnauthorized || len(evs) != 0 {
				t.Fatalf("signature %ds off: %+v, %v; want unauthorized", offset, evs, err)
			}
			return
		}
		if err != nil {
			if !errors.As(err, &ie) || ie.Kind != issuer.KindInvalid || evs != nil {
				t.Fatalf("genuinely signed body %q: %+v, %v; want an issuer.Error of kind invalid", body, evs, err)
			}
			return
		}
		for _, ev := range evs {
			if ev.Issuer != stripe.Name {
				t.Fatalf("event from issuer %q", ev.Issuer)
			}
			switch ev.Kind {
			case cardwarden.KindAuthorization, cardwarden.KindCapture, cardwarden.KindForceCapture, cardwarden.KindRefund, cardwarden.KindReversal:
			default:
				t.Fatalf("unknown kind in %+v", ev)
			}
			if ev.Currency != strings.ToUpper(ev.Currency) {
				t.Fatalf("currency not normalized: %+v", ev)
			}
			if ev.Kind == cardwarden.KindAuthorization && !ev.Approved && ev.DeclineReason == "" {
				t.Fatalf("declined authorization without a normalized reason: %+v", ev)
			}
			// Transactions are magnitudes (Stripe signs captures negative). math.MinInt64 has no
			// magnitude in an int64 and comes out negative; no genuine Stripe amount is near it.
			if (ev.Kind == cardwarden.KindCapture || ev.Kind == cardwarden.KindForceCapture || ev.Kind == cardwarden.KindRefund) &&
				ev.AmountMinor < 0 && ev.AmountMinor != math.MinInt64 {
				t.Fatalf("transaction amount not a magnitude: %+v", ev)
			}
		}
	})
}

// FuzzVerifyWebhookForged: a Stripe-Signature header made up by the sender, or one made with
// another endpoint's secret, never verifies.
func FuzzVerifyWebhookForged(f *testing.F) {
	a := fuzzAdapter(f, fuzzSecret)
	addStripeSeeds(f)
	f.Add([]byte(`{}`), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, n int64) {
		check := func(what, header string) {
			t.Helper()
			h := http.Header{}
			h.Set("Stripe-Signature", header)
			evs, err := a.VerifyWebhook(h, body, fuzzNow)
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Kind != issuer.KindUnauthorized || len(evs) != 0 {
				t.Fatalf("%s (%q): %+v, %v; want unauthorized", what, header, evs, err)
			}
		}
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_another_endpoint", Timestamp: fuzzNow})
		check("other secret", sp.Header)
		check("made up", "t="+time.Unix(n, 0).Format("2006")+",v1=00")
		check("no v1", sp.Header[:strings.Index(sp.Header, ",")])
		genuine := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: fuzzSecret, Timestamp: fuzzNow})
		// Several timestamps: a genuine but stale delivery with a fresh t= added anywhere, or a
		// genuine fresh one with a second t=, never verifies (issue 12, item 2).
		age := time.Duration(301+uint64(n)%(1<<20)) * time.Second
		stale := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: fuzzSecret, Timestamp: fuzzNow.Add(-age)})
		freshT := "t=" + strconv.FormatInt(fuzzNow.Unix(), 10)
		check("fresh t= before a stale signature", freshT+","+stale.Header)
		check("fresh t= after a stale signature", stale.Header+","+freshT)
		check("spaced fresh t=", " "+freshT+","+stale.Header)
		check("second t= on a fresh signature", genuine.Header+",t="+strconv.FormatInt(n, 10))
		if _, err := a.VerifyWebhook(http.Header{"Stripe-Signature": {genuine.Header}}, append(body, ' '), fuzzNow); err == nil {
			t.Fatal("signature over another body verified")
		}
	})
}
