package issuersim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

// The decision hook decides before the card's limits; no answer in time (or an unreadable one)
// and the fallback decides. Requests are signed like webhooks and carry the authorization's id.
func TestDecisionHook(t *testing.T) {
	const secret = "hook-secret"
	key, _ := stdwebhooks.DecodeSecret(secret)
	var mode atomic.Value
	var asked atomic.Int64
	var lastID atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := stdwebhooks.Verify(key, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req DecisionRequestJSON
		_ = json.Unmarshal(body, &req)
		asked.Add(1)
		lastID.Store(req.ID)
		switch mode.Load() {
		case "approve":
			_, _ = w.Write([]byte(`{"approved":true}`))
		case "decline":
			_, _ = w.Write([]byte(`{"approved":false,"reason":"merchant_rule"}`))
		case "slow":
			time.Sleep(400 * time.Millisecond)
			_, _ = w.Write([]byte(`{"approved":true}`))
		default:
			_, _ = w.Write([]byte(`not json`))
		}
	}))
	defer hook.Close()
	sink, url := newSink(t, secret, 0)
	_ = sink
	s, c := newSim(t, Config{WebhookURL: url, WebhookSecret: secret, Decisions: DecisionHook{URL: hook.URL, TimeoutMS: 200}})
	id := createCard(c, limit{intervalAllTime, 1000})

	mode.Store("approve")
	r := buy(c, id, "4.00")
	wantApproved(t, r)
	if lastID.Load() != r["authorization_id"] {
		t.Fatalf("the decision request's id %v is not the authorization's %v", lastID.Load(), r["authorization_id"])
	}
	mode.Store("decline")
	wantDecline(t, buy(c, id, "1.00"), reasonDecisionDeclined)
	// Approved by the owner but over the card's limit: the limit is the backstop.
	mode.Store("approve")
	wantDecline(t, buy(c, id, "7.00"), reasonSpendingLimit)
	// Too slow, or not an answer: the fallback (decline by default).
	mode.Store("slow")
	wantDecline(t, buy(c, id, "1.00"), reasonDecisionTimeout)
	mode.Store("garbage")
	wantDecline(t, buy(c, id, "1.00"), reasonDecisionTimeout)
	if err := s.SetDecisionHook(DecisionHook{URL: hook.URL, TimeoutMS: 200, Fallback: FallbackApprove}); err != nil {
		t.Fatal(err)
	}
	mode.Store("slow")
	wantApproved(t, buy(c, id, "1.00"))
	// A paused card is declined before anyone is asked.
	before := asked.Load()
	c.must(200, "POST", "/v1/cards/"+id+"/pause", map[string]any{})
	wantDecline(t, buy(c, id, "1.00"), reasonCardPaused)
	if asked.Load() != before {
		t.Fatal("the hook was asked about a paused card")
	}
	st := s.Stats()
	if st.DecisionsAsked != 6 || st.DecisionsFallback != 3 {
		t.Fatalf("stats: asked %d, fallback %d", st.DecisionsAsked, st.DecisionsFallback)
	}
	if err := s.SetDecisionHook(DecisionHook{URL: hook.URL, Fallback: "maybe"}); err == nil {
		t.Fatal("fallback maybe accepted")
	}
	got := c.must(200, "GET", "/v1/sim/decisions", nil)
	if got["fallback"] != FallbackApprove || got["timeout_ms"] != float64(200) {
		t.Fatalf("GET /v1/sim/decisions: %v", got)
	}
}

// While the owner decides, the simulator serves other requests: the state lock is not held.
func TestDecisionHookDoesNotBlockOtherRequests(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write([]byte(`{"approved":true}`))
	}))
	defer hook.Close()
	_, url := newSink(t, "s", 0)
	_, c := newSim(t, Config{WebhookURL: url, WebhookSecret: "s", Decisions: DecisionHook{URL: hook.URL, TimeoutMS: 5000}})
	id := createCard(c, limit{intervalAllTime, 1000})
	done := make(chan map[string]any)
	go func() { done <- buy(c, id, "1.00") }()
	time.Sleep(100 * time.Millisecond)
	c.must(200, "GET", "/v1/cards/"+id, nil) // answered while the purchase waits
	close(release)
	wantApproved(t, <-done)
}
