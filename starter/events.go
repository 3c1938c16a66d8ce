package starter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// AlertOrphanedEvent is the alert kind recorded for an issuer event on a card no agent owns.
const AlertOrphanedEvent = "orphaned_event"

// EventResult says what ReportEvent (or RecordEvent) did with an event.
type EventResult struct {
	EventID   string `json:"event_id"`
	AgentID   string `json:"agent_id,omitempty"`
	New       bool   `json:"new"`       // first time this event id reached the ledger
	Orphaned  bool   `json:"orphaned"`  // no agent owns the card: recorded and alerted only
	Signalled bool   `json:"signalled"` // delivered to the agent's workflow by this call
	// Undelivered is, after RecordEvent, the recorded event still to be delivered to AgentID's
	// workflow (DeliverEvents): the new event, or one recorded before whose signal never got
	// through. Nil when there is nothing to deliver.
	Undelivered *cardwarden.Event `json:"-"`
}

// ReportEvent records an issuer event in the ledger and delivers it to the workflow of the agent
// that owns the card, in that order, so an event that was acknowledged is never lost: if the
// signal fails the event stays in the ledger, unsignalled, for RedeliverPending.
//
// A replayed event (same issuer and event id) is not recorded or counted again; it is only
// signalled again if the first delivery never got through. An event for a card that no agent
// owns is recorded as orphaned and alerted, and never starts a workflow. When Temporal cannot
// be reached the error matches ErrUnavailable.
func (c *Client) ReportEvent(ctx context.Context, issuerName string, ev cardwarden.Event) (EventResult, error) {
	res, err := c.RecordEvent(ctx, issuerName, ev)
	if err != nil || res.Undelivered == nil {
		return res, err
	}
	if err := c.DeliverEvents(ctx, res.AgentID, []cardwarden.Event{*res.Undelivered}); err != nil {
		return res, err
	}
	res.Signalled, res.Undelivered = true, nil
	return res, nil
}

