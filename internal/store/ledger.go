package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cardwarden/cardwarden"
)

// The event ledger: every issuer event, once.

// Event sources.
const (
	SourceWebhook   = "webhook"
	SourceReconcile = "reconcile"
	// SourceSignal: a card-event signal sent to the workflow by hand (Temporal CLI or Web UI),
	// which the workflow recorded itself.
	SourceSignal = "signal"
)

// LedgerEvent is one issuer event as received. (Issuer, IssuerEventID) is unique: a replayed
// event is never stored or counted twice.
type LedgerEvent struct {
	ID              int64        `db:"id" json:"id"`
	Issuer          string       `db:"issuer" json:"issuer"`
	IssuerEventID   string       `db:"issuer_event_id" json:"issuer_event_id"`
	AgentID         string       `db:"agent_id" json:"agent_id"`
	IssuerCardID    string       `db:"issuer_card_id" json:"issuer_card_id"`
	Kind            string       `db:"kind" json:"kind"`
	Approved        bool         `db:"approved" json:"approved"`
	DeclineReason   string       `db:"decline_reason" json:"decline_reason,omitempty"`
	RawReason       string       `db:"raw_reason" json:"raw_reason,omitempty"`
	AuthorizationID string       `db:"authorization_id" json:"authorization_id,omitempty"`
	AmountMinor     int64        `db:"amount_minor" json:"amount_minor"`
	AuthorizedMinor int64        `db:"authorized_minor" json:"authorized_minor,omitempty"`
	Currency        string       `db:"currency" json:"currency"`
	Merchant        string       `db:"merchant" json:"merchant,omitempty"`
	MCC             string       `db:"mcc" json:"mcc,omitempty"`
	Source          string       `db:"source" json:"source"`
	Orphaned        bool         `db:"orphaned" json:"orphaned"`
	OccurredAt      time.Time    `db:"occurred_at" json:"occurred_at"`
	ReceivedAt      time.Time    `db:"received_at" json:"received_at"`
	SignalledAt     sql.NullTime `db:"signalled_at" json:"-"`
}

// IssuerEvent is the normalized event the row was recorded from.
func (e LedgerEvent) IssuerEvent() cardwarden.Event {
	return cardwarden.Event{
		ID: e.IssuerEventID, Issuer: e.Issuer, Kind: cardwarden.EventKind(e.Kind), CardID: e.IssuerCardID,
		AuthorizationID: e.AuthorizationID, Approved: e.Approved, DeclineReason: cardwarden.DeclineReason(e.DeclineReason),
		RawReason: e.RawReason, AmountMinor: e.AmountMinor, AuthorizedMinor: e.AuthorizedMinor, Currency: e.Currency,
		MerchantName: e.Merchant, MCC: e.MCC, OccurredAt: e.OccurredAt.UTC(),
	}
}

// RecordEvent stores the event unless (issuer, issuer event id) is already in the ledger and,
// only when it is new, applies the spend deltas that deltas computes from the events already
// recorded for the same authorization, in the same transaction. Events of one authorization
// are recorded one at a time (an advisory lock on Postgres; SQLite has a single writer), so a
// capture and its authorization arriving together each see the other or neither.
//
// Concurrent calls share transactions (see eventWriter): the call returns once its event is
// committed.
func (s *Store) RecordEvent(ctx context.Context, e LedgerEvent, deltas func(prior []LedgerEvent) ([]SpendDelta, error)) (bool, error) {
	w := &eventWrite{e: e, deltas: func(_ CardOwner, prior []LedgerEvent) ([]SpendDelta, error) { return deltas(prior) }}
	err := s.record(ctx, w)
	return w.isNew, err
}

// CardOwner is whose a card is: the agent and its policy (JSON); an empty AgentID is no one's.
type CardOwner struct {
	AgentID string `db:"agent_id"`
	Policy  string `db:"policy"`
}

// ErrNotOwner: RecordCardEvent was told whose the event must be, and the card is another
// agent's or no one's.
var ErrNotOwner = errors.New("the event's card is not the agent's")

// RecordedEvent is what RecordCardEvent did: whose the card is, whether the event was new and,
// when it was not, the row the ledger already had.
type RecordedEvent struct {
	Owner    CardOwner
	New      bool
	Existing *LedgerEvent
}

