// Package stripe is the issuer adapter for Stripe Issuing, through the official stripe-go SDK
// (v82, API version 2025-08-27.basil, which Stripe's stripe-mock v0.203.0 accepts).
//
// Every POST carries our own deterministic idempotency key, never the SDK's random one: a
// retried activity must not issue a second card. Limits are spending_controls.spending_limits
// (UTC calendar windows); pause is status=inactive, close is status=canceled (permanent).
// Webhooks are verified with the SDK's webhook package (Stripe-Signature, HMAC-SHA256) and
// issuing_authorization.* / issuing_transaction.* events become issuer.Events whose IDs are
// the Stripe object IDs (iauth_…, ipi_…), so a webhook and a reconciliation listing of the
// same authorization deduplicate to one ledger entry.
package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/issuerhttp"
)

// Name is the adapter's registry name.
const Name = "stripe"

// DefaultBaseURL is Stripe's API.
const DefaultBaseURL = "https://api.stripe.com"

// Metadata keys the adapter writes on cards and cardholders.
const (
	metaLabel             = "cardwarden_label"
	metaDefaultCardholder = "cardwarden_default_cardholder"
)

// webhookTolerance is the accepted clock skew for Stripe-Signature timestamps, both ways.
const webhookTolerance = 5 * time.Minute

// Config configures the adapter.
type Config struct {
	APIKey        string // sk_live_… / sk_test_…
	BaseURL       string // DefaultBaseURL when empty; stripe-mock is http://127.0.0.1:12111
	WebhookSecret string // whsec_… of the webhook endpoint; empty disables VerifyWebhook
	// CardholderID is the Issuing cardholder new cards belong to. When empty the adapter finds
	// or creates one marked with metadata cardwarden_default_cardholder=true; set it in
	// production, where a cardholder needs real company details.
	CardholderID string
	HTTPClient   *http.Client
	// MaxNetworkRetries is the SDK's own retry count. 0 (the default) leaves retries to the
	// Temporal activity, which knows the rate limit and backs off accordingly.
	MaxNetworkRetries int64
	// Now is the clock for idempotency-key time buckets; time.Now when nil.
	Now func() time.Time
}

// Adapter implements issuer.Issuer for Stripe Issuing.
type Adapter struct {
	sc  *stripego.Client
	cfg Config

	mu         sync.Mutex
	cardholder string
}

var _ issuer.Issuer = (*Adapter)(nil)

// New builds the adapter.
func New(cfg Config) (*Adapter, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("stripe issuer: API key is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if _, err := url.ParseRequestURI(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("stripe issuer: base URL: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	retries := cfg.MaxNetworkRetries
	backends := stripego.NewBackendsWithConfig(&stripego.BackendConfig{
		URL:               &base,
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: &retries,
		// The SDK's logger can print response bodies; a reveal response holds a card number.
		LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
	})
	return &Adapter{sc: stripego.NewClient(cfg.APIKey, stripego.WithBackends(backends)), cfg: cfg, cardholder: cfg.CardholderID}, nil
}

func (a *Adapter) Name() string { return Name }

func (a *Adapter) Capabilities() issuer.Capabilities {
	return issuer.Capabilities{
		LimitIntervals:  []issuer.Interval{issuer.PerAuthorization, issuer.Daily, issuer.Weekly, issuer.Monthly, issuer.AllTime},
		DailyAnchor:     issuer.AnchorUTCMidnight,
		UpdatableLimits: true,
		Pause:           true,
		Reveal:          true,
	}
}

// Idempotency keys.

const maxKeyLen = 255 // Stripe rejects longer keys

// createKey is the caller's key itself, so it can be found in Stripe's request logs; an
// over-long key is hashed instead of truncated (truncation could make two keys collide).
func createKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	h := sha256.Sum256([]byte(key))
	return "cw-create-" + hex.EncodeToString(h[:])
}

// mutationKey derives the key of an update from its content and the current minute, which
// deduplicates quick retries; a replay under it is double-checked against the card (see
// update), because within the minute it could also be a new intent with the same content.
func (a *Adapter) mutationKey(op, cardID, content string) string {
	base := "minute:" + strconv.FormatInt(a.cfg.Now().Unix()/60, 10)
	h := sha256.Sum256([]byte(base + "\x00" + op + "\x00" + cardID + "\x00" + content))
	return "cw-" + op + "-" + hex.EncodeToString(h[:16])
}

