package api

import (
	"errors"
	"net/http"

	"github.com/cardwarden/cardwarden/starter"
)

// errorBody is every error response, in Stripe's shape: {"error": {"type", "code", "message",
// "field"}}. type is the class of error a client branches on; code the specific reason.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error types, as Stripe names them (docs/http-api.md, "HTTP API reference").
const (
	typeInvalidRequest = "invalid_request_error" // the request is wrong: fix it before retrying
	typeAuthentication = "authentication_error"  // missing or wrong token
	typeRateLimit      = "rate_limit_error"      // too many requests: retry after Retry-After
	typeIdempotency    = "idempotency_error"     // an Idempotency-Key reused for another request
	typeAPI            = "api_error"             // cardwarden or what it depends on failed: retry
)

// errorType is the type of an error answer with this status and code.
func errorType(status int, code string) string {
	switch {
	case code == "idempotency_conflict" || code == "idempotency_in_progress":
		return typeIdempotency
	case status == http.StatusUnauthorized:
		return typeAuthentication
	case status == http.StatusTooManyRequests:
		return typeRateLimit
	case status >= 500:
		return typeAPI
	default:
		return typeInvalidRequest
	}
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Type: errorType(status, code), Code: code, Message: msg, Field: field}})
}

// writeErr answers with the status and code that match a control error. Unexpected errors are
// logged and answered with a generic 500, so nothing internal leaks to the caller.
func (s *server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	if status == http.StatusInternalServerError {
		s.log(r).Error("request failed", "method", r.Method, "path", clip(r.URL.Path), "error", err)
		writeError(w, status, code, "internal error", "")
		return
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeError(w, status, code, err.Error(), starter.FieldOf(err))
}

// classify maps control errors to HTTP: 404 missing agent, 409 refused in the agent's current
// state or already existing with another policy, 422 invalid input, 502 the workflow could not
// carry out an accepted change, 503 Temporal unreachable, 504 no worker answered.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, starter.ErrAgentNotFound):
		return http.StatusNotFound, "agent_not_found"
	case errors.Is(err, starter.ErrScheduleNotFound):
		return http.StatusNotFound, "schedule_not_found"
	case errors.Is(err, starter.ErrInvalidPolicy):
		return http.StatusUnprocessableEntity, "invalid_policy"
	case errors.Is(err, starter.ErrInvalidRequest):
		return http.StatusUnprocessableEntity, "invalid_request"
	case errors.Is(err, starter.ErrAgentExists):
		return http.StatusConflict, "agent_exists"
	case errors.Is(err, starter.ErrRejected):
		return http.StatusConflict, "rejected"
	case errors.Is(err, starter.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, starter.ErrUpdateFailed):
		return http.StatusBadGateway, "update_failed"
	case errors.Is(err, starter.ErrUnavailable):
		return http.StatusServiceUnavailable, "temporal_unavailable"
	case errors.Is(err, starter.ErrTimeout):
		return http.StatusGatewayTimeout, "timeout"
	default:
		return http.StatusInternalServerError, "internal"
	}
}