// RecordCardEvent is RecordEvent for an event whose agent is its card's owner, looked up in the
// same transaction (e's AgentID and Orphaned are set from it; no owner: orphaned). When owner
// is not "" and the card is not owner's, nothing is written and the error is ErrNotOwner.
// deltas gets the owner, whose policy says the agent's time zone.
func (s *Store) RecordCardEvent(ctx context.Context, e LedgerEvent, owner string, deltas func(o CardOwner, prior []LedgerEvent) ([]SpendDelta, error)) (RecordedEvent, error) {
	w := &eventWrite{e: e, deltas: deltas, lookup: true, owner: owner}
	err := s.record(ctx, w)
	return RecordedEvent{Owner: w.found, New: w.isNew, Existing: w.existing}, err
}

func (s *Store) record(ctx context.Context, w *eventWrite) error {
	if w.e.ReceivedAt.IsZero() {
		w.e.ReceivedAt = time.Now()
	}
	w.ctx, w.done = ctx, make(chan struct{})
	s.events.write(s, w)
	return w.err
}

// recordEvents records events in one transaction, in order: each as RecordEvent says. Any
// failure rolls all of them back.
func (s *Store) recordEvents(ctx context.Context, ws []*eventWrite) error {
	prepared, err := s.events.statements(ctx, s)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st := prepared.in(ctx, tx)
	if s.dialect == Postgres {
		// Every lock of the batch first, in one statement and one order, so two batches never
		// wait on each other in a cycle.
		var keys []string
		for _, w := range ws {
			if w.e.AuthorizationID != "" && w.marks == nil {
				keys = append(keys, w.e.Issuer+"/"+w.e.AuthorizationID)
			}
		}
		if len(keys) > 0 {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(h) FROM
  (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS locks`, pq.Array(keys)); err != nil {
				return fmt.Errorf("lock %d authorizations: %w", len(keys), err)
			}
		}
	}
	marks := map[string][]string{} // issuer → events to mark signalled: one statement for all
	var markAt time.Time
	for _, w := range ws {
		if w.marks != nil {
			for _, k := range w.marks {
				marks[k.Issuer] = append(marks[k.Issuer], k.ID)
			}
			markAt = latest(markAt, w.markAt)
			continue
		}
		if err := s.recordEventIn(ctx, st, w); err != nil {
			return err
		}
	}
	for _, issuer := range slices.Sorted(maps.Keys(marks)) {
		if err := s.markSignalledIn(ctx, tx, issuer, marks[issuer], markAt); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d events: %w", len(ws), err)
	}
	return nil
}

// recordEventIn is RecordEvent's work inside tx. A card that is not the required owner's is
// w's own answer (ErrNotOwner), not the transaction's failure.
func (s *Store) recordEventIn(ctx context.Context, st writeStmts, w *eventWrite) error {
	e := w.e
	w.found, w.isNew, w.existing, w.err = CardOwner{AgentID: e.AgentID}, false, nil, nil
	if w.lookup {
		err := st.owner.GetContext(ctx, &w.found, e.Issuer, e.IssuerCardID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			w.found = CardOwner{}
		case err != nil:
			return fmt.Errorf("owner of card %s/%s: %w", e.Issuer, e.IssuerCardID, err)
		}
		if w.owner != "" && w.found.AgentID != w.owner {
			w.err = ErrNotOwner
			return nil
		}
		e.AgentID, e.Orphaned = w.found.AgentID, w.found.AgentID == ""
	}
	fail := func(err error) error { return fmt.Errorf("insert event %s/%s: %w", e.Issuer, e.IssuerEventID, err) }
	res, err := st.insert.ExecContext(ctx,
		e.Issuer, e.IssuerEventID, e.AgentID, e.IssuerCardID, e.Kind, e.Approved, e.DeclineReason, e.RawReason,
		e.AuthorizationID, e.AmountMinor, e.AuthorizedMinor, e.Currency, e.Merchant, e.MCC, e.Source, e.Orphaned,
		utc(e.OccurredAt), utc(e.ReceivedAt), e.SignalledAt)
	if err != nil {
		return fail(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	if n == 0 {
		var row LedgerEvent
		if err := st.existing.GetContext(ctx, &row, e.Issuer, e.IssuerEventID); err != nil {
			return fmt.Errorf("read event %s/%s: %w", e.Issuer, e.IssuerEventID, err)
		}
		w.existing = &row
		return nil
	}
	var prior []LedgerEvent
	if e.AuthorizationID != "" {
		err := st.prior.SelectContext(ctx, &prior, e.Issuer, e.AuthorizationID, e.IssuerEventID)
		if err != nil {
			return fail(err)
		}
	}
	ds, err := w.deltas(w.found, prior)
	if err != nil {
		return fail(err)
	}
	for _, d := range ds {
		if _, err := st.spend.ExecContext(ctx, d.AgentID, d.Day, d.SpentMinor, d.OverspendMinor, d.Declines, utc(time.Now())); err != nil {
			return fmt.Errorf("add spend for agent %s on %s: %w", d.AgentID, d.Day, err)
		}
	}
	w.isNew = true
	return nil
}

// The ledger writer's statements (prepared once, see writeStmts).
const (
	// ownerQuery reads a card's owner and the owner's policy.
	ownerQuery = `SELECT c.agent_id, COALESCE(a.policy, '') AS policy
FROM cards c LEFT JOIN agents a ON a.agent_id = c.agent_id WHERE c.issuer = ? AND c.issuer_card_id = ?`
	insertEventQuery = `
INSERT INTO ledger_events (issuer, issuer_event_id, agent_id, issuer_card_id, kind, approved, decline_reason, raw_reason,
  authorization_id, amount_minor, authorized_minor, currency, merchant, mcc, source, orphaned, occurred_at, received_at, signalled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_event_id) DO NOTHING`
	existingEventQuery = `SELECT * FROM ledger_events WHERE issuer = ? AND issuer_event_id = ?`
	// priorEventsQuery reads the other events of an authorization (index ledger_authorization).
	priorEventsQuery = `SELECT * FROM ledger_events WHERE issuer = ? AND authorization_id = ? AND issuer_event_id <> ?
ORDER BY occurred_at, id`
)

// GetEvent returns one ledger event or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, issuer, issuerEventID string) (LedgerEvent, error) {
	return one[LedgerEvent](ctx, s, fmt.Sprintf("event %s/%s", issuer, issuerEventID), `SELECT * FROM ledger_events WHERE issuer = ? AND issuer_event_id = ?`, issuer, issuerEventID)
}

// EventKey names a ledger event.
type EventKey struct{ Issuer, ID string }

// MarkSignalled records that the events reached their workflows. It shares the ledger's
// transactions (see eventWriter): the webhook relay marks each signal's events, and a commit of
// their own would cost as much as recording them. An event the ledger does not have is skipped.
func (s *Store) MarkSignalled(ctx context.Context, at time.Time, events ...EventKey) error {
	if len(events) == 0 {
		return nil
	}
	return s.record(ctx, &eventWrite{marks: events, markAt: at})
}

// markSignalledIn is MarkSignalled's work inside tx, for the marks of every call in it.
func (s *Store) markSignalledIn(ctx context.Context, tx *sqlx.Tx, issuer string, ids []string, at time.Time) error {
	q, args, err := sqlx.In(`UPDATE ledger_events SET signalled_at = COALESCE(signalled_at, ?) WHERE issuer = ? AND issuer_event_id IN (?)`,
		utc(at), issuer, ids)
	if err == nil {
		_, err = tx.ExecContext(ctx, s.rebind(q), args...)
	}
	if err != nil {
		return fmt.Errorf("mark %d events of %s signalled: %w", len(ids), issuer, err)
	}
	return nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// UnsignalledEvents returns owned events received before olderThan that never reached their
// workflow, oldest first, for redelivery.
func (s *Store) UnsignalledEvents(ctx context.Context, olderThan time.Time, limit int) ([]LedgerEvent, error) {
	return list[LedgerEvent](ctx, s, "unsignalled events", `SELECT * FROM ledger_events
WHERE signalled_at IS NULL AND orphaned = ? AND agent_id <> '' AND received_at < ? ORDER BY received_at, id LIMIT ?`, false, utc(olderThan), limit)
}

// CardEvents returns a card's events that occurred at or after since, oldest first.
func (s *Store) CardEvents(ctx context.Context, issuer, issuerCardID string, since time.Time) ([]LedgerEvent, error) {
	return list[LedgerEvent](ctx, s, fmt.Sprintf("events of card %s/%s", issuer, issuerCardID),
		`SELECT * FROM ledger_events WHERE issuer = ? AND issuer_card_id = ? AND occurred_at >= ? ORDER BY occurred_at, id`, issuer, issuerCardID, utc(since))
}

// AgentEvents returns an agent's most recent events since a time, newest first.
func (s *Store) AgentEvents(ctx context.Context, agentID string, since time.Time, limit int) ([]LedgerEvent, error) {
	return list[LedgerEvent](ctx, s, fmt.Sprintf("events of agent %s", agentID),
		`SELECT * FROM ledger_events WHERE agent_id = ? AND occurred_at >= ? ORDER BY occurred_at DESC, id DESC LIMIT ?`, agentID, utc(since), limit)
}
