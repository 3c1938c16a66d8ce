// Package workflows holds cardwarden's deterministic code: the AgentCard entity workflow that
// owns one agent's card for the agent's whole life, the agent policy, and the pure pieces the
// workflow is built from (budget math, schedule math, the decline-burst detector).
//
// Nothing here does I/O. Every effect goes through an activity in package activities; the
// contract between the two (activity names and their input and output types) lives in
// contract.go, and the typed handles the workflows call activities through in
// activity_refs.go, so that both sides and the tests share one definition.
//
// The AgentCard workflow, by file: agentcard.go (the run and its main loop), start.go (the
// first run's setup, a continued run's), reset.go (budget periods and budget changes),
// reconcile.go (reading the issuer's records before each reset), cards.go (issuing, capping,
// funding and closing cards: the budget invariant), rotate.go (rotation and expiry), events.go
// (card events and the decline detector's verdicts), freeze.go (freeze, revoke, unfreeze),
// retire.go (retirement), handlers.go (the query and the updates), effects.go (the activity
// calls), history.go (continue-as-new), legacy.go (paths of runs from before a change), state.go
// and view.go (what it carries and shows). policy.go and policy_decode.go are its input,
// requests.go the updates' payloads, fielderrors.go the errors that name a field of either.
// authorize.go decides each purchase in real time (the authorize update and its reservations)
// by the rules of rules.go (merchant rules and their presets, velocity).
//
// The Team workflow (a budget agents share): team.go runs it, team_types.go is its contract.
package workflows

import (
	_ "time/tzdata" // so time.LoadLocation works on hosts without a zoneinfo database

	"go.temporal.io/sdk/temporal"
)

// Names other programs rely on (README.md, "The AgentCard workflow", the table of names):
// changing one breaks running workflows, schedules, dashboards and callers.
const (
	// WorkflowType is the registered name of the agent workflow.
	WorkflowType = "AgentCard"
	// TaskQueue runs workflows and the store activities.
	TaskQueue = "cardwarden"
	// IssuerTaskQueue runs the activities that call a card issuer; its worker is rate limited
	// to the issuer's own limit.
	IssuerTaskQueue = "cardwarden-issuer"
	// IssuerUrgentTaskQueue ran the issuer calls that stop a card (pause, freeze-by-limit,
	// close on revocation) before they moved to TaskQueue, where the deciding worker starts
	// them eagerly; workers still poll it for stops scheduled there by earlier versions. Its
	// worker is capped at the issuer's limit but not paced.
	IssuerUrgentTaskQueue = "cardwarden-issuer-urgent"

	// QueryState returns a StateView.
	QueryState = "state"

	// Updates. rotate, freeze, unfreeze and retire take a ReasonRequest; set-budget takes a
	// BudgetRequest. Each returns the StateView after the change.
	UpdateRotate    = "rotate"
	UpdateFreeze    = "freeze"
	UpdateUnfreeze  = "unfreeze"
	UpdateSetBudget = "set-budget"
	UpdateRetire    = "retire"

	// SignalCardEvent carries one normalized cardwarden.Event (a JSON object), or several of
	// one agent's events in order (a JSON array).
	SignalCardEvent = "card-event"

	// WorkflowIDPrefix prefixes the agent id in the workflow id.
	WorkflowIDPrefix = "agent/"
)

// Search attribute names (keywords). They must be registered in the namespace before an
// AgentCard runs: `cardwarden dev` does it, tests call OperatorService().AddSearchAttributes.
const (
	SearchAttrAgentID    = "AgentId"
	SearchAttrCardStatus = "CardStatus"
	SearchAttrIssuer     = "Issuer"
)

// Typed search attribute keys, for starting workflows and for upserts.
var (
	AgentIDKey    = temporal.NewSearchAttributeKeyKeyword(SearchAttrAgentID)
	CardStatusKey = temporal.NewSearchAttributeKeyKeyword(SearchAttrCardStatus)
	IssuerKey     = temporal.NewSearchAttributeKeyKeyword(SearchAttrIssuer)
)

// SearchAttributes returns the search attributes to start an agent's workflow with, so the
// workflow is findable from its first moment (the workflow upserts them anyway).
func SearchAttributes(agentID, issuerName string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AgentIDKey.ValueSet(agentID),
		CardStatusKey.ValueSet(string(StatusActive)),
		IssuerKey.ValueSet(issuerName),
	)
}

// WorkflowID is the workflow id of an agent's AgentCard workflow.
func WorkflowID(agentID string) string { return WorkflowIDPrefix + agentID }

// Status is the agent's lifecycle status, shown by the state query and the CardStatus search
// attribute.
type Status string

const (
	// StatusActive: the agent has a usable card.
	StatusActive Status = "active"
	// StatusFrozen: the card is paused (a decline burst or a human); unfreeze resumes it.
	StatusFrozen Status = "frozen"
	// StatusRevoked: the card was closed (hard decline reason, repeated freezes); a human
	// unfreeze or rotate issues a new one.
	StatusRevoked Status = "revoked"
	// StatusRetired: every card is closed and the workflow has completed.
	StatusRetired Status = "retired"
)

// Error types of the ApplicationErrors the workflow fails with or activities return.
const (
	// ErrTypeInvalidPolicy fails the workflow, before any card is issued, when the policy is
	// invalid. The message names the field.
	ErrTypeInvalidPolicy = "InvalidPolicy"
	// ErrTypeInvalidRequest rejects an update whose payload is invalid or not allowed in the
	// current state.
	ErrTypeInvalidRequest = "InvalidRequest"
	// ErrTypeNotApplied rejects an update the issuer could not carry out (a new budget whose
	// limit it did not take): nothing was changed, and trying again later may work.
	ErrTypeNotApplied = "NotApplied"
)