// Errors.

var statusInMessage = regexp.MustCompile(`response status: (\d{3})`)

// mapErr turns an SDK error into a typed issuer error. Stripe error messages never contain
// card data; the SDK's own "couldn't deserialize" errors quote the response body, so those
// are replaced rather than wrapped.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *stripego.Error
	if errors.As(err, &se) {
		e := &issuer.Error{Op: op, Message: se.Msg}
		if se.Code != "" {
			e.Message = string(se.Code) + ": " + se.Msg
		}
		var h http.Header
		if se.LastResponse != nil {
			h = se.LastResponse.Header
		}
		switch {
		case se.Type == stripego.ErrorTypeIdempotency && se.Code == "idempotency_key_in_use":
			e.Kind = issuer.KindTransient // a concurrent request holds the key; retry
		case se.Type == stripego.ErrorTypeIdempotency:
			e.Kind = issuer.KindIdempotencyConflict
		case se.Code == "lock_timeout":
			e.Kind = issuer.KindTransient
		default:
			ce := issuerhttp.Classify(op, se.HTTPStatusCode, h, "", e.Message, time.Now())
			e.Kind, e.RetryAfter = ce.Kind, ce.RetryAfter
		}
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "request cancelled or timed out", Err: err}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "request failed", Err: err}
	}
	if m := statusInMessage.FindStringSubmatch(err.Error()); m != nil {
		status, _ := strconv.Atoi(m[1])
		if status >= 200 && status < 300 {
			return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "undecodable response"}
		}
		return issuerhttp.Classify(op, status, http.Header{}, "", "undecodable error response", time.Now())
	}
	return &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "request failed"}
}

// Cards.

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
	out := make([]*stripego.IssuingCardCreateSpendingControlsSpendingLimitParams, 0, len(ls))
	for _, l := range ls {
		out = append(out, &stripego.IssuingCardCreateSpendingControlsSpendingLimitParams{
			Amount: stripego.Int64(l.AmountMinor), Interval: stripego.String(string(l.Interval)),
		})
	}
	return out
}

