package issuersim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The AI Payment Proxy dialect (aipaymentproxy.com's /api/v1/cards), served so its adapter
// has a peer. Its limit_usd is, as the origin describes it, the card's cumulative hard limit:
// the simulator stores it as an all_time limit. The dialect has no idempotency keys, no
// limit updates and no pause, exactly like the origin.

const (
	aippMinLimitUSD = 1
	aippMaxLimitUSD = 50000
)

type aippCardJSON struct {
	ID               string    `json:"id"`
	Label            string    `json:"label"`
	LimitUSD         int64     `json:"limit_usd"`
	SpentUSD         string    `json:"spent_usd"`
	Status           string    `json:"status"`
	Last4            string    `json:"last4"`
	ExpMonth         int       `json:"exp_month"`
	ExpYear          int       `json:"exp_year"`
	MerchantCategory string    `json:"merchant_category,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// Only GET /api/v1/cards/:id carries these.
	Number string `json:"number,omitempty"`
	CVC    string `json:"cvc,omitempty"`
}

type aippOK struct {
	Success bool `json:"success"`
	Data    any  `json:"data"`
}

func aippStatus(status string) string {
	if status == statusClosed {
		return "canceled"
	}
	return status
}

func (s *Server) aippViewLocked(c *card, reveal bool) aippCardJSON {
	var lim int64
	for _, l := range c.Limits {
		if l.Interval == intervalAllTime {
			lim = l.AmountMinor / 100
		}
	}
	v := aippCardJSON{
		ID: c.ID, Label: c.Label, LimitUSD: lim, Status: aippStatus(c.Status), Last4: c.last4(),
		ExpMonth: c.ExpMonth, ExpYear: c.ExpYear, CreatedAt: c.CreatedAt,
		SpentUSD:         formatUSD(s.usageLocked(c, intervalAllTime, s.nowLocked())),
		MerchantCategory: c.Metadata["merchant_category"],
	}
	if reveal {
		v.Number, v.CVC = c.Number, c.CVC
	}
	return v
}

func (s *Server) aippCreateCard(r *http.Request, body []byte) result {
	var p struct {
		Label            string          `json:"label"`
		LimitUSD         json.RawMessage `json:"limit_usd"`
		MerchantCategory string          `json:"merchant_category"`
	}
	if err := decodeStrict(body, &p); err != nil {
		return aippErr(http.StatusBadRequest, "invalid_request", err.Error())
	}
	lim, err := parseAIPPLimit(p.LimitUSD)
	if err != nil {
		return aippErr(http.StatusBadRequest, "invalid_request", err.Error())
	}
	cp := cardParams{Label: p.Label, Limits: []limit{{Interval: intervalAllTime, AmountMinor: lim * 100}}}
	if p.MerchantCategory != "" {
		cp.Metadata = map[string]string{"merchant_category": p.MerchantCategory}
	}
	if err := cp.validate(); err != nil {
		return aippErr(http.StatusBadRequest, "invalid_request", err.Error())
	}
	c := s.createCardLocked(cp, originAIPP)
	return created(aippOK{Success: true, Data: s.aippViewLocked(c, false)})
}

// parseAIPPLimit accepts only a JSON integer from 1 to 50000, as the origin documents.
func parseAIPPLimit(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fmt.Errorf("limit_usd is required")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limit_usd must be an integer number of dollars")
	}
	if n < aippMinLimitUSD || n > aippMaxLimitUSD {
		return 0, fmt.Errorf("limit_usd must be between %d and %d", aippMinLimitUSD, aippMaxLimitUSD)
	}
	return n, nil
}

func (s *Server) aippCard(r *http.Request) (*card, result, bool) {
	id := r.PathValue("id")
	c := s.st.cards[id]
	if c == nil || c.Origin != originAIPP {
		return nil, aippErr(http.StatusNotFound, "not_found", "card not found"), false
	}
	return c, result{}, true
}

func (s *Server) aippListCards(r *http.Request, _ []byte) result {
	status := r.URL.Query().Get("status")
	if status != "" && status != "active" && status != "canceled" {
		return aippErr(http.StatusBadRequest, "invalid_request", "status must be active or canceled")
	}
	cards := s.st.sortedCards()
	out := []aippCardJSON{}
	for i := len(cards) - 1; i >= 0; i-- { // newest first, as the origin orders them
		c := cards[i]
		if c.Origin != originAIPP || (status != "" && aippStatus(c.Status) != status) {
			continue
		}
		out = append(out, s.aippViewLocked(c, false))
	}
	return ok(aippOK{Success: true, Data: out})
}

// aippGetCard reveals number, CVC and expiry, as the origin's GET /api/v1/cards/:id does.
func (s *Server) aippGetCard(r *http.Request, _ []byte) result {
	c, res, found := s.aippCard(r)
	if !found {
		return res
	}
	return ok(aippOK{Success: true, Data: s.aippViewLocked(c, true)})
}

func (s *Server) aippDeleteCard(r *http.Request, _ []byte) result {
	c, res, found := s.aippCard(r)
	if !found {
		return res
	}
	if err := s.setStatusLocked(c, statusClosed); err != nil {
		return aippErr(http.StatusConflict, "already_closed", "card is already "+strings.ToLower(aippStatus(c.Status)))
	}
	return ok(aippOK{Success: true, Data: s.aippViewLocked(c, false)})
}
