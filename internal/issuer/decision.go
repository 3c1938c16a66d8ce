package issuer

import (
	"net/http"
	"time"
)

// Real-time authorization: issuers that let the card's owner decide each purchase while it is
// being authorized (Stripe's issuing_authorization.request, Lithic's Auth Stream Access,
// Marqeta's JIT funding, the simulator's decision hook) send a signed request and wait a few
// seconds for an answer in their own format.

// DecisionRequest is one purchase waiting for a decision.
type DecisionRequest struct {
	// AuthorizationID is the issuer's id of the authorization being decided: the same id the
	// authorization's later events carry, and what makes a redelivered request idempotent.
	AuthorizationID string
	CardID          string
	AmountMinor     int64
	Currency        string
	MerchantName    string
	MerchantID      string
	MCC             string
	At              time.Time
}

// Decision is cardwarden's answer to a DecisionRequest.
type Decision struct {
	Approved bool
	// Reason says why (a rule's name, "budget", "team_budget", "decision_timeout"...); issuers
	// that take no reason ignore it.
	Reason string
}

// Decider is implemented by adapters whose issuer asks for real-time decisions.
type Decider interface {
	// ParseDecisionRequest verifies the request's signature and freshness and reads it. A bad
	// or stale signature returns an error of KindUnauthorized.
	ParseDecisionRequest(header http.Header, body []byte, now time.Time) (DecisionRequest, error)
	// WriteDecision answers the request in the issuer's format.
	WriteDecision(w http.ResponseWriter, d Decision)
	// DecisionDeadline is how long the issuer waits for an answer before its own fallback.
	DecisionDeadline() time.Duration
}
