package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/workflows"
)

// Reconcile compares the issuer's events on the agent's cards since in.Since with the ledger.
// Events the webhooks never delivered are written to the ledger (source "reconcile") and
// returned, for the workflow to apply as if they had been signalled; events whose amount,
// kind or outcome differ are audited and returned.
func (a *Activities) Reconcile(ctx context.Context, in workflows.ReconcileInput) (workflows.ReconcileResult, error) {
	var res workflows.ReconcileResult
	iss, err := a.issuer(in.Issuer)
	if err != nil {
		return res, err
	}
	for _, cardID := range in.CardIDs {
		events, err := iss.ListAuthorizations(ctx, cardID, in.Since)
		if errors.Is(err, issuer.ErrNotFound) {
			a.log().WarnContext(ctx, "reconcile: issuer does not know the card", "agent_id", in.AgentID, "card_id", cardID)
			continue
		}
		if err != nil {
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
		for _, ev := range events {
			res.Checked++
			if ev.Issuer == "" {
				ev.Issuer = in.Issuer
			}
			if ev.CardID == "" {
				ev.CardID = cardID
			}
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
				r, err := a.recordEvent(ctx, ev, store.SourceReconcile)
				if err != nil {
					return res, err
				}
				if r.New {
					res.Missed = append(res.Missed, ev)
					if a.Metrics != nil {
						a.Metrics.ObserveEvent(ev)
					}
				}
				continue
			}
			if m, differs := compare(le, ev); differs {
				res.Mismatches = append(res.Mismatches, m)
				detail, _ := json.Marshal(m)
				a.audit(ctx, store.AuditEntry{Actor: "reconcile", Action: "reconcile-mismatch", AgentID: in.AgentID, Detail: string(detail)})
			}
		}
	}
	if len(res.Missed) > 0 || len(res.Mismatches) > 0 {
		a.log().WarnContext(ctx, "reconciliation found differences", "agent_id", in.AgentID,
			"missed", len(res.Missed), "mismatches", len(res.Mismatches), "checked", res.Checked)
	}
	return res, nil
}

func compare(le store.LedgerEvent, ev issuer.Event) (workflows.Mismatch, bool) {
	m := workflows.Mismatch{
		EventID: ev.ID, CardID: ev.CardID,
		LedgerAmountMinor: le.AmountMinor, IssuerAmountMinor: ev.AmountMinor,
		LedgerApproved: le.Approved, IssuerApproved: ev.Approved,
		LedgerKind: le.Kind, IssuerKind: string(ev.Kind), LedgerDeclineReason: le.DeclineReason,
	}
	return m, le.AmountMinor != ev.AmountMinor || le.Approved != ev.Approved || le.Kind != string(ev.Kind)
}
