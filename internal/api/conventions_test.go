package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// doWith is harness.do with extra request headers; it returns the raw body too.
func (h *harness) doWith(method, path, token, body string, hdr map[string]string) (int, map[string]any, http.Header, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	require.NoError(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header, raw
}

func errType(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	t, _ := e["type"].(string)
	return t
}

// Issue 14, item 7: a rotate retried with the same Idempotency-Key rotated twice. Now the same
// key and request get the first answer, another request with the key is 409, and the answers
// that carry a token are kept sealed, never in plaintext.
func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t)
	key := map[string]string{HeaderIdempotencyKey: "rotate-once-1"}
	status, _, _, _ := h.doWith("POST", "/v1/agents", adminToken, `{"agent_id":"bot","daily_limit_usd":10}`, nil)
	require.Equal(t, 201, status)

	status, first, hdr, raw1 := h.doWith("POST", "/v1/agents/bot/rotate", adminToken, `{"reason":"weekly"}`, key)
	require.Equal(t, 200, status)
	require.EqualValues(t, 2, first["generation"])
	require.Empty(t, hdr.Get("Idempotent-Replayed"))
	status, _, hdr, raw2 := h.doWith("POST", "/v1/agents/bot/rotate", adminToken, `{"reason":"weekly"}`, key)
	require.Equal(t, 200, status)
	require.Equal(t, "true", hdr.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(raw1), string(raw2), "the retry gets the first answer")
	st, err := h.ctl.get("bot")
	require.NoError(t, err)
	require.Equal(t, 2, st.Generation, "rotated once, not twice")

	// The same key with another body, or on another path: 409, nothing done.
	status, m, _, _ := h.doWith("POST", "/v1/agents/bot/rotate", adminToken, `{"reason":"again"}`, key)
	require.Equal(t, 409, status)
	require.Equal(t, "idempotency_conflict", must(errCode(m)))
	require.Equal(t, "idempotency_error", errType(m))
	status, _, _, _ = h.doWith("POST", "/v1/agents/bot/freeze", adminToken, `{"reason":"weekly"}`, key)
	require.Equal(t, 409, status)
	st, _ = h.ctl.get("bot")
	require.Equal(t, 2, st.Generation)
	require.Equal(t, "active", string(st.Status))

	// A new agent's token is replayed to a retry (the answer was lost), and stored sealed.
	ckey := map[string]string{HeaderIdempotencyKey: "create-bot2"}
	status, c1, _, _ := h.doWith("POST", "/v1/agents", adminToken, `{"agent_id":"bot2","daily_limit_usd":10}`, ckey)
	require.Equal(t, 201, status)
	tok, _ := c1["token"].(string)
	require.True(t, strings.HasPrefix(tok, "cwa_"), "%v", c1)
	status, c2, hdr, _ := h.doWith("POST", "/v1/agents", adminToken, `{"agent_id":"bot2","daily_limit_usd":10}`, ckey)
	require.Equal(t, 201, status)
	require.Equal(t, tok, c2["token"], "the retry of a lost answer gets the same token")
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))
	var stored []byte
	require.NoError(t, h.store.DB().Get(&stored, `SELECT body FROM idempotency_keys WHERE idem_key = 'create-bot2'`))
	require.NotContains(t, string(stored), tok, "the token is not stored in plaintext")

	// Not every POST answer is kept: a failure worth retrying runs again.
	status, _, _, _ = h.doWith("POST", "/v1/agents/ghost/rotate", adminToken, `{}`, map[string]string{HeaderIdempotencyKey: "ghost"})
	require.Equal(t, 404, status)
	status, m, _, _ = h.doWith("POST", "/v1/agents/bot/rotate", adminToken, `{}`, map[string]string{HeaderIdempotencyKey: strings.Repeat("k", 256)})
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_idempotency_key", must(errCode(m)))
	// Without the admin token nothing is stored or replayed.
	status, _, _, _ = h.doWith("POST", "/v1/agents/bot/rotate", "wrong", `{"reason":"weekly"}`, key)
	require.Equal(t, 401, status)
}

// Issue 14, item 7: every answer has a Request-Id, which the log line of the request carries;
// errors carry Stripe's type; malformed JSON is 400; lists are cursor-paginated.
func TestRequestIDErrorTypesAndPagination(t *testing.T) {
	h := newHarness(t)
	idRe := regexp.MustCompile(`^req_[0-9a-f]{24}$`)
	for _, c := range []struct {
		method, path, token, body string
		status                    int
		typ                       string
	}{
		{"GET", "/healthz", "", "", 200, ""},
		{"GET", "/v1/agents", "", "", 401, "authentication_error"},
		{"POST", "/v1/agents", adminToken, `{"agent_id":`, 400, "invalid_request_error"},
		{"POST", "/v1/agents", adminToken, `{"agent_id":"x","daily_limit_usd":-1}`, 422, "invalid_request_error"},
		{"GET", "/v1/agents/ghost", adminToken, "", 404, "invalid_request_error"},
		{"GET", "/v1/nothing", adminToken, "", 404, "invalid_request_error"},
		{"PUT", "/v1/agents", adminToken, "", 405, "invalid_request_error"},
	} {
		status, m, hdr, _ := h.doWith(c.method, c.path, c.token, c.body, nil)
		require.Equal(t, c.status, status, "%s %s", c.method, c.path)
		id := hdr.Get(HeaderRequestID)
		require.Regexp(t, idRe, id, "%s %s", c.method, c.path)
		if c.typ != "" {
			require.Equal(t, c.typ, errType(m), "%s %s: %v", c.method, c.path, m)
		}
		require.Contains(t, h.logs.String(), "request_id="+id, "the request's log line names its id")
	}
	status, m, _, _ := h.doWith("POST", "/v1/agents/bot/rotate", adminToken, `not json`, nil)
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_json", must(errCode(m)))

	for i := range 5 {
		status, _, _, _ := h.doWith("POST", "/v1/agents", adminToken, fmt.Sprintf(`{"agent_id":"a%d","daily_limit_usd":5}`, i), nil)
		require.Equal(t, 201, status)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		path := "/v1/agents?limit=2"
		if after != "" {
			path += "&starting_after=" + after
		}
		status, _, _, raw := h.doWith("GET", path, adminToken, "", nil)
		require.Equal(t, 200, status)
		var page struct {
			Object string `json:"object"`
			Agents []struct {
				AgentID string `json:"agent_id"`
			} `json:"agents"`
			HasMore bool `json:"has_more"`
		}
		require.NoError(t, json.NewDecoder(bytes.NewReader(raw)).Decode(&page))
		require.Equal(t, "list", page.Object)
		for _, a := range page.Agents {
			got = append(got, a.AgentID)
		}
		if !page.HasMore {
			break
		}
		after = page.Agents[len(page.Agents)-1].AgentID
	}
	require.Equal(t, []string{"a0", "a1", "a2", "a3", "a4"}, got)
	status, _, _, _ = h.doWith("GET", "/v1/agents?limit=0", adminToken, "", nil)
	require.Equal(t, 400, status)
}
