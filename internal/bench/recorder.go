package bench

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// The recorders in front of the issuer simulator and the API: they time the calls a scenario
// measures.

// recorder wraps a handler and reports every request it served (method, path, status,
// start and end) to the scenario's hook, for latencies measured where they happen.
type recorder struct {
	next http.Handler
	hook atomic.Pointer[func(e reqEvent)]
}

type reqEvent struct {
	Method, Path string
	Header       http.Header
	Status       int
	Start, End   time.Time
}

func (r *recorder) set(f func(reqEvent)) {
	if f == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&f)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := r.hook.Load()
	if h == nil {
		r.next.ServeHTTP(w, req)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	r.next.ServeHTTP(sw, req)
	(*h)(reqEvent{Method: req.Method, Path: req.URL.Path, Header: req.Header, Status: sw.status, Start: start, End: time.Now()})
}

// cardAction extracts the card id from /v1/cards/{id}/{action}.
func cardAction(path string) (id, action string, ok bool) {
	rest, found := strings.CutPrefix(path, "/v1/cards/")
	if !found {
		return "", "", false
	}
	id, action, ok = strings.Cut(rest, "/")
	return id, action, ok
}