func updateLimits(ls []issuer.SpendLimit) []*stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams {
	out := make([]*stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams, 0, len(ls))
	for _, l := range ls {
		out = append(out, &stripego.IssuingCardUpdateSpendingControlsSpendingLimitParams{
			Amount: stripego.Int64(l.AmountMinor), Interval: stripego.String(string(l.Interval)),
		})
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

// ListAuthorizations lists the card's authorizations and transactions created at or after
// since, oldest first.
func (a *Adapter) ListAuthorizations(ctx context.Context, cardID string, since time.Time) ([]cardwarden.Event, error) {
	const op = "list_authorizations"
	var out []cardwarden.Event
	ap := &stripego.IssuingAuthorizationListParams{Card: stripego.String(cardID)}
	tp := &stripego.IssuingTransactionListParams{Card: stripego.String(cardID)}
	if !since.IsZero() {
		ap.CreatedRange = &stripego.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
		tp.CreatedRange = &stripego.RangeQueryParams{GreaterThanOrEqual: since.Unix()}
	}
	ap.Limit, tp.Limit = stripego.Int64(100), stripego.Int64(100)
	for auth, err := range a.sc.V1IssuingAuthorizations.List(ctx, ap) {
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, authorizationEvent(auth))
	}
	for txn, err := range a.sc.V1IssuingTransactions.List(ctx, tp) {
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, transactionEvent(txn))
	}
	// Second granularity: Stripe's created is unix seconds, so filter what the API rounded.
	kept := out[:0]
	for _, e := range out {
		if !e.OccurredAt.Before(since.Truncate(time.Second)) {
			kept = append(kept, e)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool {
		if !kept[i].OccurredAt.Equal(kept[j].OccurredAt) {
			return kept[i].OccurredAt.Before(kept[j].OccurredAt)
		}
		return kept[i].ID < kept[j].ID
	})
	return kept, nil
}

// Events.

func cardIDOf(c *stripego.IssuingCard) string {
	if c == nil {
		return ""
	}
	return c.ID
}

func merchant(m *stripego.IssuingAuthorizationMerchantData) (string, string) {
	if m == nil {
		return "", ""
	}
	return m.Name, m.CategoryCode
}

// authorizationEvent normalizes an authorization. A declined authorization's amount is 0 at
// Stripe; what was asked for is in its last request_history entry.
func authorizationEvent(au *stripego.IssuingAuthorization) cardwarden.Event {
	name, mcc := merchant(au.MerchantData)
	ev := cardwarden.Event{
		ID: au.ID, Issuer: Name, Kind: cardwarden.KindAuthorization, CardID: cardIDOf(au.Card), AuthorizationID: au.ID,
		Approved: au.Approved, AmountMinor: au.Amount, Currency: strings.ToUpper(string(au.Currency)),
		MerchantName: name, MCC: mcc, OccurredAt: time.Unix(au.Created, 0).UTC(),
	}
	if n := len(au.RequestHistory); n > 0 && au.RequestHistory[n-1] != nil {
		last := au.RequestHistory[n-1]
		if ev.AmountMinor == 0 {
			ev.AmountMinor = last.Amount
		}
		if !au.Approved {
			ev.RawReason = string(last.Reason)
			ev.DeclineReason = normalizeReason(last.Reason)
		}
	}
	if !au.Approved && ev.DeclineReason == "" {
		ev.DeclineReason = cardwarden.ReasonOther
	}
	return ev
}

// normalizeReason maps Stripe's request_history reasons. spending_controls covers amount
// limits and category blocks alike; amount limits are the ones cardwarden sets.
func normalizeReason(r stripego.IssuingAuthorizationRequestHistoryReason) cardwarden.DeclineReason {
	switch r {
	case stripego.IssuingAuthorizationRequestHistoryReasonSpendingControls, "insufficient_funds":
		return cardwarden.ReasonSpendingLimit
	case stripego.IssuingAuthorizationRequestHistoryReasonCardInactive:
		return cardwarden.ReasonCardPaused
	case stripego.IssuingAuthorizationRequestHistoryReasonCardCanceled:
		return cardwarden.ReasonCardClosed
	case "card_expired":
		return cardwarden.ReasonCardExpired
	case stripego.IssuingAuthorizationRequestHistoryReasonSuspectedFraud:
		return cardwarden.ReasonSuspectedFraud
	case stripego.IssuingAuthorizationRequestHistoryReasonNotAllowed:
		return cardwarden.ReasonMerchantBlocked
	}
	return cardwarden.ReasonOther
}

// transactionEvent normalizes a transaction: a capture without an authorization is a
// force-post. Stripe signs amounts from the balance's view (captures negative); ours are
// magnitudes.
func transactionEvent(t *stripego.IssuingTransaction) cardwarden.Event {
	name, mcc := merchant(t.MerchantData)
	amt := t.Amount
	if amt < 0 {
		amt = -amt
	}
	ev := cardwarden.Event{
		ID: t.ID, Issuer: Name, CardID: cardIDOf(t.Card), Approved: true, AmountMinor: amt,
		Currency: strings.ToUpper(string(t.Currency)), MerchantName: name, MCC: mcc, OccurredAt: time.Unix(t.Created, 0).UTC(),
	}
	if t.Authorization != nil {
		ev.AuthorizationID = t.Authorization.ID
	}
	switch {
	case t.Type == stripego.IssuingTransactionTypeRefund:
		ev.Kind = cardwarden.KindRefund
	case t.Authorization == nil || t.Authorization.ID == "":
		ev.Kind = cardwarden.KindForceCapture
	default:
		ev.Kind = cardwarden.KindCapture
	}
	return ev
}

// VerifyWebhook verifies the Stripe-Signature header with stripe-go's webhook package,
// rejects timestamps more than 5 minutes from now in either direction, and converts
// issuing_authorization.created/updated and issuing_transaction.created events. Other event
// types verify and yield no events.
func (a *Adapter) VerifyWebhook(header http.Header, body []byte, now time.Time) ([]cardwarden.Event, error) {
	const op = "verify_webhook"
	unauthorized := func(msg string) error { return &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: msg} }
	if a.cfg.WebhookSecret == "" {
		return nil, unauthorized("no webhook secret configured for the stripe issuer")
	}
	sigs := header.Values("Stripe-Signature")
	if len(sigs) != 1 {
		return nil, unauthorized("want exactly one Stripe-Signature header")
	}
	sig := sigs[0]
	// The age check must read the timestamp the signature covers. Stripe's verifier uses the
	// last t= of the header; a header with several (a fresh one prepended to a stale, genuinely
	// signed delivery) is refused outright rather than interpreted.
	ts, ok := signatureTime(sig)
	if !ok {
		return nil, unauthorized("Stripe-Signature must carry exactly one t=<unix time>")
	}
	if d := now.Sub(ts); d > webhookTolerance || d < -webhookTolerance {
		return nil, unauthorized("Stripe-Signature timestamp outside the 5 minute tolerance")
	}
	// stripe-go's own verification on the raw body, with its own (past-only, wall-clock) age
	// check on that same timestamp. Its tolerance is shifted by how far now is from the wall
	// clock (zero in production) plus a second for the time between the two readings, so the
	// exact two-sided window above stays the one that decides.
	tolerance := webhookTolerance + time.Since(now) + time.Second
	if err := webhook.ValidatePayloadWithTolerance(body, sig, a.cfg.WebhookSecret, tolerance); err != nil {
		return nil, unauthorized(err.Error())
	}
	evt, err := webhook.ConstructEventWithOptions(body, sig, a.cfg.WebhookSecret, webhook.ConstructEventOptions{
		IgnoreTolerance: true, IgnoreAPIVersionMismatch: true, // the payload fields we read are stable
	})
	if err != nil {
		return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "body is not a Stripe event"}
	}
	if evt.Data == nil {
		return []cardwarden.Event{}, nil
	}
	switch evt.Type {
	case "issuing_authorization.created":
		var au stripego.IssuingAuthorization
		if err := json.Unmarshal(evt.Data.Raw, &au); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_authorization"}
		}
		return []cardwarden.Event{authorizationEvent(&au)}, nil
	case "issuing_authorization.updated":
		var au stripego.IssuingAuthorization
		if err := json.Unmarshal(evt.Data.Raw, &au); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_authorization"}
		}
		if ev, ok := reversalEvent(evt, &au); ok {
			return []cardwarden.Event{ev}, nil
		}
		return []cardwarden.Event{}, nil
	case "issuing_transaction.created":
		var t stripego.IssuingTransaction
		if err := json.Unmarshal(evt.Data.Raw, &t); err != nil {
			return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed issuing_transaction"}
		}
		return []cardwarden.Event{transactionEvent(&t)}, nil
	}
	return []cardwarden.Event{}, nil
}

