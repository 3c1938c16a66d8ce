// Package ledger records issuer events: each once (the ledger is unique by issuer and event
// id, so a webhook delivered twice is stored and counted once), with what it changes in its
// agent's daily spend under package spend's rules, the days counted in the agent's own time
// zone. The webhook path (starter.ReportEvent) and reconciliation (activities.Reconcile) both
// record through it, so an event counts the same whichever way it arrives; the dashboard
// counts an agent's days with the same Location.
package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows/tzdb"
)

// Ledger records events in the application database.
type Ledger struct {
	Store *store.Store
}

// Result says whether an event was new to the ledger and whose it is.
type Result struct {
	New      bool
	AgentID  string
	Orphaned bool // no agent owns the card: stored, counted nowhere
	// Existing is, when the event was not new, the row the ledger already had (read in the
	// same transaction).
	Existing *store.LedgerEvent
}

// Record writes an issuer event to the ledger and adds its spend to the agent's days, once.
// source is store.SourceWebhook, store.SourceReconcile or store.SourceSignal; an event
// reconciliation found, or one the workflow received by hand, is marked signalled at once,
// because the workflow that records it has applied it itself. An event for a card no agent
// owns is stored as orphaned.
func (l *Ledger) Record(ctx context.Context, ev cardwarden.Event, source string) (Result, error) {
	return l.record(ctx, ev, source, "")
}

// ErrNotOwner: RecordFor was given an event whose card is not the agent's (or no agent's).
var ErrNotOwner = store.ErrNotOwner

// RecordFor is Record for an event that agentID claims: when the card belongs to another agent
// or to none, nothing is written and the error is ErrNotOwner (the Result says whose it is).
func (l *Ledger) RecordFor(ctx context.Context, ev cardwarden.Event, source, agentID string) (Result, error) {
	return l.record(ctx, ev, source, agentID)
}

// record is Record, refusing a card that is not owner's unless owner is "". The card's owner
// and the owner's time zone are read in the transaction that records the event.
func (l *Ledger) record(ctx context.Context, ev cardwarden.Event, source, owner string) (Result, error) {
	var res Result
	if ev.ID == "" || ev.Issuer == "" || ev.CardID == "" {
		return res, errors.New("record event: id, issuer and card_id are required")
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	row := store.LedgerEvent{
		Issuer: ev.Issuer, IssuerEventID: ev.ID, IssuerCardID: ev.CardID, Kind: string(ev.Kind),
		Approved: ev.Approved, DeclineReason: string(ev.DeclineReason), RawReason: ev.RawReason,
		AuthorizationID: ev.AuthorizationID, AmountMinor: ev.AmountMinor, AuthorizedMinor: ev.AuthorizedMinor, Currency: ev.Currency,
		Merchant: ev.MerchantName, MCC: ev.MCC, Source: source, OccurredAt: ev.OccurredAt,
	}
	if source == store.SourceReconcile || source == store.SourceSignal {
		row.SignalledAt = sql.NullTime{Time: time.Now().UTC(), Valid: true}
	}
	rec, err := l.Store.RecordCardEvent(ctx, row, owner, func(o store.CardOwner, prior []store.LedgerEvent) ([]store.SpendDelta, error) {
		if o.AgentID == "" {
			return nil, nil
		}
		return DaySpend(o.AgentID, Location(PolicyTimezone(o.Policy)), ev, prior), nil
	})
	res = Result{New: rec.New, AgentID: rec.Owner.AgentID, Orphaned: rec.Owner.AgentID == "", Existing: rec.Existing}
	if err != nil {
		return res, fmt.Errorf("record event %s: %w", ev.ID, err)
	}
	return res, nil
}

// DaySpend is what ev changes in the agent's daily spend (days in loc), given the events
// already recorded for the same authorization: package spend's rules over the whole set,
// before and after, so the days come out the same whatever order the events arrive in. An
// event can change two days: a late authorization counts on its own day while its capture's
// over-capture counts on the capture's.
func DaySpend(agentID string, loc *time.Location, ev cardwarden.Event, prior []store.LedgerEvent) []store.SpendDelta {
	before := make([]cardwarden.Event, 0, len(prior)+1)
	for _, p := range prior {
		before = append(before, p.IssuerEvent())
	}
	after := append(before[:len(before):len(before)], ev)
	fb, fa := spend.Fold(before), spend.Fold(after)
	var days []string
	for _, e := range after {
		if d := Day(e.OccurredAt, loc); !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	var out []store.SpendDelta
	for _, day := range days {
		w := dayWindow(day, loc)
		d := spend.Sum(fa, w).Sub(spend.Sum(fb, w))
		sd := store.SpendDelta{AgentID: agentID, Day: day, SpentMinor: d.Spent, OverspendMinor: d.Overspend}
		if day == Day(ev.OccurredAt, loc) && ev.Kind == cardwarden.KindAuthorization && !ev.Approved {
			sd.Declines = 1
		}
		if sd.SpentMinor != 0 || sd.OverspendMinor != 0 || sd.Declines != 0 {
			out = append(out, sd)
		}
	}
	return out
}

// Day is the agent's day (YYYY-MM-DD) that t falls on, in the agent's zone loc: the key of
// the daily spend rows.
func Day(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

// dayWindow is the local day (YYYY-MM-DD) in loc as a window of instants.
func dayWindow(day string, loc *time.Location) spend.Window {
	d, _ := time.ParseInLocation(time.DateOnly, day, loc)
	return spend.Window{Start: d, End: time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)}
}

// Location is the time zone an agent's days are counted in: the policy's IANA zone from the
// tzdata pinned in the binary (package tzdb, the workflow's own), UTC when it is empty or
// unknown.
func Location(timezone string) *time.Location {
	loc, err := tzdb.LoadLocation(timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// PolicyTimezone is the timezone of an agent's policy as the store keeps it (JSON), "" when it
// cannot be read.
func PolicyTimezone(policy string) string {
	var p struct {
		Timezone string `json:"timezone"`
	}
	if json.Unmarshal([]byte(policy), &p) != nil {
		return ""
	}
	return p.Timezone
}
