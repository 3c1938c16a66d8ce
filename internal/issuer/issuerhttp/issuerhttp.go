// Package issuerhttp is the small JSON-over-HTTP client the hand-written adapters (sim,
// aipaymentproxy) share, and the one place HTTP failures become typed issuer errors, so every
// adapter classifies a 429 or a 503 the same way.
package issuerhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// maxResponseBytes caps what we read from an issuer; card responses are a few hundred bytes.
const maxResponseBytes = 4 << 20

// Issuer error codes that change the classification regardless of HTTP status. The simulator
// uses them; other issuers' equivalents are mapped by their adapters' ErrorDecoder.
const (
	CodeAlreadyClosed         = "already_closed"
	CodeIdempotencyConflict   = "idempotency_conflict"
	CodeIdempotencyInProgress = "idempotency_in_progress"
)

// ErrorDecoder extracts the issuer's error code and message from an error response body.
// It must never return card data; issuers do not put any in error bodies.
type ErrorDecoder func(status int, body []byte) (code, message string)

// Client talks JSON to one issuer.
type Client struct {
	BaseURL     string
	HTTP        *http.Client
	Authorize   func(*http.Request)
	DecodeError ErrorDecoder
	// Now is used to turn an HTTP-date Retry-After into a duration; nil means time.Now.
	Now func() time.Time
}

// Request is one call.
type Request struct {
	Method         string
	Path           string // joined to BaseURL; already escaped
	Query          url.Values
	Body           any // marshalled as JSON when non-nil
	IdempotencyKey string
}

// Do performs the call and decodes a 2xx JSON body into out (when out is non-nil). Any
// failure comes back as an *issuer.Error with Op set to op.
func (c *Client) Do(ctx context.Context, op string, r Request, out any) error {
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "encode request", Err: err}
		}
		body = bytes.NewReader(b)
	}
	u := strings.TrimRight(c.BaseURL, "/") + r.Path
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, body)
	if err != nil {
		return &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "build request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	if c.Authorize != nil {
		c.Authorize(req)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// Network failures, timeouts and cancellations are all worth retrying from the
		// caller's point of view; the wrapped error keeps context.Canceled visible to errors.Is.
		return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "request failed", Err: err}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "read response", Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var code, msg string
		if c.DecodeError != nil {
			code, msg = c.DecodeError(resp.StatusCode, respBody)
		}
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		return Classify(op, resp.StatusCode, resp.Header, code, msg, now())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(respBody, out); err != nil {
		// A 2xx we cannot read is most likely a proxy or a truncated body: retry.
		return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: fmt.Sprintf("decode %d response", resp.StatusCode), Err: errors.New(jsonErrorWithoutData(err))}
	}
	return nil
}

// jsonErrorWithoutData keeps the error's type but drops any quoted input: a json error can
// echo part of the body, and a reveal body holds a card number.
func jsonErrorWithoutData(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at offset %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("field %s: cannot decode %s into %s", typ.Field, typ.Value, typ.Type)
	}
	return "invalid JSON"
}

// Classify maps an HTTP failure to a typed issuer error.
func Classify(op string, status int, h http.Header, code, msg string, now time.Time) *issuer.Error {
	e := &issuer.Error{Op: op, Message: msg}
	if e.Message == "" {
		e.Message = fmt.Sprintf("HTTP %d", status)
	}
	switch {
	case code == CodeAlreadyClosed:
		e.Kind = issuer.KindAlreadyClosed
	case code == CodeIdempotencyConflict:
		e.Kind = issuer.KindIdempotencyConflict
	case status == http.StatusTooManyRequests:
		e.Kind = issuer.KindRateLimited
		e.RetryAfter = RetryAfter(h, now)
	case status == http.StatusRequestTimeout, status >= 500:
		e.Kind = issuer.KindTransient
	case status == http.StatusConflict:
		// A 409 that is not a key mismatch is a concurrent request holding the same key or a
		// lock: the same call will succeed once the other finishes.
		e.Kind = issuer.KindTransient
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Kind = issuer.KindUnauthorized
	case status == http.StatusNotFound:
		e.Kind = issuer.KindNotFound
	default:
		e.Kind = issuer.KindInvalid
	}
	return e
}

// RetryAfter reads Retry-After (delta seconds or an HTTP date) and the common millisecond
// variant Retry-After-Ms. It returns 0 when the issuer said nothing usable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if ms := h.Get("Retry-After-Ms"); ms != "" {
		if n, err := strconv.ParseFloat(ms, 64); err == nil && n > 0 {
			return time.Duration(n * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// BearerAuth returns an Authorize func setting "Authorization: Bearer key".
func BearerAuth(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}
