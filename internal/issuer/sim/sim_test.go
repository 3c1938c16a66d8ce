package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/issuertest"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

const secret = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1zaW0tYWRhcHRlcg=="

// startSim runs a simulator over real HTTP for the test.
func startSim(t *testing.T, cfg issuersim.Config) (*issuersim.Server, string) {
	t.Helper()
	s, err := issuersim.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts.URL
}

func newAdapter(t *testing.T, url string) *sim.Adapter {
	t.Helper()
	a, err := sim.New(sim.Config{BaseURL: url, APIKey: issuersim.DefaultAPIKey, WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// call makes a raw request to the simulator's API (purchases are not part of the adapter).
func call(t *testing.T, url, method, path string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+issuersim.DefaultAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func purchase(t *testing.T, url, cardID string, amountMinor int64) (approved bool, reason, eventID string) {
	var r struct {
		Approved bool   `json:"approved"`
		Reason   string `json:"reason"`
		EventID  string `json:"event_id"`
	}
	call(t, url, "POST", "/v1/simulate/authorizations", map[string]any{"card_id": cardID, "amount_minor": amountMinor, "merchant": "ACME", "mcc": "5734"}, &r)
	return r.Approved, r.Reason, r.EventID
}

func TestContract(t *testing.T) {
	issuertest.Run(t, func(t *testing.T) issuertest.Harness {
		_, url := startSim(t, issuersim.Config{})
		key, _ := stdwebhooks.DecodeSecret(secret)
		return issuertest.Harness{
			Issuer: newAdapter(t, url),
			// The body is the simulator's own event, exactly as it would deliver it.
			SignWebhook: func(t *testing.T, cardID string, ts time.Time) (http.Header, []byte) {
				_, _, evID := purchase(t, url, cardID, 500)
				var list struct {
					Data []json.RawMessage `json:"data"`
				}
				call(t, url, "GET", "/v1/events?card_id="+cardID, nil, &list)
				for _, raw := range list.Data {
					if bytes.Contains(raw, []byte(`"id":"`+evID+`"`)) {
						h := http.Header{}
						stdwebhooks.Sign(h, key, evID, ts, raw)
						return h, raw
					}
				}
				t.Fatalf("event %s not listed", evID)
				return nil, nil
			},
			Purchase: func(t *testing.T, cardID string, amountMinor int64) {
				if ok, reason, _ := purchase(t, url, cardID, amountMinor); !ok {
					t.Fatalf("purchase declined: %s", reason)
				}
			},
		}
	})
}

// TestWebhooksEndToEnd has the simulator deliver real webhooks to a receiver that verifies
// them with the adapter, failing the first two attempts of every event.
func TestWebhooksEndToEnd(t *testing.T) {
	var mu sync.Mutex
	attempts := map[string]int{}
	got := map[string]cardwarden.Event{}
	var a *sim.Adapter
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evs, err := a.VerifyWebhook(r.Header, body, time.Now())
		if err != nil {
			t.Errorf("verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(stdwebhooks.HeaderID)
		mu.Lock()
		defer mu.Unlock()
		attempts[id]++
		if attempts[id] <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, e := range evs {
			got[e.ID] = e
		}
	}))
	defer recv.Close()
	srv, url := startSim(t, issuersim.Config{WebhookURL: recv.URL, WebhookSecret: secret, WebhookRetryInitial: 10 * time.Millisecond})
	a = newAdapter(t, url)

	ctx := context.Background()
	c, err := a.CreateCard(ctx, issuer.CreateCardRequest{IdempotencyKey: "e2e", Limits: []issuer.SpendLimit{{AmountMinor: 1000, Interval: issuer.Daily}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, okID := purchase(t, url, c.ID, 800)
	_, _, declinedID := purchase(t, url, c.ID, 300)
	a.PauseCard(ctx, c.ID)
	_, _, pausedID := purchase(t, url, c.ID, 100)

	deadline := time.Now().Add(30 * time.Second)
	for srv.Stats().WebhooksPending > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("webhooks still pending: %+v", srv.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range attempts {
		if n != 3 {
			t.Errorf("event %s: %d attempts, want 3", id, n)
		}
	}
	if e := got[okID]; e.Kind != cardwarden.KindAuthorization || !e.Approved || e.AmountMinor != 800 || e.CardID != c.ID || e.MCC != "5734" || e.MerchantName != "ACME" || e.Currency != "USD" {
		t.Errorf("approved event: %+v", e)
	}
	if e := got[declinedID]; e.Approved || e.DeclineReason != cardwarden.ReasonSpendingLimit || e.RawReason != "spending_limit" {
		t.Errorf("declined event: %+v", e)
	}
	if e := got[pausedID]; e.DeclineReason != cardwarden.ReasonCardPaused {
		t.Errorf("paused event: %+v", e)
	}
	if len(got) != 3 {
		t.Errorf("money events: %d, want 3 (card events carry no money)", len(got))
	}
}

func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	srv, url := startSim(t, issuersim.Config{})
	a := newAdapter(t, url)
	req := issuer.CreateCardRequest{IdempotencyKey: "k", Label: "one", Limits: []issuer.SpendLimit{{AmountMinor: 100, Interval: issuer.Daily}}}
	card, err := a.CreateCard(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	req.Label = "two"
	_, err = a.CreateCard(ctx, req)
	if !errors.Is(err, issuer.ErrIdempotencyConflict) || issuer.Retryable(err) {
		t.Fatalf("same key, different body: %v", err)
	}

	bad, _ := sim.New(sim.Config{BaseURL: url, APIKey: "wrong"})
	if _, err := bad.GetCard(ctx, "x"); !errors.Is(err, issuer.ErrUnauthorized) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := a.UpdateLimits(ctx, card.ID, []issuer.SpendLimit{{AmountMinor: 1, Interval: "hourly"}}); !errors.Is(err, issuer.ErrInvalid) {
		t.Fatalf("invalid interval: %v", err)
	}

	if _, err := a.GetCard(ctx, "card_x"); !errors.Is(err, issuer.ErrNotFound) {
		t.Fatalf("unknown card: %v", err)
	}
	srv.SetFaults(issuersim.Faults{ErrorRate: 1})
	if _, err := a.GetCard(ctx, "x"); !errors.Is(err, issuer.ErrTransient) || !issuer.Retryable(err) {
		t.Fatalf("5xx: %v", err)
	}
	srv.SetFaults(issuersim.Faults{RateLimit: 1})
	a.GetCard(ctx, "x")
	_, err = a.GetCard(ctx, "x")
	var ie *issuer.Error
	if !errors.As(err, &ie) || ie.Kind != issuer.KindRateLimited || ie.RetryAfter <= 0 || ie.RetryAfter > time.Second {
		t.Fatalf("429: %v", err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	gone := newAdapter(t, deadURL)
	if _, err := gone.GetCard(ctx, "x"); !errors.Is(err, issuer.ErrTransient) {
		t.Fatalf("connection refused: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.GetCard(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context should stay visible: %v", err)
	}
}

func TestVerifyWebhookWithoutSecret(t *testing.T) {
	a, err := sim.New(sim.Config{BaseURL: "http://127.0.0.1:1", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyWebhook(http.Header{}, nil, time.Now()); !errors.Is(err, issuer.ErrUnauthorized) {
		t.Fatalf("no secret: %v", err)
	}
	if _, err := sim.New(sim.Config{APIKey: "k"}); err == nil || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("missing base URL: %v", err)
	}
}
