package issuersim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

const testKey = "sim_test_key"

// client is a tiny JSON client for the simulator's API.
type client struct {
	t   *testing.T
	url string
	key string
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c client) do(method, path string, body any, hdr ...string) resp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return out
}

func (c client) must(status int, method, path string, body any, hdr ...string) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body, hdr...)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r.body
}

func newSim(t *testing.T, cfg Config) (*Server, client) {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	key := cfg.APIKey
	if key == "" {
		key = DefaultAPIKey
	}
	return s, client{t: t, url: ts.URL, key: key}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func createCard(c client, limits ...limit) string {
	c.t.Helper()
	body := c.must(201, "POST", "/v1/cards", map[string]any{"label": "test", "limits": limits})
	return body["id"].(string)
}

func buy(c client, cardID string, amountUSD any, extra ...string) map[string]any {
	c.t.Helper()
	req := map[string]any{"card_id": cardID, "amount_usd": amountUSD, "merchant": "ACME", "mcc": "5734"}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	return c.must(200, "POST", "/v1/simulate/authorizations", req)
}

func wantDecline(t *testing.T, r map[string]any, reason string) {
	t.Helper()
	if r["approved"] != false || r["reason"] != reason {
		t.Fatalf("want decline %s, got %v", reason, r)
	}
	if r["authorization_id"] == "" {
		t.Fatal("declines carry an authorization id too")
	}
}

func wantApproved(t *testing.T, r map[string]any) {
	t.Helper()
	if r["approved"] != true || r["reason"] != "" {
		t.Fatalf("want approval, got %v", r)
	}
}

func TestOverLimitPurchaseDeclined(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c, limit{intervalDaily, 5000}, limit{intervalPerAuthorization, 4000})

	wantApproved(t, buy(c, id, "30.00"))
	wantDecline(t, buy(c, id, "20.01"), reasonSpendingLimit) // 30 + 20.01 > 50 daily
	wantApproved(t, buy(c, id, 20))                          // exactly at the daily limit
	wantDecline(t, buy(c, id, "0.01"), reasonSpendingLimit)

	other := createCard(c, limit{intervalPerAuthorization, 4000})
	wantDecline(t, buy(c, other, "40.01"), reasonSpendingLimit)
	wantApproved(t, buy(c, other, "40"))

	card := c.must(200, "GET", "/v1/cards/"+id, nil)
	if spend := card["spend"].(map[string]any); spend["daily_minor"] != float64(5000) {
		t.Fatalf("daily spend %v, want 5000", spend["daily_minor"])
	}
	if _, leaked := card["number"]; leaked {
		t.Fatal("GET card returned the number")
	}
}

func TestPausedClosedExpiredDeclines(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c, limit{intervalAllTime, 100000})
	c.must(200, "POST", "/v1/cards/"+id+"/pause", nil)
	wantDecline(t, buy(c, id, "1.00"), reasonCardPaused)
	c.must(200, "POST", "/v1/cards/"+id+"/resume", nil)
	wantApproved(t, buy(c, id, "1.00"))
	c.must(200, "POST", "/v1/cards/"+id+"/close", nil)
	wantDecline(t, buy(c, id, "1.00"), reasonCardClosed)
	r := c.do("POST", "/v1/cards/"+id+"/close", nil)
	if r.status != http.StatusConflict || r.body["error"].(map[string]any)["code"] != "already_closed" {
		t.Fatalf("second close: %d %s", r.status, r.raw)
	}
	if r := c.do("POST", "/v1/cards/"+id+"/resume", nil); r.status != http.StatusConflict {
		t.Fatalf("resume closed card: %d %s", r.status, r.raw)
	}

	exp := c.must(201, "POST", "/v1/cards", map[string]any{"exp_month": 1, "exp_year": 2001})
	wantDecline(t, buy(c, exp["id"].(string), "1.00"), reasonCardExpired)

	blocked := c.must(201, "POST", "/v1/cards", map[string]any{"blocked_mccs": []string{"7995"}})
	wantDecline(t, buy(c, blocked["id"].(string), "1.00", "mcc", "7995"), reasonMerchantBlocked)
	wantApproved(t, buy(c, blocked["id"].(string), "1.00"))
	wantDecline(t, buy(c, blocked["id"].(string), "1.00", "force_decline", "suspected_fraud"), reasonSuspectedFraud)
}

