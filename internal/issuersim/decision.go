package issuersim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

// The real-time decision hook, as Stripe's issuing_authorization.request: before answering a
// purchase, the simulator asks the card's owner (cardwarden) whether to approve it, with a
// signed request and a deadline. No answer in time, or an answer it cannot read, and the
// configured fallback applies. The decision comes before the simulator's own limits, which
// remain the backstop.

// Decision fallbacks.
const (
	FallbackDecline = "decline"
	FallbackApprove = "approve"
)

// DefaultDecisionTimeout is how long the simulator waits for a decision: Stripe's two seconds.
const DefaultDecisionTimeout = 2 * time.Second

// DecisionHook configures the hook. An empty URL turns it off.
type DecisionHook struct {
	URL       string `json:"url"`
	TimeoutMS int64  `json:"timeout_ms"`
	// Fallback applies when no readable decision comes in time: "decline" (the default,
	// reason decision_timeout) or "approve" (the simulator's own limits decide).
	Fallback string `json:"fallback"`
}

func (h DecisionHook) validate() error {
	switch {
	case h.TimeoutMS < 0 || h.TimeoutMS > 30_000:
		return errors.New("timeout_ms must be between 0 (the default, 2000) and 30000")
	case h.Fallback != "" && h.Fallback != FallbackDecline && h.Fallback != FallbackApprove:
		return fmt.Errorf("fallback %q: want decline or approve", h.Fallback)
	}
	return nil
}

func (h DecisionHook) timeout() time.Duration {
	if h.TimeoutMS <= 0 {
		return DefaultDecisionTimeout
	}
	return time.Duration(h.TimeoutMS) * time.Millisecond
}

// DecisionRequestJSON is the body of a decision request.
type DecisionRequestJSON struct {
	ID          string    `json:"id"` // the authorization's id, which its authorization.created event carries
	Object      string    `json:"object"`
	CardID      string    `json:"card_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Merchant    string    `json:"merchant,omitempty"`
	MerchantID  string    `json:"merchant_id,omitempty"`
	MCC         string    `json:"mcc,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// DecisionResponseJSON is what the hook answers.
type DecisionResponseJSON struct {
	Approved bool   `json:"approved"`
	Reason   string `json:"reason,omitempty"`
}

// SetDecisionHook turns the hook on (or off, with an empty URL).
func (s *Server) SetDecisionHook(h DecisionHook) error {
	if err := h.validate(); err != nil {
		return err
	}
	if h.URL != "" && s.webhookKey == nil {
		return errors.New("a decision hook needs a webhook secret to sign its requests")
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.hook = h
	return nil
}

// DecisionHookConfig returns the hook's settings.
func (s *Server) DecisionHookConfig() DecisionHook {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return s.hook
}

// decide asks the hook about one purchase. It returns "" to approve, or the decline reason.
func (s *Server) decide(ctx context.Context, h DecisionHook, req DecisionRequestJSON) string {
	s.decisionsAsked.Add(1)
	resp, err := s.askHook(ctx, h, req)
	switch {
	case err == nil && resp.Approved:
		return ""
	case err == nil:
		return reasonDecisionDeclined
	}
	s.decisionsFallback.Add(1)
	s.log.Warn("issuersim: no decision in time; fallback applies", "authorization", req.ID, "fallback", h.Fallback, "err", err)
	if h.Fallback == FallbackApprove {
		return ""
	}
	return reasonDecisionTimeout
}

func (s *Server) askHook(ctx context.Context, h DecisionHook, req DecisionRequestJSON) (DecisionResponseJSON, error) {
	var out DecisionResponseJSON
	body, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout())
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "cardwarden-issuersim")
	stdwebhooks.Sign(hr.Header, s.webhookKey, req.ID, time.Now(), body)
	res, err := s.hc.Do(hr)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return out, err
	}
	if res.StatusCode != http.StatusOK {
		return out, fmt.Errorf("decision endpoint answered %d", res.StatusCode)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("decision endpoint answered something other than {\"approved\":…}: %w", err)
	}
	return out, nil
}

// handleDecisionHook shows (GET) or sets (POST, the whole setting) the decision hook.
func (s *Server) handleDecisionHook(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, err := readBody(r)
		if err != nil {
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		var h DecisionHook
		if err := decodeStrict(body, &h); err != nil {
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if err := s.SetDecisionHook(h); err != nil {
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, s.DecisionHookConfig())
}

// unlocked runs f with the state lock released (the caller holds it), for a call that must
// not keep every other request waiting.
func (s *Server) unlocked(f func()) {
	s.mu.Unlock()
	defer s.mu.Lock()
	f()
}
