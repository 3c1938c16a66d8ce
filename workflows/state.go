package workflows

import (
	"encoding/json"
	"time"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Input is the AgentCard workflow's argument: the agent's policy, plus, after a
// continue-as-new, the state carried from the previous run. A person starts an agent with the
// policy alone: {"agent_id":"demo","daily_limit_usd":25}.
type Input struct {
	Policy
	// State is set only by continue-as-new.
	State *State `json:"state,omitempty"`

	parseErr error
}

// UnmarshalJSON decodes strictly (unknown fields are errors) but never fails: the workflow
// reports a bad policy as a non-retryable InvalidPolicy failure naming the field, where a
// decoding error would instead fail workflow tasks forever.
func (in *Input) UnmarshalJSON(b []byte) error {
	p, st, err := decodeInput(b)
	*in = Input{Policy: p, State: st, parseErr: err}
	return nil
}

// MarshalJSON writes the policy fields and the state side by side.
func (in Input) MarshalJSON() ([]byte, error) {
	type flat struct {
		Policy
		State *State `json:"state,omitempty"`
	}
	return json.Marshal(flat{Policy: in.Policy, State: in.State})
}

// State is everything the workflow knows, carried whole through continue-as-new.
type State struct {
	Status       Status `json:"status"`
	StatusReason string `json:"status_reason,omitempty"`
	// FreezeMode is how the card is frozen: "pause" at the issuer, or "limit" (its limit set
	// to what it has spent, for issuers that cannot pause).
	FreezeMode string `json:"freeze_mode,omitempty"`

	Generation int           `json:"generation"`
	Card       *CardRef      `json:"card,omitempty"`
	Closing    []ClosingRef  `json:"closing,omitempty"`
	Pending    *PendingIssue `json:"pending,omitempty"`

	Rotations   int `json:"rotations"`
	Reissues    int `json:"reissues"`
	Resets      int `json:"resets"`
	Skipped     int `json:"skipped_resets"`
	Freezes     int `json:"freezes"`
	Revocations int `json:"revocations"`

	Budget            Budget `json:"budget"`
	AlertedThresholds []int  `json:"alerted_thresholds,omitempty"`
	OverspendAlerted  bool   `json:"overspend_alerted,omitempty"`

	Detector       Detector      `json:"detector"`
	RecentDeclines []DeclineView `json:"recent_declines,omitempty"`
	Seen           []string      `json:"seen,omitempty"` // recent event ids, oldest first

	LastReset      time.Time `json:"last_reset"`
	NextReset      time.Time `json:"next_reset"`
	NextRotation   time.Time `json:"next_rotation,omitzero"`
	LastReconcile  time.Time `json:"last_reconcile,omitzero"`
	ReconcileCards []string  `json:"reconcile_cards,omitempty"`
	// ReconciledFor is the reset whose lead-time reconciliation has run (or failed and
	// alerted), so it runs once per reset.
	ReconciledFor time.Time `json:"reconciled_for,omitzero"`
	// FundRetryAt is when to try again to put the right limit on the current card after the
	// issuer failed to take it (zero when nothing is owed); FundFailures counts the tries.
	FundRetryAt  time.Time `json:"fund_retry_at,omitzero"`
	FundFailures int       `json:"fund_failures,omitempty"`

	// Real-time decisions (authorize.go): approvals waiting for their authorization's event,
	// recent decisions (a redelivered request gets the same answer) and recent approvals (for
	// velocity rules).
	Reservations []Reservation    `json:"reservations,omitempty"`
	Decisions    []DecisionRecord `json:"decisions,omitempty"`
	Approvals    []ApprovalMark   `json:"approvals,omitempty"`

	Capabilities issuer.Capabilities `json:"capabilities"`
	SignalsTotal int64               `json:"signals_total"`
	Run          int                 `json:"run"`
	StartedAt    time.Time           `json:"started_at"`
}

// CardRef is a card as the workflow knows it.
type CardRef struct {
	ID         string    `json:"id"`
	Issuer     string    `json:"issuer"`
	Last4      string    `json:"last4"`
	Generation int       `json:"generation"`
	Status     string    `json:"status"` // issuer.CardStatus
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	// RotateAt is when the card must be replaced: its TTL, or the issuer's expiry less the
	// grace period, whichever is first.
	RotateAt time.Time `json:"rotate_at"`
	// UsageMinor is what the issuer counts against the card's lifetime limit, as the events
	// received so far say: holds, captures and force-posts, less credits. A limit of
	// UsageMinor + allowance leaves exactly the allowance, and an event the webhooks have not
	// delivered yet is missing from both, so it cannot make the limit too generous.
	UsageMinor int64 `json:"usage_minor"`
	// LimitMinor is the lifetime limit cardwarden last set (usage + allowance when funded, 0
	// when capped); 0 also for cards from runs before it was kept.
	LimitMinor int64 `json:"limit_minor,omitempty"`
	// Capped is set once the card can approve nothing more (its limit is 0, or it is closed):
	// every card but the current one is capped before the current one is funded. Read is set
	// once what it spent up to the cap has been read from the issuer.
	Capped bool `json:"capped,omitempty"`
	Read   bool `json:"read,omitempty"`
	// LegacySpentMinor is the per-card spend runs before UsageMinor carried; resume adopts it.
	LegacySpentMinor int64 `json:"spent_minor,omitempty"`
	// Freezes counts automatic freezes of this card, for revoke_after_freezes.
	Freezes int `json:"freezes,omitempty"`
}

// ClosingRef is a replaced card kept open for in-flight authorizations to settle.
type ClosingRef struct {
	Card    CardRef   `json:"card"`
	CloseAt time.Time `json:"close_at"`
	Reason  string    `json:"reason"`
}

// PendingIssue is a card issue that failed and will be retried with the same input.
type PendingIssue struct {
	Input    IssueCardInput `json:"input"`
	RetryAt  time.Time      `json:"retry_at"`
	Failures int            `json:"failures"`
	// Rebuild is set when the issuer rejected the request as invalid: issuers do not
	// remember a key whose request failed validation, so the retry may carry fresh limits
	// under the same key. Any other failure may have created the card, so the retry repeats
	// the input exactly.
	Rebuild bool `json:"rebuild,omitempty"`
}

// Bounds on carried state, so continue-as-new input stays small.
const (
	maxSeen           = 2048
	maxRecentDeclines = 20
)
