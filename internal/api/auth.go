package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// EnvAdminToken holds the management API's bearer token.
const EnvAdminToken = "CARDWARDEN_ADMIN_TOKEN"

// adminActor is who the audit log says acted through the management API.
const adminActor = "admin-api"

// admin wraps a management handler with the admin bearer-token check.
func (s *server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.AdminToken == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "the management API is disabled: set "+EnvAdminToken, "")
			return
		}
		if wait, blocked := s.Throttle.Blocked(r, ""); blocked {
			writeThrottled(w, wait)
			return
		}
		tok, ok := bearer(r)
		if !ok || !tokenEqual(tok, s.AdminToken) {
			s.Throttle.Failed(r, "")
			w.Header().Set("WWW-Authenticate", `Bearer realm="cardwarden"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong admin token (Authorization: Bearer <token>)", "")
			return
		}
		if s.ctl == nil {
			writeError(w, http.StatusServiceUnavailable, "temporal_unavailable", "no Temporal client configured", "")
			return
		}
		h(w, r)
	}
}

// tokenEqual compares a presented token with a configured one in constant time; comparing
// digests keeps it constant-time whatever the lengths. An empty configured token matches
// nothing.
func tokenEqual(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// codecAuth guards /codec: decoding shows workflow payloads in plaintext, so it needs the
// codec token or the admin token (Authorization: Bearer; the Temporal CLI's --codec-auth and
// the Web UI's codec settings can send one). Browsers' CORS preflights carry no credentials
// and pass through to the codec handler, which answers them. Failures are throttled.
func (s *server) codecAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.CodecOpen || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if wait, blocked := s.Throttle.Blocked(r, ""); blocked {
			writeThrottled(w, wait)
			return
		}
		tok, ok := bearer(r)
		// Both comparisons always run, so the time taken does not tell which token matched.
		codecOK, adminOK := tokenEqual(tok, s.CodecToken), tokenEqual(tok, s.AdminToken)
		if !ok || !(codecOK || adminOK) {
			s.Throttle.Failed(r, "")
			w.Header().Set("WWW-Authenticate", `Bearer realm="cardwarden-codec"`)
			writeError(w, http.StatusUnauthorized, "unauthorized",
				"the codec endpoint needs "+EnvCodecAuthToken+" or the admin token (Authorization: Bearer <token>)", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// EnvCodecAuthToken holds the codec endpoint's own bearer token (optional: the admin token
// works too).
const EnvCodecAuthToken = "CARDWARDEN_CODEC_AUTH_TOKEN"

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// LoadOrCreateAdminToken reads the admin token kept in path, creating the file (mode 0600)
// with a fresh random token when it does not exist. `cardwarden dev` uses it so the token
// survives restarts; production sets CARDWARDEN_ADMIN_TOKEN instead.
func LoadOrCreateAdminToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil { // #nosec G304 -- `cardwarden dev`'s own state file under --dir
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token file %s: %w", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok := "cwadm_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("admin token file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token file %s: %w", path, err)
	}
	return tok, nil
}
