package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/cardwarden/cardwarden/internal/issuer"
)

// Cards: create, read, reveal, limit, pause, resume, close.

func toCard(c *stripego.IssuingCard) issuer.Card {
	out := issuer.Card{
		ID: c.ID, Last4: c.Last4, ExpMonth: int(c.ExpMonth), ExpYear: int(c.ExpYear),
		Currency: strings.ToUpper(string(c.Currency)), Label: c.Metadata[metaLabel],
	}
	if c.Created > 0 {
		out.CreatedAt = time.Unix(c.Created, 0).UTC()
	}
	switch c.Status {
	case stripego.IssuingCardStatusActive:
		out.Status = issuer.CardActive
	case stripego.IssuingCardStatusInactive:
		out.Status = issuer.CardPaused
	default:
		out.Status = issuer.CardClosed
	}
	if c.SpendingControls != nil {
		for _, l := range c.SpendingControls.SpendingLimits {
			if l == nil || len(l.Categories) > 0 {
				continue // category-scoped limits are not cardwarden's
			}
			if iv := issuer.Interval(l.Interval); validInterval(iv) {
				out.Limits = append(out.Limits, issuer.SpendLimit{AmountMinor: l.Amount, Interval: iv})
			}
		}
	}
	return out
}

func validInterval(i issuer.Interval) bool {
	switch i {
	case issuer.PerAuthorization, issuer.Daily, issuer.Weekly, issuer.Monthly, issuer.AllTime:
		return true
	}
	return false
}

func checkLimits(op string, limits []issuer.SpendLimit) error {
	if len(limits) == 0 {
		// Without limits Stripe applies its default of 500 USD a day: never what the caller meant.
		return &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "at least one spending limit is required"}
	}
	for _, l := range limits {
		if !validInterval(l.Interval) || l.AmountMinor < 0 {
			return &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: fmt.Sprintf("unsupported limit %s %d", l.Interval, l.AmountMinor)}
		}
	}
	return nil
}

func limitsContent(limits []issuer.SpendLimit) string {
	b, _ := json.Marshal(limits)
	return string(b)
}

func (a *Adapter) CreateCard(ctx context.Context, req issuer.CreateCardRequest) (issuer.Card, error) {
	const op = "create_card"
	if req.IdempotencyKey == "" {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "idempotency key is required"}
	}
	if err := checkLimits(op, req.Limits); err != nil {
		return issuer.Card{}, err
	}
	holder, err := a.ensureCardholder(ctx)
	if err != nil {
		return issuer.Card{}, err
	}
	cur := strings.ToLower(req.Currency)
	if cur == "" {
		cur = "usd"
	}
	meta := map[string]string{}
	for k, v := range req.Metadata {
		meta[k] = v
	}
	if req.Label != "" {
		meta[metaLabel] = req.Label
	}
	p := &stripego.IssuingCardCreateParams{
		Cardholder: stripego.String(holder),
		Currency:   stripego.String(cur),
		Type:       stripego.String(string(stripego.IssuingCardTypeVirtual)),
		// Stripe's default is inactive; an agent's card must work at once.
		Status:   stripego.String(string(stripego.IssuingCardStatusActive)),
		Metadata: meta,
		SpendingControls: &stripego.IssuingCardCreateSpendingControlsParams{
			SpendingLimits: createLimits(req.Limits),
		},
	}
	p.SetIdempotencyKey(createKey(req.IdempotencyKey))
	c, err := a.sc.V1IssuingCards.Create(ctx, p)
	if err != nil {
		return issuer.Card{}, mapErr(op, err)
	}
	return toCard(c), nil
}

func createLimits(ls []issuer.SpendLimit) []*stripego.IssuingCardCreateSpendingControlsSpendingLimitParams {
	return spendingLimits(ls, func(amount *int64, interval *string) *stripego.IssuingCardCreateSpendingControlsSpendingLimitParams {
		return &stripego.IssuingCardCreateSpendingControlsSpendingLimitParams{Amount: amount, Interval: interval}
	})
}

func updateLimits(ls []issuer.SpendLimit) []*stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams {
	return spendingLimits(ls, func(amount *int64, interval *string) *stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams {
		return &stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams{Amount: amount, Interval: interval}
	})
}

// spendingLimits converts limits to the SDK's parameters, which have one type for a create and
// another, with the same fields, for an update.
func spendingLimits[P any](ls []issuer.SpendLimit, param func(amount *int64, interval *string) *P) []*P {
	out := make([]*P, 0, len(ls))
	for _, l := range ls {
		out = append(out, param(stripego.Int64(l.AmountMinor), stripego.String(string(l.Interval))))
	}
	return out
}

// ensureCardholder returns the configured cardholder, or finds or creates the default one.
func (a *Adapter) ensureCardholder(ctx context.Context) (string, error) {
	const op = "ensure_cardholder"
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cardholder != "" {
		return a.cardholder, nil
	}
	lp := &stripego.IssuingCardholderListParams{Status: stripego.String("active")}
	lp.Limit = stripego.Int64(100)
	for ch, err := range a.sc.V1IssuingCardholders.List(ctx, lp) {
		if err != nil {
			return "", mapErr(op, err)
		}
		if ch.Metadata[metaDefaultCardholder] == "true" {
			a.cardholder = ch.ID
			return ch.ID, nil
		}
	}
	p := &stripego.IssuingCardholderCreateParams{
		Name:     stripego.String("cardwarden agents"),
		Type:     stripego.String("company"),
		Metadata: map[string]string{metaDefaultCardholder: "true"},
		Billing: &stripego.IssuingCardholderCreateBillingParams{Address: &stripego.AddressParams{
			Line1: stripego.String("510 Townsend St"), City: stripego.String("San Francisco"), State: stripego.String("CA"),
			PostalCode: stripego.String("94103"), Country: stripego.String("US"),
		}},
	}
	p.SetIdempotencyKey("cardwarden-default-cardholder-v1")
	ch, err := a.sc.V1IssuingCardholders.Create(ctx, p)
	if err != nil {
		return "", mapErr(op, err)
	}
	a.cardholder = ch.ID
	return ch.ID, nil
}

