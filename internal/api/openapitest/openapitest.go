// Package openapitest checks HTTP exchanges with cardwarden's API against its OpenAPI
// document (internal/api/openapi.yaml) with kin-openapi's validator, so the document and the
// handlers cannot drift: wrap a test server's handler with Handler (or a client's transport
// with Transport) and every request the server accepted, and every answer it gave, is
// validated. A new endpoint needs its path in the document before its tests pass.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/cardwarden/cardwarden/internal/api"
)

// Validator checks exchanges against the document. It is safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router

	mu      sync.Mutex
	checked map[string]int // operation id → exchanges checked
}

var requestIDPattern = regexp.MustCompile(`^req_[0-9a-f]{24}$`)

// Load parses and validates the document (an invalid document fails the test).
func Load(t testing.TB) *Validator {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	// Test servers listen on random ports: match paths whatever the host.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return &Validator{doc: doc, router: router, checked: map[string]int{}}
}

// Doc is the parsed document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Checked reports how many exchanges of each operation were validated.
func (v *Validator) Checked() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]int{}
	for k, n := range v.checked {
		out[k] = n
	}
	return out
}

// Check validates one exchange: every answer has a Request-Id; a path the document does not
// describe is otherwise not checked (the dashboard, /metrics, /codec, and the garbage paths of
// hostile-input tests); on a documented path, the answer's status, headers and body must be as
// documented, and a request the document refuses must have been refused (4xx); a request the
// server accepted (2xx) must be one the document accepts.
func (v *Validator) Check(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) {
	t.Helper()
	if !requestIDPattern.MatchString(header.Get(api.HeaderRequestID)) {
		t.Errorf("openapi: %s %s answered %d without a Request-Id header", req.Method, req.URL.Path, status)
	}
	route, pathParams, err := v.router.FindRoute(req)
	if err != nil {
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	if len(reqBody) > 0 && r.Header.Get("Content-Type") == "" {
		// The API reads every body as JSON, whatever (or whether) Content-Type says.
		r.Header.Set("Content-Type", "application/json")
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	what := req.Method + " " + req.URL.Path
	switch {
	case reqErr != nil && status/100 == 2:
		t.Errorf("openapi: %s was accepted (%d) but the document refuses the request: %v\nbody: %s", what, status, reqErr, clip(reqBody))
	case reqErr != nil && status/100 != 4 && status != http.StatusServiceUnavailable:
		t.Errorf("openapi: %s answered %d, but the document refuses the request (want a 4xx): %v", what, status, reqErr)
	}
	in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("openapi: the answer to %s (%d) is not as documented: %v\nbody: %s", what, status, err, clip(respBody))
	}
	v.mu.Lock()
	v.checked[route.Operation.OperationID]++
	v.mu.Unlock()
}

func clip(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// Handler serves with next and checks every exchange.
func (v *Validator) Handler(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if !strings.HasPrefix(r.URL.Path, "/codec/") {
			v.Check(t, r, body, rec.Code, rec.Header(), rec.Body.Bytes())
		}
	})
}

// Transport sends with next (http.DefaultTransport when nil) and checks every exchange.
func (v *Validator) Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		rb, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(rb))
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return resp, nil
		}
		v.Check(t, req, body, resp.StatusCode, resp.Header, rb)
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
