// Package cardwarden holds the domain types every layer of cardwarden shares and that a
// program driving agents through package starter needs to name: the normalized issuer event
// (the payload of an AgentCard workflow's card-event signal, and what starter.ReportEvent
// records). Exact money amounts are package money. The packages, their one-way layering and
// the test that keeps it are described in README.md, "Architecture".
package cardwarden

import (
	"fmt"
	"time"

	"github.com/cardwarden/cardwarden/money"
)

// EventKind is what happened to money on a card.
type EventKind string

const (
	KindAuthorization EventKind = "authorization"
	KindCapture       EventKind = "capture"
	KindForceCapture  EventKind = "force_capture"
	KindRefund        EventKind = "refund"
	KindReversal      EventKind = "reversal"
)

// DeclineReason is the normalized reason of a declined authorization.
type DeclineReason string

const (
	ReasonSpendingLimit   DeclineReason = "spending_limit"
	ReasonCardPaused      DeclineReason = "card_paused"
	ReasonCardClosed      DeclineReason = "card_closed"
	ReasonCardExpired     DeclineReason = "card_expired"
	ReasonMerchantBlocked DeclineReason = "merchant_blocked"
	ReasonSuspectedFraud  DeclineReason = "suspected_fraud"
	// ReasonDecisionDeclined: cardwarden's real-time decision declined the purchase (a rule,
	// the budget, a team's budget); ReasonDecisionTimeout: no decision came in time and the
	// issuer's fallback declined it.
	ReasonDecisionDeclined DeclineReason = "decision_declined"
	ReasonDecisionTimeout  DeclineReason = "decision_timeout"
	ReasonOther            DeclineReason = "other"
)

// Event is one normalized issuer event, as every issuer adapter produces it. ID is the issuer's own event id, unique per issuer,
// and is what makes replays no-ops.
type Event struct {
	ID              string        `json:"id"`
	Issuer          string        `json:"issuer"`
	Kind            EventKind     `json:"kind"`
	CardID          string        `json:"card_id"`
	AuthorizationID string        `json:"authorization_id,omitempty"`
	Approved        bool          `json:"approved"`
	DeclineReason   DeclineReason `json:"decline_reason,omitempty"`
	RawReason       string        `json:"raw_reason,omitempty"`
	AmountMinor     int64         `json:"amount_minor"`
	Currency        string        `json:"currency"`
	// AuthorizedMinor is, on a capture, the amount its authorization approved (0 when the
	// issuer does not say), so an over-capture is recognised whichever webhook arrives first.
	AuthorizedMinor int64     `json:"authorized_minor,omitempty"`
	MerchantName    string    `json:"merchant_name,omitempty"`
	MCC             string    `json:"mcc,omitempty"`
	OccurredAt      time.Time `json:"occurred_at"`
	// Recorded says the sender put the event in the ledger before signalling it, as
	// starter.ReportEvent does. The AgentCard workflow records an event signalled without it
	// (sent by hand from the Temporal CLI or Web UI) itself, so the ledger and the dashboard
	// never disagree with the workflow's spend.
	Recorded bool `json:"recorded,omitempty"`
}

// Check reports the first field a normalized event cannot do without: an event without an id
// cannot be deduplicated, one without a card cannot be attributed to an agent, and an amount
// outside (0, money.MaxMinor] cannot be a real card payment (a zero-amount authorization, which
// card networks use to verify a card, is the one exception). Amounts are bounded so that no sum
// of them can overflow.
func (e Event) Check() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("event has no id")
	case e.CardID == "":
		return fmt.Errorf("event %s names no card", e.ID)
	case e.Kind == "":
		return fmt.Errorf("event %s has no kind", e.ID)
	}
	switch e.Kind {
	case KindAuthorization, KindCapture, KindForceCapture, KindRefund, KindReversal:
	default:
		return fmt.Errorf("event %s: unknown kind %q", e.ID, e.Kind)
	}
	if !(e.Kind == KindAuthorization && e.AmountMinor == 0) {
		if err := money.CheckBound(e.AmountMinor); err != nil {
			return fmt.Errorf("event %s: amount_minor: %w", e.ID, err)
		}
	}
	if e.AuthorizedMinor < 0 || e.AuthorizedMinor > money.MaxMinor {
		return fmt.Errorf("event %s: authorized_minor %d out of range", e.ID, e.AuthorizedMinor)
	}
	return nil
}