func (a *Adapter) retrieve(ctx context.Context, op, cardID string, expand ...string) (*stripego.IssuingCard, error) {
	p := &stripego.IssuingCardRetrieveParams{}
	for _, e := range expand {
		p.AddExpand(e)
	}
	c, err := a.sc.V1IssuingCards.Retrieve(ctx, cardID, p)
	if err != nil {
		return nil, mapErr(op, err)
	}
	return c, nil
}

func (a *Adapter) GetCard(ctx context.Context, cardID string) (issuer.Card, error) {
	c, err := a.retrieve(ctx, "get_card", cardID)
	if err != nil {
		return issuer.Card{}, err
	}
	return toCard(c), nil
}

// RevealCard retrieves the card with number and cvc expanded: the only Stripe call that
// returns them.
func (a *Adapter) RevealCard(ctx context.Context, cardID string) (issuer.Secrets, error) {
	c, err := a.retrieve(ctx, "reveal_card", cardID, "number", "cvc")
	if err != nil {
		return issuer.Secrets{}, err
	}
	if c.Number == "" || c.CVC == "" {
		return issuer.Secrets{}, &issuer.Error{Kind: issuer.KindTransient, Op: "reveal_card", Message: "Stripe returned no card number (is this a virtual card?)"}
	}
	return issuer.Secrets{Number: c.Number, CVC: c.CVC, ExpMonth: int(c.ExpMonth), ExpYear: int(c.ExpYear)}, nil
}

// update POSTs a card update with a derived idempotency key. done reports whether a card
// already reflects the update; it guards the fallback key against replaying an old response
// for a new intent (pause, resume, pause within one minute), in which case the update is
// sent again under a fresh key.
func (a *Adapter) update(ctx context.Context, op, cardID, content string, p *stripego.IssuingCardUpdateParams, done func(*stripego.IssuingCard) bool) (issuer.Card, error) {
	key := a.mutationKey(op, cardID, content)
	p.SetIdempotencyKey(key)
	c, err := a.sc.V1IssuingCards.Update(ctx, cardID, p)
	if err != nil {
		err = mapErr(op, err)
		if errors.Is(err, issuer.ErrInvalid) {
			// Stripe refuses changes to a canceled card as an invalid request; say what it is.
			if cur, gerr := a.retrieve(ctx, op, cardID); gerr == nil && cur.Status == stripego.IssuingCardStatusCanceled {
				return issuer.Card{}, &issuer.Error{Kind: issuer.KindAlreadyClosed, Op: op, Message: "card is canceled"}
			}
		}
		return issuer.Card{}, err
	}
	if c.LastResponse != nil && c.LastResponse.Header.Get("Idempotent-Replayed") == "true" {
		cur, err := a.retrieve(ctx, op, cardID)
		if err != nil {
			return issuer.Card{}, err
		}
		if !done(cur) {
			p.SetIdempotencyKey(key + "-" + strconv.FormatInt(a.cfg.Now().UnixNano(), 36))
			if c, err = a.sc.V1IssuingCards.Update(ctx, cardID, p); err != nil {
				return issuer.Card{}, mapErr(op, err)
			}
		}
	}
	return toCard(c), nil
}

func (a *Adapter) UpdateLimits(ctx context.Context, cardID string, limits []issuer.SpendLimit) (issuer.Card, error) {
	const op = "update_limits"
	if err := checkLimits(op, limits); err != nil {
		return issuer.Card{}, err
	}
	// The whole set is sent every time: Stripe replaces spending_limits as a unit.
	p := &stripego.IssuingCardUpdateParams{SpendingControls: &stripego.IssuingCardUpdateSpendingControlsParams{SpendingLimits: updateLimits(limits)}}
	want := limitsContent(limits)
	return a.update(ctx, op, cardID, want, p, func(c *stripego.IssuingCard) bool {
		return limitsContent(toCard(c).Limits) == want
	})
}

func (a *Adapter) setStatus(ctx context.Context, op, cardID string, status stripego.IssuingCardStatus) (issuer.Card, error) {
	p := &stripego.IssuingCardUpdateParams{Status: stripego.String(string(status))}
	return a.update(ctx, op, cardID, string(status), p, func(c *stripego.IssuingCard) bool { return c.Status == status })
}

func (a *Adapter) PauseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	return a.setStatus(ctx, "pause_card", cardID, stripego.IssuingCardStatusInactive)
}

func (a *Adapter) ResumeCard(ctx context.Context, cardID string) (issuer.Card, error) {
	return a.setStatus(ctx, "resume_card", cardID, stripego.IssuingCardStatusActive)
}

// CloseCard cancels the card (permanent at Stripe). It looks first, because Stripe's answer
// to canceling a canceled card is not a distinct error, and the interface promises
// ErrAlreadyClosed.
func (a *Adapter) CloseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	const op = "close_card"
	cur, err := a.retrieve(ctx, op, cardID)
	if err != nil {
		return issuer.Card{}, err
	}
	if cur.Status == stripego.IssuingCardStatusCanceled {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindAlreadyClosed, Op: op, Message: "card is already canceled"}
	}
	return a.setStatus(ctx, op, cardID, stripego.IssuingCardStatusCanceled)
}
