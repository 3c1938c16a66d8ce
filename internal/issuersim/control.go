package issuersim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	n := func(h func(*http.Request, []byte) result) http.HandlerFunc { return s.handle(false, h) }
	a := func(h func(*http.Request, []byte) result) http.HandlerFunc { return s.handle(true, h) }

	m.HandleFunc("POST /v1/cards", n(s.nativeCreateCard))
	m.HandleFunc("GET /v1/cards", n(s.nativeListCards))
	m.HandleFunc("GET /v1/cards/{id}", n(s.nativeGetCard))
	m.HandleFunc("POST /v1/cards/{id}/limits", n(s.nativeUpdateLimits))
	m.HandleFunc("POST /v1/cards/{id}/pause", n(s.nativeSetStatus(statusPaused)))
	m.HandleFunc("POST /v1/cards/{id}/resume", n(s.nativeSetStatus(statusActive)))
	m.HandleFunc("POST /v1/cards/{id}/close", n(s.nativeSetStatus(statusClosed)))
	m.HandleFunc("GET /v1/cards/{id}/reveal", n(s.nativeReveal))
	m.HandleFunc("GET /v1/cards/{id}/authorizations", n(s.listCardAuthorizations))
	m.HandleFunc("GET /v1/events", n(s.listEvents))

	m.HandleFunc("POST /v1/simulate/authorizations", n(s.simulateAuthorization))
	m.HandleFunc("POST /v1/simulate/captures", n(s.simulateCapture))
	m.HandleFunc("POST /v1/simulate/force_captures", n(s.simulateForceCapture))
	m.HandleFunc("POST /v1/simulate/refunds", n(s.simulateRefund))
	m.HandleFunc("POST /v1/simulate/reversals", n(s.simulateReversal))

	m.HandleFunc("GET /v1/sim/stats", s.handleStats)
	m.HandleFunc("GET /v1/sim/faults", s.handleGetFaults)
	m.HandleFunc("GET /v1/sim/decisions", s.handleDecisionHook)
	m.HandleFunc("POST /v1/sim/decisions", s.handleDecisionHook)
	m.HandleFunc("POST /v1/sim/faults", s.handleSetFaults)
	m.HandleFunc("GET /v1/sim/clock", s.handleClock)
	m.HandleFunc("POST /v1/sim/clock", s.handleClock)

	m.HandleFunc("POST /api/v1/cards", a(s.aippCreateCard))
	m.HandleFunc("GET /api/v1/cards", a(s.aippListCards))
	m.HandleFunc("GET /api/v1/cards/{id}", a(s.aippGetCard))
	m.HandleFunc("DELETE /api/v1/cards/{id}", a(s.aippDeleteCard))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, len(r.URL.Path) >= 5 && r.URL.Path[:5] == "/api/", http.StatusNotFound, "not_found",
			fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	s.mux = m
}

// Stats are the simulator's counters: benchmarks and tests read them to prove that no rate
// limit was exceeded and no event was lost. Request and webhook counters are per process;
// card and money counts come from the (possibly persisted) state.
type Stats struct {
	CardsCreated          int64            `json:"cards_created"`
	CardsByState          map[string]int64 `json:"cards_by_state"`
	Requests              int64            `json:"requests"`
	RateLimited           int64            `json:"rate_limited"`
	ErrorsInjected        int64            `json:"errors_injected"`
	IdempotentReplays     int64            `json:"idempotent_replays"`
	PeakRequestsPerSecond int              `json:"peak_requests_per_second"`
	Authorizations        int64            `json:"authorizations"`
	Approved              int64            `json:"approved"`
	Declined              int64            `json:"declined"`
	DeclinesByReason      map[string]int64 `json:"declines_by_reason"`
	Captures              int64            `json:"captures"`
	ForceCaptures         int64            `json:"force_captures"`
	Refunds               int64            `json:"refunds"`
	Reversals             int64            `json:"reversals"`
	EventsCreated         int64            `json:"events_created"`
	// WebhooksSent counts delivery attempts (retries and duplicates included);
	// WebhooksAcknowledged those answered 2xx; WebhooksPending the events not yet acknowledged.
	WebhooksSent         int64 `json:"webhooks_sent"`
	WebhooksAcknowledged int64 `json:"webhooks_acknowledged"`
	WebhooksFailed       int64 `json:"webhooks_failed"`
	WebhooksPending      int64 `json:"webhooks_pending"`
	// WebhooksDropped counts events the drop_webhooks fault never delivered.
	WebhooksDropped int64 `json:"webhooks_dropped"`
	// DecisionsAsked counts requests to the decision hook; DecisionsFallback those that got
	// no readable answer in time, so the fallback decided.
	DecisionsAsked    int64  `json:"decisions_asked"`
	DecisionsFallback int64  `json:"decisions_fallback"`
	Faults            Faults `json:"faults"`
}

