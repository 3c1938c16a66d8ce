package issuersim

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const defaultMerchant = "Simulated Merchant"

// moneyRef names a card by id or number, as a merchant or a test would.
type moneyRef struct {
	CardID     string `json:"card_id"`
	CardNumber string `json:"card_number"`
}

func (s *Server) resolveCard(ref moneyRef) (*card, result, bool) {
	switch {
	case ref.CardID != "" && ref.CardNumber != "":
		return nil, invalid("give card_id or card_number, not both"), false
	case ref.CardID != "":
		if c := s.st.cards[ref.CardID]; c != nil {
			return c, result{}, true
		}
		return nil, notFound("card", ref.CardID), false
	case ref.CardNumber != "":
		if c := s.st.byNumber[strings.ReplaceAll(ref.CardNumber, " ", "")]; c != nil {
			return c, result{}, true
		}
		// The number itself is never echoed back.
		return nil, nativeErr(http.StatusNotFound, "not_found", "no card with that number"), false
	}
	return nil, invalid("card_id or card_number is required"), false
}

// maxAmountMinor is the largest amount one payment may move (1,000,000,000.00), as card
// networks cap a transaction: it keeps every sum the simulator makes far from overflowing.
const maxAmountMinor int64 = 1_000_000_000_00

// maxLimitMinor bounds a spending limit (an all-time limit is what a card spent plus an
// allowance, so it may exceed one payment's maximum).
const maxLimitMinor int64 = 1_000_000_000_000_00

// amountIn reads exactly one of amount_usd (decimal) and amount_minor (integer cents).
func amountIn(usd amount, minor *int64, required bool) (int64, bool, error) {
	var v int64
	switch {
	case usd.set && minor != nil:
		return 0, false, fmt.Errorf("give amount_usd or amount_minor, not both")
	case usd.set:
		v = usd.minor
	case minor != nil:
		if *minor < 0 {
			return 0, false, fmt.Errorf("amount_minor must be >= 0")
		}
		v = *minor
	case required:
		return 0, false, fmt.Errorf("amount_usd is required")
	default:
		return 0, false, nil
	}
	if v > maxAmountMinor {
		return 0, false, fmt.Errorf("amount %s is above the maximum of %s for one payment", formatUSD(v), formatUSD(maxAmountMinor))
	}
	return v, true, nil
}

type authorizeParams struct {
	moneyRef
	AmountUSD    amount `json:"amount_usd"`
	AmountMinor  *int64 `json:"amount_minor"`
	Currency     string `json:"currency"`
	Merchant     string `json:"merchant"`
	MerchantID   string `json:"merchant_id"`
	MCC          string `json:"mcc"`
	ForceDecline string `json:"force_decline"`
}

type authorizeJSON struct {
	Approved        bool   `json:"approved"`
	Reason          string `json:"reason"`
	AuthorizationID string `json:"authorization_id"`
	CardID          string `json:"card_id"`
	AmountMinor     int64  `json:"amount_minor"`
	Currency        string `json:"currency"`
	EventID         string `json:"event_id"`
}

