package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/spend"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// Reconcile compares the issuer's events on the agent's cards since in.Since with the ledger.
// Events the webhooks never delivered are written to the ledger (source "reconcile") and
// returned, for the workflow to apply as if they had been signalled; events whose amount,
// kind or outcome differ are audited and returned. With IncludeAll it also returns the
// approved money events the ledger already had (the workflow may not have them yet), and
// for each card it compares the card's usage by the issuer's listing and by the ledger over
// the same events. A card the issuer cannot list is read from the ledger when LedgerFallback
// is set.
func (a *Activities) Reconcile(ctx context.Context, in workflows.ReconcileInput) (workflows.ReconcileResult, error) {
	var res workflows.ReconcileResult
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return res, err
	}
	cards := in.CardIDs
	if in.Reason == workflows.ReconcileBeforeReset {
		// Cards closed in the last days still move money (late captures, force-posts,
		// refunds); a webhook lost for one of them is found here.
		recent, err := a.recentlyClosed(ctx, in.AgentID, in.Issuer, time.Now().Add(-recentlyClosedFor))
		if err != nil {
			return res, err
		}
		for _, id := range recent {
			if !slices.Contains(cards, id) {
				cards = append(cards, id)
			}
		}
	}
	for _, cardID := range cards {
		events, err := iss.ListAuthorizations(ctx, cardID, in.Since)
		switch {
		case errors.Is(err, issuer.ErrNotFound):
			a.log().WarnContext(ctx, "reconcile: issuer does not know the card", "agent_id", in.AgentID, "card_id", cardID)
			continue
		case err != nil && in.LedgerFallback:
			a.log().WarnContext(ctx, "reconcile: issuer cannot list the card; reading the ledger", "agent_id", in.AgentID, "card_id", cardID, "error", err)
			ledger, lerr := a.Store.CardEvents(ctx, in.Issuer, cardID, in.Since)
			if lerr != nil {
				return res, fmt.Errorf("reconcile: %w", lerr)
			}
			for _, le := range ledger {
				if ev := le.IssuerEvent(); spend.Relevant(ev) {
					res.Events = append(res.Events, ev)
				}
			}
			continue
		case err != nil:
			return res, issuerError("list authorizations", err)
		}
		ledger, err := a.Store.CardEvents(ctx, in.Issuer, cardID, in.Since)
		if err != nil {
			return res, fmt.Errorf("reconcile: %w", err)
		}
		byID := make(map[string]store.LedgerEvent, len(ledger))
		for _, le := range ledger {
			byID[le.IssuerEventID] = le
		}
		var listed, recorded []cardwarden.Event
		for _, ev := range events {
			res.Checked++
			if ev.Issuer == "" {
				ev.Issuer = in.Issuer
			}
			if ev.CardID == "" {
				ev.CardID = cardID
			}
			if err := ev.Check(); err != nil {
				a.log().WarnContext(ctx, "reconcile: issuer listed an event cardwarden cannot count", "agent_id", in.AgentID, "error", err)
				continue
			}
			listed = append(listed, ev)
			le, ok := byID[ev.ID]
			if !ok {
				// Perhaps recorded with an earlier occurred_at than the window.
				got, err := a.Store.GetEvent(ctx, ev.Issuer, ev.ID)
				switch {
				case err == nil:
					le, ok = got, true
				case !store.IsNotFound(err):
					return res, fmt.Errorf("reconcile: %w", err)
				}
			}
			if !ok {
				if a.beforeReconcileRecord != nil {
					a.beforeReconcileRecord(ev)
				}
				r, err := a.ledger().Record(ctx, ev, store.SourceReconcile)
				if err != nil {
					return res, err
				}
				recorded = append(recorded, ev)
				switch {
				case r.New:
					res.Missed = append(res.Missed, ev)
					if a.Metrics != nil {
						a.Metrics.ObserveEvent(ev)
					}
				case in.IncludeAll && spend.Relevant(ev):
					// Its webhook was recorded between the ledger read above and this write: the
					// ledger has it, the workflow perhaps not yet. Left out, a card replaced while
					// an approval's webhook was in flight was read short and its successor
					// funded with that approval again (found by the model test).
					res.Events = append(res.Events, ev)
				}
				continue
			}
			recorded = append(recorded, le.IssuerEvent())
			if in.IncludeAll && spend.Relevant(ev) {
				res.Events = append(res.Events, ev)
			}
			if m, differs := compare(le, ev); differs {
				res.Mismatches = append(res.Mismatches, m)
				detail, _ := json.Marshal(m)
				a.audit(ctx, store.AuditEntry{Actor: "reconcile", Action: "reconcile-mismatch", AgentID: in.AgentID, Detail: string(detail)})
			}
		}
		if in.IncludeAll {
			// Events the ledger has in the listed span that the issuer did not list: the
			// ledger counts money the issuer never moved.
			if n := len(listed); n > 0 {
				inListing := make(map[string]bool, n)
				for _, ev := range listed {
					inListing[ev.ID] = true
				}
				for _, le := range ledger {
					if !inListing[le.IssuerEventID] && !le.OccurredAt.After(listed[n-1].OccurredAt) {
						recorded = append(recorded, le.IssuerEvent())
					}
				}
			}
			// The same events, counted from the issuer's records and from the ledger's: any
			// difference in a card's usage is money one of them has wrong.
			t := workflows.CardTotals{CardID: cardID,
				IssuerUsageMinor: spend.CardUsage(spend.Fold(listed), cardID), LedgerUsageMinor: spend.CardUsage(spend.Fold(recorded), cardID)}
			res.Totals = append(res.Totals, t)
		}
	}
	if len(res.Missed) > 0 || len(res.Mismatches) > 0 {
		a.log().WarnContext(ctx, "reconciliation found differences", "agent_id", in.AgentID,
			"missed", len(res.Missed), "mismatches", len(res.Mismatches), "checked", res.Checked)
	}
	return res, nil
}

// ledger records what reconciliation finds the way the webhook path records what it receives.
func (a *Activities) ledger() *ledger.Ledger { return &ledger.Ledger{Store: a.Store} }

// recentlyClosedFor is how long after closing a card is still reconciled.
const recentlyClosedFor = 8 * 24 * time.Hour

// recentlyClosed lists the agent's cards at iss closed since t.
func (a *Activities) recentlyClosed(ctx context.Context, agentID, iss string, t time.Time) ([]string, error) {
	cards, err := a.Store.ListCards(ctx, agentID)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	var ids []string
	for _, c := range cards {
		if c.Issuer == iss && c.ClosedAt.Valid && c.ClosedAt.Time.After(t) {
			ids = append(ids, c.IssuerCardID)
		}
	}
	return ids, nil
}

func compare(le store.LedgerEvent, ev cardwarden.Event) (workflows.Mismatch, bool) {
	m := workflows.Mismatch{
		EventID: ev.ID, CardID: ev.CardID,
		LedgerAmountMinor: le.AmountMinor, IssuerAmountMinor: ev.AmountMinor,
		LedgerApproved: le.Approved, IssuerApproved: ev.Approved,
		LedgerKind: le.Kind, IssuerKind: string(ev.Kind), LedgerDeclineReason: le.DeclineReason,
	}
	return m, le.AmountMinor != ev.AmountMinor || le.Approved != ev.Approved || le.Kind != string(ev.Kind)
}
