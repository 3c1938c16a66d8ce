package activities

import "github.com/cardwarden/cardwarden"

// IssuerError exposes the error mapping to the tests.
var IssuerError = issuerError

// SetBeforeReconcileRecord sets the hook Reconcile runs just before recording an event the
// ledger did not have when it was read.
func SetBeforeReconcileRecord(a *Activities, fn func(cardwarden.Event)) { a.beforeReconcileRecord = fn }
