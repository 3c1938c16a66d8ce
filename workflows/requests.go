package workflows

import (
	"encoding/json"
	"time"

	"github.com/cardwarden/cardwarden/money"
)

// ReasonRequest is the payload of the rotate, freeze, unfreeze and retire updates:
// {"reason": "…"}. Actor optionally names who asked, for the audit log.
type ReasonRequest struct {
	Reason string `json:"reason"`
	Actor  string `json:"actor,omitempty"`

	decodeErr error // unknown fields or wrong types, reported by the validator
}

// UnmarshalJSON decodes strictly but never fails, so a bad payload reaches the validator and
// is rejected with a message naming the field instead of failing a workflow task.
func (r *ReasonRequest) UnmarshalJSON(b []byte) error {
	var doc struct {
		Reason string `json:"reason"`
		Actor  string `json:"actor"`
	}
	if err := strictDecode(b, &doc, "request"); err != nil {
		*r = ReasonRequest{decodeErr: err}
		return nil
	}
	*r = ReasonRequest{Reason: doc.Reason, Actor: doc.Actor}
	return nil
}

// Validate checks the payload itself; whether the update is allowed now is the workflow's
// validator's business.
func (r ReasonRequest) Validate() error {
	var errs FieldErrors
	if r.decodeErr != nil {
		return r.decodeErr
	}
	if len(r.Reason) > 500 {
		errs.add("request.reason", "longer than 500 characters")
	}
	if len(r.Actor) > 200 {
		errs.add("request.actor", "longer than 200 characters")
	}
	return errs.err()
}

// BudgetRequest is the payload of the set-budget update:
// {"daily_limit_usd": 40, "monthly_limit_usd": "600.00"}. Either limit may be left out to keep
// it; clear_monthly_limit removes the monthly cap.
type BudgetRequest struct {
	DailyLimitUSD     *money.Amount `json:"daily_limit_usd,omitempty"`
	MonthlyLimitUSD   *money.Amount `json:"monthly_limit_usd,omitempty"`
	ClearMonthlyLimit bool          `json:"clear_monthly_limit,omitempty"`
	Reason            string        `json:"reason,omitempty"`
	Actor             string        `json:"actor,omitempty"`

	decodeErr error
}

// Apply returns the daily and monthly limits after the request, from the current ones.
func (r BudgetRequest) Apply(daily money.Amount, monthly *money.Amount) (money.Amount, *money.Amount) {
	if r.DailyLimitUSD != nil {
		daily = *r.DailyLimitUSD
	}
	if r.MonthlyLimitUSD != nil {
		m := *r.MonthlyLimitUSD
		monthly = &m
	}
	if r.ClearMonthlyLimit {
		monthly = nil
	}
	return daily, monthly
}

// UnmarshalJSON decodes strictly but never fails; see ReasonRequest.UnmarshalJSON.
func (r *BudgetRequest) UnmarshalJSON(b []byte) error {
	var doc struct {
		DailyLimitUSD     json.RawMessage `json:"daily_limit_usd"`
		MonthlyLimitUSD   json.RawMessage `json:"monthly_limit_usd"`
		ClearMonthlyLimit bool            `json:"clear_monthly_limit"`
		Reason            string          `json:"reason"`
		Actor             string          `json:"actor"`
	}
	if err := strictDecode(b, &doc, "request"); err != nil {
		*r = BudgetRequest{decodeErr: err}
		return nil
	}
	var errs FieldErrors
	out := BudgetRequest{ClearMonthlyLimit: doc.ClearMonthlyLimit, Reason: doc.Reason, Actor: doc.Actor}
	out.DailyLimitUSD = decodeAmount(doc.DailyLimitUSD, "request.daily_limit_usd", &errs)
	out.MonthlyLimitUSD = decodeAmount(doc.MonthlyLimitUSD, "request.monthly_limit_usd", &errs)
	out.decodeErr = errs.err()
	*r = out
	return nil
}

func decodeAmount(raw json.RawMessage, field string, errs *FieldErrors) *money.Amount {
	if isAbsent(raw) {
		return nil
	}
	m, err := money.ParseJSON(raw)
	if err != nil {
		errs.add(field, "%s", err.Error())
		return nil
	}
	a := money.Amount(m)
	return &a
}

// Validate checks the payload: at least one change, positive amounts.
func (r BudgetRequest) Validate() error {
	if r.decodeErr != nil {
		return r.decodeErr
	}
	var errs FieldErrors
	if r.DailyLimitUSD == nil && r.MonthlyLimitUSD == nil && !r.ClearMonthlyLimit {
		errs.add("request", "nothing to change: give daily_limit_usd, monthly_limit_usd or clear_monthly_limit")
	}
	if r.DailyLimitUSD != nil && *r.DailyLimitUSD <= 0 {
		errs.add("request.daily_limit_usd", "must be greater than 0, got %s", *r.DailyLimitUSD)
	}
	if r.MonthlyLimitUSD != nil && *r.MonthlyLimitUSD <= 0 {
		errs.add("request.monthly_limit_usd", "must be greater than 0, got %s", *r.MonthlyLimitUSD)
	}
	if r.MonthlyLimitUSD != nil && r.ClearMonthlyLimit {
		errs.add("request.clear_monthly_limit", "cannot be combined with monthly_limit_usd")
	}
	if len(r.Reason) > 500 {
		errs.add("request.reason", "longer than 500 characters")
	}
	return errs.err()
}

// Result is what the workflow returns when the agent is retired.
type Result struct {
	AgentID      string    `json:"agent_id"`
	Status       Status    `json:"status"`
	Generation   int       `json:"generation"`
	Rotations    int       `json:"rotations"`
	Resets       int       `json:"resets"`
	SignalsTotal int64     `json:"signals_total"`
	RetiredAt    time.Time `json:"retired_at"`
	Reason       string    `json:"reason,omitempty"`
}
