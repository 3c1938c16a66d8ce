package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Conventions every answer follows: a Request-Id header (also in the log line of the request
// and of anything logged while answering it), and Idempotency-Key on management POSTs.

// HeaderRequestID names every answer's request id ("req_…"), also logged with the request.
const HeaderRequestID = "Request-Id"

type ctxKey int

const requestIDKey ctxKey = 0

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// RequestID is the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithRequestID gives every request an id (the Request-Id answer header) and logs one line
// per request with it: method, path, status and duration. Health probes and /metrics are
// logged at debug level. A request that already has an id (an outer WithRequestID) keeps it.
func WithRequestID(logger *slog.Logger, next http.Handler) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if RequestID(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		id := newRequestID()
		w.Header().Set(HeaderRequestID, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		r2 := r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		next.ServeHTTP(rec, r2)
		// The route's pattern, not the caller's path: nothing a caller chooses reaches the log.
		route := r2.Pattern
		if route == "" || route == "/" || route == "/v1/" {
			route = "(no route)"
		}
		level := slog.LevelInfo
		switch route {
		case "GET /healthz", "GET /readyz", "GET /metrics":
			level = slog.LevelDebug
		}
		logger.Log(r.Context(), level, "http request", "request_id", id, "route", route,
			"status", rec.status, "duration_ms", time.Since(start).Milliseconds())
	})
}

// log is the server's logger with the request's id.
func (s *server) log(r *http.Request) *slog.Logger {
	if id := RequestID(r.Context()); id != "" {
		return s.Logger.With("request_id", id)
	}
	return s.Logger
}

// statusRecorder remembers the status written and, when body is set, a copy of the body.
type statusRecorder struct {
	http.ResponseWriter
	status int
	body   *bytes.Buffer
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.body != nil {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// HeaderIdempotencyKey is the header of a management POST that makes retrying it safe.
const HeaderIdempotencyKey = "Idempotency-Key"

// Idempotency keys are kept for a day; a first request unanswered after idempotencyStale
// (its process died) can be taken over by a retry.
const (
	idempotencyTTL          = 24 * time.Hour
	idempotencyStale        = 2*updateTimeout + 30*time.Second
	maxIdempotencyKeyLength = 255
)

// idempotent makes a management POST safe to retry, as Stripe's API does: the first answer to
// an Idempotency-Key (other than 429 and 5xx, which a retry should run again) is stored in the
// database and replayed, with "Idempotent-Replayed: true", to every later request with the
// same key and the same method, path and body; the same key with another request is 409
// idempotency_conflict; a retry while the first request is still running is 409
// idempotency_in_progress. An answer that carries a secret (Cache-Control: no-store, e.g. a
// new agent token) is kept sealed by the vault key. Without the header nothing is stored.
func (s *server) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(HeaderIdempotencyKey)
		if key == "" || s.Store == nil {
			h(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			writeError(w, http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters", "Idempotency-Key")
			return
		}
		body, ok := readBody(w, r, maxManagementBody)
		if !ok {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256([]byte(r.Method + "\x00" + r.URL.Path + "\x00" + string(body)))
		fp := hex.EncodeToString(sum[:])
		ctx, now := r.Context(), s.Now()
		rec, claimed, err := s.Store.ClaimIdempotencyKey(ctx, key, fp, now)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if !claimed {
			switch {
			case rec.Fingerprint != fp:
				writeError(w, http.StatusConflict, "idempotency_conflict",
					"this Idempotency-Key was used in the last 24 hours with another request (method, path or body); use a new key for a new request", "Idempotency-Key")
				return
			case rec.Status != 0:
				s.replay(w, r, key, rec.Status, rec.Body, rec.Sealed)
				return
			}
			took, err := s.Store.TakeOverIdempotencyKey(ctx, key, fp, now.Add(-idempotencyStale), now)
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			if !took {
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusConflict, "idempotency_in_progress",
					"a request with this Idempotency-Key is still being answered; retry in a moment", "Idempotency-Key")
				return
			}
		}
		out := &statusRecorder{ResponseWriter: w, status: http.StatusOK, body: &bytes.Buffer{}}
		h(out, r)
		// The answer is sent; what follows only decides what a retry gets. It must not depend
		// on the caller still waiting.
		ctx = context.WithoutCancel(ctx)
		if out.status >= 500 || out.status == http.StatusTooManyRequests {
			if err := s.Store.ReleaseIdempotencyKey(ctx, key); err != nil {
				s.log(r).Error("release idempotency key", "error", err)
			}
			return
		}
		stored, sealed := out.body.Bytes(), false
		if w.Header().Get("Cache-Control") == "no-store" {
			stored, sealed = nil, true
			if s.Vault != nil {
				if stored, err = s.Vault.SealAnswer(key, out.body.Bytes()); err != nil {
					stored = nil
				}
			}
		}
		if err := s.Store.FinishIdempotencyKey(ctx, key, out.status, stored, sealed); err != nil {
			s.log(r).Error("store idempotent answer", "error", err)
		}
		if now.Unix()%64 == 0 {
			if err := s.Store.PurgeIdempotencyKeys(ctx, now.Add(-idempotencyTTL)); err != nil {
				s.log(r).Warn("purge idempotency keys", "error", err)
			}
		}
	}
}

// replay answers with a stored first answer.
func (s *server) replay(w http.ResponseWriter, r *http.Request, key string, status int, body []byte, sealed bool) {
	if sealed {
		var err error
		if body == nil || s.Vault == nil {
			err = errNoVault
		} else {
			body, err = s.Vault.OpenAnswer(key, body)
		}
		if err != nil {
			s.log(r).Warn("idempotent answer cannot be opened", "error", err)
			writeError(w, http.StatusConflict, "idempotency_conflict",
				"the first answer to this Idempotency-Key held a secret this server cannot open again; use a new key", "Idempotency-Key")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(status)
	_, _ = w.Write(body) // #nosec G705 -- a JSON answer this server made itself, replayed as application/json
}

type constError string

func (e constError) Error() string { return string(e) }

const errNoVault = constError("no vault key on this server")

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
