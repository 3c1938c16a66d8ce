package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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
func (s *Store) RecordEvent(ctx context.Context, e LedgerEvent, deltas func(prior []LedgerEvent) ([]SpendDelta, error)) (bool, error) {
	received := e.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("insert event %s/%s: %w", e.Issuer, e.IssuerEventID, err)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if s.dialect == Postgres && e.AuthorizationID != "" {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, e.Issuer+"/"+e.AuthorizationID); err != nil {
			return fail(err)
		}
	}
	res, err := tx.ExecContext(ctx, s.rebind(`
INSERT INTO ledger_events (issuer, issuer_event_id, agent_id, issuer_card_id, kind, approved, decline_reason, raw_reason,
  authorization_id, amount_minor, authorized_minor, currency, merchant, mcc, source, orphaned, occurred_at, received_at, signalled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_event_id) DO NOTHING`),
		e.Issuer, e.IssuerEventID, e.AgentID, e.IssuerCardID, e.Kind, e.Approved, e.DeclineReason, e.RawReason,
		e.AuthorizationID, e.AmountMinor, e.AuthorizedMinor, e.Currency, e.Merchant, e.MCC, e.Source, e.Orphaned,
		utc(e.OccurredAt), utc(received), e.SignalledAt)
	if err != nil {
		return fail(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	if n == 0 {
		return false, nil
	}
	var prior []LedgerEvent
	if e.AuthorizationID != "" {
		err := tx.SelectContext(ctx, &prior, s.rebind(priorEventsQuery), e.Issuer, e.AuthorizationID, e.IssuerEventID)
		if err != nil {
			return fail(err)
		}
	}
	ds, err := deltas(prior)
	if err != nil {
		return fail(err)
	}
	for _, d := range ds {
		if err := s.addSpend(ctx, tx, d); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return true, nil
}

// priorEventsQuery reads the other events of an authorization (index ledger_authorization).
const priorEventsQuery = `SELECT * FROM ledger_events WHERE issuer = ? AND authorization_id = ? AND issuer_event_id <> ?
ORDER BY occurred_at, id`

// GetEvent returns one ledger event or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, issuer, issuerEventID string) (LedgerEvent, error) {
	return one[LedgerEvent](ctx, s, fmt.Sprintf("event %s/%s", issuer, issuerEventID), `SELECT * FROM ledger_events WHERE issuer = ? AND issuer_event_id = ?`, issuer, issuerEventID)
}

// MarkSignalled records that the event reached its agent's workflow.
func (s *Store) MarkSignalled(ctx context.Context, issuer, issuerEventID string, at time.Time) error {
	return s.updateOne(ctx, "mark event signalled",
		`UPDATE ledger_events SET signalled_at = COALESCE(signalled_at, ?) WHERE issuer = ? AND issuer_event_id = ?`,
		utc(at), issuer, issuerEventID)
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
