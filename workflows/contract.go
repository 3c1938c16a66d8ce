package workflows

import (
	"fmt"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Activity names: the contract between this package and package activities. Each is the name
// of a method of the typed handles in activity_refs.go, which carry the signatures, and of the
// activities.Activities method package worker registers under it.
const (
	// Local activities on the workflow worker (short store writes and lookups).
	ActivityIssuerInfo     = "IssuerInfo"
	ActivityUpsertAgent    = "UpsertAgent"
	ActivitySetAgentStatus = "SetAgentStatus"
	ActivityAudit          = "Audit"
	// ActivityUpdateLimitNow is a reset's limit update tried in the workflow's own worker when
	// that worker's share of the issuer's rate limit has room (activities.Pacer); it reports
	// whether it applied, and the workflow schedules UpdateLimit on the paced queue if not.
	ActivityUpdateLimitNow = "UpdateLimitNow"

	// Activities on TaskQueue that the workflow does not wait for: alert delivery and
	// credential pushes can take retries and minutes; recording a hand-sent event in the ledger
	// must not hold up the next one.
	ActivitySendAlert       = "SendAlert"
	ActivityPushCredentials = "PushCredentials"
	ActivityRecordEvent     = "RecordEvent"

	// Activities on IssuerTaskQueue (they call the issuer, so their worker is rate limited);
	// the card-stopping ones (UpdateLimit, PauseCard, CloseCard) also on TaskQueue, where the
	// workflow stops cards, and on IssuerUrgentTaskQueue, where earlier versions did.
	ActivityIssueCard   = "IssueCard"
	ActivityUpdateLimit = "UpdateLimit"
	ActivityPauseCard   = "PauseCard"
	ActivityResumeCard  = "ResumeCard"
	ActivityCloseCard   = "CloseCard"
	ActivityReconcile   = "Reconcile"
)

// IdempotencyKey is the issuer idempotency key of an agent's card generation: a retried or
// replayed issue of the same generation can never create a second card.
func IdempotencyKey(workflowID string, generation int) string {
	return fmt.Sprintf("cardwarden:%s:gen:%d", workflowID, generation)
}

// IssuerInfoInput names the issuer whose capabilities the workflow needs.
type IssuerInfoInput struct {
	Issuer string `json:"issuer"`
}

// IssuerInfo is what the workflow needs to know about an issuer.
type IssuerInfo struct {
	Name         string              `json:"name"`
	Capabilities issuer.Capabilities `json:"capabilities"`
}

// UpsertAgentInput records the agent and its policy.
type UpsertAgentInput struct {
	Policy Policy `json:"policy"`
	Status Status `json:"status"`
	// CardsSince asks for the agent's cards that were open at or after this time
	// (AgentSnapshot.RecentCards); zero asks for none.
	CardsSince time.Time `json:"cards_since,omitzero"`
}

// AgentSnapshot is what the store knows about an agent's cards when its workflow starts: a
// workflow started again for a retired agent continues the generation count, closes any card
// an earlier workflow left open, and counts what its recent cards spent in the period.
type AgentSnapshot struct {
	LastGeneration int         `json:"last_generation"`
	OpenCards      []StoreCard `json:"open_cards,omitempty"`
	RecentCards    []StoreCard `json:"recent_cards,omitempty"`
}

// StoreCard is a card as the store has it.
type StoreCard struct {
	ID         string `json:"id"`
	Issuer     string `json:"issuer"`
	Last4      string `json:"last4"`
	Generation int    `json:"generation"`
	Status     string `json:"status"`
}

// SetAgentStatusInput records the agent's lifecycle status.
type SetAgentStatusInput struct {
	AgentID string `json:"agent_id"`
	Status  Status `json:"status"`
}

// AuditInput is one audit log entry.
type AuditInput struct {
	AgentID string    `json:"agent_id"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Detail  string    `json:"detail"`
	At      time.Time `json:"at"`
}

// AlertInput is one alert. (AgentID, Kind, Period) is sent at most once.
type AlertInput struct {
	AgentID    string    `json:"agent_id"`
	Kind       string    `json:"kind"`
	Period     string    `json:"period"`
	Message    string    `json:"message"`
	WebhookURL string    `json:"webhook_url,omitempty"`
	At         time.Time `json:"at"`
}

// RecordEventInput is an issuer event the workflow received without the ledger having it
// (a card-event signal sent by hand), for the RecordEvent activity to record.
type RecordEventInput struct {
	AgentID string           `json:"agent_id"`
	Event   cardwarden.Event `json:"event"`
}

// AlertResult says what happened to an alert.
type AlertResult struct {
	// Delivered is true once the alert is recorded as sent (to the webhook, or to the store
	// alone when the policy has no webhook).
	Delivered bool `json:"delivered"`
	// Duplicate is true when the alert had already been sent for this period.
	Duplicate bool `json:"duplicate"`
}

// Alert kinds.
const (
	AlertThreshold       = "threshold"        // + "-<pct>": today's spend crossed a threshold
	AlertOverspend       = "overspend"        // over-capture or force-post today
	AlertFrozen          = "frozen"           // decline burst froze the card
	AlertRevoked         = "revoked"          // hard reason or repeated freezes closed the card
	AlertRotationFailed  = "rotation-failed"  // a new card could not be issued; the old one stays
	AlertReconcile       = "reconcile"        // reconciliation found missed events or differences
	AlertReconcileFailed = "reconcile-failed" // reconciliation could not run
	AlertLimitFailed     = "limit-failed"     // the card's limit could not be updated
	AlertFreezeFailed    = "freeze-failed"    // a burst was seen but the card could not be frozen
	AlertCardGone        = "card-gone"        // the issuer says the card is closed or unknown
	AlertPushFailed      = "push-failed"      // a new card could not be pushed to the agent
	AlertLedgerFailed    = "ledger-failed"    // a hand-sent card event could not be recorded
)

// IssueCardInput asks for a new card for a generation. The workflow keeps the input of a
// failed issue and retries with exactly the same one, so the same idempotency key always comes
// with the same request body.
type IssueCardInput struct {
	AgentID         string              `json:"agent_id"`
	Issuer          string              `json:"issuer"`
	Label           string              `json:"label"`
	Currency        string              `json:"currency"`
	Generation      int                 `json:"generation"`
	IdempotencyKey  string              `json:"idempotency_key"`
	Limits          []issuer.SpendLimit `json:"limits"`
	DailyLimitMinor int64               `json:"daily_limit_minor"`
	Reason          string              `json:"reason"`
}

// IssuedCard is everything about a new card the workflow needs: never its number or CVC,
// which the activity puts in the vault. (Results recorded before exp_month and exp_year were
// dropped still decode: unknown fields are ignored.)
type IssuedCard struct {
	ID        string    `json:"id"`
	Last4     string    `json:"last4"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UpdateLimitInput sets a card's limits.
type UpdateLimitInput struct {
	AgentID         string              `json:"agent_id"`
	Issuer          string              `json:"issuer"`
	CardID          string              `json:"card_id"`
	Limits          []issuer.SpendLimit `json:"limits"`
	DailyLimitMinor int64               `json:"daily_limit_minor"`
	// ResetAt is the reset instant this update gives the card its budget for; zero for
	// updates a rotation, freeze, unfreeze or budget change makes. History readers (and the
	// resilience tests) find each reset by it.
	ResetAt time.Time `json:"reset_at,omitzero"`
}

// LimitApplied is UpdateLimitNow's answer. When the limit was applied it repeats the card and
// the reset instant of the input, which a local activity's marker does not record: history
// readers find a reset applied in the waking task by its marker's result, as they find one
// applied on the paced queue by UpdateLimit's input.
type LimitApplied struct {
	Applied bool      `json:"applied"`
	CardID  string    `json:"card_id,omitempty"`
	ResetAt time.Time `json:"reset_at,omitzero"`
}

// PushCredentialsInput names the card whose credentials go to the agent's push URL. The
// activity reads them from the vault: they never enter workflow history.
type PushCredentialsInput struct {
	AgentID    string `json:"agent_id"`
	Issuer     string `json:"issuer"`
	CardID     string `json:"card_id"`
	Generation int    `json:"generation"`
	URL        string `json:"url"`
}

// CardActionInput pauses, resumes or closes a card.
type CardActionInput struct {
	AgentID string `json:"agent_id"`
	Issuer  string `json:"issuer"`
	CardID  string `json:"card_id"`
	Reason  string `json:"reason"`
	// BurstStartedAt is the time of the first decline of the burst that caused an automatic
	// freeze, so the pause activity can measure freeze latency; zero otherwise.
	BurstStartedAt time.Time `json:"burst_started_at,omitzero"`
}

// ReconcileInput asks for the issuer's events on some cards since a time, to be compared with
// the ledger.
type ReconcileInput struct {
	AgentID  string    `json:"agent_id"`
	Issuer   string    `json:"issuer"`
	Timezone string    `json:"timezone"`
	CardIDs  []string  `json:"card_ids"`
	Since    time.Time `json:"since"`
	// Until is when the reconciliation runs: in the lead before a reset, or the reset
	// instant in runs from before that change (informational: the issuer is asked for
	// everything since Since).
	Until time.Time `json:"until"`
	// IncludeAll also returns (in Events) every approved money event listed that the ledger
	// already had: the workflow may not have been signalled them yet, and a card is read this
	// way after it is capped and before another is funded.
	IncludeAll bool `json:"include_all,omitempty"`
	// LedgerFallback reads a card's events from the ledger when the issuer cannot list them.
	LedgerFallback bool `json:"ledger_fallback,omitempty"`
	// Reason says why the workflow reads (ReconcileBeforeReset, ReconcileAtReset,
	// ReconcileCapped, ReconcileEarlierCards), for history readers and tests.
	Reason string `json:"reason,omitempty"`
}

// Why a workflow reads a card's events from the issuer (ReconcileInput.Reason).
const (
	ReconcileBeforeReset  = "before-reset"  // the ending period, in the lead before its reset
	ReconcileAtReset      = "at-reset"      // the ending period, at its reset (runs before that change)
	ReconcileCapped       = "capped"        // cards just capped, before another card is funded
	ReconcileEarlierCards = "earlier-cards" // a new workflow counting its agent's earlier cards
)

// ReconcileResult lists what the webhooks missed (now in the ledger with source
// "reconcile") and events whose amounts differ between the issuer and the ledger.
type ReconcileResult struct {
	Checked    int                `json:"checked"`
	Missed     []cardwarden.Event `json:"missed,omitempty"`
	Mismatches []Mismatch         `json:"mismatches,omitempty"`
	// Events are the approved money events listed that the ledger already had (IncludeAll).
	Events []cardwarden.Event `json:"events,omitempty"`
	// Totals compares each card's usage as the issuer's listing and the ledger count it
	// (cards whose listing covers their whole life).
	Totals []CardTotals `json:"totals,omitempty"`
}

// CardTotals is one card's usage (what counts against its lifetime limit) by the issuer's
// own records and by the ledger, over the same events.
type CardTotals struct {
	CardID           string `json:"card_id"`
	IssuerUsageMinor int64  `json:"issuer_usage_minor"`
	LedgerUsageMinor int64  `json:"ledger_usage_minor"`
}

// Mismatch is an event the ledger and the issuer disagree about.
type Mismatch struct {
	EventID             string `json:"event_id"`
	CardID              string `json:"card_id"`
	LedgerAmountMinor   int64  `json:"ledger_amount_minor"`
	IssuerAmountMinor   int64  `json:"issuer_amount_minor"`
	LedgerApproved      bool   `json:"ledger_approved"`
	IssuerApproved      bool   `json:"issuer_approved"`
	LedgerKind          string `json:"ledger_kind"`
	IssuerKind          string `json:"issuer_kind"`
	LedgerDeclineReason string `json:"ledger_decline_reason,omitempty"`
}

// ApplicationError types of issuer failures, as activities report them.
const (
	ErrTypeIssuerNotConfigured = "IssuerNotConfigured"
	ErrTypeIssuerRateLimited   = "IssuerRateLimited"
	ErrTypeIssuerTransient     = "IssuerTransient"
	ErrTypeIssuerInvalid       = "IssuerInvalidRequest"
	ErrTypeIssuerNotFound      = "IssuerNotFound"
	ErrTypeIssuerAlreadyClosed = "IssuerAlreadyClosed"
	ErrTypeIssuerConflict      = "IssuerIdempotencyConflict"
	ErrTypeIssuerNotSupported  = "IssuerNotSupported"
	ErrTypeIssuerUnauthorized  = "IssuerUnauthorized"
)

// IssuerErrorType maps an issuer error kind to its ApplicationError type.
func IssuerErrorType(kind issuer.ErrorKind) string {
	switch kind {
	case issuer.KindRateLimited:
		return ErrTypeIssuerRateLimited
	case issuer.KindInvalid:
		return ErrTypeIssuerInvalid
	case issuer.KindNotFound:
		return ErrTypeIssuerNotFound
	case issuer.KindAlreadyClosed:
		return ErrTypeIssuerAlreadyClosed
	case issuer.KindIdempotencyConflict:
		return ErrTypeIssuerConflict
	case issuer.KindNotSupported:
		return ErrTypeIssuerNotSupported
	case issuer.KindUnauthorized:
		return ErrTypeIssuerUnauthorized
	default:
		return ErrTypeIssuerTransient
	}
}
