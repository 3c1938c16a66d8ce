package issuersim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cardJSON is the public view of a card: never its number or CVC.
type cardJSON struct {
	ID          string            `json:"id"`
	Object      string            `json:"object"`
	Status      string            `json:"status"`
	Label       string            `json:"label"`
	Currency    string            `json:"currency"`
	Last4       string            `json:"last4"`
	ExpMonth    int               `json:"exp_month"`
	ExpYear     int               `json:"exp_year"`
	Expired     bool              `json:"expired"`
	Limits      []limit           `json:"limits"`
	AllowedMCCs []string          `json:"allowed_mccs,omitempty"`
	BlockedMCCs []string          `json:"blocked_mccs,omitempty"`
	Metadata    map[string]string `json:"metadata"`
	Spend       spendJSON         `json:"spend"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ClosedAt    *time.Time        `json:"closed_at,omitempty"`
}

// spendJSON is what counts against each window now: pending holds plus captures (refunds
// reduce only all_time).
type spendJSON struct {
	DailyMinor   int64 `json:"daily_minor"`
	WeeklyMinor  int64 `json:"weekly_minor"`
	MonthlyMinor int64 `json:"monthly_minor"`
	AllTimeMinor int64 `json:"all_time_minor"`
	HeldMinor    int64 `json:"held_minor"`
}

func (s *Server) cardViewLocked(c *card) cardJSON {
	now := s.nowLocked()
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	limits := c.Limits
	if limits == nil {
		limits = []limit{}
	}
	v := cardJSON{
		ID: c.ID, Object: "card", Status: c.Status, Label: c.Label, Currency: c.Currency, Last4: c.last4(),
		ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, Expired: !now.Before(c.expiresAt()), Limits: limits,
		AllowedMCCs: c.AllowedMCCs, BlockedMCCs: c.BlockedMCCs, Metadata: md,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ClosedAt: c.ClosedAt,
	}
	v.Spend = spendJSON{
		DailyMinor:   s.usageLocked(c, intervalDaily, now),
		WeeklyMinor:  s.usageLocked(c, intervalWeekly, now),
		MonthlyMinor: s.usageLocked(c, intervalMonthly, now),
		AllTimeMinor: s.usageLocked(c, intervalAllTime, now),
	}
	for _, a := range s.st.cardAuths[c.ID] {
		if a.Status == authPending {
			v.Spend.HeldMinor += a.HoldMinor
		}
	}
	return v
}

// windowStart is the start of the UTC calendar window containing now: midnight for daily,
// Sunday midnight for weekly, the 1st for monthly (Stripe's and Marqeta's anchors).
func windowStart(interval string, now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch interval {
	case intervalDaily:
		return day
	case intervalWeekly:
		return day.AddDate(0, 0, -int(day.Weekday()))
	case intervalMonthly:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// usageLocked is the spend counted against interval's current window: holds of pending
// authorizations made in the window plus captures and force-posts made in it. Refunds give
// back only all-time budget (Lithic's rule since 2024: settled credits do not restore
// daily or monthly limits).
func (s *Server) usageLocked(c *card, interval string, now time.Time) int64 {
	start := windowStart(interval, now)
	var sum int64
	for _, a := range s.st.cardAuths[c.ID] {
		if a.Status == authPending && !a.CreatedAt.Before(start) {
			sum += a.HoldMinor
		}
	}
	for _, t := range s.st.cardTxns[c.ID] {
		if t.CreatedAt.Before(start) {
			continue
		}
		switch t.Kind {
		case txnCapture, txnForceCapture:
			sum += t.AmountMinor
		case txnRefund:
			if interval == intervalAllTime {
				sum -= t.AmountMinor
			}
		}
	}
	return sum
}

type cardParams struct {
	Label       string            `json:"label"`
	Currency    string            `json:"currency"`
	Limits      []limit           `json:"limits"`
	Metadata    map[string]string `json:"metadata"`
	ExpMonth    int               `json:"exp_month"`
	ExpYear     int               `json:"exp_year"`
	AllowedMCCs []string          `json:"allowed_mccs"`
	BlockedMCCs []string          `json:"blocked_mccs"`
}

func validateLimits(ls []limit) error {
	seen := map[string]bool{}
	for i, l := range ls {
		if !validIntervals[l.Interval] {
			return fmt.Errorf("limits[%d].interval %q: want one of per_authorization, daily, weekly, monthly, all_time", i, l.Interval)
		}
		if l.AmountMinor < 0 || l.AmountMinor > maxLimitMinor {
			return fmt.Errorf("limits[%d].amount_minor must be between 0 and %d", i, maxLimitMinor)
		}
		if seen[l.Interval] {
			return fmt.Errorf("limits[%d]: interval %q given twice", i, l.Interval)
		}
		seen[l.Interval] = true
	}
	return nil
}

func (p *cardParams) validate() error {
	if len(p.Label) > 500 {
		return fmt.Errorf("label longer than 500 characters")
	}
	p.Currency = strings.ToLower(strings.TrimSpace(p.Currency))
	if p.Currency == "" {
		p.Currency = "usd"
	}
	if len(p.Currency) != 3 || strings.Trim(p.Currency, "abcdefghijklmnopqrstuvwxyz") != "" {
		return fmt.Errorf("currency %q: want a 3-letter ISO code", p.Currency)
	}
	if err := validateLimits(p.Limits); err != nil {
		return err
	}
	if (p.ExpMonth == 0) != (p.ExpYear == 0) {
		return fmt.Errorf("exp_month and exp_year go together")
	}
	if p.ExpMonth != 0 && (p.ExpMonth < 1 || p.ExpMonth > 12 || p.ExpYear < 2000 || p.ExpYear > 2100) {
		return fmt.Errorf("exp_month/exp_year %d/%d out of range", p.ExpMonth, p.ExpYear)
	}
	if len(p.AllowedMCCs) > 0 && len(p.BlockedMCCs) > 0 {
		return fmt.Errorf("allowed_mccs and blocked_mccs are mutually exclusive")
	}
	for _, m := range append(append([]string{}, p.AllowedMCCs...), p.BlockedMCCs...) {
		if !isMCC(m) {
			return fmt.Errorf("mcc %q: want 4 digits", m)
		}
	}
	if len(p.Metadata) > 50 {
		return fmt.Errorf("at most 50 metadata keys")
	}
	return nil
}

// createCardLocked issues a card; validation is the caller's.
func (s *Server) createCardLocked(p cardParams, origin string) *card {
	now := s.nowLocked()
	c := &card{
		ID: newID("card_"), CVC: randDigits(3), Status: statusActive, Currency: p.Currency, Label: p.Label,
		Metadata: p.Metadata, Limits: p.Limits, AllowedMCCs: p.AllowedMCCs, BlockedMCCs: p.BlockedMCCs,
		Origin: origin, CreatedAt: now, UpdatedAt: now, ExpMonth: p.ExpMonth, ExpYear: p.ExpYear,
	}
	for {
		c.Number = newCardNumber()
		if s.st.byNumber[c.Number] == nil {
			break
		}
	}
	if c.ExpMonth == 0 {
		// Three years out, like most virtual card programs.
		c.ExpMonth, c.ExpYear = int(now.Month()), now.Year()+3
	}
	s.st.addCard(c)
	s.emitLocked(eventCardCreated, c.ID, s.cardViewLocked(c))
	s.changedLocked(true)
	return c
}

// setStatusLocked moves a card to status. Closed is terminal: any change to a closed card
// answers 409 already_closed, which adapters map to ErrAlreadyClosed.
func (s *Server) setStatusLocked(c *card, status string) error {
	if c.Status == statusClosed {
		return errAlreadyClosed
	}
	if c.Status == status {
		return nil
	}
	now := s.nowLocked()
	c.Status, c.UpdatedAt = status, now
	if status == statusClosed {
		c.ClosedAt = &now
	}
	s.emitLocked(eventCardUpdated, c.ID, s.cardViewLocked(c))
	s.changedLocked(true)
	return nil
}

type sentinel string

func (e sentinel) Error() string { return string(e) }

const errAlreadyClosed = sentinel("card is closed")

// Native card handlers.

func (s *Server) nativeCreateCard(r *http.Request, body []byte) result {
	var p cardParams
	if err := decodeStrict(body, &p); err != nil {
		return invalid("%v", err)
	}
	if err := p.validate(); err != nil {
		return invalid("%v", err)
	}
	c := s.createCardLocked(p, originNative)
	return created(s.cardViewLocked(c))
}

func (s *Server) cardFromPath(r *http.Request) (*card, result, bool) {
	id := r.PathValue("id")
	c := s.st.cards[id]
	if c == nil {
		return nil, notFound("card", id), false
	}
	return c, result{}, true
}

func (s *Server) nativeGetCard(r *http.Request, _ []byte) result {
	c, res, found := s.cardFromPath(r)
	if !found {
		return res
	}
	return ok(s.cardViewLocked(c))
}

type listJSON struct {
	Object  string `json:"object"`
	Data    any    `json:"data"`
	HasMore bool   `json:"has_more"`
}

func pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("limit %q: want 1..1000", v)
	}
	return n, nil
}

func (s *Server) nativeListCards(r *http.Request, _ []byte) result {
	q := r.URL.Query()
	n, err := pageLimit(r)
	if err != nil {
		return invalid("%v", err)
	}
	status, label, after, agent := q.Get("status"), q.Get("label"), q.Get("starting_after"), q.Get("agent_id")
	out := []cardJSON{}
	started := after == ""
	more := false
	for _, c := range s.st.sortedCards() {
		if !started {
			started = c.ID == after
			continue
		}
		if (status != "" && c.Status != status) || (label != "" && c.Label != label) || (agent != "" && c.Metadata["agent_id"] != agent) {
			continue
		}
		if len(out) == n {
			more = true
			break
		}
		out = append(out, s.cardViewLocked(c))
	}
	return ok(listJSON{Object: "list", Data: out, HasMore: more})
}

func (s *Server) nativeUpdateLimits(r *http.Request, body []byte) result {
	c, res, found := s.cardFromPath(r)
	if !found {
		return res
	}
	var p struct {
		Limits []limit `json:"limits"`
	}
	if err := decodeStrict(body, &p); err != nil {
		return invalid("%v", err)
	}
	if err := validateLimits(p.Limits); err != nil {
		return invalid("%v", err)
	}
	if c.Status == statusClosed {
		return closedErr(c)
	}
	// The new set replaces the old one and applies from the next authorization.
	c.Limits, c.UpdatedAt = p.Limits, s.nowLocked()
	s.emitLocked(eventCardUpdated, c.ID, s.cardViewLocked(c))
	s.changedLocked(true)
	return ok(s.cardViewLocked(c))
}

func closedErr(c *card) result {
	return nativeErr(http.StatusConflict, "already_closed", fmt.Sprintf("card %s is closed; closing is permanent", c.ID))
}

func (s *Server) nativeSetStatus(status string) func(*http.Request, []byte) result {
	return func(r *http.Request, body []byte) result {
		c, res, found := s.cardFromPath(r)
		if !found {
			return res
		}
		var p struct{}
		if err := decodeStrict(body, &p); err != nil {
			return invalid("%v", err)
		}
		if err := s.setStatusLocked(c, status); err != nil {
			return closedErr(c)
		}
		return ok(s.cardViewLocked(c))
	}
}

type revealJSON struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Number   string `json:"number"`
	CVC      string `json:"cvc"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
}

// nativeReveal is the only native response carrying the number and CVC.
func (s *Server) nativeReveal(r *http.Request, _ []byte) result {
	c, res, found := s.cardFromPath(r)
	if !found {
		return res
	}
	return ok(revealJSON{ID: c.ID, Object: "card_secrets", Number: c.Number, CVC: c.CVC, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear})
}
