package starter

import (
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/store"
)

// EventFromLedger rebuilds the normalized event a ledger row was recorded from.
func EventFromLedger(e store.LedgerEvent) issuer.Event {
	return issuer.Event{
		ID: e.IssuerEventID, Issuer: e.Issuer, Kind: issuer.EventKind(e.Kind), CardID: e.IssuerCardID,
		AuthorizationID: e.AuthorizationID, Approved: e.Approved, DeclineReason: issuer.DeclineReason(e.DeclineReason),
		RawReason: e.RawReason, AmountMinor: e.AmountMinor, Currency: e.Currency, MerchantName: e.Merchant,
		MCC: e.MCC, OccurredAt: e.OccurredAt.UTC(),
	}
}
