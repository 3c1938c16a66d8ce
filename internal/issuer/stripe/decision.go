package stripe

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Real-time authorizations (Stripe docs, "Issuing real-time authorizations", "Respond
// directly"): Stripe sends the issuing_authorization.request event, signed like every other
// event, to the endpoint set in the Issuing settings and waits 2 seconds for HTTP 200 with a
// Stripe-Version header and {"approved": true|false}; without one it approves or declines by
// the account's timeout setting. The decision's outcome then arrives as the authorization's
// issuing_authorization.created event, under the same iauth_ id.

var _ issuer.Decider = (*Adapter)(nil)

// decisionDeadline is how long Stripe waits for the answer.
const decisionDeadline = 2 * time.Second

// metaReason is the metadata key the answer puts cardwarden's reason under: Stripe stores the
// answer's metadata on the authorization, so the reason is visible there.
const metaReason = "cardwarden_reason"

// decisionSecret is the signing secret of the real-time authorization endpoint.
func (a *Adapter) decisionSecret() string {
	if a.cfg.AuthorizationSecret != "" {
		return a.cfg.AuthorizationSecret
	}
	return a.cfg.WebhookSecret
}

// ParseDecisionRequest verifies an issuing_authorization.request event exactly as
// VerifyWebhook verifies other events (one Stripe-Signature, one timestamp within 5 minutes,
// stripe-go's check of the raw body) and reads the authorization it asks about: the amount
// asked is pending_request.amount, in the card's currency.
func (a *Adapter) ParseDecisionRequest(header http.Header, body []byte, now time.Time) (issuer.DecisionRequest, error) {
	const op = "parse_decision_request"
	invalid := func(msg string) error { return &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: msg} }
	evt, err := verifiedEvent(op, a.decisionSecret(), header, body, now)
	if err != nil {
		return issuer.DecisionRequest{}, err
	}
	if evt.Type != stripego.EventTypeIssuingAuthorizationRequest {
		return issuer.DecisionRequest{}, invalid("event " + string(evt.Type) + " is not issuing_authorization.request")
	}
	if evt.Data == nil {
		return issuer.DecisionRequest{}, invalid("issuing_authorization.request without data")
	}
	var au stripego.IssuingAuthorization
	if err := json.Unmarshal(evt.Data.Raw, &au); err != nil {
		return issuer.DecisionRequest{}, invalid("malformed issuing_authorization")
	}
	if !strings.HasPrefix(au.ID, "iauth_") || cardIDOf(au.Card) == "" {
		return issuer.DecisionRequest{}, invalid("issuing_authorization.request without an authorization id or card")
	}
	amount, currency := au.Amount, au.Currency
	if p := au.PendingRequest; p != nil {
		amount = p.Amount
		if p.Currency != "" {
			currency = p.Currency
		}
	}
	if amount < 0 {
		return issuer.DecisionRequest{}, invalid("negative amount requested")
	}
	req := issuer.DecisionRequest{
		AuthorizationID: au.ID, CardID: cardIDOf(au.Card), AmountMinor: amount, Currency: strings.ToUpper(string(currency)),
		At: time.Unix(au.Created, 0).UTC(),
	}
	if m := au.MerchantData; m != nil {
		req.MerchantName, req.MerchantID, req.MCC = m.Name, m.NetworkID, m.CategoryCode
	}
	if au.Created == 0 {
		req.At = time.Unix(evt.Created, 0).UTC()
	}
	return req, nil
}

// decisionReply is the body Stripe reads: approved, and metadata it stores on the
// authorization.
type decisionReply struct {
	Approved bool              `json:"approved"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// WriteDecision answers HTTP 200 with Stripe-Version and {"approved": …, "metadata":
// {"cardwarden_reason": …}}. The version is the one the SDK pins for every API call
// (stripego.APIVersion): Stripe reads the body by the version in the header, and this body
// is the same in every version that takes direct answers.
func (a *Adapter) WriteDecision(w http.ResponseWriter, d issuer.Decision) {
	reply := decisionReply{Approved: d.Approved}
	if d.Reason != "" {
		reply.Metadata = map[string]string{metaReason: d.Reason}
	}
	w.Header().Set("Stripe-Version", stripego.APIVersion)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(reply)
}

// DecisionDeadline is Stripe's 2 seconds.
func (a *Adapter) DecisionDeadline() time.Duration { return decisionDeadline }
