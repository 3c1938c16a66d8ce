package sim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

var _ issuer.Decider = (*Adapter)(nil)

// decisionDeadline is how long the simulator waits for a decision by default (its
// DefaultDecisionTimeout, as Stripe's two seconds).
const decisionDeadline = 2 * time.Second

// decisionWire is the simulator's decision request (issuersim.DecisionRequestJSON).
type decisionWire struct {
	ID          string    `json:"id"`
	Object      string    `json:"object"`
	CardID      string    `json:"card_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Merchant    string    `json:"merchant"`
	MerchantID  string    `json:"merchant_id"`
	MCC         string    `json:"mcc"`
	CreatedAt   time.Time `json:"created_at"`
}

// ParseDecisionRequest verifies a decision request (signed like the simulator's webhooks)
// and reads it.
func (a *Adapter) ParseDecisionRequest(header http.Header, body []byte, now time.Time) (issuer.DecisionRequest, error) {
	const op = "parse_decision_request"
	if a.webhookKey == nil {
		return issuer.DecisionRequest{}, &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: "no webhook secret configured for the sim issuer"}
	}
	id, err := stdwebhooks.Verify(a.webhookKey, header, body, now, stdwebhooks.Tolerance)
	if err != nil {
		return issuer.DecisionRequest{}, &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: err.Error()}
	}
	var w decisionWire
	if err := json.Unmarshal(body, &w); err != nil || w.Object != "authorization_request" {
		return issuer.DecisionRequest{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "body is not an authorization request"}
	}
	if w.ID != id {
		return issuer.DecisionRequest{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "webhook-id does not match the request's id"}
	}
	return issuer.DecisionRequest{
		AuthorizationID: w.ID, CardID: w.CardID, AmountMinor: w.AmountMinor, Currency: strings.ToUpper(w.Currency),
		MerchantName: w.Merchant, MerchantID: w.MerchantID, MCC: w.MCC, At: w.CreatedAt,
	}, nil
}

// WriteDecision answers {"approved": …, "reason": …}.
func (a *Adapter) WriteDecision(w http.ResponseWriter, d issuer.Decision) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"approved": d.Approved, "reason": d.Reason})
}

// DecisionDeadline is the simulator's default decision timeout.
func (a *Adapter) DecisionDeadline() time.Duration { return decisionDeadline }
