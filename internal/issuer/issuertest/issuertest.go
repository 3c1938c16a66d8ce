// Package issuertest is the contract every issuer adapter must meet, as a test suite: the
// same lifecycle cases run against each adapter over real HTTP (the simulator for sim and
// aipaymentproxy, stripe-mock for stripe). A case that an adapter's capabilities rule out is
// checked for ErrNotSupported instead; a case that needs a stateful backend is skipped, with
// the harness's reason, when the backend is not (stripe-mock answers canned fixtures).
package issuertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Harness is one adapter wired to a backend.
type Harness struct {
	Issuer issuer.Issuer
	// Stateless, when non-empty, is why the backend cannot remember what it was told;
	// cases that need it skip with this reason.
	Stateless string
	// SignWebhook returns a delivery, signed at ts with the adapter's webhook secret, that
	// reports one money event on cardID in the issuer's own format. Nil means the adapter
	// cannot verify webhooks, and VerifyWebhook must answer ErrNotSupported.
	SignWebhook func(t *testing.T, cardID string, ts time.Time) (http.Header, []byte)
	// Purchase makes the issuer approve an authorization of amountMinor on cardID, so
	// ListAuthorizations can be checked; nil when the backend cannot simulate purchases.
	Purchase func(t *testing.T, cardID string, amountMinor int64)
}

// Factory builds a fresh harness for one case; it registers its own cleanup with t.
type Factory func(t *testing.T) Harness

// Run runs the contract against the adapter newHarness builds.
func Run(t *testing.T, newHarness Factory) {
	cases := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"capabilities", testCapabilities},
		{"create_requires_idempotency_key", testCreateRequiresKey},
		{"create_same_key_twice_gives_one_card", testCreateIdempotent},
		{"get", testGet},
		{"get_unknown_card_is_not_found", testGetNotFound},
		{"update_limits", testUpdateLimits},
		{"pause_resume", testPauseResume},
		{"close_twice", testCloseTwice},
		{"reveal", testReveal},
		{"webhook_verification", testWebhook},
		{"list_authorizations", testListAuthorizations},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newHarness(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func needState(t *testing.T, h Harness) {
	t.Helper()
	if h.Stateless != "" {
		t.Skip(h.Stateless)
	}
}

// wantKind fails unless err is an *issuer.Error of kind want.
func wantKind(t *testing.T, what string, err error, want *issuer.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want kind %s", what, err, want.Kind)
	}
	var ie *issuer.Error
	if !errors.As(err, &ie) || ie.Op == "" {
		t.Fatalf("%s: error %v is not an *issuer.Error with Op set", what, err)
	}
}

func request(key string) issuer.CreateCardRequest {
	return issuer.CreateCardRequest{
		IdempotencyKey: key, Label: "contract " + key, Currency: "USD",
		Limits:   []issuer.SpendLimit{{AmountMinor: 5000, Interval: issuer.Daily}, {AmountMinor: 20000, Interval: issuer.AllTime}},
		Metadata: map[string]string{"agent_id": "contract-test"},
	}
}

// newKey is unique per call and per test run, so a long-lived backend never replays.
func newKey(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("contract-%s-%s", strings.ReplaceAll(t.Name(), "/", "-"), hex.EncodeToString(b[:]))
}

func create(t *testing.T, h Harness) issuer.Card {
	t.Helper()
	c, err := h.Issuer.CreateCard(ctx(t), request(newKey(t)))
	if err != nil {
		t.Fatalf("create card: %v", err)
	}
	return c
}

func testCapabilities(t *testing.T, h Harness) {
	if h.Issuer.Name() == "" {
		t.Fatal("adapter has no name")
	}
	c := h.Issuer.Capabilities()
	if len(c.LimitIntervals) == 0 {
		t.Fatal("no native limit intervals")
	}
	switch c.DailyAnchor {
	case issuer.AnchorUTCMidnight, issuer.AnchorRolling, issuer.AnchorNone:
	default:
		t.Fatalf("daily anchor %q", c.DailyAnchor)
	}
	if c.Supports(issuer.Daily) && c.DailyAnchor == issuer.AnchorNone {
		t.Fatal("daily limits supported but no daily anchor")
	}
	if c.LimitGranularityMinor < 0 {
		t.Fatal("negative limit granularity")
	}
}

func testCreateRequiresKey(t *testing.T, h Harness) {
	req := request("")
	_, err := h.Issuer.CreateCard(ctx(t), req)
	wantKind(t, "create without idempotency key", err, issuer.ErrInvalid)
}

func checkNewCard(t *testing.T, c issuer.Card) {
	t.Helper()
	if c.ID == "" || len(c.Last4) != 4 || c.Status != issuer.CardActive || c.ExpMonth < 1 || c.ExpMonth > 12 || c.ExpYear < 2000 {
		t.Fatalf("new card looks wrong: %+v", c)
	}
	if c.Currency != "USD" {
		t.Fatalf("currency %q, want USD", c.Currency)
	}
}

