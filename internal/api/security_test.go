package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/metrics"
)

// rawDo sends a request whose path is used as is (no client-side escaping or cleaning).
func (h *harness) rawDo(method, rawPath, token string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+"/", nil)
	require.NoError(h.t, err)
	req.URL.Opaque = rawPath
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) auditRows() int {
	h.t.Helper()
	rows, err := h.store.ListAudit(context.Background(), "", 100_000)
	require.NoError(h.t, err)
	return len(rows)
}

// Issue 12, item 1: POST /v1/webhooks/<any name> added a metric series with that name (30
// names of 900 KB grew /metrics to 27 MB) and %ff%fe panicked. Unknown and malformed names are
// one fixed series now, and no name reaches an answer, a label or the logs.
func TestWebhookIssuerNameCannotMintSeries(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "test"})
	h := newHarness(t, func(d *Deps) { d.Observer = m })
	scrape := func() string {
		rec := &strings.Builder{}
		srv := m.Handler()
		req, _ := http.NewRequest("GET", "/metrics", nil)
		w := &recorder{header: http.Header{}, body: rec}
		srv.ServeHTTP(w, req)
		return rec.String()
	}
	before := len(scrape())
	long := strings.Repeat("a", 60_000)
	for i := 0; i < 30; i++ {
		status, body := h.rawDo("POST", "/v1/webhooks/"+long+string(rune('a'+i%26)), "")
		require.Equal(t, 404, status, body)
		require.NotContains(t, body, long[:100])
	}
	for _, name := range []string{"%ff%fe", "%c0%80", "x%00y", "Sim", "sim%2Fx", strings.Repeat("%ff", 500)} {
		status, body := h.rawDo("POST", "/v1/webhooks/"+name, "")
		require.Equal(t, 404, status, "%s: %s", name, body)
		require.Contains(t, body, "unknown_issuer")
	}
	after := scrape()
	require.NotContains(t, after, long[:100])
	require.Less(t, len(after)-before, 2_000, "the scrape grew by %d bytes", len(after)-before)
	require.Contains(t, after, `issuer="(unknown)",reason="unknown_issuer"`)
	require.NotContains(t, h.logs.String(), long[:100])
	require.NotContains(t, h.logs.String(), "handler panic")
}

// recorder is a minimal http.ResponseWriter collecting the body.
type recorder struct {
	header http.Header
	body   *strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(int)             {}

// Issue 12, item 5: every failed pull wrote an audit row with the path's agent id (up to ~1
// MB) before any validation, and 300 wrong guesses ran unthrottled. Path ids are validated
// before any I/O; failed tokens are throttled per address and per agent with 429 and
// Retry-After, before the token is even compared, so the audit log takes a bounded number of
// rows.
func TestCredentialPullIsValidatedAndThrottled(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Throttle = &Throttle{PerAddress: 10, PerAgent: 10, Window: time.Minute} })
	_, m, _ := h.do("POST", "/v1/agents", adminToken, `{"agent_id":"alpha","daily_limit_usd":50}`)
	tok := m["token"].(string)
	h.seedCard("alpha", "card_a", "4000001234567899", "737")
	base := h.auditRows()

	// Ids that cannot be agent ids: 404, nothing written, nothing echoed.
	for _, id := range []string{strings.Repeat("x", 1<<16), "%ff%fe", "a%00b", "..", "-x", strings.Repeat("b", 65)} {
		status, body := h.rawDo("GET", "/v1/agents/"+id+"/card", tok)
		require.Equal(t, 404, status, body)
		require.Less(t, len(body), 400)
	}
	require.Equal(t, base, h.auditRows(), "invalid ids wrote audit rows")

	// 300 guesses: only the first 10 are even checked (and audited); the rest are 429.
	var unauthorized, throttled int
	var retryAfter string
	for i := 0; i < 300; i++ {
		status, _, hdr := h.do("GET", "/v1/agents/alpha/card", "cwa_guess", nil)
		switch status {
		case 401:
			unauthorized++
		case 429:
			throttled++
			retryAfter = hdr.Get("Retry-After")
		default:
			t.Fatalf("guess %d: status %d", i, status)
		}
	}
	require.Equal(t, 10, unauthorized)
	require.Equal(t, 290, throttled)
	require.NotEmpty(t, retryAfter)
	require.LessOrEqual(t, h.auditRows()-base, 10)

	// The admin API is throttled per address the same way.
	for i := 0; i < 5; i++ {
		status, _, _ := h.do("GET", "/v1/agents", "wrong-admin-token", nil)
		require.Equal(t, 429, status, "this address is over its limit")
	}
}