// simulateAuthorization is a purchase attempt by a merchant: the simulator decides it as an
// issuer would and records it (approved or declined) as an authorization.created event.
func (s *Server) simulateAuthorization(r *http.Request, body []byte) result {
	var p authorizeParams
	if err := decodeStrict(body, &p); err != nil {
		return invalid("%v", err)
	}
	amt, _, err := amountIn(p.AmountUSD, p.AmountMinor, true)
	if err != nil {
		return invalid("%v", err)
	}
	if amt <= 0 {
		return invalid("amount must be positive")
	}
	if p.MCC != "" && !isMCC(p.MCC) {
		return invalid("mcc %q: want 4 digits", p.MCC)
	}
	if p.ForceDecline != "" && !validReasons[p.ForceDecline] {
		return invalid("force_decline %q is not a decline reason", p.ForceDecline)
	}
	c, res, found := s.resolveCard(p.moneyRef)
	if !found {
		return res
	}
	if cur := strings.ToLower(p.Currency); cur != "" && cur != c.Currency {
		return invalid("currency %q does not match the card's %q", p.Currency, c.Currency)
	}
	if p.Merchant == "" {
		p.Merchant = defaultMerchant
	}
	now := s.nowLocked()
	id := newID("auth_")
	reason := s.checkReasonLocked(c, p.MCC, p.ForceDecline, now)
	if h := s.DecisionHookConfig(); reason == "" && h.URL != "" {
		req := DecisionRequestJSON{ID: id, Object: "authorization_request", CardID: c.ID, AmountMinor: amt, Currency: c.Currency,
			Merchant: p.Merchant, MerchantID: p.MerchantID, MCC: p.MCC, CreatedAt: now}
		var decided string
		s.unlocked(func() { decided = s.decide(r.Context(), h, req) })
		// The card may have changed while the owner decided: look at it again.
		now = s.nowLocked()
		reason = cmp.Or(s.checkReasonLocked(c, p.MCC, p.ForceDecline, now), decided)
	}
	if reason == "" {
		reason = s.limitReasonLocked(c, amt, now)
	}
	a := &authorization{
		ID: id, CardID: c.ID, AmountMinor: amt, Currency: c.Currency, Approved: reason == "",
		Reason: reason, Merchant: p.Merchant, MCC: p.MCC, Status: authDeclined, CreatedAt: now,
	}
	if a.Approved {
		a.Status, a.HoldMinor = authPending, amt
	}
	s.st.addAuth(a)
	e := s.emitLocked(eventAuthorization, c.ID, moneyEventData{
		CardID: c.ID, AuthorizationID: a.ID, Approved: a.Approved, Reason: reason, AmountMinor: amt,
		Currency: c.Currency, Merchant: a.Merchant, MCC: a.MCC,
	})
	return ok(authorizeJSON{Approved: a.Approved, Reason: reason, AuthorizationID: a.ID, CardID: c.ID,
		AmountMinor: amt, Currency: c.Currency, EventID: e.ID})
}

// checkReasonLocked returns what declines a purchase before anything is decided about its
// amount, or "": status first (a closed card says closed whatever the amount), then merchant
// controls, as issuers order them.
func (s *Server) checkReasonLocked(c *card, mcc, force string, now time.Time) string {
	switch {
	case c.Status == statusClosed:
		return reasonCardClosed
	case !now.Before(c.expiresAt()):
		return reasonCardExpired
	case c.Status == statusPaused:
		return reasonCardPaused
	case force != "":
		return force
	case mcc != "" && slices.Contains(c.BlockedMCCs, mcc),
		len(c.AllowedMCCs) > 0 && !slices.Contains(c.AllowedMCCs, mcc):
		return reasonMerchantBlocked
	}
	return ""
}

// limitReasonLocked returns reasonSpendingLimit when the amount does not fit the card's limits.
func (s *Server) limitReasonLocked(c *card, amt int64, now time.Time) string {
	for _, l := range c.Limits {
		if l.Interval == intervalPerAuthorization {
			if amt > l.AmountMinor {
				return reasonSpendingLimit
			}
			continue
		}
		// Written so no sum can overflow: limits, usage and amounts are all bounded, but a
		// comparison must not depend on that.
		if u := s.usageLocked(c, l.Interval, now); amt > l.AmountMinor || u > l.AmountMinor-amt {
			return reasonSpendingLimit
		}
	}
	return ""
}

type transactionJSON struct {
	TransactionID    string `json:"transaction_id"`
	Kind             string `json:"kind"`
	AuthorizationID  string `json:"authorization_id,omitempty"`
	CardID           string `json:"card_id"`
	AmountMinor      int64  `json:"amount_minor"`
	Currency         string `json:"currency"`
	OvercaptureMinor int64  `json:"overcapture_minor,omitempty"`
	EventID          string `json:"event_id"`
}

