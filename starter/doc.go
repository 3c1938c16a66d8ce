// Package starter is the typed Go client for everything a caller does to an agent's card: start
// an agent, rotate, freeze, unfreeze, change its budget, retire it, read its state, list agents,
// report an issuer event, and manage the fleet-rotation schedule. The CLI, the HTTP API and any
// other Go program drive cardwarden through it instead of speaking Temporal by hand.
//
// Every method takes a context first and returns typed errors that callers can branch on with
// errors.Is: ErrAgentNotFound, ErrInvalidPolicy, ErrInvalidRequest, ErrRejected (a workflow
// validator said no, e.g. freezing a frozen card), ErrAgentExists, ErrUpdateFailed,
// ErrUnavailable and ErrTimeout. Errors that concern one field (ErrInvalidPolicy,
// ErrInvalidRequest) carry it: see FieldOf.
//
// Every type a caller needs is in a public package (workflows, money, and the root package
// cardwarden for the issuer event), so programs outside this module drive agents through it
// too. Options' Store, Vault and Outbound are the server's own wiring (cardwarden serve and the
// CLI set them); without a Store, ReportEvent, RedeliverPending and the token methods return
// ErrNoStore, and a program outside the module reaches them through the HTTP API instead.
//
// Nothing here ever sees a card number or CVC: the workflow's state holds only the card's id,
// last4 and expiry, and credentials are read from the vault by the HTTP API alone.
package starter
