package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/starter"
	"github.com/cardwarden/cardwarden/workflows"
)

// Deciding each purchase (README, "Deciding each purchase"): the issuer asks, cardwarden
// answers before the issuer's deadline. The agent's workflow decides (the authorize update),
// after the agent's team reserved the amount when the agent belongs to one; whatever the
// outcome, it is recorded before the answer leaves, so a redelivered request is answered the
// same way.

// Decisions is what the decision endpoint asks of Temporal: *starter.Client.
type Decisions interface {
	Authorize(ctx context.Context, agentID string, req workflows.AuthorizeRequest) (workflows.AuthorizeResult, error)
	ReserveTeam(ctx context.Context, teamID string, req workflows.TeamReserveRequest) (workflows.TeamReserveResult, error)
	ReleaseTeam(ctx context.Context, teamID, authorizationID string) error
}

var _ Decisions = (*starter.Client)(nil)

// DecisionObserver counts decisions (*metrics.Metrics); optional beside Observer.
type DecisionObserver interface {
	ObserveDecision(issuerName string, approved bool, reason, source string, took time.Duration)
}

// Decline reasons the endpoint gives on its own, without a workflow.
const (
	decideUnknownCard = "unknown_card"
	decideNoDecisions = "decisions_unavailable"
	decideMismatch    = "request_mismatch"
)

// AlertDecisionFallback is the alert kind recorded when an answer had to come from the
// agent's fallback (once per agent and hour: a worker outage is one alert, not thousands).
const AlertDecisionFallback = "decision-fallback"

// decisionBudget is how long the workflows may take: a quarter of the issuer's deadline (at
// least 300 ms) is kept for the fallback, recording and the way back, so a slow Temporal turns
// into the agent's own fallback and never into the issuer's.
func decisionBudget(deadline time.Duration) time.Duration {
	return deadline - max(deadline/4, 300*time.Millisecond)
}

// authorize: POST /v1/authorizations/{issuer}.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var dec issuer.Decider
	var name string
	if s.Issuers != nil && workflows.ValidIssuerName(r.PathValue("issuer")) {
		if ad, _ := s.Issuers.Get(r.PathValue("issuer")); ad != nil {
			name = ad.Name()
			dec, _ = ad.(issuer.Decider)
		}
	}
	if dec == nil {
		s.rejected(metrics.UnknownIssuerLabel, metrics.WebhookUnknownIssuer)
		writeError(w, http.StatusNotFound, "unknown_issuer", "no issuer on this server decides authorizations by that name", "")
		return
	}
	body, ok := readBodyOr(w, r, MaxWebhookBody, func() { s.rejected(name, metrics.WebhookTooLarge) })
	if !ok {
		return
	}
	req, err := dec.ParseDecisionRequest(r.Header, body, s.Now())
	if err != nil {
		var ie *issuer.Error
		if errors.As(err, &ie) && ie.Kind == issuer.KindUnauthorized {
			s.rejected(name, metrics.WebhookSignature)
			s.log(r).Warn("authorization request rejected", "issuer", name, "reason", ie.Message, "remote", remoteIP(r))
			writeError(w, http.StatusUnauthorized, "invalid_signature", "request signature is invalid or stale", "")
			return
		}
		s.rejected(name, metrics.WebhookInvalid)
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), decisionBudget(dec.DecisionDeadline()))
	defer cancel()
	d, source := s.decide(ctx, name, req, start, start.Add(dec.DecisionDeadline()-answerMargin(dec.DecisionDeadline())))
	s.log(r).Info("authorization decided", "issuer", name, "authorization_id", req.AuthorizationID, "agent_id", d.AgentID,
		"approved", d.Approved, "reason", d.Reason, "source", source, "duration_ms", time.Since(start).Milliseconds())
	if o, ok := s.Observer.(DecisionObserver); ok {
		o.ObserveDecision(name, d.Approved, d.Reason, source, time.Since(start))
	}
	dec.WriteDecision(w, issuer.Decision{Approved: d.Approved, Reason: d.Reason})
}

// decide answers one request: the recorded answer if it was asked before, else the workflow's
// (the team's first), else the agent's fallback.
func (s *server) decide(ctx context.Context, name string, req issuer.DecisionRequest, start, answerBy time.Time) (store.Decision, string) {
	if prev, err := s.Store.GetDecision(ctx, name, req.AuthorizationID); err == nil {
		if prev.IssuerCardID != req.CardID || prev.AmountMinor != req.AmountMinor {
			// Not a redelivery: the same id with another card or amount. Its first answer
			// is not this purchase's; decline, and keep the record as it is.
			s.Logger.Warn("authorization request reuses a decided id with another card or amount", "issuer", name,
				"authorization_id", req.AuthorizationID, "amount_minor", req.AmountMinor, "decided_amount_minor", prev.AmountMinor)
			return store.Decision{Issuer: name, AuthorizationID: req.AuthorizationID, AgentID: prev.AgentID, Reason: decideMismatch}, metrics.DecisionRefused
		}
		return prev, metrics.DecisionReplayed
	}
	d := store.Decision{Issuer: name, AuthorizationID: req.AuthorizationID, IssuerCardID: req.CardID, AmountMinor: req.AmountMinor,
		Currency: req.Currency, Merchant: req.MerchantName, MCC: req.MCC}
	card, err := s.Store.CardByIssuerID(ctx, name, req.CardID)
	if err != nil {
		// Not one of ours (or the database is down): nothing to check it against.
		d.Reason = decideUnknownCard
		if !store.IsNotFound(err) {
			d.Reason = decideNoDecisions
		}
		return s.record(ctx, d, start, answerBy), metrics.DecisionRefused
	}
	d.AgentID = card.AgentID
	var pol workflows.Policy
	if a, err := s.Store.GetAgent(ctx, card.AgentID); err == nil {
		_ = json.Unmarshal([]byte(a.Policy), &pol) // validated when the agent was created
	}
	d.TeamID = pol.TeamID
	decided, err := s.askWorkflows(ctx, d.AgentID, pol.TeamID, req)
	source := metrics.DecisionByWorkflow
	if err != nil {
		source = metrics.DecisionByFallback
		d.Fallback = true
		d.Approved = pol.OnDecisionTimeout == workflows.OnTimeoutApprove
		d.Reason = workflows.DecideTimeoutFallback
	} else {
		d.Approved, d.Reason = decided.Approved, decided.Reason
	}
	stored := s.record(ctx, d, start, answerBy)
	if d.Fallback {
		go s.alertFallback(context.WithoutCancel(ctx), stored, err) // not on the issuer's clock
	}
	return stored, source
}

