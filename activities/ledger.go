package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden/internal/issuer"
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

func (a *Activities) recordEvent(ctx context.Context, ev issuer.Event, source string) (workflows.RecordEventResult, error) {
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
	occurred := ev.OccurredAt
	if occurred.IsZero() {
		occurred = time.Now()
	}
	row := store.LedgerEvent{
		Issuer: ev.Issuer, IssuerEventID: ev.ID, AgentID: res.AgentID, IssuerCardID: ev.CardID, Kind: string(ev.Kind),
		Approved: ev.Approved, DeclineReason: string(ev.DeclineReason), RawReason: ev.RawReason,
		AuthorizationID: ev.AuthorizationID, AmountMinor: ev.AmountMinor, Currency: ev.Currency,
		Merchant: ev.MerchantName, MCC: ev.MCC, Source: source, Orphaned: res.Orphaned, OccurredAt: occurred,
	}
	var delta *store.SpendDelta
	if !res.Orphaned {
		d, err := a.spendDelta(ctx, ev)
		if err != nil {
			return res, err
		}
		d.AgentID = res.AgentID
		d.Day = occurred.In(a.agentLocation(ctx, res.AgentID)).Format("2006-01-02")
		delta = &d
	}
	res.New, err = a.Store.InsertEvent(ctx, row, delta)
	if err != nil {
		return res, fmt.Errorf("record event %s: %w", ev.ID, err)
	}
	return res, nil
}

// spendDelta computes the event's effect on spend with the same rules the workflow uses
// (workflows.Budget), replaying the authorization's earlier events so a capture is compared
// with what was authorized.
func (a *Activities) spendDelta(ctx context.Context, ev issuer.Event) (store.SpendDelta, error) {
	var b workflows.Budget
	if ev.Kind != issuer.KindAuthorization && ev.AuthorizationID != "" {
		prior, err := a.Store.AuthorizationEvents(ctx, ev.Issuer, ev.AuthorizationID)
		if err != nil {
			return store.SpendDelta{}, fmt.Errorf("record event %s: %w", ev.ID, err)
		}
		for _, p := range prior {
			if p.IssuerEventID == ev.ID {
				continue
			}
			b.Apply(issuer.Event{
				ID: p.IssuerEventID, Kind: issuer.EventKind(p.Kind), CardID: p.IssuerCardID, AuthorizationID: p.AuthorizationID,
				Approved: p.Approved, AmountMinor: p.AmountMinor,
			})
		}
	}
	d := b.Apply(ev)
	out := store.SpendDelta{SpentMinor: d.Spent, OverspendMinor: d.Overspend}
	if ev.Kind == issuer.KindAuthorization && !ev.Approved {
		out.Declines = 1
	}
	return out, nil
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
