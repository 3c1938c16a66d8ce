package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
)

// Deciding each purchase (README, "Deciding each purchase"). Where the issuer asks cardwarden
// in real time, the decision endpoint sends the `authorize` update; its handler decides at
// once, without waiting for the main loop (which may be in the middle of an issuer call), so
// an answer never waits behind a reset or a rotation. An approval reserves the amount: two
// purchases at the same moment can never both take the last dollar. The reservation turns
// into spend when the authorization's own event arrives, is released when that event says
// the issuer declined, and expires if no event comes.

// UpdateAuthorize decides one purchase (AuthorizeRequest → AuthorizeResult).
const UpdateAuthorize = "authorize"

// Bounds of the decision state carried through continue-as-new.
const (
	// reservationTTL is how long an approval waits for its authorization's event.
	reservationTTL = 5 * time.Minute
	maxDecisions   = 256
	maxApprovals   = maxVelocityCount
)

// Decline reasons of a decision (AuthorizeResult.Reason).
const (
	DecideBudget          = "budget"
	DecideTeamBudget      = "team_budget"
	DecideTeamUnchecked   = "team_not_checked"
	DecideMaxPerPurchase  = "max_per_purchase"
	DecideVelocityCount   = "velocity_count"
	DecideVelocityAmount  = "velocity_amount"
	DecideCardNotCurrent  = "card_not_current"
	DecideAgentNotActive  = "agent_not_active"
	DecideApproved        = "approved"
	DecideTimeoutFallback = "decision_timeout"
)

// AuthorizeRequest is one purchase to decide.
type AuthorizeRequest struct {
	AuthorizationID string    `json:"authorization_id"`
	CardID          string    `json:"card_id"`
	AmountMinor     int64     `json:"amount_minor"`
	Currency        string    `json:"currency,omitempty"`
	Merchant        string    `json:"merchant,omitempty"`
	MerchantID      string    `json:"merchant_id,omitempty"`
	MCC             string    `json:"mcc,omitempty"`
	At              time.Time `json:"at,omitzero"`
	// TeamApproved says the agent's team already reserved the amount: the decision endpoint
	// asks the team (workflow team/<id>) before the agent.
	TeamApproved bool `json:"team_approved,omitempty"`
}

// Validate checks a request before it reaches the workflow.
func (r AuthorizeRequest) Validate() error {
	var errs FieldErrors
	if r.AuthorizationID == "" || len(r.AuthorizationID) > 200 {
		errs.add("request.authorization_id", "required, at most 200 characters")
	}
	if r.CardID == "" || len(r.CardID) > 200 {
		errs.add("request.card_id", "required, at most 200 characters")
	}
	if err := money.CheckBound(r.AmountMinor); err != nil {
		errs.add("request.amount_minor", "%s", err.Error())
	}
	if len(r.Merchant) > 500 || len(r.MerchantID) > 200 || len(r.MCC) > 8 {
		errs.add("request.merchant", "too long")
	}
	return errs.err()
}

// AuthorizeResult is a decision.
type AuthorizeResult struct {
	Approved bool   `json:"approved"`
	Reason   string `json:"reason"`
	// RemainingMinor is what the period leaves after this decision, reservations counted.
	RemainingMinor int64 `json:"remaining_minor"`
	// Repeated is set when the same authorization was decided before: the same answer again.
	Repeated bool `json:"repeated,omitempty"`
}