// authorizationAmount reads a capture's or reversal's body, {"authorization_id", "amount_usd"
// or "amount_minor"}: the authorization, the amount and whether one was given. A nil
// authorization comes with the answer to give instead.
func (s *Server) authorizationAmount(body []byte) (*authorization, int64, bool, result) {
	var p struct {
		AuthorizationID string `json:"authorization_id"`
		AmountUSD       amount `json:"amount_usd"`
		AmountMinor     *int64 `json:"amount_minor"`
	}
	if err := decodeStrict(body, &p); err != nil {
		return nil, 0, false, invalid("%v", err)
	}
	a := s.st.auths[p.AuthorizationID]
	if a == nil {
		return nil, 0, false, notFound("authorization", p.AuthorizationID)
	}
	amt, set, err := amountIn(p.AmountUSD, p.AmountMinor, false)
	if err != nil {
		return nil, 0, false, invalid("%v", err)
	}
	return a, amt, set, result{}
}

// simulateCapture settles an approved authorization. The amount may exceed what was
// authorized (restaurants, car rental): issuers cannot refuse a capture, so neither do we.
func (s *Server) simulateCapture(r *http.Request, body []byte) result {
	a, amt, set, res := s.authorizationAmount(body)
	if a == nil {
		return res
	}
	if !set {
		amt = a.AmountMinor
	}
	if amt <= 0 {
		return invalid("amount must be positive")
	}
	if a.Status != authPending {
		return nativeErr(http.StatusBadRequest, "invalid_state", fmt.Sprintf("authorization %s is %s, only pending authorizations can be captured", a.ID, a.Status))
	}
	c := s.st.cards[a.CardID]
	now := s.nowLocked()
	a.Status, a.HoldMinor = authCaptured, 0
	t := &transaction{ID: newID("txn_"), CardID: c.ID, AuthorizationID: a.ID, Kind: txnCapture, AmountMinor: amt,
		Currency: c.Currency, Merchant: a.Merchant, MCC: a.MCC, CreatedAt: now}
	s.st.addTxn(t)
	over := max(amt-a.AmountMinor, 0)
	e := s.emitLocked(eventCapture, c.ID, moneyEventData{
		CardID: c.ID, AuthorizationID: a.ID, TransactionID: t.ID, Approved: true, AmountMinor: amt, Currency: c.Currency,
		Merchant: a.Merchant, MCC: a.MCC, AuthorizedMinor: a.AmountMinor, OvercaptureMinor: over,
	})
	return ok(transactionJSON{TransactionID: t.ID, Kind: t.Kind, AuthorizationID: a.ID, CardID: c.ID, AmountMinor: amt,
		Currency: c.Currency, OvercaptureMinor: over, EventID: e.ID})
}

// simulateForceCapture posts a charge with no authorization at all. Card status and limits
// do not apply: no issuer can block a force-post.
func (s *Server) simulateForceCapture(r *http.Request, body []byte) result {
	var p struct {
		moneyRef
		AmountUSD   amount `json:"amount_usd"`
		AmountMinor *int64 `json:"amount_minor"`
		Merchant    string `json:"merchant"`
		MCC         string `json:"mcc"`
	}
	if err := decodeStrict(body, &p); err != nil {
		return invalid("%v", err)
	}
	amt, _, err := amountIn(p.AmountUSD, p.AmountMinor, true)
	if err != nil {
		return invalid("%v", err)
	}
	if amt <= 0 {
		return invalid("amount must be positive")
	}
	if p.MCC != "" && !isMCC(p.MCC) {
		return invalid("mcc %q: want 4 digits", p.MCC)
	}
	c, res, found := s.resolveCard(p.moneyRef)
	if !found {
		return res
	}
	if p.Merchant == "" {
		p.Merchant = defaultMerchant
	}
	t := &transaction{ID: newID("txn_"), CardID: c.ID, Kind: txnForceCapture, AmountMinor: amt, Currency: c.Currency,
		Merchant: p.Merchant, MCC: p.MCC, CreatedAt: s.nowLocked()}
	s.st.addTxn(t)
	e := s.emitLocked(eventForceCapture, c.ID, moneyEventData{
		CardID: c.ID, TransactionID: t.ID, Approved: true, AmountMinor: amt, Currency: c.Currency, Merchant: t.Merchant, MCC: t.MCC,
	})
	return ok(transactionJSON{TransactionID: t.ID, Kind: t.Kind, CardID: c.ID, AmountMinor: amt, Currency: c.Currency, EventID: e.ID})
}