// Issue 12, item 5: the reveal limit was count-then-insert, so 40 concurrent pulls got 21-23
// reveals past a limit of 10. The claim is atomic now: exactly the limit succeeds.
func TestRevealLimitHoldsUnderConcurrency(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.RevealLimit = 10 })
	_, m, _ := h.do("POST", "/v1/agents", adminToken, `{"agent_id":"alpha","daily_limit_usd":50}`)
	tok := m["token"].(string)
	h.seedCard("alpha", "card_a", "4000001234567899", "737")
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", h.srv.URL+"/v1/agents/alpha/card", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, map[int]int{200: 10, 429: 30}, counts)
	entries, err := h.store.ListAudit(context.Background(), "alpha", 100)
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if e.Action == ActionReveal {
			n++
		}
	}
	require.Equal(t, 10, n)
}

// Issue 12, item 11: /codec decrypted payloads for anyone who could reach the API. It needs the
// codec token or the admin token now; preflights still pass (browsers send no credentials).
func TestCodecNeedsAuthentication(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.CodecToken = "codec-token-0123456789abcdef" })
	post := func(path, tok string) int {
		req, _ := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(`{"payloads":[]}`))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/codec/decode", "/codec/encode"} {
		require.Equal(t, 401, post(path, ""), path)
		require.Equal(t, 401, post(path, "wrong"), path)
		require.Equal(t, 200, post(path, "codec-token-0123456789abcdef"), path)
		require.Equal(t, 200, post(path, adminToken), path)
	}
	req, _ := http.NewRequest("OPTIONS", h.srv.URL+"/codec/decode", nil)
	req.Header.Set("Origin", "http://127.0.0.1:8233")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode)

	// Without any token configured, nothing opens it (unless dev's CodecOpen).
	closed := newHarness(t, func(d *Deps) { d.AdminToken = "" })
	req, _ = http.NewRequest("POST", closed.srv.URL+"/codec/decode", strings.NewReader(`{"payloads":[]}`))
	req.Header.Set("Authorization", "Bearer ")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
}

// Issue 12, item 3 at the API: a policy whose push or alert URL is internal, plain http or
// carries credentials is refused with the field named, before any agent exists.
func TestCreateAgentRefusesUnsafeOutboundURLs(t *testing.T) {
	h := newHarness(t)
	for body, field := range map[string]string{
		`{"agent_id":"a1","daily_limit_usd":5,"credentials_push_url":"https://127.0.0.1:9000/cards"}`:   "policy.credentials_push_url",
		`{"agent_id":"a2","daily_limit_usd":5,"credentials_push_url":"http://agent.example.com/cards"}`: "policy.credentials_push_url",
		`{"agent_id":"a3","daily_limit_usd":5,"credentials_push_url":"https://169.254.169.254/x"}`:      "policy.credentials_push_url",
		`{"agent_id":"a4","daily_limit_usd":5,"alerts":{"webhook_url":"https://10.0.0.8/hook"}}`:        "policy.alerts.webhook_url",
		`{"agent_id":"a5","daily_limit_usd":5,"alerts":{"webhook_url":"https://u:p@hooks.example/x"}}`:  "policy.alerts.webhook_url",
	} {
		status, m, _ := h.do("POST", "/v1/agents", adminToken, body)
		require.Equal(t, 422, status, body)
		code, f := errCode(m)
		require.Equal(t, "invalid_policy", code)
		require.Equal(t, field, f, body)
	}
	require.Empty(t, h.ctl.agents)
}
