package workflows

import (
	"time"

	"github.com/cardwarden/cardwarden/money"
)

// StateView is the result of the "state" query and of every update. Money fields (*_usd) are
// decimal strings with two places ("12.50"), never JSON numbers, so no reader turns them into
// floats; times are RFC 3339 UTC.
type StateView struct {
	AgentID        string        `json:"agent_id"`
	Label          string        `json:"label,omitempty"`
	Issuer         string        `json:"issuer"`
	Status         Status        `json:"status"`
	StatusReason   string        `json:"status_reason,omitempty"`
	Card           *CardView     `json:"card"`
	ClosingCards   []CardView    `json:"closing_cards,omitempty"`
	Budget         BudgetView    `json:"budget"`
	Generation     int           `json:"generation"`
	Rotations      int           `json:"rotations"`
	Reissues       int           `json:"reissues"`
	Resets         int           `json:"resets"`
	Freezes        int           `json:"freezes"`
	Revocations    int           `json:"revocations"`
	RecentDeclines []DeclineView `json:"recent_declines"`
	Timezone       string        `json:"timezone"`
	NextReset      time.Time     `json:"next_reset"`
	NextRotation   *time.Time    `json:"next_rotation,omitempty"`
	RetireAt       *time.Time    `json:"retire_at,omitempty"`
	IssuePending   bool          `json:"issue_pending,omitempty"`
	// Decisions are the most recent real-time decisions, newest last (at most 20).
	Decisions    []DecisionView `json:"decisions,omitempty"`
	SignalsTotal int64          `json:"signals_total"`
	Run          int            `json:"run"`
	Policy       Policy         `json:"policy"`
}

// CardView is a card in the state view: never its number or CVC.
type CardView struct {
	ID         string       `json:"id"`
	Last4      string       `json:"last4"`
	Status     string       `json:"status"`
	Generation int          `json:"generation"`
	IssuedAt   time.Time    `json:"issued_at"`
	ExpiresAt  time.Time    `json:"expires_at"`
	RotateAt   time.Time    `json:"rotate_at"`
	SpentUSD   money.Amount `json:"spent_usd"`
	// LimitUSD is the lifetime limit cardwarden last put on the card: what it has spent plus
	// what is left of the period when funded, 0 when capped. Absent for cards from runs that
	// did not keep it and on issuers whose limits cannot change.
	LimitUSD *money.Amount `json:"limit_usd,omitempty"`
	CloseAt  *time.Time    `json:"close_at,omitempty"`
}

// BudgetView is today's budget. RemainingMonthUSD is absent without a monthly cap.
type BudgetView struct {
	Currency string `json:"currency"`
	Day      string `json:"day"`
	// PeriodStart is the reset instant that began the current budget period.
	PeriodStart       time.Time    `json:"period_start,omitzero"`
	DailyLimitUSD     money.Amount `json:"daily_limit_usd"`
	SpentTodayUSD     money.Amount `json:"spent_today_usd"`
	RemainingTodayUSD money.Amount `json:"remaining_today_usd"`
	OverspendTodayUSD money.Amount `json:"overspend_today_usd"`
	// ReservedUSD is what real-time decisions approved whose authorizations have not arrived.
	ReservedUSD       money.Amount  `json:"reserved_usd"`
	MonthlyLimitUSD   *money.Amount `json:"monthly_limit_usd,omitempty"`
	SpentMonthUSD     money.Amount  `json:"spent_month_usd"`
	RemainingMonthUSD *money.Amount `json:"remaining_month_usd,omitempty"`
}

// DeclineView is one recent decline.
type DeclineView struct {
	At        time.Time    `json:"at"`
	EventID   string       `json:"event_id"`
	CardID    string       `json:"card_id"`
	Reason    string       `json:"reason"`
	AmountUSD money.Amount `json:"amount_usd"`
	Merchant  string       `json:"merchant,omitempty"`
}

func (c CardRef) view() CardView {
	v := CardView{ID: c.ID, Last4: c.Last4, Status: c.Status, Generation: c.Generation,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, RotateAt: c.RotateAt, SpentUSD: money.Amount(c.UsageMinor)}
	if c.LimitMinor > 0 || c.Capped {
		l := money.Amount(c.LimitMinor)
		v.LimitUSD = &l
	}
	return v
}

// View builds the query result from a policy and state.
func View(p Policy, s *State) StateView {
	v := StateView{
		AgentID: p.AgentID, Label: p.Label, Issuer: p.Issuer, Status: s.Status, StatusReason: s.StatusReason,
		Generation: s.Generation, Rotations: s.Rotations, Reissues: s.Reissues, Resets: s.Resets,
		Freezes: s.Freezes, Revocations: s.Revocations, Timezone: p.Timezone, NextReset: s.NextReset,
		RetireAt: p.RetireAt, IssuePending: s.Pending != nil, SignalsTotal: s.SignalsTotal, Run: s.Run, Policy: p,
		RecentDeclines: append([]DeclineView{}, s.RecentDeclines...),
	}
	if s.Card != nil {
		cv := s.Card.view()
		v.Card = &cv
	}
	for _, c := range s.Closing {
		cv := c.Card.view()
		at := c.CloseAt
		cv.CloseAt = &at
		v.ClosingCards = append(v.ClosingCards, cv)
	}
	if !s.NextRotation.IsZero() {
		t := s.NextRotation
		v.NextRotation = &t
	}
	monthly := p.MonthlyLimitMinor()
	v.Budget = BudgetView{
		Currency: p.Currency, Day: s.Budget.Day, PeriodStart: s.Budget.PeriodStart, DailyLimitUSD: p.DailyLimitUSD,
		SpentTodayUSD:     money.Amount(s.Budget.SpentTodayMinor),
		RemainingTodayUSD: money.Amount(s.Budget.RemainingToday(p.DailyLimitUSD.Minor(), monthly)),
		OverspendTodayUSD: money.Amount(s.Budget.OverspendTodayMinor),
		MonthlyLimitUSD:   p.MonthlyLimitUSD,
		SpentMonthUSD:     money.Amount(s.Budget.SpentMonthMinor),
	}
	for _, r := range s.Reservations {
		v.Budget.ReservedUSD += money.Amount(r.AmountMinor)
	}
	for _, d := range s.Decisions[max(0, len(s.Decisions)-20):] {
		v.Decisions = append(v.Decisions, d.view())
	}
	if monthly > 0 {
		r := money.Amount(s.Budget.RemainingMonth(monthly))
		v.Budget.RemainingMonthUSD = &r
	}
	return v
}
