package issuersim

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes caps request bodies; no simulator request needs more than a few hundred bytes.
const maxBodyBytes = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"api_error","code":"internal","message":"encode response"}}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// apiError is the native error body: {"error":{"type","code","message"}}.
type apiError struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// aippError is the AI Payment Proxy error body: {"success":false,"error":"…"}; code is our
// addition so a client can tell an already-canceled card from other conflicts.
type aippError struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Code    string `json:"code,omitempty"`
}

func errorType(status int, code string) string {
	switch {
	case strings.HasPrefix(code, "idempotency"):
		return "idempotency_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

func errorBody(aipp bool, status int, code, msg string) any {
	if aipp {
		return aippError{Error: msg, Code: code}
	}
	return apiError{Error: errorDetail{Type: errorType(status, code), Code: code, Message: msg}}
}

func writeError(w http.ResponseWriter, aipp bool, status int, code, msg string) {
	writeJSON(w, status, errorBody(aipp, status, code, msg))
}

// result is what a handler produces while holding the state lock; it is encoded and written
// after the lock is released.
type result struct {
	status int
	body   any
}

func ok(body any) result      { return result{http.StatusOK, body} }
func created(body any) result { return result{http.StatusCreated, body} }

func nativeErr(status int, code, msg string) result {
	return result{status, errorBody(false, status, code, msg)}
}

func aippErr(status int, code, msg string) result {
	return result{status, errorBody(true, status, code, msg)}
}

func invalid(format string, args ...any) result {
	return nativeErr(http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...))
}

func notFound(what, id string) result {
	return nativeErr(http.StatusNotFound, "not_found", fmt.Sprintf("no such %s: %q", what, id))
}

// readBody reads at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > maxBodyBytes {
		return nil, errors.New("request body too large")
	}
	return b, nil
}

// decodeStrict decodes a JSON object and rejects unknown fields, like real issuers reject
// unknown parameters: a typo in an adapter must fail loudly, not be ignored.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

// fingerprint identifies a request for idempotency: same method, path and JSON content
// (whitespace and key order ignored) means the same request.
func fingerprint(method, path string, body []byte) string {
	canon := body
	var v any
	if json.Unmarshal(body, &v) == nil {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// randFloat is for fault injection only; it needs no cryptographic quality.
func randFloat() float64 { return rand.Float64() }

// parseSince accepts RFC 3339 or unix seconds; empty means the beginning of time.
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want RFC 3339 or unix seconds", v)
	}
	return t.UTC(), nil
}

func isMCC(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
