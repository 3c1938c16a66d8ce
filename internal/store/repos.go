package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cardwarden/cardwarden"
)

// Agent is an agent cardwarden manages. Policy is the agent's policy as JSON.
type Agent struct {
	AgentID   string    `db:"agent_id" json:"agent_id"`
	Label     string    `db:"label" json:"label"`
	Issuer    string    `db:"issuer" json:"issuer"`
	Status    string    `db:"status" json:"status"`
	Policy    string    `db:"policy" json:"policy"`
	TokenHash string    `db:"token_hash" json:"-"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// UpsertAgent creates the agent or updates its label, issuer, status and policy. The token
// hash is kept unless a new one is given.
func (s *Store) UpsertAgent(ctx context.Context, a Agent) error {
	now := utc(time.Now())
	_, err := s.exec(ctx, `
INSERT INTO agents (agent_id, label, issuer, status, policy, token_hash, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET
  label = excluded.label, issuer = excluded.issuer, status = excluded.status, policy = excluded.policy,
  token_hash = CASE WHEN excluded.token_hash = '' THEN agents.token_hash ELSE excluded.token_hash END,
  updated_at = excluded.updated_at`,
		a.AgentID, a.Label, a.Issuer, a.Status, a.Policy, a.TokenHash, now, now)
	if err != nil {
		return fmt.Errorf("upsert agent %s: %w", a.AgentID, err)
	}
	return nil
}

// GetAgent returns one agent or ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, agentID string) (Agent, error) {
	var a Agent
	if err := s.get(ctx, &a, `SELECT * FROM agents WHERE agent_id = ?`, agentID); err != nil {
		return Agent{}, fmt.Errorf("get agent %s: %w", agentID, err)
	}
	return a, nil
}

// ListAgents returns every agent, ordered by id.
func (s *Store) ListAgents(ctx context.Context) ([]Agent, error) {
	var as []Agent
	if err := s.sel(ctx, &as, `SELECT * FROM agents ORDER BY agent_id`); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

// SetAgentStatus records the agent's lifecycle status (active, frozen, revoked, retired).
func (s *Store) SetAgentStatus(ctx context.Context, agentID, status string) error {
	return s.updateOne(ctx, "set agent status", `UPDATE agents SET status = ?, updated_at = ? WHERE agent_id = ?`,
		status, utc(time.Now()), agentID)
}

// SetAgentTokenHash replaces the hash of the agent's credential-pull token.
func (s *Store) SetAgentTokenHash(ctx context.Context, agentID, tokenHash string) error {
	return s.updateOne(ctx, "set agent token", `UPDATE agents SET token_hash = ?, updated_at = ? WHERE agent_id = ?`,
		tokenHash, utc(time.Now()), agentID)
}

func (s *Store) updateOne(ctx context.Context, what, q string, args ...any) error {
	res, err := s.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Card is a card's public record: never its number or CVV.
type Card struct {
	ID              int64        `db:"id" json:"-"`
	AgentID         string       `db:"agent_id" json:"agent_id"`
	Generation      int          `db:"generation" json:"generation"`
	Issuer          string       `db:"issuer" json:"issuer"`
	IssuerCardID    string       `db:"issuer_card_id" json:"issuer_card_id"`
	Last4           string       `db:"last4" json:"last4"`
	ExpMonth        int          `db:"exp_month" json:"exp_month"`
	ExpYear         int          `db:"exp_year" json:"exp_year"`
	Status          string       `db:"status" json:"status"`
	DailyLimitMinor int64        `db:"daily_limit_minor" json:"daily_limit_minor"`
	CreatedAt       time.Time    `db:"created_at" json:"created_at"`
	ClosedAt        sql.NullTime `db:"closed_at" json:"-"`
}

// RecordCard stores a newly issued card. Recording the same issuer card again is a no-op, so
// a retried activity cannot create a second row; a different card for a generation the agent
// already has is an error, because that would mean two cards were issued for one step.
func (s *Store) RecordCard(ctx context.Context, c Card) error {
	created := c.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	res, err := s.exec(ctx, `
INSERT INTO cards (agent_id, generation, issuer, issuer_card_id, last4, exp_month, exp_year, status, daily_limit_minor, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_card_id) DO NOTHING`,
		c.AgentID, c.Generation, c.Issuer, c.IssuerCardID, c.Last4, c.ExpMonth, c.ExpYear, c.Status, c.DailyLimitMinor, utc(created))
	if err != nil {
		return fmt.Errorf("record card %s generation %d of agent %s: %w", c.IssuerCardID, c.Generation, c.AgentID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		existing, err := s.CardByIssuerID(ctx, c.Issuer, c.IssuerCardID)
		if err != nil {
			return err
		}
		if existing.AgentID != c.AgentID || existing.Generation != c.Generation {
			return fmt.Errorf("record card %s: already recorded for agent %s generation %d", c.IssuerCardID, existing.AgentID, existing.Generation)
		}
	}
	return nil
}

// SetCardStatus records a card's new status; closing also stamps closed_at once.
func (s *Store) SetCardStatus(ctx context.Context, issuer, issuerCardID, status string, at time.Time) error {
	q := `UPDATE cards SET status = ? WHERE issuer = ? AND issuer_card_id = ?`
	args := []any{status, issuer, issuerCardID}
	if status == "closed" {
		q = `UPDATE cards SET status = ?, closed_at = COALESCE(closed_at, ?) WHERE issuer = ? AND issuer_card_id = ?`
		args = []any{status, utc(at), issuer, issuerCardID}
	}
	return s.updateOne(ctx, "set card status", q, args...)
}

// SetCardDailyLimit records the limit the card was last set to.
func (s *Store) SetCardDailyLimit(ctx context.Context, issuer, issuerCardID string, limitMinor int64) error {
	return s.updateOne(ctx, "set card limit", `UPDATE cards SET daily_limit_minor = ? WHERE issuer = ? AND issuer_card_id = ?`,
		limitMinor, issuer, issuerCardID)
}

// CardByIssuerID finds the card an issuer event refers to, and so its agent.
func (s *Store) CardByIssuerID(ctx context.Context, issuer, issuerCardID string) (Card, error) {
	var c Card
	if err := s.get(ctx, &c, `SELECT * FROM cards WHERE issuer = ? AND issuer_card_id = ?`, issuer, issuerCardID); err != nil {
		return Card{}, fmt.Errorf("card %s/%s: %w", issuer, issuerCardID, err)
	}
	return c, nil
}

// CurrentCard is the agent's newest card that is not closed.
func (s *Store) CurrentCard(ctx context.Context, agentID string) (Card, error) {
	var c Card
	err := s.get(ctx, &c, `SELECT * FROM cards WHERE agent_id = ? AND status <> 'closed' ORDER BY generation DESC LIMIT 1`, agentID)
	if err != nil {
		return Card{}, fmt.Errorf("current card of agent %s: %w", agentID, err)
	}
	return c, nil
}

// ListCards returns every card the agent ever had, oldest generation first.
func (s *Store) ListCards(ctx context.Context, agentID string) ([]Card, error) {
	var cs []Card
	if err := s.sel(ctx, &cs, `SELECT * FROM cards WHERE agent_id = ? ORDER BY generation`, agentID); err != nil {
		return nil, fmt.Errorf("list cards of agent %s: %w", agentID, err)
	}
	return cs, nil
}

// VaultEntry is a card's encrypted credentials. The store never sees plaintext.
type VaultEntry struct {
	Issuer       string    `db:"issuer"`
	IssuerCardID string    `db:"issuer_card_id"`
	KeyID        string    `db:"key_id"`
	Nonce        []byte    `db:"nonce"`
	Ciphertext   []byte    `db:"ciphertext"`
	CreatedAt    time.Time `db:"created_at"`
}

// PutVaultEntry stores a card's sealed credentials; storing them again replaces them, so a
// retried issuing activity converges on one entry.
func (s *Store) PutVaultEntry(ctx context.Context, v VaultEntry) error {
	_, err := s.exec(ctx, `
INSERT INTO card_vault (issuer, issuer_card_id, key_id, nonce, ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (issuer, issuer_card_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext`,
		v.Issuer, v.IssuerCardID, v.KeyID, v.Nonce, v.Ciphertext, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("vault card %s/%s: %w", v.Issuer, v.IssuerCardID, err)
	}
	return nil
}

// GetVaultEntry returns a card's sealed credentials or ErrNotFound.
func (s *Store) GetVaultEntry(ctx context.Context, issuer, issuerCardID string) (VaultEntry, error) {
	var v VaultEntry
	if err := s.get(ctx, &v, `SELECT * FROM card_vault WHERE issuer = ? AND issuer_card_id = ?`, issuer, issuerCardID); err != nil {
		return VaultEntry{}, fmt.Errorf("vault entry %s/%s: %w", issuer, issuerCardID, err)
	}
	return v, nil
}

// Event sources.
const (
	SourceWebhook   = "webhook"
	SourceReconcile = "reconcile"
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

// SpendDelta is a change to an agent's daily spend that belongs to one ledger event.
type SpendDelta struct {
	AgentID        string
	Day            string // YYYY-MM-DD in the agent's time zone
	SpentMinor     int64
	OverspendMinor int64
	Declines       int
}

// InsertEvent stores the event unless (issuer, issuer event id) is already in the ledger, and
// applies spend in the same transaction only when the event is new. It reports whether the
// event was new.
func (s *Store) InsertEvent(ctx context.Context, e LedgerEvent, spend *SpendDelta) (bool, error) {
	return s.RecordEvent(ctx, e, func([]LedgerEvent) ([]SpendDelta, error) {
		if spend == nil {
			return nil, nil
		}
		return []SpendDelta{*spend}, nil
	})
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
		err := tx.SelectContext(ctx, &prior, s.rebind(`SELECT * FROM ledger_events WHERE issuer = ? AND authorization_id = ? AND issuer_event_id <> ?
ORDER BY occurred_at, id`), e.Issuer, e.AuthorizationID, e.IssuerEventID)
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

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) addSpend(ctx context.Context, ex execer, d SpendDelta) error {
	_, err := ex.ExecContext(ctx, s.rebind(`
INSERT INTO daily_spend (agent_id, day, spent_minor, overspend_minor, declines, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (agent_id, day) DO UPDATE SET
  spent_minor = daily_spend.spent_minor + excluded.spent_minor,
  overspend_minor = daily_spend.overspend_minor + excluded.overspend_minor,
  declines = daily_spend.declines + excluded.declines,
  updated_at = excluded.updated_at`),
		d.AgentID, d.Day, d.SpentMinor, d.OverspendMinor, d.Declines, utc(time.Now()))
	if err != nil {
		return fmt.Errorf("add spend for agent %s on %s: %w", d.AgentID, d.Day, err)
	}
	return nil
}

// GetEvent returns one ledger event or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, issuer, issuerEventID string) (LedgerEvent, error) {
	var e LedgerEvent
	if err := s.get(ctx, &e, `SELECT * FROM ledger_events WHERE issuer = ? AND issuer_event_id = ?`, issuer, issuerEventID); err != nil {
		return LedgerEvent{}, fmt.Errorf("event %s/%s: %w", issuer, issuerEventID, err)
	}
	return e, nil
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
	var es []LedgerEvent
	err := s.sel(ctx, &es, `SELECT * FROM ledger_events WHERE signalled_at IS NULL AND orphaned = ? AND agent_id <> '' AND received_at < ?
ORDER BY received_at, id LIMIT ?`, false, utc(olderThan), limit)
	if err != nil {
		return nil, fmt.Errorf("unsignalled events: %w", err)
	}
	return es, nil
}

// CardEvents returns a card's events that occurred at or after since, oldest first.
func (s *Store) CardEvents(ctx context.Context, issuer, issuerCardID string, since time.Time) ([]LedgerEvent, error) {
	var es []LedgerEvent
	err := s.sel(ctx, &es, `SELECT * FROM ledger_events WHERE issuer = ? AND issuer_card_id = ? AND occurred_at >= ? ORDER BY occurred_at, id`,
		issuer, issuerCardID, utc(since))
	if err != nil {
		return nil, fmt.Errorf("events of card %s/%s: %w", issuer, issuerCardID, err)
	}
	return es, nil
}

// AgentEvents returns an agent's most recent events since a time, newest first.
func (s *Store) AgentEvents(ctx context.Context, agentID string, since time.Time, limit int) ([]LedgerEvent, error) {
	var es []LedgerEvent
	err := s.sel(ctx, &es, `SELECT * FROM ledger_events WHERE agent_id = ? AND occurred_at >= ? ORDER BY occurred_at DESC, id DESC LIMIT ?`,
		agentID, utc(since), limit)
	if err != nil {
		return nil, fmt.Errorf("events of agent %s: %w", agentID, err)
	}
	return es, nil
}

// CountEvents counts ledger rows, for tests and benchmarks.
func (s *Store) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM ledger_events`); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// DailySpend is an agent's spend on one day of its own time zone.
type DailySpend struct {
	AgentID        string    `db:"agent_id" json:"agent_id"`
	Day            string    `db:"day" json:"day"`
	SpentMinor     int64     `db:"spent_minor" json:"spent_minor"`
	OverspendMinor int64     `db:"overspend_minor" json:"overspend_minor"`
	Declines       int       `db:"declines" json:"declines"`
	UpdatedAt      time.Time `db:"updated_at" json:"updated_at"`
}

// AddSpend adds to an agent's spend for a day outside of any event (for corrections).
func (s *Store) AddSpend(ctx context.Context, d SpendDelta) error { return s.addSpend(ctx, s.db, d) }

// SpendSeries returns the agent's daily spend rows with fromDay <= day <= toDay, by day.
func (s *Store) SpendSeries(ctx context.Context, agentID, fromDay, toDay string) ([]DailySpend, error) {
	var ds []DailySpend
	err := s.sel(ctx, &ds, `SELECT * FROM daily_spend WHERE agent_id = ? AND day >= ? AND day <= ? ORDER BY day`, agentID, fromDay, toDay)
	if err != nil {
		return nil, fmt.Errorf("spend series of agent %s: %w", agentID, err)
	}
	return ds, nil
}

// Alert statuses.
const (
	AlertPending = "pending"
	AlertSent    = "sent"
)

// Alert is one alert for an agent, kind and period (e.g. threshold-80 on 2026-11-28).
type Alert struct {
	AgentID   string       `db:"agent_id" json:"agent_id"`
	Kind      string       `db:"kind" json:"kind"`
	Period    string       `db:"period" json:"period"`
	Message   string       `db:"message" json:"message"`
	Status    string       `db:"status" json:"status"`
	Attempts  int          `db:"attempts" json:"attempts"`
	CreatedAt time.Time    `db:"created_at" json:"created_at"`
	SentAt    sql.NullTime `db:"sent_at" json:"-"`
}

// ClaimAlert records the alert as pending unless it exists and returns the stored row, so a
// caller sends only what is not yet sent and an alert fires once per agent, kind and period.
func (s *Store) ClaimAlert(ctx context.Context, a Alert) (Alert, error) {
	_, err := s.exec(ctx, `
INSERT INTO alerts_sent (agent_id, kind, period, message, status, attempts, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)
ON CONFLICT (agent_id, kind, period) DO NOTHING`, a.AgentID, a.Kind, a.Period, a.Message, AlertPending, utc(time.Now()))
	if err != nil {
		return Alert{}, fmt.Errorf("claim alert %s/%s/%s: %w", a.AgentID, a.Kind, a.Period, err)
	}
	var got Alert
	if err := s.get(ctx, &got, `SELECT * FROM alerts_sent WHERE agent_id = ? AND kind = ? AND period = ?`, a.AgentID, a.Kind, a.Period); err != nil {
		return Alert{}, fmt.Errorf("claim alert %s/%s/%s: %w", a.AgentID, a.Kind, a.Period, err)
	}
	return got, nil
}

// MarkAlertAttempt records a delivery attempt; sent marks it delivered.
func (s *Store) MarkAlertAttempt(ctx context.Context, agentID, kind, period string, sent bool) error {
	q := `UPDATE alerts_sent SET attempts = attempts + 1 WHERE agent_id = ? AND kind = ? AND period = ?`
	args := []any{agentID, kind, period}
	if sent {
		q = `UPDATE alerts_sent SET attempts = attempts + 1, status = ?, sent_at = ? WHERE agent_id = ? AND kind = ? AND period = ?`
		args = []any{AlertSent, utc(time.Now()), agentID, kind, period}
	}
	return s.updateOne(ctx, "mark alert attempt", q, args...)
}

// ListAlerts returns the agent's alerts (all agents when agentID is empty), newest first.
func (s *Store) ListAlerts(ctx context.Context, agentID string, limit int) ([]Alert, error) {
	var as []Alert
	var err error
	if agentID == "" {
		err = s.sel(ctx, &as, `SELECT * FROM alerts_sent ORDER BY created_at DESC LIMIT ?`, limit)
	} else {
		err = s.sel(ctx, &as, `SELECT * FROM alerts_sent WHERE agent_id = ? ORDER BY created_at DESC LIMIT ?`, agentID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return as, nil
}

// AuditEntry is one human action or credential reveal.
type AuditEntry struct {
	ID      int64     `db:"id" json:"id"`
	At      time.Time `db:"at" json:"at"`
	Actor   string    `db:"actor" json:"actor"`
	Action  string    `db:"action" json:"action"`
	AgentID string    `db:"agent_id" json:"agent_id"`
	Detail  string    `db:"detail" json:"detail"`
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := s.exec(ctx, `INSERT INTO audit_log (at, actor, action, agent_id, detail) VALUES (?, ?, ?, ?, ?)`,
		utc(at), e.Actor, e.Action, e.AgentID, e.Detail); err != nil {
		return fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// ListAudit returns the agent's audit entries (all when agentID is empty), newest first.
func (s *Store) ListAudit(ctx context.Context, agentID string, limit int) ([]AuditEntry, error) {
	var es []AuditEntry
	var err error
	if agentID == "" {
		err = s.sel(ctx, &es, `SELECT * FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	} else {
		err = s.sel(ctx, &es, `SELECT * FROM audit_log WHERE agent_id = ? ORDER BY id DESC LIMIT ?`, agentID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return es, nil
}

// IsNotFound reports whether err means a missing row.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
