package issuerhttp

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		status int
		code   string
		want   *issuer.Error
	}{
		{429, "", issuer.ErrRateLimited},
		{500, "", issuer.ErrTransient},
		{503, "", issuer.ErrTransient},
		{408, "", issuer.ErrTransient},
		{400, "", issuer.ErrInvalid},
		{422, "", issuer.ErrInvalid},
		{401, "", issuer.ErrUnauthorized},
		{403, "", issuer.ErrUnauthorized},
		{404, "", issuer.ErrNotFound},
		{409, CodeIdempotencyConflict, issuer.ErrIdempotencyConflict},
		{400, CodeIdempotencyConflict, issuer.ErrIdempotencyConflict},
		{409, CodeIdempotencyInProgress, issuer.ErrTransient},
		{409, CodeAlreadyClosed, issuer.ErrAlreadyClosed},
	}
	for _, c := range cases {
		err := Classify("op", c.status, http.Header{}, c.code, "", now)
		if !errors.Is(err, c.want) {
			t.Errorf("%d %q: got %v, want kind %s", c.status, c.code, err, c.want.Kind)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", "3")
	if d := RetryAfter(h, now); d != 3*time.Second {
		t.Fatalf("seconds: %v", d)
	}
	h.Set("Retry-After", now.Add(10*time.Second).Format(http.TimeFormat))
	if d := RetryAfter(h, now); d != 10*time.Second {
		t.Fatalf("date: %v", d)
	}
	h.Set("Retry-After", "soon")
	if d := RetryAfter(h, now); d != 0 {
		t.Fatalf("garbage: %v", d)
	}
	e := Classify("create_card", 429, http.Header{"Retry-After": []string{"2"}}, "", "", now)
	if e.RetryAfter != 2*time.Second {
		t.Fatalf("classify retry after: %v", e.RetryAfter)
	}
}