// Stats returns a consistent snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		CardsByState:     map[string]int64{statusActive: 0, statusPaused: 0, statusClosed: 0},
		DeclinesByReason: map[string]int64{},
		Requests:         s.requests.Load(), RateLimited: s.rateLimited.Load(), ErrorsInjected: s.errorsInjected.Load(),
		IdempotentReplays: s.replays.Load(), PeakRequestsPerSecond: s.limiter.peakPerSecond(),
		WebhooksSent: s.webhooksSent.Load(), WebhooksAcknowledged: s.webhooksAcked.Load(), WebhooksFailed: s.webhooksFailed.Load(), WebhooksDropped: s.webhooksDropped.Load(),
		DecisionsAsked: s.decisionsAsked.Load(), DecisionsFallback: s.decisionsFallback.Load(),
		Faults: s.Faults(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.st.cards {
		st.CardsCreated++
		st.CardsByState[c.Status]++
	}
	for _, a := range s.st.auths {
		st.Authorizations++
		if a.Approved {
			st.Approved++
		} else {
			st.Declined++
			st.DeclinesByReason[a.Reason]++
		}
	}
	for _, t := range s.st.txns {
		switch t.Kind {
		case txnCapture:
			st.Captures++
		case txnForceCapture:
			st.ForceCaptures++
		case txnRefund:
			st.Refunds++
		}
	}
	for _, e := range s.st.events {
		st.EventsCreated++
		if e.Type == eventReversal {
			st.Reversals++
		}
	}
	st.WebhooksPending = int64(len(s.st.pending))
	return st
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleGetFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// handleSetFaults merges the given fields into the current faults: {"error_rate":0.1} changes
// only the error rate.
func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := s.Faults()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeError(w, false, http.StatusBadRequest, "invalid_request", "invalid JSON body: "+err.Error())
		return
	}
	if err := s.SetFaults(f); err != nil {
		writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// handleClock shows (GET) or moves (POST {"advance":"25h"} or {"set":"2026-01-01T00:00:00Z"})
// the business clock, so a developer can cross midnight or a card's expiry by hand. The clock
// only moves forward: limit windows and event order assume it.
func (s *Server) handleClock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, err := readBody(r)
		if err != nil {
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		var p struct {
			Advance string    `json:"advance"`
			Set     time.Time `json:"set"`
		}
		if err := decodeStrict(body, &p); err != nil {
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		s.mu.Lock()
		var d time.Duration
		switch {
		case p.Advance != "" && !p.Set.IsZero():
			err = fmt.Errorf("give advance or set, not both")
		case p.Advance != "":
			d, err = time.ParseDuration(p.Advance)
		case !p.Set.IsZero():
			d = p.Set.Sub(s.nowLocked())
		default:
			err = fmt.Errorf("advance or set is required")
		}
		if err == nil && d < 0 {
			err = fmt.Errorf("the clock only moves forward")
		}
		if err != nil {
			s.mu.Unlock()
			writeError(w, false, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		s.clockOffset += d
		s.changedLocked(false)
		s.mu.Unlock()
	}
	s.mu.Lock()
	now, off := s.nowLocked(), s.clockOffset
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"now": now, "offset": off.String()})
}
