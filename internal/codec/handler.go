package codec

import (
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// EnvCORSOrigins lists, comma-separated, the browser origins allowed to call the codec endpoint
// (the Temporal Web UI's origin). "*" allows any origin, without credentials.
const EnvCORSOrigins = "CARDWARDEN_CODEC_CORS_ORIGINS"

// DefaultOrigins are the origins of the Web UI `cardwarden dev` serves.
var DefaultOrigins = []string{"http://127.0.0.1:8233", "http://localhost:8233"}

// maxRequestBytes bounds a codec request. Temporal caps one payload at 2 MiB; the Web UI sends
// the payloads of one history event per request.
const maxRequestBytes = 16 << 20

// HandlerOptions configure the codec endpoint.
type HandlerOptions struct {
	// AllowedOrigins may call the endpoint from a browser; DefaultOrigins when empty.
	AllowedOrigins []string
}

// OriginsFromEnv reads EnvCORSOrigins through getenv; nil (the defaults) when unset.
func OriginsFromEnv(getenv func(string) string) []string {
	var out []string
	for _, o := range strings.Split(getenv(EnvCORSOrigins), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Handler serves POST …/encode and POST …/decode in the Temporal codec server protocol (a
// JSON-encoded Payloads message in, the same out), with the CORS headers the Web UI needs. Mount
// it under a prefix with http.StripPrefix or as is: only the path's suffix matters.
//
// Decoding shows plaintext payloads to whoever can call it, so in production put the endpoint
// behind the same access control as the Web UI; the CORS check only stops other web pages in an
// operator's browser from using it.
func Handler(c *Codec, opts HandlerOptions) http.Handler {
	origins := opts.AllowedOrigins
	if len(origins) == 0 {
		origins = DefaultOrigins
	}
	anyOrigin := slices.Contains(origins, "*")
	inner := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			w.Header().Add("Vary", "Origin")
			if !anyOrigin && !slices.Contains(origins, origin) {
				http.Error(w, "origin not allowed to use the codec endpoint (set "+EnvCORSOrigins+")", http.StatusForbidden)
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			if !anyOrigin {
				// The Web UI can send its own credentials with codec requests.
				w.Header().Set("Access-Control-Allow-Credentials", "true")
			}
		}
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		inner.ServeHTTP(w, r)
	})
}
