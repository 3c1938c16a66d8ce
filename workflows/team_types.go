package workflows

import (
	"strings"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/money"
)

// The Team workflow's contract: its policy, requests, answers and state (team.go runs it).

// TeamPolicy is a team's budget. Only team_id and daily_limit_usd are required.
type TeamPolicy struct {
	TeamID          string        `json:"team_id"`
	Label           string        `json:"label,omitempty"`
	DailyLimitUSD   money.Amount  `json:"daily_limit_usd"`
	MonthlyLimitUSD *money.Amount `json:"monthly_limit_usd,omitempty"`
	Timezone        string        `json:"timezone,omitempty"`
	ResetCron       string        `json:"reset_cron,omitempty"`
}

// Normalize fills in defaults and checks every field, naming the bad ones.
func (p TeamPolicy) Normalize() (TeamPolicy, error) {
	var errs FieldErrors
	if p.TeamID == "" {
		errs.add("team.team_id", "required")
	} else if err := CheckAgentID(p.TeamID); err != nil {
		errs.add("team.team_id", "%s", strings.Replace(err.Error(), "agent id", "team id", 1))
	}
	if len(p.Label) > 200 {
		errs.add("team.label", "longer than 200 characters")
	}
	if p.DailyLimitUSD <= 0 || p.DailyLimitUSD.Minor() > money.MaxMinor {
		errs.add("team.daily_limit_usd", "must be greater than 0, got %s", p.DailyLimitUSD)
	}
	if p.MonthlyLimitUSD != nil && (*p.MonthlyLimitUSD <= 0 || p.MonthlyLimitUSD.Minor() > money.MaxMinor) {
		errs.add("team.monthly_limit_usd", "must be greater than 0, got %s", *p.MonthlyLimitUSD)
	}
	p.Timezone = orDefault(p.Timezone, DefaultTimezone)
	if _, err := LoadLocation(p.Timezone); err != nil {
		errs.add("team.timezone", "%s", err.Error())
	}
	p.ResetCron = orDefault(p.ResetCron, DefaultResetCron)
	if _, err := ParseCron(p.ResetCron); err != nil {
		errs.add("team.reset_cron", "%s", err.Error())
	}
	if err := errs.err(); err != nil {
		return TeamPolicy{}, err
	}
	return p, nil
}

// MonthlyLimitMinor is the monthly cap in minor units, 0 without one.
func (p TeamPolicy) MonthlyLimitMinor() int64 {
	if p.MonthlyLimitUSD == nil {
		return 0
	}
	return p.MonthlyLimitUSD.Minor()
}

// TeamInput is the Team workflow's argument: the policy and, after continue-as-new, the state.
type TeamInput struct {
	TeamPolicy
	State *TeamState `json:"state,omitempty"`
}

// TeamState is everything the team workflow knows, carried through continue-as-new.
type TeamState struct {
	Budget       Budget            `json:"budget"`
	LastReset    time.Time         `json:"last_reset"`
	NextReset    time.Time         `json:"next_reset"`
	Reservations []TeamReservation `json:"reservations,omitempty"`
	Decisions    []TeamDecision    `json:"decisions,omitempty"`
	Members      []string          `json:"members,omitempty"`
	Seen         []string          `json:"seen,omitempty"`
	Run          int               `json:"run"`
}

// TeamEvent is a member agent's money event.
type TeamEvent struct {
	AgentID string           `json:"agent_id"`
	Event   cardwarden.Event `json:"event"`
}

// TeamReserveRequest asks the team to reserve a purchase.
type TeamReserveRequest struct {
	AuthorizationID string `json:"authorization_id"`
	AgentID         string `json:"agent_id"`
	AmountMinor     int64  `json:"amount_minor"`
}

// Validate checks a reserve request.
func (r TeamReserveRequest) Validate() error {
	var errs FieldErrors
	if r.AuthorizationID == "" || len(r.AuthorizationID) > 200 {
		errs.add("request.authorization_id", "required, at most 200 characters")
	}
	if err := CheckAgentID(r.AgentID); err != nil {
		errs.add("request.agent_id", "%s", err.Error())
	}
	if err := money.CheckBound(r.AmountMinor); err != nil {
		errs.add("request.amount_minor", "%s", err.Error())
	}
	return errs.err()
}

// TeamReserveResult is the team's decision.
type TeamReserveResult struct {
	Approved       bool   `json:"approved"`
	Reason         string `json:"reason"`
	RemainingMinor int64  `json:"remaining_minor"`
	Repeated       bool   `json:"repeated,omitempty"`
}

// TeamReleaseRequest gives back a reservation whose purchase the agent declined.
type TeamReleaseRequest struct {
	AuthorizationID string `json:"authorization_id"`
}

// Validate checks a release request.
func (r TeamReleaseRequest) Validate() error {
	if r.AuthorizationID == "" || len(r.AuthorizationID) > 200 {
		return FieldErrors{{Field: "request.authorization_id", Msg: "required, at most 200 characters"}}
	}
	return nil
}

// TeamReservation is a purchase the team approved whose authorization has not arrived.
type TeamReservation struct {
	AuthorizationID string    `json:"authorization_id"`
	AgentID         string    `json:"agent_id"`
	AmountMinor     int64     `json:"amount_minor"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// TeamDecision is one of the team's decisions.
type TeamDecision struct {
	AuthorizationID string    `json:"authorization_id"`
	AgentID         string    `json:"agent_id"`
	At              time.Time `json:"at"`
	AmountMinor     int64     `json:"amount_minor"`
	Approved        bool      `json:"approved"`
}

// TeamView is the team's state query.
type TeamView struct {
	TeamID            string         `json:"team_id"`
	Label             string         `json:"label,omitempty"`
	Policy            TeamPolicy     `json:"policy"`
	Day               string         `json:"day"`
	PeriodStart       time.Time      `json:"period_start"`
	NextReset         time.Time      `json:"next_reset"`
	SpentTodayUSD     money.Amount   `json:"spent_today_usd"`
	OverspendTodayUSD money.Amount   `json:"overspend_today_usd"`
	ReservedUSD       money.Amount   `json:"reserved_usd"`
	RemainingTodayUSD money.Amount   `json:"remaining_today_usd"`
	SpentMonthUSD     money.Amount   `json:"spent_month_usd"`
	Members           []string       `json:"members"`
	Decisions         []DecisionView `json:"decisions,omitempty"`
	Run               int            `json:"run"`
}
