package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/api"
)

// apiClient calls the cardwarden HTTP API with the admin token. Every POST carries an
// Idempotency-Key made for the call, and is retried with the same key when the answer is
// lost or the API says to retry (429, 503), so a retried command never acts twice.
type apiClient struct {
	base  string
	token string
	http  *http.Client
	// retries is how many times a call is retried after a lost answer, 429 or 503.
	retries int
}

// apiHTTPClient is the CLI's HTTP client; tests replace its transport to check every
// exchange against the OpenAPI document.
var apiHTTPClient = &http.Client{}

func newAPIClient(base, token string) *apiClient {
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, http: apiHTTPClient, retries: 3}
}

// apiError is an error answer of the API ({"error": {type, code, message, field}}).
type apiError struct {
	Status    int
	Type      string `json:"type"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d %s, request %s)", msg, e.Status, e.Code, e.RequestID)
}

func (c *apiClient) get(ctx context.Context, path string, query url.Values, out any) error {
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *apiClient) post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

func (c *apiClient) delete(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodDelete, path, nil, out)
}

func newIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "cli_" + hex.EncodeToString(b)
}

// do sends one request (retrying as the type says) and decodes a 2xx answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	if u, err := url.Parse(c.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("--api-url %q is not an http(s) URL", c.base)}
	}
	key := ""
	if method == http.MethodPost {
		key = newIdempotencyKey()
	}
	var last error
	for attempt := 0; ; attempt++ {
		status, raw, hdr, err := c.once(ctx, method, path, body, key)
		retry := false
		switch {
		case err != nil:
			last, retry = fmt.Errorf("reach the cardwarden API at %s: %w (is `cardwarden dev` or `cardwarden serve` running? set --api-url or CARDWARDEN_API_URL)", c.base, err), true
		case status/100 == 2:
			if out == nil || len(raw) == 0 {
				return nil
			}
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("unexpected answer from the API to %s %s: %w", method, path, err)
			}
			return nil
		default:
			ae := &apiError{Status: status, RequestID: hdr.Get(api.HeaderRequestID)}
			var eb struct {
				Error *apiError `json:"error"`
			}
			if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
				eb.Error.Status, eb.Error.RequestID = ae.Status, ae.RequestID
				ae = eb.Error
			}
			if status == http.StatusUnauthorized && strings.HasPrefix(path, "/v1/") && !strings.HasSuffix(path, "/card") {
				ae.Message += " (the admin token: " + api.EnvAdminToken + ", --admin-token-file, or .cardwarden/admin.token of `cardwarden dev`)"
			}
			last = ae
			retry = status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || ae.Code == "idempotency_in_progress"
		}
		if !retry || attempt >= c.retries || ctx.Err() != nil {
			return last
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}

func (c *apiClient) once(ctx context.Context, method, path string, body []byte, key string) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(api.HeaderIdempotencyKey, key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, raw, resp.Header, nil
}