// reversalEvent recognises a hold released without a capture: the authorization's amount
// went down while it stayed pending or became reversed. Its ID is the Stripe event's, since
// one authorization can be partially reversed several times.
func reversalEvent(evt stripego.Event, au *stripego.IssuingAuthorization) (cardwarden.Event, bool) {
	if au.Status != stripego.IssuingAuthorizationStatusReversed && au.Status != stripego.IssuingAuthorizationStatusPending {
		return cardwarden.Event{}, false
	}
	prev, ok := evt.Data.PreviousAttributes["amount"].(float64)
	if !ok || int64(prev) <= au.Amount {
		return cardwarden.Event{}, false
	}
	name, mcc := merchant(au.MerchantData)
	return cardwarden.Event{
		ID: evt.ID, Issuer: Name, Kind: cardwarden.KindReversal, CardID: cardIDOf(au.Card), AuthorizationID: au.ID,
		Approved: true, AmountMinor: int64(prev) - au.Amount, Currency: strings.ToUpper(string(au.Currency)),
		MerchantName: name, MCC: mcc, OccurredAt: time.Unix(evt.Created, 0).UTC(),
	}, true
}

// signatureTime reads the one t=<unix> of a Stripe-Signature header, parsing it as stripe-go
// does (key and value split on '=', no spaces trimmed). A header with no timestamp, with more
// than one, or with a key that is "t" only after trimming spaces (which stripe-go would not
// read as the timestamp) is refused.
func signatureTime(sig string) (time.Time, bool) {
	var ts time.Time
	found := 0
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(part, "=")
		if strings.TrimSpace(k) != "t" {
			continue
		}
		found++
		if k != "t" {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		ts = time.Unix(n, 0)
	}
	return ts, found == 1
}
