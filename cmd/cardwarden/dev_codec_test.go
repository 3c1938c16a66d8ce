package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/testdb"
)

// `cardwarden dev --ui-port 9233` serves the Web UI at http://127.0.0.1:9233: the codec
// endpoint must let that origin decode payloads (it used to allow only :8233, so the UI showed
// encrypted base64).
func TestDevCodecAllowsTheUIOnItsOwnPort(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cdc, err := codec.New(key)
	require.NoError(t, err)
	h := api.New(api.Deps{Store: testdb.Open(t, testdb.SQLiteURL(t)), Codec: cdc, CodecOpen: true,
		CodecOrigins: devCodecOrigins("127.0.0.1", 9233)})
	for origin, want := range map[string]int{
		"http://127.0.0.1:9233": http.StatusOK, "http://localhost:9233": http.StatusOK,
		"http://127.0.0.1:8233": http.StatusForbidden, "https://evil.example": http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodOptions, "/codec/decode", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if want == http.StatusOK {
			require.Less(t, rec.Code, 300, "preflight from %s: %d %s", origin, rec.Code, rec.Body)
			require.Equal(t, origin, rec.Header().Get("Access-Control-Allow-Origin"))
		} else {
			require.Equal(t, want, rec.Code, "preflight from %s", origin)
		}
	}
	require.Nil(t, devCodecOrigins("127.0.0.1", 0), "headless: no UI, no origin")
}
