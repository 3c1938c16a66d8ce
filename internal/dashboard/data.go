package dashboard

import (
	"time"

	"github.com/cardwarden/cardwarden/money"
	"github.com/cardwarden/cardwarden/workflows"
)

// Fleet is GET /dashboard/api/fleet.
type Fleet struct {
	GeneratedAt time.Time  `json:"generated_at"`
	PollMS      int64      `json:"poll_ms"`
	TemporalUI  string     `json:"temporal_ui,omitempty"`
	Agents      []AgentRow `json:"agents"`
	Totals      Totals     `json:"totals"`
}

// Totals summarise the fleet.
type Totals struct {
	Agents        int            `json:"agents"`
	ByStatus      map[string]int `json:"by_status"`
	Live          int            `json:"live"` // agents whose row came from their workflow
	SpentTodayUSD money.Amount   `json:"spent_today_usd"`
}

// AgentRow is one agent in the fleet table. Money is decimal strings ("12.50"), never floats.
type AgentRow struct {
	AgentID      string `json:"agent_id"`
	Label        string `json:"label,omitempty"`
	Issuer       string `json:"issuer"`
	TeamID       string `json:"team_id,omitempty"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason,omitempty"`
	// Live is true when the row comes from the workflow's state query, false when the
	// workflow did not answer (or has ended) and the row is the store's view.
	Live          bool         `json:"live"`
	Card          *CardBrief   `json:"card"`
	Day           string       `json:"day"`
	Currency      string       `json:"currency"`
	SpentTodayUSD money.Amount `json:"spent_today_usd"`
	DailyLimitUSD money.Amount `json:"daily_limit_usd"`
	// ReservedUSD is what real-time decisions approved whose authorizations have not arrived
	// (0 in the store's view); RemainingTodayUSD is the limit minus spend and reservations.
	ReservedUSD       money.Amount `json:"reserved_usd"`
	RemainingTodayUSD money.Amount `json:"remaining_today_usd"`
	SpentPct          int64        `json:"spent_pct"` // of the daily limit, may exceed 100
	OverspendTodayUSD money.Amount `json:"overspend_today_usd"`
	Rotations         int          `json:"rotations"`
	Freezes           int          `json:"freezes"`
	Revocations       int          `json:"revocations"`
	LastDecline       *Decline     `json:"last_decline"`
	WorkflowURL       string       `json:"workflow_url,omitempty"`
}

// CardBrief is the agent's current card: never its number.
type CardBrief struct {
	Last4      string `json:"last4"`
	Status     string `json:"status"`
	Generation int    `json:"generation"`
}

// Decline is one declined authorization.
type Decline struct {
	At        time.Time    `json:"at"`
	Reason    string       `json:"reason"`
	AmountUSD money.Amount `json:"amount_usd"`
	Merchant  string       `json:"merchant,omitempty"`
}

// AgentDetail is GET /dashboard/api/agents/{id}.
type AgentDetail struct {
	Agent    AgentRow             `json:"agent"`
	State    *workflows.StateView `json:"state,omitempty"`
	Timezone string               `json:"timezone"`
	// Daily is the spend of the last 30 days in the agent's zone, oldest first, zeros filled.
	Daily []DayPoint `json:"daily"`
	// Hourly is today's spend by local hour, from the ledger (0–23); NowHour is the current
	// local hour, where the chart's running total stops.
	Hourly  []HourPoint `json:"hourly"`
	NowHour int         `json:"now_hour"`
	// Timeline holds the declines and the freezes, revocations, unfreezes and rotations of the
	// last 7 days, oldest first.
	Timeline     []Mark     `json:"timeline"`
	TimelineFrom time.Time  `json:"timeline_from"`
	TimelineTo   time.Time  `json:"timeline_to"`
	Cards        []CardRow  `json:"cards"`
	Alerts       []AlertRow `json:"alerts"`
	Events       []EventRow `json:"events"`
	// Decisions are the agent's recent real-time decisions, newest first.
	Decisions []DecisionRow `json:"decisions"`
}

// DayPoint is one day's spend.
type DayPoint struct {
	Day          string       `json:"day"`
	SpentUSD     money.Amount `json:"spent_usd"`
	OverspendUSD money.Amount `json:"overspend_usd"`
	Declines     int          `json:"declines"`
}

// HourPoint is one hour's spend today.
type HourPoint struct {
	Hour     int          `json:"hour"`
	SpentUSD money.Amount `json:"spent_usd"`
	Declines int          `json:"declines"`
}

// Mark types on the timeline.
const (
	MarkDecline  = "decline"
	MarkFreeze   = "freeze"
	MarkRevoke   = "revoke"
	MarkUnfreeze = "unfreeze"
	MarkRotate   = "rotate"
	MarkIssue    = "issue"
	MarkRetire   = "retire"
)

