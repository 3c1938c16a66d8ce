package issuersim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// How every endpoint runs: under the state lock, with Idempotency-Key replay on native POSTs.

// idempotencyTTL is how long a stored response is replayed for its key, as Stripe and Lithic do.
const idempotencyTTL = 24 * time.Hour

// handle wraps a handler that runs under the state lock. Native POSTs with an
// Idempotency-Key replay the stored response for the same request and answer 409
// idempotency_conflict for a different one; the AI Payment Proxy dialect has no keys.
func (s *Server) handle(aipp bool, h func(r *http.Request, body []byte) result) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, aipp, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		key := ""
		if !aipp && r.Method == http.MethodPost {
			key = strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		}
		if len(key) > 255 {
			writeError(w, aipp, http.StatusBadRequest, "invalid_request", "Idempotency-Key longer than 255 characters")
			return
		}
		fp := ""
		s.mu.Lock()
		if key != "" {
			fp = fingerprint(r.Method, r.URL.Path, body)
			if rec := s.st.idem[key]; rec != nil {
				switch {
				case s.nowLocked().Sub(rec.CreatedAt) >= idempotencyTTL:
					delete(s.st.idem, key)
				case rec.Fingerprint != fp:
					s.mu.Unlock()
					writeError(w, aipp, http.StatusConflict, "idempotency_conflict",
						"Idempotency-Key was already used with a different request; use a new key for a new request")
					return
				default:
					s.mu.Unlock()
					s.replays.Add(1)
					w.Header().Set("Idempotent-Replayed", "true")
					writeRaw(w, rec.Status, rec.Body)
					return
				}
			}
		}
		res := h(r, body)
		b, err := json.Marshal(res.body)
		if err != nil {
			res.status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"api_error","code":"internal","message":"encode response"}}`)
		}
		// Like Stripe, a request that failed validation is not remembered: the client may
		// fix it and retry with the same key. Everything that executed is.
		if key != "" && res.status != http.StatusBadRequest && res.status < 500 {
			s.storeIdempotencyLocked(&idemRecord{Key: key, Fingerprint: fp, Status: res.status, Body: b, CreatedAt: s.nowLocked()})
		}
		sync := s.takeSyncFlushLocked()
		s.mu.Unlock()
		if sync {
			if err := s.flush(); err != nil {
				s.log.Error("issuersim: saving state", "path", s.statePath, "err", err)
			}
		}
		writeRaw(w, res.status, b)
	}
}

func (s *Server) storeIdempotencyLocked(rec *idemRecord) {
	s.st.idem[rec.Key] = rec
	s.changedLocked(false)
	if len(s.st.idem)%1024 == 0 {
		now := s.nowLocked()
		for k, r := range s.st.idem {
			if now.Sub(r.CreatedAt) >= idempotencyTTL {
				delete(s.st.idem, k)
			}
		}
	}
}