func TestConcurrentPurchasesNeverExceedLimit(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c, limit{intervalAllTime, 10000}) // $100
	var wg sync.WaitGroup
	var mu sync.Mutex
	approved := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := buy(c, id, "7.00")
			if r["approved"] == true {
				mu.Lock()
				approved++
				mu.Unlock()
			} else if r["reason"] != reasonSpendingLimit {
				t.Errorf("unexpected decline %v", r["reason"])
			}
		}()
	}
	wg.Wait()
	if approved*700 > 10000 {
		t.Fatalf("approved %d purchases of $7 against a $100 limit", approved)
	}
	if approved != 14 {
		t.Fatalf("approved %d, want 14 (the limit must be usable to the last cent it allows)", approved)
	}
	card := c.must(200, "GET", "/v1/cards/"+id, nil)
	if got := card["spend"].(map[string]any)["all_time_minor"]; got != float64(9800) {
		t.Fatalf("all-time spend %v, want 9800", got)
	}
}

func TestRateLimit(t *testing.T) {
	s, c := newSim(t, Config{RateLimit: 20})
	// 21 requests must land within one second for the 21st to be refused. On a loaded
	// machine a burst can take longer; then the limiter is right to admit it, so try again
	// rather than assert on timing.
	for attempt := 0; ; attempt++ {
		time.Sleep(1100 * time.Millisecond) // let the window empty
		start := time.Now()
		var rs []resp
		for range 21 {
			rs = append(rs, c.do("GET", "/v1/cards", nil))
		}
		if time.Since(start) >= time.Second {
			if attempt == 5 {
				t.Fatalf("could not send 21 requests within one second in 6 attempts")
			}
			continue
		}
		for i, r := range rs[:20] {
			if r.status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i+1, r.status, r.raw)
			}
		}
		last := rs[20]
		if last.status != http.StatusTooManyRequests {
			t.Fatalf("21st request: %d, want 429", last.status)
		}
		ra, err := strconv.Atoi(last.header.Get("Retry-After"))
		if err != nil || ra < 1 {
			t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
		}
		if last.body["error"].(map[string]any)["code"] != "rate_limited" {
			t.Fatalf("429 body: %s", last.raw)
		}
		time.Sleep(time.Duration(ra) * time.Second)
		if r := c.do("GET", "/v1/cards", nil); r.status != http.StatusOK {
			t.Fatalf("after Retry-After: %d", r.status)
		}
		break
	}
	// The control plane is never limited.
	for range 30 {
		c.must(200, "GET", "/v1/sim/stats", nil)
	}
	st := s.Stats()
	if st.RateLimited < 1 || st.PeakRequestsPerSecond > 20 {
		t.Fatalf("stats: rate_limited=%d peak=%d", st.RateLimited, st.PeakRequestsPerSecond)
	}
}

// Simulated purchases are card-network traffic: they neither count against the API rate limit
// nor are refused by it.
func TestSimulatedPurchasesAreNotRateLimited(t *testing.T) {
	s, c := newSim(t, Config{RateLimit: 2})
	card := createCard(c)
	for range 10 {
		buy(c, card, "1.00") // must answers 200 or fails the test
	}
	time.Sleep(1100 * time.Millisecond) // let the window empty of the card creation
	c.must(200, "GET", "/v1/cards", nil)
	c.must(200, "GET", "/v1/cards", nil)
	if st := s.Stats(); st.RateLimited != 0 {
		t.Fatalf("%d requests refused", st.RateLimited)
	}
}

// webhookSink records deliveries and fails the first failFirst attempts of every event.
type webhookSink struct {
	mu        sync.Mutex
	failFirst int
	attempts  map[string]int
	bodies    map[string][]byte
	order     []string
	key       []byte
	t         *testing.T
}