// RecordEvent is ReportEvent's first half: the event is checked and recorded in the ledger,
// once, and the result's Undelivered is what still has to reach the agent's workflow. The
// webhook endpoint acknowledges an event once it is recorded and leaves its delivery to a
// relay (and, should that fail, to RedeliverPending): the ledger, not the signal, is what
// makes an acknowledged event safe.
func (c *Client) RecordEvent(ctx context.Context, issuerName string, ev cardwarden.Event) (EventResult, error) {
	if c.ledger == nil {
		return EventResult{}, &Error{Kind: ErrNoStore, Op: "report event"}
	}
	if issuerName != "" {
		ev.Issuer = issuerName
	}
	var errs workflows.FieldErrors
	if ev.Issuer == "" {
		errs = append(errs, workflows.FieldError{Field: "event.issuer", Msg: "required"})
	}
	if ev.ID == "" {
		errs = append(errs, workflows.FieldError{Field: "event.id", Msg: "required"})
	}
	if ev.CardID == "" {
		errs = append(errs, workflows.FieldError{Field: "event.card_id", Msg: "required"})
	}
	if len(errs) == 0 {
		if err := ev.Check(); err != nil {
			errs = append(errs, workflows.FieldError{Field: "event", Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return EventResult{}, invalidRequest("report event", "", errs)
	}
	res := EventResult{EventID: ev.ID}
	rec, err := c.ledger.Record(ctx, ev, store.SourceWebhook)
	if err != nil {
		return res, fmt.Errorf("report event %s/%s: %w", ev.Issuer, ev.ID, err)
	}
	res.New, res.AgentID, res.Orphaned = rec.New, rec.AgentID, rec.Orphaned
	if rec.Orphaned {
		if rec.New {
			c.alertOrphan(ctx, ev)
		}
		return res, nil
	}
	if !rec.New {
		stored := rec.Existing
		if stored == nil {
			return res, fmt.Errorf("report event %s/%s: recorded before, but the ledger did not return its row", ev.Issuer, ev.ID)
		}
		if stored.SignalledAt.Valid {
			return res, nil
		}
		// Recorded before, but the signal never got through (Temporal was down): deliver now.
		// The workflow ignores an event id it has seen, so this can never count twice.
		ev = stored.IssuerEvent()
		res.AgentID = stored.AgentID
	}
	res.Undelivered = &ev
	return res, nil
}

// MaxEventsPerSignal is the most events DeliverEvents puts in one signal: a few hundred bytes
// each, so a signal stays far below Temporal's payload limit.
const MaxEventsPerSignal = 100

// DeliverEvents signals recorded events, in order, to one agent's workflow (one event as an
// object, several as an array, up to MaxEventsPerSignal a signal) and marks them signalled.
// When Temporal cannot be reached the error matches ErrUnavailable and the events not yet
// delivered stay unsignalled in the ledger.
func (c *Client) DeliverEvents(ctx context.Context, agentID string, evs []cardwarden.Event) error {
	if c.store == nil {
		return &Error{Kind: ErrNoStore, Op: "deliver events"}
	}
	for chunk := range slices.Chunk(evs, MaxEventsPerSignal) {
		if err := c.deliver(ctx, agentID, chunk); err != nil {
			return err
		}
	}
	return nil
}

// deliver is DeliverEvents for one signal's worth of events.
func (c *Client) deliver(ctx context.Context, agentID string, evs []cardwarden.Event) error {
	out := make([]cardwarden.Event, len(evs))
	for i, ev := range evs {
		ev.Recorded = true
		out[i] = ev
	}
	var payload any = out
	if len(out) == 1 {
		payload = out[0] // what every worker version reads
	}
	sctx, cancel := context.WithTimeout(ctx, c.sigTO)
	defer cancel()
	err := c.tc.SignalWorkflow(sctx, workflows.WorkflowID(agentID), "", workflows.SignalCardEvent, payload)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		// The agent's workflow has ended (retired): the events belong in the ledger, but there
		// is nothing left to deliver them to. Marking them stops redelivery from trying forever.
		// Money that moves on a retired agent's card is somebody's to look at: it alerts.
		for _, ev := range out {
			c.log.Warn("card event for an agent whose workflow is not running; recorded in the ledger only",
				"agent_id", agentID, "issuer", ev.Issuer, "event_id", ev.ID)
			if spend.Relevant(ev) {
				c.alertRetired(ctx, agentID, ev)
			}
		}
	case err != nil:
		cerr := c.classify(ctx, "signal", agentID, err)
		if errors.Is(cerr, ErrTimeout) {
			cerr = &Error{Kind: ErrUnavailable, Op: "signal", AgentID: agentID, Msg: "Temporal did not answer in time", Err: err}
		}
		return cerr
	}
	keys := make([]store.EventKey, len(out))
	for i, ev := range out {
		keys[i] = store.EventKey{Issuer: ev.Issuer, ID: ev.ID}
	}
	if err := c.store.MarkSignalled(ctx, c.now(), keys...); err != nil {
		// The signal got through; a later redelivery of it is a harmless duplicate.
		return fmt.Errorf("%d events signalled to agent %s but not marked: %w", len(out), agentID, err)
	}
	return nil
}

// AlertRetiredCardEvent is the alert kind recorded for money that moves on a card of an agent
// whose workflow has ended.
const AlertRetiredCardEvent = "retired-card-event"

// alertRetired records the "retired-card-event" alert once per event.
func (c *Client) alertRetired(ctx context.Context, agentID string, ev cardwarden.Event) {
	msg := fmt.Sprintf("agent %s is retired, but issuer %s sent %s event %s of %s %s on its card %s; recorded in the ledger",
		agentID, ev.Issuer, ev.Kind, ev.ID, money.Format(ev.AmountMinor), ev.Currency, ev.CardID)
	c.recordAlert(ctx, store.Alert{AgentID: agentID, Kind: AlertRetiredCardEvent, Period: ev.Issuer + "/" + ev.ID, Message: msg})
}

// alertOrphan records the "orphaned_event" alert once per event. Nothing in the event is
// secret (issuer events carry the card's id, never its number).
func (c *Client) alertOrphan(ctx context.Context, ev cardwarden.Event) {
	msg := fmt.Sprintf("issuer %s sent %s event %s (%s %s) for card %s, which no agent owns; recorded in the ledger as orphaned",
		ev.Issuer, ev.Kind, ev.ID, money.Format(ev.AmountMinor), ev.Currency, ev.CardID)
	c.log.Warn("orphaned issuer event", "issuer", ev.Issuer, "event_id", ev.ID, "card_id", ev.CardID, "kind", ev.Kind)
	c.recordAlert(ctx, store.Alert{Kind: AlertOrphanedEvent, Period: ev.Issuer + "/" + ev.ID, Message: msg})
}

// recordAlert records a fleet-level alert once: no webhook is configured for those, so
// recording it is its delivery (the dashboard and the alerts API show it).
func (c *Client) recordAlert(ctx context.Context, al store.Alert) {
	a, err := c.store.ClaimAlert(ctx, al)
	if err != nil {
		c.log.Error("record alert", "kind", al.Kind, "period", al.Period, "error", err)
		return
	}
	if a.Status == store.AlertPending {
		if err := c.store.MarkAlertAttempt(ctx, a.AgentID, a.Kind, a.Period, true); err != nil {
			c.log.Error("mark alert", "kind", al.Kind, "period", al.Period, "error", err)
		}
	}
}

// RedeliverPending signals ledger events that were recorded at least grace ago but never reached
// their workflow (Temporal was down when they arrived, or the process that recorded them
// stopped before its relay delivered them), oldest first, at most limit of them, an agent's in
// one signal. It stops at the first failure that means Temporal is still unreachable and
// returns how many it delivered.
func (c *Client) RedeliverPending(ctx context.Context, grace time.Duration, limit int) (int, error) {
	if c.store == nil {
		return 0, &Error{Kind: ErrNoStore, Op: "redeliver"}
	}
	pending, err := c.store.UnsignalledEvents(ctx, c.now().Add(-grace), limit)
	if err != nil {
		return 0, err
	}
	byAgent := map[string][]cardwarden.Event{}
	var agents []string
	for _, le := range pending {
		if _, ok := byAgent[le.AgentID]; !ok {
			agents = append(agents, le.AgentID)
		}
		byAgent[le.AgentID] = append(byAgent[le.AgentID], le.IssuerEvent())
	}
	n := 0
	for _, agentID := range agents {
		evs := byAgent[agentID]
		if err := c.DeliverEvents(ctx, agentID, evs); err != nil {
			if errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
				return n, err
			}
			c.log.Error("redeliver card events", "agent_id", agentID, "events", len(evs), "error", err)
			continue
		}
		n += len(evs)
	}
	return n, nil
}
