package issuersim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Events: every money movement and card change is an event, listed oldest first and
// delivered by webhooks (webhooks.go).

// emitLocked records an event and, when a webhook URL is configured, schedules its delivery.
func (s *Server) emitLocked(typ, cardID string, data any) *event {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("issuersim: encode %s event: %v", typ, err)) // our own types always encode
	}
	e := &event{ID: newID("evt_"), Type: typ, CreatedAt: s.nowLocked(), CardID: cardID, Data: raw}
	s.st.addEvent(e)
	if s.webhookURL != "" {
		s.st.pending[e.ID] = true
		s.startDeliveryLocked(e)
	}
	s.changedLocked(false)
	return e
}

// eventJSON is an event as listed and as delivered by webhook (the same bytes).
type eventJSON struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	CardID    string          `json:"card_id"`
	Data      json.RawMessage `json:"data"`
}

func toEventJSON(e *event) eventJSON {
	return eventJSON{ID: e.ID, Type: e.Type, CreatedAt: e.CreatedAt, CardID: e.CardID, Data: e.Data}
}

// listEvents: GET /v1/events?since=&card_id=&type=&limit=, oldest first.
func (s *Server) listEvents(r *http.Request, _ []byte) result {
	q := r.URL.Query()
	return s.eventPage(r, q.Get("card_id"), q.Get("type"), false)
}

// listCardAuthorizations: GET /v1/cards/{id}/authorizations?since= — the money events on
// one card, oldest first, for reconciliation.
func (s *Server) listCardAuthorizations(r *http.Request, _ []byte) result {
	c, res, found := s.cardFromPath(r)
	if !found {
		return res
	}
	return s.eventPage(r, c.ID, "", true)
}

// eventPage answers one page of events (?since=&starting_after=&limit=), oldest first.
func (s *Server) eventPage(r *http.Request, cardID, typ string, moneyOnly bool) result {
	q := r.URL.Query()
	since, err := parseSince(q.Get("since"))
	if err != nil {
		return invalid("%v", err)
	}
	n, err := pageLimit(r)
	if err != nil {
		return invalid("%v", err)
	}
	return ok(s.eventsLocked(since, cardID, typ, q.Get("starting_after"), n, moneyOnly))
}

func (s *Server) eventsLocked(since time.Time, cardID, typ, after string, n int, moneyOnly bool) listJSON {
	out := []eventJSON{}
	started := after == ""
	more := false
	for _, e := range s.st.events {
		if !started {
			started = e.ID == after
			continue
		}
		if e.CreatedAt.Before(since) || (cardID != "" && e.CardID != cardID) || (typ != "" && e.Type != typ) ||
			(moneyOnly && !isMoneyEvent(e.Type)) {
			continue
		}
		if len(out) == n {
			more = true
			break
		}
		out = append(out, toEventJSON(e))
	}
	return listJSON{Object: "list", Data: out, HasMore: more}
}