func testCreateIdempotent(t *testing.T, h Harness) {
	key := newKey(t)
	a, err := h.Issuer.CreateCard(ctx(t), request(key))
	if err != nil {
		t.Fatalf("first create: %v", err)
	}
	checkNewCard(t, a)
	b, err := h.Issuer.CreateCard(ctx(t), request(key))
	if err != nil {
		t.Fatalf("second create with the same key: %v", err)
	}
	needState(t, h)
	if a.ID != b.ID {
		t.Fatalf("same idempotency key gave two cards: %s and %s", a.ID, b.ID)
	}
	if a.Label != request(key).Label {
		t.Fatalf("label %q, want %q", a.Label, request(key).Label)
	}
	c, err := h.Issuer.CreateCard(ctx(t), request(newKey(t)))
	if err != nil {
		t.Fatalf("create with another key: %v", err)
	}
	if c.ID == a.ID {
		t.Fatal("a different idempotency key returned the same card")
	}
}

func testGet(t *testing.T, h Harness) {
	c := create(t, h)
	got, err := h.Issuer.GetCard(ctx(t), c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ID != c.ID || got.Status != issuer.CardActive || got.Last4 != c.Last4 {
		t.Fatalf("get returned %+v, created %+v", got, c)
	}
	needState(t, h)
	if got.Label != c.Label || len(got.Limits) == 0 {
		t.Fatalf("get lost label or limits: %+v", got)
	}
}

func testGetNotFound(t *testing.T, h Harness) {
	needState(t, h)
	_, err := h.Issuer.GetCard(ctx(t), "card_does_not_exist")
	wantKind(t, "get unknown card", err, issuer.ErrNotFound)
}

func hasLimit(ls []issuer.SpendLimit, want issuer.SpendLimit) bool {
	for _, l := range ls {
		if l == want {
			return true
		}
	}
	return false
}

func testUpdateLimits(t *testing.T, h Harness) {
	c := create(t, h)
	want := []issuer.SpendLimit{{AmountMinor: 7500, Interval: issuer.Daily}, {AmountMinor: 2500, Interval: issuer.PerAuthorization}}
	got, err := h.Issuer.UpdateLimits(ctx(t), c.ID, want)
	if !h.Issuer.Capabilities().UpdatableLimits {
		wantKind(t, "update limits", err, issuer.ErrNotSupported)
		return
	}
	if err != nil {
		t.Fatalf("update limits: %v", err)
	}
	if got.ID != c.ID {
		t.Fatalf("update returned card %s, want %s", got.ID, c.ID)
	}
	needState(t, h)
	for _, card := range []issuer.Card{got, mustGet(t, h, c.ID)} {
		if len(card.Limits) != 2 || !hasLimit(card.Limits, want[0]) || !hasLimit(card.Limits, want[1]) {
			t.Fatalf("limits after update: %+v, want %+v", card.Limits, want)
		}
	}
}

func mustGet(t *testing.T, h Harness, id string) issuer.Card {
	t.Helper()
	c, err := h.Issuer.GetCard(ctx(t), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return c
}

func testPauseResume(t *testing.T, h Harness) {
	c := create(t, h)
	paused, err := h.Issuer.PauseCard(ctx(t), c.ID)
	if !h.Issuer.Capabilities().Pause {
		wantKind(t, "pause", err, issuer.ErrNotSupported)
		_, err = h.Issuer.ResumeCard(ctx(t), c.ID)
		wantKind(t, "resume", err, issuer.ErrNotSupported)
		return
	}
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if paused.Status != issuer.CardPaused {
		t.Fatalf("status after pause: %s", paused.Status)
	}
	resumed, err := h.Issuer.ResumeCard(ctx(t), c.ID)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if resumed.Status != issuer.CardActive {
		t.Fatalf("status after resume: %s", resumed.Status)
	}
	needState(t, h)
	if _, err := h.Issuer.PauseCard(ctx(t), c.ID); err != nil {
		t.Fatalf("pause again after resume: %v", err)
	}
	if got := mustGet(t, h, c.ID); got.Status != issuer.CardPaused {
		t.Fatalf("a second pause after a resume did not take effect: %s", got.Status)
	}
}

func testCloseTwice(t *testing.T, h Harness) {
	c := create(t, h)
	closed, err := h.Issuer.CloseCard(ctx(t), c.ID)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	if closed.Status != issuer.CardClosed {
		t.Fatalf("status after close: %s", closed.Status)
	}
	needState(t, h)
	_, err = h.Issuer.CloseCard(ctx(t), c.ID)
	wantKind(t, "second close", err, issuer.ErrAlreadyClosed)
	if issuer.Retryable(err) {
		t.Fatal("ErrAlreadyClosed must not be retryable")
	}
	if got := mustGet(t, h, c.ID); got.Status != issuer.CardClosed {
		t.Fatalf("status after close: %s", got.Status)
	}
	if h.Issuer.Capabilities().Pause {
		_, err = h.Issuer.ResumeCard(ctx(t), c.ID)
		wantKind(t, "resume a closed card", err, issuer.ErrAlreadyClosed)
	}
}

func testReveal(t *testing.T, h Harness) {
	c := create(t, h)
	s, err := h.Issuer.RevealCard(ctx(t), c.ID)
	if !h.Issuer.Capabilities().Reveal {
		wantKind(t, "reveal", err, issuer.ErrNotSupported)
		return
	}
	needState(t, h)
	if err != nil {
		t.Fatalf("reveal: %v", err)
	}
	if len(s.Number) < 12 || !strings.HasSuffix(s.Number, c.Last4) || len(s.CVC) < 3 || s.ExpMonth != c.ExpMonth || s.ExpYear != c.ExpYear {
		t.Fatalf("secrets do not match the card (last4 %s, exp %d/%d)", c.Last4, c.ExpMonth, c.ExpYear)
	}
	b, _ := json.Marshal(struct{ S issuer.Secrets }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(b)} {
		if strings.Contains(out, s.Number) || strings.Contains(out, s.CVC) {
			t.Fatalf("secrets leak through formatting: %s", out)
		}
	}
	// Errors about this card must not carry its number either.
	if h.Issuer.Capabilities().Pause {
		h.Issuer.CloseCard(ctx(t), c.ID)
		_, err = h.Issuer.PauseCard(ctx(t), c.ID)
		if err == nil || strings.Contains(err.Error(), s.Number) {
			t.Fatalf("pause of a closed card: %v", err)
		}
	}
}

func testWebhook(t *testing.T, h Harness) {
	now := time.Now()
	if h.SignWebhook == nil {
		_, err := h.Issuer.VerifyWebhook(http.Header{}, []byte(`{}`), now)
		wantKind(t, "verify webhook", err, issuer.ErrNotSupported)
		return
	}
	c := create(t, h)
	hdr, body := h.SignWebhook(t, c.ID, now.Add(-30*time.Second))
	evs, err := h.Issuer.VerifyWebhook(hdr, body, now)
	if err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if len(evs) != 1 || evs[0].CardID != c.ID || evs[0].ID == "" || evs[0].Issuer != h.Issuer.Name() || evs[0].AmountMinor <= 0 || evs[0].OccurredAt.IsZero() {
		t.Fatalf("parsed events: %+v", evs)
	}

	tampered := append([]byte(nil), body...)
	i := strings.Index(string(tampered), c.ID)
	if i < 0 {
		t.Fatal("signed body does not mention the card")
	}
	tampered[i+len(c.ID)-1] ^= 0x01 // point the event at another card
	evs, err = h.Issuer.VerifyWebhook(hdr, tampered, now)
	wantKind(t, "tampered body", err, issuer.ErrUnauthorized)
	if evs != nil {
		t.Fatal("events returned for a tampered body")
	}

	staleHdr, staleBody := h.SignWebhook(t, c.ID, now.Add(-10*time.Minute))
	_, err = h.Issuer.VerifyWebhook(staleHdr, staleBody, now)
	wantKind(t, "stale signature", err, issuer.ErrUnauthorized)

	futureHdr, futureBody := h.SignWebhook(t, c.ID, now.Add(10*time.Minute))
	_, err = h.Issuer.VerifyWebhook(futureHdr, futureBody, now)
	wantKind(t, "future signature", err, issuer.ErrUnauthorized)

	_, err = h.Issuer.VerifyWebhook(http.Header{}, body, now)
	wantKind(t, "unsigned delivery", err, issuer.ErrUnauthorized)
}

func testListAuthorizations(t *testing.T, h Harness) {
	c := create(t, h)
	since := time.Now().Add(-time.Hour)
	if h.Purchase == nil {
		_, err := h.Issuer.ListAuthorizations(ctx(t), c.ID, since)
		if err != nil && !errors.Is(err, issuer.ErrNotSupported) {
			t.Fatalf("list authorizations: %v", err)
		}
		return
	}
	h.Purchase(t, c.ID, 1234)
	evs, err := h.Issuer.ListAuthorizations(ctx(t), c.ID, since)
	if err != nil {
		t.Fatalf("list authorizations: %v", err)
	}
	found := false
	for _, e := range evs {
		if e.CardID != c.ID {
			t.Fatalf("event for another card: %+v", e)
		}
		if e.Kind == cardwarden.KindAuthorization && e.Approved && e.AmountMinor == 1234 {
			found = true
		}
	}
	if !found {
		t.Fatalf("purchase not listed: %+v", evs)
	}
	later, err := h.Issuer.ListAuthorizations(ctx(t), c.ID, time.Now().Add(time.Hour))
	if err != nil || len(later) != 0 {
		t.Fatalf("list since the future: %v, %+v", err, later)
	}
}