func newSink(t *testing.T, secret string, failFirst int) (*webhookSink, string) {
	key, err := stdwebhooks.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	k := &webhookSink{failFirst: failFirst, attempts: map[string]int{}, bodies: map[string][]byte{}, key: key, t: t}
	ts := httptest.NewServer(k)
	t.Cleanup(ts.Close)
	return k, ts.URL
}

func (k *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, err := stdwebhooks.Verify(k.key, r.Header, body, time.Now(), 0)
	if err != nil {
		k.t.Errorf("webhook signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.attempts[id]++
	if prev, seen := k.bodies[id]; seen && !bytes.Equal(prev, body) {
		k.t.Errorf("event %s redelivered with a different body", id)
	}
	k.bodies[id] = body
	if k.attempts[id] <= k.failFirst {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	k.order = append(k.order, id)
	w.WriteHeader(http.StatusNoContent)
}

func (k *webhookSink) count(id string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.attempts[id]
}

func TestWebhookRetriedUntilAcknowledged(t *testing.T) {
	secret := "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="
	sink, url := newSink(t, secret, 2)
	s, c := newSim(t, Config{WebhookURL: url, WebhookSecret: secret, WebhookRetryInitial: 20 * time.Millisecond})
	id := createCard(c, limit{intervalDaily, 1000})
	auth := buy(c, id, "2.50")
	evID := auth["event_id"].(string)

	eventually(t, "the third attempt of the authorization event", func() bool { return sink.count(evID) >= 3 })
	eventually(t, "all events acknowledged", func() bool { return s.Stats().WebhooksPending == 0 })
	if n := sink.count(evID); n != 3 {
		t.Fatalf("event delivered %d times, want 3 (2 failures, 1 success)", n)
	}
	var ev struct {
		ID   string         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	sink.mu.Lock()
	json.Unmarshal(sink.bodies[evID], &ev)
	sink.mu.Unlock()
	if ev.ID != evID || ev.Type != eventAuthorization || ev.Data["amount_minor"] != float64(250) || ev.Data["approved"] != true {
		t.Fatalf("delivered event: %+v", ev)
	}
	st := s.Stats()
	if st.WebhooksAcknowledged != st.EventsCreated || st.WebhooksSent != 3*st.EventsCreated || st.WebhooksFailed != 2*st.EventsCreated {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDuplicateAndReorderedWebhooks(t *testing.T) {
	sink, url := newSink(t, "raw-secret", 0)
	s, c := newSim(t, Config{WebhookURL: url, WebhookSecret: "raw-secret", DuplicateWebhooks: 1, ReorderWebhooks: true})
	id := createCard(c)
	var ids []string
	for range 5 {
		ids = append(ids, buy(c, id, "1.00")["event_id"].(string))
	}
	for _, e := range ids {
		eventually(t, "duplicate delivery of "+e, func() bool { return sink.count(e) >= 2 })
	}
	eventually(t, "all acknowledged", func() bool { return s.Stats().WebhooksPending == 0 })
}

func TestIdempotency(t *testing.T) {
	s, c := newSim(t, Config{})
	body := `{"label":"a","limits":[{"interval":"daily","amount_minor":500}]}`
	first := c.do("POST", "/v1/cards", body, "Idempotency-Key", "k1")
	if first.status != 201 {
		t.Fatalf("create: %d %s", first.status, first.raw)
	}
	// Same content, different formatting and key order: the same request.
	again := c.do("POST", "/v1/cards", `{ "limits":[{"amount_minor":500,"interval":"daily"}], "label":"a" }`, "Idempotency-Key", "k1")
	if again.status != 201 || again.body["id"] != first.body["id"] || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.status, again.raw)
	}
	conflict := c.do("POST", "/v1/cards", `{"label":"b"}`, "Idempotency-Key", "k1")
	if conflict.status != http.StatusConflict || conflict.body["error"].(map[string]any)["code"] != "idempotency_conflict" {
		t.Fatalf("conflict: %d %s", conflict.status, conflict.raw)
	}
	// A validation failure is not remembered: fixing the request with the same key works.
	if r := c.do("POST", "/v1/cards", `{"currency":"dollars"}`, "Idempotency-Key", "k2"); r.status != 400 {
		t.Fatalf("invalid: %d", r.status)
	}
	c.must(201, "POST", "/v1/cards", `{"currency":"usd"}`, "Idempotency-Key", "k2")
	if st := s.Stats(); st.CardsCreated != 2 || st.IdempotentReplays != 1 {
		t.Fatalf("stats: %+v", st)
	}

	// Purchases are idempotent too: a retried purchase is not a second purchase.
	id := first.body["id"].(string)
	p := map[string]any{"card_id": id, "amount_usd": "3.00"}
	a1 := c.must(200, "POST", "/v1/simulate/authorizations", p, "Idempotency-Key", "buy-1")
	a2 := c.must(200, "POST", "/v1/simulate/authorizations", p, "Idempotency-Key", "buy-1")
	if a1["authorization_id"] != a2["authorization_id"] {
		t.Fatal("replayed purchase created a second authorization")
	}
	wantDecline(t, buy(c, id, "2.01"), reasonSpendingLimit)
}

func TestIdempotencyKeyExpires(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	_, c := newSim(t, Config{Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	a := c.must(201, "POST", "/v1/cards", `{}`, "Idempotency-Key", "k")
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	b := c.must(201, "POST", "/v1/cards", `{}`, "Idempotency-Key", "k")
	if a["id"] == b["id"] {
		t.Fatal("a key older than 24h still replayed")
	}
}

func TestMoneyMovement(t *testing.T) {
	s, c := newSim(t, Config{})
	id := createCard(c, limit{intervalDaily, 10000}, limit{intervalAllTime, 20000})
	spend := func() map[string]any { return c.must(200, "GET", "/v1/cards/"+id, nil)["spend"].(map[string]any) }

	a := buy(c, id, "40.00")
	// Over-capture: a $40 authorization settles at $48 (a tip). Issuers cannot refuse it.
	capt := c.must(200, "POST", "/v1/simulate/captures", map[string]any{"authorization_id": a["authorization_id"], "amount_usd": "48.00"})
	if capt["overcapture_minor"] != float64(800) {
		t.Fatalf("capture: %v", capt)
	}
	if r := c.do("POST", "/v1/simulate/captures", map[string]any{"authorization_id": a["authorization_id"]}); r.status != 400 {
		t.Fatalf("double capture: %d", r.status)
	}
	if got := spend()["daily_minor"]; got != float64(4800) {
		t.Fatalf("daily after capture: %v", got)
	}

	b := buy(c, id, "30.00")
	c.must(200, "POST", "/v1/simulate/reversals", map[string]any{"authorization_id": b["authorization_id"], "amount_minor": 1000})
	if got := spend()["daily_minor"]; got != float64(6800) {
		t.Fatalf("daily after partial reversal: %v", got)
	}
	c.must(200, "POST", "/v1/simulate/reversals", map[string]any{"authorization_id": b["authorization_id"]})
	if got := spend()["held_minor"]; got != float64(0) {
		t.Fatalf("held after full reversal: %v", got)
	}

	c.must(200, "POST", "/v1/cards/"+id+"/close", nil)
	// Force-posts ignore status and limits.
	fp := c.must(200, "POST", "/v1/simulate/force_captures", map[string]any{"card_id": id, "amount_usd": "100.00", "merchant": "Airline"})
	if got := spend()["daily_minor"]; got != float64(14800) {
		t.Fatalf("daily after force-post: %v (limit is 10000, force-posts exceed it)", got)
	}
	c.must(200, "POST", "/v1/simulate/refunds", map[string]any{"transaction_id": fp["transaction_id"], "amount_usd": "60"})
	sp := spend()
	if sp["daily_minor"] != float64(14800) || sp["all_time_minor"] != float64(8800) {
		t.Fatalf("after refund: %v (refunds restore only all-time)", sp)
	}
	if r := c.do("POST", "/v1/simulate/refunds", map[string]any{"transaction_id": fp["transaction_id"], "amount_usd": "40.01"}); r.status != 400 {
		t.Fatalf("over-refund: %d", r.status)
	}

	evs := c.must(200, "GET", "/v1/cards/"+id+"/authorizations", nil)["data"].([]any)
	var types []string
	for _, e := range evs {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	want := []string{eventAuthorization, eventCapture, eventAuthorization, eventReversal, eventReversal, eventForceCapture, eventRefund}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("money events %v, want %v", types, want)
	}
	if st := s.Stats(); st.Captures != 1 || st.ForceCaptures != 1 || st.Refunds != 1 || st.Reversals != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDailyWindowResetsAtUTCMidnight(t *testing.T) {
	_, c := newSim(t, Config{Clock: func() time.Time { return time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC) }})
	id := createCard(c, limit{intervalDaily, 1000}, limit{intervalAllTime, 1500})
	wantApproved(t, buy(c, id, "10"))
	wantDecline(t, buy(c, id, "1"), reasonSpendingLimit)
	c.must(200, "POST", "/v1/sim/clock", map[string]any{"advance": "1h"})
	wantApproved(t, buy(c, id, "5"))
	wantDecline(t, buy(c, id, "0.01"), reasonSpendingLimit) // all-time now binds
	if r := c.do("POST", "/v1/sim/clock", map[string]any{"advance": "-1h"}); r.status != 400 {
		t.Fatal("clock moved backwards")
	}
}

func TestCardNumberPurchaseAndReveal(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c)
	sec := c.must(200, "GET", "/v1/cards/"+id+"/reveal", nil)
	num := sec["number"].(string)
	if len(num) != 16 || luhnCheckDigit(num[:15]) != int(num[15]-'0') || len(sec["cvc"].(string)) != 3 {
		t.Fatalf("reveal: %v", sec)
	}
	r := c.must(200, "POST", "/v1/simulate/authorizations", map[string]any{"card_number": num, "amount_minor": 100})
	if r["card_id"] != id || r["approved"] != true {
		t.Fatalf("purchase by number: %v", r)
	}
	list := c.must(200, "GET", "/v1/cards", nil)
	if bytes.Contains(mustJSON(t, list), []byte(num)) {
		t.Fatal("card listing leaks the number")
	}
	evs := c.must(200, "GET", "/v1/events", nil)
	if bytes.Contains(mustJSON(t, evs), []byte(num)) {
		t.Fatal("events leak the number")
	}
	if r := c.do("POST", "/v1/simulate/authorizations", map[string]any{"card_number": "4000000000000002", "amount_usd": 1}); r.status != 404 || bytes.Contains(r.raw, []byte("4000000000000002")) {
		t.Fatalf("unknown number: %d %s", r.status, r.raw)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidation(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c)
	for _, body := range []string{
		`{"limits":[{"interval":"hourly","amount_minor":1}]}`,
		`{"limits":[{"interval":"daily","amount_minor":-1}]}`,
		`{"limits":[{"interval":"daily","amount_minor":1},{"interval":"daily","amount_minor":2}]}`,
		`{"unknown_field":1}`,
		`{"exp_month":13,"exp_year":2030}`,
	} {
		if r := c.do("POST", "/v1/cards", body); r.status != 400 {
			t.Errorf("%s: %d", body, r.status)
		}
	}
	for _, amt := range []any{"1.001", "-1", "1e3", "abc", 0, "0.00", 1.005} {
		if r := c.do("POST", "/v1/simulate/authorizations", map[string]any{"card_id": id, "amount_usd": amt}); r.status != 400 {
			t.Errorf("amount %v: %d %s", amt, r.status, r.raw)
		}
	}
	if r := c.do("GET", "/v1/cards/card_nope", nil); r.status != 404 {
		t.Errorf("unknown card: %d", r.status)
	}
}

func TestParseUSD(t *testing.T) {
	good := map[string]int64{"0": 0, "1": 100, "12.34": 1234, "0.29": 29, ".5": 50, "1.50": 150, "1.500": 150, "$3": 300, "50000": 5000000}
	for in, want := range good {
		if got, err := parseUSD(in); err != nil || got != want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "1.", "1.001", "-1", "+1", "1e2", "1,000", "NaN", "99999999999999999999"} {
		if got, err := parseUSD(in); err == nil {
			t.Errorf("parseUSD(%q) = %d, want error", in, got)
		}
	}
	var a amount
	if err := json.Unmarshal([]byte(`19.99`), &a); err != nil || a.minor != 1999 {
		t.Fatalf("number: %v %v", a, err)
	}
}

func TestAuthAndFaults(t *testing.T) {
	s, c := newSim(t, Config{APIKey: "k"})
	bad := client{t: t, url: c.url, key: "wrong"}
	if r := bad.do("GET", "/v1/cards", nil); r.status != 401 {
		t.Fatalf("bad key: %d", r.status)
	}
	if r := bad.do("GET", "/api/v1/cards", nil); r.status != 401 || r.body["success"] != false {
		t.Fatalf("bad key, AIPP dialect: %d %s", r.status, r.raw)
	}
	c.must(200, "POST", "/v1/sim/faults", map[string]any{"error_rate": 1})
	for range 5 {
		if r := c.do("GET", "/v1/cards", nil); r.status != 500 && r.status != 503 {
			t.Fatalf("error_rate 1: %d", r.status)
		}
	}
	f := c.must(200, "POST", "/v1/sim/faults", map[string]any{"error_rate": 0, "latency_ms": 1})
	if f["latency_ms"] != float64(1) || f["error_rate"] != float64(0) {
		t.Fatalf("faults: %v", f)
	}
	c.must(200, "GET", "/v1/cards", nil)
	// Latency is a lower bound, so asserting it is safe on a loaded machine.
	c.must(200, "POST", "/v1/sim/faults", map[string]any{"latency_ms": 150})
	start := time.Now()
	c.must(200, "GET", "/v1/cards", nil)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("latency fault: request took %v", d)
	}
	c.must(200, "POST", "/v1/sim/faults", map[string]any{"latency_ms": 0})
	if r := c.do("POST", "/v1/sim/faults", map[string]any{"error_rate": 2}); r.status != 400 {
		t.Fatalf("bad fault: %d", r.status)
	}
	st := c.must(200, "GET", "/v1/sim/stats", nil)
	for _, k := range []string{"cards_created", "cards_by_state", "requests", "rate_limited", "webhooks_sent", "webhooks_acknowledged"} {
		if _, ok := st[k]; !ok {
			t.Errorf("stats lack %s", k)
		}
	}
	if s.Stats().ErrorsInjected != 5 {
		t.Fatalf("errors injected: %d", s.Stats().ErrorsInjected)
	}
}

func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.json")
	s1, err := NewServer(Config{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s1)
	c := client{t: t, url: ts.URL, key: DefaultAPIKey}
	id := createCard(c, limit{intervalAllTime, 1000})
	num := c.must(200, "GET", "/v1/cards/"+id+"/reveal", nil)["number"]
	wantApproved(t, buy(c, id, "6"))
	c.must(201, "POST", "/v1/cards", `{}`, "Idempotency-Key", "persisted-key")
	ts.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	_, c2 := newSim(t, Config{StatePath: path})
	if got := c2.must(200, "GET", "/v1/cards/"+id+"/reveal", nil)["number"]; got != num {
		t.Fatal("card number changed across restart")
	}
	wantDecline(t, buy(c2, id, "5"), reasonSpendingLimit) // the $6 hold survived
	again := c2.do("POST", "/v1/cards", `{}`, "Idempotency-Key", "persisted-key")
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("idempotency keys were not persisted")
	}
}

func TestUndeliveredWebhooksResumeAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.json")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	s1, err := NewServer(Config{StatePath: path, WebhookURL: down.URL, WebhookSecret: "s", WebhookRetryInitial: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s1)
	c := client{t: t, url: ts.URL, key: DefaultAPIKey}
	id := createCard(c)
	evID := buy(c, id, "1")["event_id"].(string)
	ts.Close()
	s1.Close()

	sink, url := newSink(t, "s", 0)
	_, _ = newSim(t, Config{StatePath: path, WebhookURL: url, WebhookSecret: "s"})
	eventually(t, "redelivery after restart", func() bool { return sink.count(evID) == 1 })
}

func TestAIPPDialect(t *testing.T) {
	_, c := newSim(t, Config{})
	for _, body := range []string{`{"limit_usd":0}`, `{"limit_usd":50001}`, `{"limit_usd":1.5}`, `{"limit_usd":"10"}`, `{"label":"x"}`} {
		r := c.do("POST", "/api/v1/cards", body)
		if r.status != 400 || r.body["success"] != false || r.body["error"] == "" {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	r := c.must(201, "POST", "/api/v1/cards", map[string]any{"label": "agent", "limit_usd": 25})
	data := r["data"].(map[string]any)
	id := data["id"].(string)
	if r["success"] != true || data["limit_usd"] != float64(25) || data["status"] != "active" || data["number"] != nil {
		t.Fatalf("create: %v", r)
	}
	createCard(c) // a native card: not listed by the AIPP dialect
	list := c.must(200, "GET", "/api/v1/cards", nil)["data"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %v", list)
	}
	got := c.must(200, "GET", "/api/v1/cards/"+id, nil)["data"].(map[string]any)
	if len(got["number"].(string)) != 16 || len(got["cvc"].(string)) != 3 || got["exp_year"] == nil {
		t.Fatalf("get must reveal: %v", got)
	}
	// limit_usd is cumulative: $25 across any number of purchases.
	wantApproved(t, buy(c, id, "20"))
	wantDecline(t, buy(c, id, "5.01"), reasonSpendingLimit)
	wantApproved(t, buy(c, id, "5"))

	del := c.must(200, "DELETE", "/api/v1/cards/"+id, nil)
	if del["data"].(map[string]any)["status"] != "canceled" {
		t.Fatalf("delete: %v", del)
	}
	again := c.do("DELETE", "/api/v1/cards/"+id, nil)
	if again.status != http.StatusConflict || again.body["code"] != "already_closed" {
		t.Fatalf("second delete: %d %s", again.status, again.raw)
	}
	if n := len(c.must(200, "GET", "/api/v1/cards?status=active", nil)["data"].([]any)); n != 0 {
		t.Fatalf("active after delete: %d", n)
	}
	if r := c.do("GET", "/api/v1/cards/nope", nil); r.status != 404 || r.body["success"] != false {
		t.Fatalf("unknown: %d %s", r.status, r.raw)
	}
}

// TestWindowLimiter checks the sliding window with synthetic times: never more than the
// limit in any one-second window, and Retry-After is when the oldest request leaves it.
func TestWindowLimiter(t *testing.T) {
	l := newWindowLimiter(20)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 20 {
		if ok, _ := l.allow(t0.Add(time.Duration(i) * 10 * time.Millisecond)); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	ok, wait := l.allow(t0.Add(500 * time.Millisecond))
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("21st: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.allow(t0.Add(999 * time.Millisecond)); ok {
		t.Fatal("21st within the first second admitted")
	}
	if ok, _ := l.allow(t0.Add(time.Second)); !ok {
		t.Fatal("request after the first left the window refused")
	}
	if ok, _ := l.allow(t0.Add(time.Second + 5*time.Millisecond)); ok {
		t.Fatal("admitted a 21st request within (0.005, 1.005]")
	}
	if l.peakPerSecond() != 20 {
		t.Fatalf("peak %d", l.peakPerSecond())
	}
	l.setLimit(0)
	for i := range 100 {
		if ok, _ := l.allow(t0.Add(2*time.Second + time.Duration(i))); !ok {
			t.Fatal("limit 0 must not limit")
		}
	}
	if l.peakPerSecond() != 100 {
		t.Fatalf("peak without limit %d", l.peakPerSecond())
	}
}

// TestServeStopsOnCancel: Serve returns when its context ends, stopping webhook retries.
func TestServeStopsOnCancel(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer down.Close()
	s, err := NewServer(Config{WebhookURL: down.URL, WebhookSecret: "s", WebhookRetryInitial: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := client{t: t, url: "http://" + ln.Addr().String(), key: DefaultAPIKey}
	createCard(c) // its card.created event is retried forever against the failing endpoint
	eventually(t, "a failed delivery", func() bool { return s.Stats().WebhooksFailed > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	sent := s.Stats().WebhooksSent
	time.Sleep(50 * time.Millisecond)
	if s.Stats().WebhooksSent != sent {
		t.Fatal("webhook delivery continued after Close")
	}
}

// Leak 6: a signed capture of 9223372036854775807 and then $1,000,000 and $50,000 purchases
// were all approved against a $10 limit (usage+amount wrapped). Amounts above one payment's
// maximum are refused, and the limit comparison cannot overflow.
func TestAbsurdAmountsCannotWrapLimits(t *testing.T) {
	_, c := newSim(t, Config{})
	id := createCard(c, limit{intervalAllTime, 1000})
	auth := buy(c, id, "5.00")
	authID := auth["authorization_id"].(string)
	for _, body := range []map[string]any{
		{"authorization_id": authID, "amount_minor": int64(9223372036854775807)},
		{"authorization_id": authID, "amount_minor": maxAmountMinor + 1},
	} {
		if r := c.must(400, "POST", "/v1/simulate/captures", body); r["error"] == nil {
			t.Fatalf("capture %v accepted: %v", body["amount_minor"], r)
		}
	}
	c.must(400, "POST", "/v1/simulate/force_captures", map[string]any{"card_id": id, "amount_usd": "99999999999999999.99"})
	c.must(400, "POST", "/v1/cards", map[string]any{"label": "x", "limits": []limit{{intervalAllTime, maxLimitMinor + 1}}})
	// The largest payment there is against the largest limit there is: compared without
	// overflow, and the limit still holds.
	big := createCard(c, limit{intervalAllTime, maxLimitMinor})
	for range 3 {
		c.must(200, "POST", "/v1/simulate/force_captures", map[string]any{"card_id": big, "amount_minor": maxAmountMinor})
	}
	wantDecline(t, c.must(200, "POST", "/v1/simulate/authorizations", map[string]any{"card_id": id, "amount_minor": maxAmountMinor}), reasonSpendingLimit)
	wantDecline(t, c.must(200, "POST", "/v1/simulate/authorizations", map[string]any{"card_id": id, "amount_usd": "50000"}), reasonSpendingLimit)
	wantApproved(t, c.must(200, "POST", "/v1/simulate/authorizations", map[string]any{"card_id": id, "amount_usd": "5.00"}))
	wantDecline(t, c.must(200, "POST", "/v1/simulate/authorizations", map[string]any{"card_id": id, "amount_minor": 1}), reasonSpendingLimit)
}

// The drop fault loses an event for good (only a listing finds it); the delay fault holds it.
func TestDroppedAndDelayedWebhooks(t *testing.T) {
	sink, url := newSink(t, "raw-secret", 0)
	s, c := newSim(t, Config{WebhookURL: url, WebhookSecret: "raw-secret"})
	id := createCard(c)
	// The card's own card.created event is delivered before the fault is set.
	eventually(t, "card.created delivered", func() bool { return s.Stats().WebhooksPending == 0 })
	if err := s.SetFaults(Faults{DropWebhooks: 1}); err != nil {
		t.Fatal(err)
	}
	lost := buy(c, id, "1.00")["event_id"].(string)
	eventually(t, "the dropped event leaves the queue", func() bool { return s.Stats().WebhooksPending == 0 })
	if err := s.SetFaults(Faults{WebhookDelayMS: 300}); err != nil {
		t.Fatal(err)
	}
	late := buy(c, id, "1.00")["event_id"].(string)
	eventually(t, "the delayed event", func() bool { return sink.count(late) == 1 })
	if sink.count(lost) != 0 || s.Stats().WebhooksDropped != 1 {
		t.Fatalf("dropped event delivered %d times; %d dropped", sink.count(lost), s.Stats().WebhooksDropped)
	}
	listed := c.must(200, "GET", "/v1/cards/"+id+"/authorizations", nil)["data"].([]any)
	if len(listed) != 2 {
		t.Fatalf("listing shows %d events, want both", len(listed))
	}
	if err := s.SetFaults(Faults{DropWebhooks: 1.5}); err == nil {
		t.Fatal("drop_webhooks 1.5 accepted")
	}
}
