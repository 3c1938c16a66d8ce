package activities

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// RecordEvent writes an issuer event to the ledger and adds its spend to the agent's day (in
// the agent's time zone), once: the ledger is unique by (issuer, event id), so a webhook
// delivered twice is stored and counted once. The webhook receiver calls this before it
// signals the workflow; an event for a card no agent owns is stored as orphaned.
func (a *Activities) RecordEvent(ctx context.Context, in workflows.RecordEventInput) (workflows.RecordEventResult, error) {
	ev := in.Event
	if ev.ID == "" || ev.Issuer == "" || ev.CardID == "" {
		return workflows.RecordEventResult{}, temporal.NewNonRetryableApplicationError(
			"record event: id, issuer and card_id are required", workflows.ErrTypeInvalidRequest, nil)
	}
	source := in.Source
	if source == "" {
		source = store.SourceWebhook
	}
	return a.recordEvent(ctx, ev, source)
}

func (a *Activities) recordEvent(ctx context.Context, ev cardwarden.Event, source string) (workflows.RecordEventResult, error) {
	res := workflows.RecordEventResult{}
	card, err := a.Store.CardByIssuerID(ctx, ev.Issuer, ev.CardID)
	switch {
	case store.IsNotFound(err):
		res.Orphaned = true
	case err != nil:
		return res, fmt.Errorf("record event %s: %w", ev.ID, err)
	default:
		res.AgentID = card.AgentID
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	row := store.LedgerEvent{
		Issuer: ev.Issuer, IssuerEventID: ev.ID, AgentID: res.AgentID, IssuerCardID: ev.CardID, Kind: string(ev.Kind),
		Approved: ev.Approved, DeclineReason: string(ev.DeclineReason), RawReason: ev.RawReason,
		AuthorizationID: ev.AuthorizationID, AmountMinor: ev.AmountMinor, AuthorizedMinor: ev.AuthorizedMinor, Currency: ev.Currency,
		Merchant: ev.MerchantName, MCC: ev.MCC, Source: source, Orphaned: res.Orphaned, OccurredAt: ev.OccurredAt,
	}
	if source == store.SourceReconcile {
		// The workflow that reconciles applies what it finds itself: nothing to redeliver.
		row.SignalledAt = sql.NullTime{Time: time.Now().UTC(), Valid: true}
	}
	var loc *time.Location
	if !res.Orphaned {
		loc = a.agentLocation(ctx, res.AgentID)
	}
	res.New, err = a.Store.RecordEvent(ctx, row, func(prior []store.LedgerEvent) ([]store.SpendDelta, error) {
		if res.Orphaned {
			return nil, nil
		}
		return DaySpend(res.AgentID, loc, ev, prior), nil
	})
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
		if d := e.OccurredAt.In(loc).Format(time.DateOnly); !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	var out []store.SpendDelta
	for _, day := range days {
		w := dayWindow(day, loc)
		d := spend.Sum(fa, w).Sub(spend.Sum(fb, w))
		sd := store.SpendDelta{AgentID: agentID, Day: day, SpentMinor: d.Spent, OverspendMinor: d.Overspend}
		if day == ev.OccurredAt.In(loc).Format(time.DateOnly) && ev.Kind == cardwarden.KindAuthorization && !ev.Approved {
			sd.Declines = 1
		}
		if sd.SpentMinor != 0 || sd.OverspendMinor != 0 || sd.Declines != 0 {
			out = append(out, sd)
		}
	}
	return out
}

// dayWindow is the local day (YYYY-MM-DD) in loc as a window of instants.
func dayWindow(day string, loc *time.Location) spend.Window {
	d, _ := time.ParseInLocation(time.DateOnly, day, loc)
	return spend.Window{Start: d, End: time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)}
}

// agentLocation is the agent's policy time zone, UTC when it cannot be read.
func (a *Activities) agentLocation(ctx context.Context, agentID string) *time.Location {
	ag, err := a.Store.GetAgent(ctx, agentID)
	if err != nil {
		return time.UTC
	}
	var p struct {
		Timezone string `json:"timezone"`
	}
	if json.Unmarshal([]byte(ag.Policy), &p) != nil {
		return time.UTC
	}
	loc, err := workflows.LoadLocation(p.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}
