package api

import (
	"context"
	"net/http"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/workflows"
)

// reportEvent: POST /v1/events with one normalized issuer event (cardwarden.Event, the same
// JSON the card-event signal carries; "issuer" is required). It reports an event by hand (an
// event whose webhook was lost at an issuer that cannot be listed): like a webhook, it is
// recorded in the ledger first and then signalled to the agent's workflow, so the ledger, the
// dashboard and the workflow agree. (A card-event signal sent by hand from the Temporal CLI or
// UI reaches the ledger too, through the workflow's RecordEvent activity; this path also answers
// what the ledger did and leaves an audit row.) The answer is {"event_id","agent_id","new",
// "orphaned","signalled"}. Every report is in the audit log.
func (s *server) reportEvent(w http.ResponseWriter, r *http.Request) {
	var ev cardwarden.Event
	if !readStrict(w, r, &ev, "invalid_event", "not an event", "event") {
		return
	}
	if !workflows.ValidIssuerName(ev.Issuer) || s.Issuers == nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_event", "event.issuer is required", "event.issuer")
		return
	}
	if _, err := s.Issuers.Get(ev.Issuer); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_event", "event.issuer is not configured on this server", "event.issuer")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhookTimeout)
	defer cancel()
	res, err := s.ctl.ReportEvent(ctx, ev.Issuer, ev)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if res.New && s.Observer != nil {
		s.Observer.ObserveEvent(ev)
	}
	if s.Store != nil && res.New {
		s.audit(ctx, res.AgentID, adminActor, "event.report", "issuer event "+ev.Issuer+"/"+ev.ID+" reported by hand through the API")
	}
	s.log(r).Info("event reported by hand", "issuer", ev.Issuer, "event_id", ev.ID, "agent_id", res.AgentID, "new", res.New)
	writeJSON(w, http.StatusOK, res)
}