// Mark is one point on the decline timeline.
type Mark struct {
	At        time.Time     `json:"at"`
	Type      string        `json:"type"`
	Reason    string        `json:"reason,omitempty"`
	Actor     string        `json:"actor,omitempty"`
	AmountUSD *money.Amount `json:"amount_usd,omitempty"`
	Merchant  string        `json:"merchant,omitempty"`
}

// CardRow is one card generation.
type CardRow struct {
	Generation    int          `json:"generation"`
	Last4         string       `json:"last4"`
	Status        string       `json:"status"`
	Issuer        string       `json:"issuer"`
	IssuerCardID  string       `json:"issuer_card_id"`
	IssuedAt      time.Time    `json:"issued_at"`
	ClosedAt      *time.Time   `json:"closed_at,omitempty"`
	DailyLimitUSD money.Amount `json:"daily_limit_usd"`
}

// AlertRow is one alert sent (or pending) for the agent.
type AlertRow struct {
	Kind      string     `json:"kind"`
	Period    string     `json:"period"`
	Message   string     `json:"message"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
}

// EventRow is one ledger event.
type EventRow struct {
	At        time.Time    `json:"at"`
	Kind      string       `json:"kind"`
	Approved  bool         `json:"approved"`
	Reason    string       `json:"reason,omitempty"`
	AmountUSD money.Amount `json:"amount_usd"`
	Merchant  string       `json:"merchant,omitempty"`
	CardID    string       `json:"card_id"`
}

// DecisionRow is one real-time decision on a purchase: cardwarden's answer to the issuer.
type DecisionRow struct {
	At              time.Time    `json:"at"`
	AuthorizationID string       `json:"authorization_id"`
	Issuer          string       `json:"issuer,omitempty"`
	AgentID         string       `json:"agent_id"`
	TeamID          string       `json:"team_id,omitempty"`
	Approved        bool         `json:"approved"`
	Reason          string       `json:"reason"`
	AmountUSD       money.Amount `json:"amount_usd"`
	Currency        string       `json:"currency,omitempty"`
	Merchant        string       `json:"merchant,omitempty"`
	MCC             string       `json:"mcc,omitempty"`
	// Fallback marks an answer given without the agent's workflow (it did not answer in
	// time): the agent's on_decision_timeout.
	Fallback  bool `json:"fallback"`
	LatencyMS int  `json:"latency_ms,omitempty"`
	// Recorded is true for a decision from the decisions table, false for one only the
	// workflow's state holds so far (its row is written after the answer).
	Recorded bool `json:"recorded"`
}

// TeamList is GET /dashboard/api/teams.
type TeamList struct {
	GeneratedAt time.Time `json:"generated_at"`
	PollMS      int64     `json:"poll_ms"`
	Teams       []TeamRow `json:"teams"`
}

// TeamRow is one team's budget. Without Live (its workflow did not answer) only the id and
// the members the store knows are filled in.
type TeamRow struct {
	TeamID            string        `json:"team_id"`
	Label             string        `json:"label,omitempty"`
	Live              bool          `json:"live"`
	Day               string        `json:"day,omitempty"`
	Timezone          string        `json:"timezone,omitempty"`
	DailyLimitUSD     money.Amount  `json:"daily_limit_usd"`
	MonthlyLimitUSD   *money.Amount `json:"monthly_limit_usd,omitempty"`
	SpentTodayUSD     money.Amount  `json:"spent_today_usd"`
	ReservedUSD       money.Amount  `json:"reserved_usd"`
	RemainingTodayUSD money.Amount  `json:"remaining_today_usd"`
	OverspendTodayUSD money.Amount  `json:"overspend_today_usd"`
	SpentMonthUSD     money.Amount  `json:"spent_month_usd"`
	SpentPct          int64         `json:"spent_pct"` // of the daily limit, may exceed 100
	NextReset         *time.Time    `json:"next_reset,omitempty"`
	// Members are the team's agents: those whose policy names the team and those the team's
	// workflow has seen, sorted.
	Members     []string `json:"members"`
	WorkflowURL string   `json:"workflow_url,omitempty"`
}

// TeamDetail is GET /dashboard/api/teams/{id}.
type TeamDetail struct {
	Team TeamRow `json:"team"`
	// Agents are the member agents' rows, as in the fleet table (a member the store does not
	// know has only its id and status "unknown").
	Agents []AgentRow `json:"agents"`
	// Decisions are the recent real-time decisions on the members' purchases, newest first.
	Decisions []DecisionRow `json:"decisions"`
}
