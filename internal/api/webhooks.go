package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/metrics"
	"github.com/cardwarden/cardwarden/workflows"
)

// MaxWebhookBody is the largest webhook body accepted (413 above it). Issuer events are a few
// kilobytes; the cap stops a slow or huge body from tying up memory.
const MaxWebhookBody = 1 << 20

// webhookTimeout bounds recording one delivery, so the issuer hears 5xx and retries rather
// than timing out on its side.
const webhookTimeout = 20 * time.Second

type webhookResponse struct {
	Received   int `json:"received"`
	New        int `json:"new"`
	Duplicates int `json:"duplicates"`
	Orphaned   int `json:"orphaned"`
}

// webhook: POST /v1/webhooks/{issuer}. The delivery is verified by that issuer's adapter
// (signature in constant time, timestamp within 5 minutes), each event is recorded in the
// ledger, once, and then it is acknowledged: an acknowledged event is never lost. Delivering
// it to its agent's workflow is the relay's job after the answer (an agent's events that
// arrive together go in one signal), and the redelivery sweep's for any the relay could not
// deliver (Temporal down, the process stopped). A replay is acknowledged and not counted
// again.
func (s *server) webhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("issuer")
	if s.Issuers == nil {
		writeError(w, http.StatusNotFound, "unknown_issuer", "no issuers are configured on this server", "")
		return
	}
	// The name is the caller's: it is checked against the configured adapters before it names
	// anything, and an unknown one is counted under one fixed label, so no caller can add a
	// metric series (or a log line, or a row) of its choosing.
	var ad issuer.Issuer
	if workflows.ValidIssuerName(name) {
		ad, _ = s.Issuers.Get(name)
	}
	if ad == nil {
		s.rejected(metrics.UnknownIssuerLabel, metrics.WebhookUnknownIssuer)
		writeError(w, http.StatusNotFound, "unknown_issuer",
			"no such issuer on this server (configured: "+strings.Join(s.Issuers.Names(), ", ")+")", "")
		return
	}
	name = ad.Name()
	body, ok := readBodyOr(w, r, MaxWebhookBody, func() { s.rejected(name, metrics.WebhookTooLarge) })
	if !ok {
		return
	}
	events, err := ad.VerifyWebhook(r.Header, body, s.Now())
	if err != nil {
		var ie *issuer.Error
		if errors.As(err, &ie) && ie.Kind == issuer.KindUnauthorized {
			s.log(r).Warn("webhook rejected", "issuer", name, "reason", ie.Message, "remote", remoteIP(r))
			writeError(w, http.StatusUnauthorized, "invalid_signature", "webhook signature is invalid or stale", "")
			return
		}
		s.log(r).Warn("webhook not understood", "issuer", name, "error", err)
		writeError(w, http.StatusBadRequest, "invalid_event", err.Error(), "")
		return
	}
	// A signed event that cannot be attributed is the sender's error: refused before anything
	// is recorded (4xx, so the issuer stops redelivering a poison event; a 5xx never would).
	for _, ev := range events {
		if err := ev.Check(); err != nil {
			s.log(r).Warn("webhook event refused", "issuer", name, "error", err)
			s.rejected(name, metrics.WebhookInvalid)
			writeError(w, http.StatusUnprocessableEntity, "invalid_event", err.Error(), "")
			return
		}
	}
	if s.ctl == nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "temporal_unavailable", "no Temporal client configured", "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhookTimeout)
	defer cancel()
	resp := webhookResponse{Received: len(events)}
	for _, ev := range events {
		res, err := s.ctl.RecordEvent(ctx, name, ev)
		if err != nil {
			s.log(r).Error("webhook event not recorded", "issuer", name, "event_id", ev.ID, "error", err)
			writeError(w, http.StatusInternalServerError, "internal", "could not record the event", "")
			return
		}
		queued := res.Undelivered != nil && s.relay.add(res.AgentID, *res.Undelivered)
		switch {
		case res.Orphaned:
			resp.Orphaned++
		case res.New:
			resp.New++
			if s.Observer != nil {
				s.Observer.ObserveEvent(ev)
			}
		default:
			resp.Duplicates++
		}
		s.log(r).Info("webhook event", "issuer", name, "event_id", ev.ID, "kind", ev.Kind, "card_id", ev.CardID,
			"agent_id", res.AgentID, "new", res.New, "orphaned", res.Orphaned, "relayed", queued)
	}
	writeJSON(w, http.StatusOK, resp)
}

// rejected counts a webhook refused before its adapter saw it; signature failures are counted
// by the instrumented adapter itself.
func (s *server) rejected(issuerName, reason string) {
	if s.Observer != nil {
		s.Observer.WebhookRejected(issuerName, reason)
	}
}