// simulateRefund credits a capture back (transaction_id), or makes an unlinked refund to a card.
func (s *Server) simulateRefund(r *http.Request, body []byte) result {
	var p struct {
		moneyRef
		TransactionID string `json:"transaction_id"`
		AmountUSD     amount `json:"amount_usd"`
		AmountMinor   *int64 `json:"amount_minor"`
	}
	if err := decodeStrict(body, &p); err != nil {
		return invalid("%v", err)
	}
	amt, set, err := amountIn(p.AmountUSD, p.AmountMinor, false)
	if err != nil {
		return invalid("%v", err)
	}
	var c *card
	var orig *transaction
	if p.TransactionID != "" {
		if p.CardID != "" || p.CardNumber != "" {
			return invalid("give transaction_id or a card, not both")
		}
		orig = s.st.txns[p.TransactionID]
		if orig == nil {
			return notFound("transaction", p.TransactionID)
		}
		if orig.Kind == txnRefund {
			return invalid("transaction %s is a refund", orig.ID)
		}
		remaining := orig.AmountMinor - orig.RefundedMinor
		if !set {
			amt = remaining
		}
		if amt > remaining {
			return invalid("refund of %s exceeds the %s left to refund", formatUSD(amt), formatUSD(remaining))
		}
		c = s.st.cards[orig.CardID]
	} else {
		var res result
		var found bool
		if c, res, found = s.resolveCard(p.moneyRef); !found {
			return res
		}
		if !set {
			return invalid("an unlinked refund needs amount_usd")
		}
	}
	if amt <= 0 {
		return invalid("amount must be positive")
	}
	t := &transaction{ID: newID("txn_"), CardID: c.ID, Kind: txnRefund, AmountMinor: amt, Currency: c.Currency, CreatedAt: s.nowLocked()}
	if orig != nil {
		orig.RefundedMinor += amt
		t.RefundOf, t.AuthorizationID, t.Merchant, t.MCC = orig.ID, orig.AuthorizationID, orig.Merchant, orig.MCC
	}
	s.st.addTxn(t)
	e := s.emitLocked(eventRefund, c.ID, moneyEventData{
		CardID: c.ID, AuthorizationID: t.AuthorizationID, TransactionID: t.ID, Approved: true, AmountMinor: amt,
		Currency: c.Currency, Merchant: t.Merchant, MCC: t.MCC,
	})
	return ok(transactionJSON{TransactionID: t.ID, Kind: t.Kind, AuthorizationID: t.AuthorizationID, CardID: c.ID,
		AmountMinor: amt, Currency: c.Currency, EventID: e.ID})
}

// simulateReversal releases all or part of a pending authorization's hold (the merchant
// cancelled, or the authorization expired).
func (s *Server) simulateReversal(r *http.Request, body []byte) result {
	a, amt, set, res := s.authorizationAmount(body)
	if a == nil {
		return res
	}
	if a.Status != authPending {
		return nativeErr(http.StatusBadRequest, "invalid_state", fmt.Sprintf("authorization %s is %s, only pending authorizations can be reversed", a.ID, a.Status))
	}
	if !set {
		amt = a.HoldMinor
	}
	if amt <= 0 || amt > a.HoldMinor {
		return invalid("reversal amount must be between 0.01 and the %s held", formatUSD(a.HoldMinor))
	}
	a.HoldMinor -= amt
	if a.HoldMinor == 0 {
		a.Status = authReversed
	}
	c := s.st.cards[a.CardID]
	e := s.emitLocked(eventReversal, c.ID, moneyEventData{
		CardID: c.ID, AuthorizationID: a.ID, Approved: true, AmountMinor: amt, Currency: c.Currency,
		Merchant: a.Merchant, MCC: a.MCC, AuthorizedMinor: a.AmountMinor,
	})
	s.changedLocked(false)
	return ok(map[string]any{
		"authorization_id": a.ID, "card_id": c.ID, "amount_minor": amt, "hold_minor": a.HoldMinor,
		"status": a.Status, "event_id": e.ID,
	})
}