// askWorkflows reserves the amount in the team's workflow (when the agent has a team) and then
// asks the agent's. A team reservation whose purchase the agent declines is given back; if
// that fails, or this process dies first, the team lets it expire (after the same five minutes as an agent's reservation).
func (s *server) askWorkflows(ctx context.Context, agentID, teamID string, req issuer.DecisionRequest) (workflows.AuthorizeResult, error) {
	dc, ok := s.ctl.(Decisions)
	if !ok {
		return workflows.AuthorizeResult{}, errors.New("no Temporal client")
	}
	areq := workflows.AuthorizeRequest{AuthorizationID: req.AuthorizationID, CardID: req.CardID, AmountMinor: req.AmountMinor,
		Currency: req.Currency, Merchant: req.MerchantName, MerchantID: req.MerchantID, MCC: req.MCC, At: req.At}
	if teamID != "" {
		tr, err := dc.ReserveTeam(ctx, teamID, workflows.TeamReserveRequest{AuthorizationID: req.AuthorizationID, AgentID: agentID,
			AmountMinor: req.AmountMinor})
		if errors.Is(err, starter.ErrAgentNotFound) {
			// A team_id naming no team is a configuration error, not an outage: no fallback.
			return workflows.AuthorizeResult{Reason: workflows.DecideTeamUnchecked}, nil
		}
		if err != nil {
			return workflows.AuthorizeResult{}, err
		}
		if !tr.Approved {
			return workflows.AuthorizeResult{Approved: false, Reason: workflows.DecideTeamBudget}, nil
		}
		areq.TeamApproved = true
	}
	res, err := dc.Authorize(ctx, agentID, areq)
	if errors.Is(err, starter.ErrAgentNotFound) {
		res, err = workflows.AuthorizeResult{Reason: workflows.DecideAgentNotActive}, nil // its workflow has ended
	}
	if teamID != "" && (err != nil || !res.Approved) {
		// The purchase will not go through on the team's reservation: give it back at once
		// rather than after its expiry (a fallback approval keeps it: that purchase counts).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err == nil {
			if rerr := dc.ReleaseTeam(rctx, teamID, req.AuthorizationID); rerr != nil {
				s.Logger.Warn("team reservation not released; it expires", "team_id", teamID, "authorization_id", req.AuthorizationID, "error", rerr)
			}
		}
	}
	return res, err
}

// answerMargin is kept from the issuer's deadline for the answer's way back.
func answerMargin(deadline time.Duration) time.Duration {
	return max(deadline/10, 100*time.Millisecond)
}

// record stores the decision; if another delivery of the same request was recorded first,
// that answer is the one given. The answer must leave by answerBy, whatever the database
// does: a record that cannot be written by then is written after the answer (and a redelivery
// that comes first is asked again; the workflow remembers its own decisions, so it gets the
// same one unless this was a fallback).
func (s *server) record(ctx context.Context, d store.Decision, start, answerBy time.Time) store.Decision {
	d.DecidedAt = time.Now()
	d.LatencyMS = int(time.Since(start).Milliseconds())
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), answerBy)
	defer cancel()
	stored, _, err := s.Store.RecordDecision(rctx, d)
	if err == nil {
		return stored
	}
	s.Logger.Warn("decision not recorded before its answer; recording it after", "issuer", d.Issuer, "authorization_id", d.AuthorizationID, "error", err)
	go func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, _, err := s.Store.RecordDecision(lctx, d); err != nil {
			s.Logger.Error("record decision", "issuer", d.Issuer, "authorization_id", d.AuthorizationID, "error", err)
		}
	}()
	return d
}

// alertFallback records that an agent's purchase was decided without its workflow.
func (s *server) alertFallback(ctx context.Context, d store.Decision, cause error) {
	s.Logger.Warn("authorization decided by fallback", "issuer", d.Issuer, "authorization_id", d.AuthorizationID,
		"agent_id", d.AgentID, "approved", d.Approved, "error", cause)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	outcome := "declined"
	if d.Approved {
		outcome = "approved"
	}
	msg := "agent " + d.AgentID + "'s workflow did not decide authorization " + d.AuthorizationID + " in time; " +
		outcome + " by its on_decision_timeout fallback (issuer limits still apply)"
	a, err := s.Store.ClaimAlert(actx, store.Alert{AgentID: d.AgentID, Kind: AlertDecisionFallback,
		Period: d.DecidedAt.UTC().Format("2006-01-02T15"), Message: msg})
	if err == nil && a.Status == store.AlertPending {
		err = s.Store.MarkAlertAttempt(actx, a.AgentID, a.Kind, a.Period, true)
	}
	if err != nil {
		s.Logger.Error("record decision fallback alert", "agent_id", d.AgentID, "error", err)
	}
}