// Reservation is an approved purchase whose authorization event has not arrived yet.
type Reservation struct {
	AuthorizationID string    `json:"authorization_id"`
	CardID          string    `json:"card_id"`
	AmountMinor     int64     `json:"amount_minor"`
	At              time.Time `json:"at"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// DecisionRecord is one decision, kept so a redelivered request gets the same answer.
type DecisionRecord struct {
	AuthorizationID string    `json:"authorization_id"`
	At              time.Time `json:"at"`
	AmountMinor     int64     `json:"amount_minor"`
	Merchant        string    `json:"merchant,omitempty"`
	Approved        bool      `json:"approved"`
	Reason          string    `json:"reason"`
}

// ApprovalMark is an approval's time and amount, for velocity rules.
type ApprovalMark struct {
	At          time.Time `json:"at"`
	AmountMinor int64     `json:"amount_minor"`
}

// authorize is the update's handler: it decides and, on approval, reserves, in one step.
func (wf *agentCard) authorize(ctx workflow.Context, req AuthorizeRequest) AuthorizeResult {
	wf.wrote(eventsPerUpdate + eventsPerWake)
	now := workflow.Now(ctx)
	wf.expireReservations(now)
	if d, ok := wf.decided(req.AuthorizationID); ok {
		return AuthorizeResult{Approved: d.Approved, Reason: d.Reason, RemainingMinor: wf.allowanceLeft(), Repeated: true}
	}
	reason := wf.judge(now, req)
	approved := reason == ""
	if approved {
		reason = DecideApproved
		wf.st.Reservations = append(wf.st.Reservations, Reservation{AuthorizationID: req.AuthorizationID, CardID: req.CardID,
			AmountMinor: req.AmountMinor, At: now, ExpiresAt: now.Add(reservationTTL)})
		wf.st.Approvals = append(wf.st.Approvals, ApprovalMark{At: now, AmountMinor: req.AmountMinor})
		if n := len(wf.st.Approvals) - maxApprovals; n > 0 {
			wf.st.Approvals = slices.Delete(wf.st.Approvals, 0, n)
		}
	}
	wf.st.Decisions = append(wf.st.Decisions, DecisionRecord{AuthorizationID: req.AuthorizationID, At: now,
		AmountMinor: req.AmountMinor, Merchant: req.Merchant, Approved: approved, Reason: reason})
	if n := len(wf.st.Decisions) - maxDecisions; n > 0 {
		wf.st.Decisions = slices.Delete(wf.st.Decisions, 0, n)
	}
	return AuthorizeResult{Approved: approved, Reason: reason, RemainingMinor: wf.allowanceLeft()}
}

// judge returns why a purchase is declined, or "".
func (wf *agentCard) judge(now time.Time, req AuthorizeRequest) string {
	p := wf.policy
	card := wf.st.Card
	switch {
	case wf.st.Status != StatusActive || wf.retiring:
		return DecideAgentNotActive
	case card == nil || card.ID != req.CardID || card.Capped:
		return DecideCardNotCurrent
	case p.MaxPerPurchaseUSD != nil && req.AmountMinor > p.MaxPerPurchaseUSD.Minor():
		return DecideMaxPerPurchase
	}
	if ok, why := p.MerchantRules.allows(req.Merchant, req.MCC); !ok {
		return why
	}
	if v := p.Velocity; v.Window > 0 {
		since := now.Add(-v.Window.D())
		var count int
		var sum int64
		for _, a := range wf.st.Approvals {
			if a.At.After(since) {
				count++
				sum += a.AmountMinor
			}
		}
		if v.MaxCount > 0 && count+1 > v.MaxCount {
			return DecideVelocityCount
		}
		if v.MaxAmountUSD != nil && sum+req.AmountMinor > v.MaxAmountUSD.Minor() {
			return DecideVelocityAmount
		}
	}
	if req.AmountMinor > wf.allowanceLeft() {
		return DecideBudget
	}
	if p.TeamID != "" && !req.TeamApproved {
		return DecideTeamUnchecked
	}
	return ""
}

// allowanceLeft is what the period leaves for new purchases: the allowance less what is
// reserved for purchases approved but not yet seen as events.
func (wf *agentCard) allowanceLeft() int64 {
	var reserved int64
	for _, r := range wf.st.Reservations {
		reserved += r.AmountMinor
	}
	return max(0, wf.remaining()-reserved)
}

// decided finds an earlier decision on the same authorization.
func (wf *agentCard) decided(id string) (DecisionRecord, bool) {
	for i := len(wf.st.Decisions) - 1; i >= 0; i-- {
		if wf.st.Decisions[i].AuthorizationID == id {
			return wf.st.Decisions[i], true
		}
	}
	return DecisionRecord{}, false
}

// settleReservation turns an approval's reservation into spend (the event just counted) or
// releases it (the issuer declined after all): either way it is no longer reserved.
func (wf *agentCard) settleReservation(ev cardwarden.Event) {
	if ev.Kind != cardwarden.KindAuthorization || ev.AuthorizationID == "" || len(wf.st.Reservations) == 0 {
		return
	}
	wf.st.Reservations = slices.DeleteFunc(wf.st.Reservations, func(r Reservation) bool { return r.AuthorizationID == ev.AuthorizationID })
}

// expireReservations releases approvals whose authorization never came.
func (wf *agentCard) expireReservations(now time.Time) {
	wf.st.Reservations = slices.DeleteFunc(wf.st.Reservations, func(r Reservation) bool { return !now.Before(r.ExpiresAt) })
}

// DecisionView is a recent decision in the state view.
type DecisionView struct {
	AuthorizationID string       `json:"authorization_id"`
	AgentID         string       `json:"agent_id,omitempty"` // in a team's view: whose purchase
	At              time.Time    `json:"at"`
	AmountUSD       money.Amount `json:"amount_usd"`
	Merchant        string       `json:"merchant,omitempty"`
	Approved        bool         `json:"approved"`
	Reason          string       `json:"reason"`
}

func (d DecisionRecord) view() DecisionView {
	return DecisionView{AuthorizationID: d.AuthorizationID, At: d.At, AmountUSD: money.Amount(d.AmountMinor), Merchant: d.Merchant,
		Approved: d.Approved, Reason: d.Reason}
}

func (r AuthorizeResult) String() string {
	return fmt.Sprintf("approved=%t reason=%s", r.Approved, r.Reason)
}

// forwardToTeam sends each money event of an agent in a team to the team's workflow, which
// keeps the team's spend by the same rules. The signal is durable: Temporal delivers it
// whatever happens to either workflow.
func (wf *agentCard) forwardToTeam(ctx workflow.Context, ev cardwarden.Event) {
	if wf.policy.TeamID == "" {
		return
	}
	wf.wrote(eventsPerSignalOut)
	_ = workflow.SignalExternalWorkflow(ctx, TeamWorkflowID(wf.policy.TeamID), "", SignalTeamEvent, TeamEvent{AgentID: wf.policy.AgentID, Event: ev})
}
