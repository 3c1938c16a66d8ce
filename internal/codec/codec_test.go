package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cardwarden/cardwarden/internal/codec"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, codec.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func TestRoundTripHidesPlaintext(t *testing.T) {
	c, err := codec.New(newKey(t))
	require.NoError(t, err)
	dc := codec.DataConverter(c)
	p, err := dc.ToPayload(map[string]string{"merchant": "Acme Compute", "daily_limit_usd": "50.00"})
	require.NoError(t, err)
	require.Equal(t, codec.MetadataEncoding, string(p.Metadata["encoding"]))
	require.NotContains(t, string(p.Data), "Acme Compute")

	var back map[string]string
	require.NoError(t, dc.FromPayload(p, &back))
	require.Equal(t, "Acme Compute", back["merchant"])
}

func TestKeyRotationDecodesOldPayloadsAndPassesPlaintextThrough(t *testing.T) {
	oldKey, newKeyB := newKey(t), newKey(t)
	oldC, err := codec.New(oldKey)
	require.NoError(t, err)
	enc, err := oldC.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	require.NoError(t, err)

	rotated, err := codec.New(newKeyB, oldKey)
	require.NoError(t, err)
	require.NotEqual(t, oldC.KeyID(), rotated.KeyID())
	plainIn := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"plain"`)}
	dec, err := rotated.Decode(append(enc, plainIn))
	require.NoError(t, err)
	require.Equal(t, `"x"`, string(dec[0].Data))
	require.Equal(t, `"plain"`, string(dec[1].Data), "unencrypted payloads pass through")

	// A codec without the old key says which key it lacks, never the key itself.
	other, err := codec.New(newKeyB)
	require.NoError(t, err)
	_, err = other.Decode(enc)
	require.ErrorContains(t, err, oldC.KeyID())
	require.NotContains(t, err.Error(), hex.EncodeToString(oldKey))
}

func TestFromEnv(t *testing.T) {
	c, err := codec.FromEnv(func(string) string { return "" })
	require.NoError(t, err)
	require.Nil(t, c, "unset means no encryption")
	require.Equal(t, converter.GetDefaultDataConverter(), codec.DataConverter(nil))

	k1, k2 := hex.EncodeToString(newKey(t)), hex.EncodeToString(newKey(t))
	c, err = codec.FromEnv(func(string) string { return k1 + ", " + k2 })
	require.NoError(t, err)
	require.NotNil(t, c)

	_, err = codec.FromEnv(func(string) string { return k1 + ",nothex" })
	require.ErrorContains(t, err, "key 2")
	require.NotContains(t, err.Error(), k1)
}

func TestHandlerEncodeDecodeWithCORS(t *testing.T) {
	c, err := codec.New(newKey(t))
	require.NoError(t, err)
	srv := httptest.NewServer(http.StripPrefix("/codec", codec.Handler(c, codec.HandlerOptions{})))
	defer srv.Close()

	payloads := &commonpb.Payloads{Payloads: []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"a":1}`)}}}
	body, err := protojson.Marshal(payloads)
	require.NoError(t, err)

	post := func(path, origin string, body []byte) *http.Response {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}

	resp := post("/codec/encode", "http://127.0.0.1:8233", body)
	encoded, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(encoded))
	require.Equal(t, "http://127.0.0.1:8233", resp.Header.Get("Access-Control-Allow-Origin"))
	require.NotContains(t, string(encoded), "json/plain")

	resp = post("/codec/decode", "", encoded)
	decoded, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(decoded, &out))
	require.Equal(t, `{"a":1}`, string(out.Payloads[0].Data))

	resp = post("/codec/decode", "https://evil.example", encoded)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/codec/decode", nil)
	req.Header.Set("Origin", "http://localhost:8233")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "X-Namespace")
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
}

func TestOriginsFromEnv(t *testing.T) {
	got := codec.OriginsFromEnv(func(string) string { return " https://ui.example.com/ ,http://x:8233" })
	require.Equal(t, []string{"https://ui.example.com", "http://x:8233"}, got)
	require.Nil(t, codec.OriginsFromEnv(func(string) string { return "" }))
}
