// Package aipaymentproxy is the issuer adapter for AI Payment Proxy (aipaymentproxy.com), the
// API cardwarden's idea came from: POST /api/v1/cards {"label","limit_usd"}, GET
// /api/v1/cards[/:id] (the single-card GET reveals number and CVC), DELETE /api/v1/cards/:id,
// with a bearer key.
//
// What the API cannot do, Capabilities says, so the workflow compensates: limits cannot be
// updated and cards cannot be paused (the workflow reissues instead), the only limit is one
// cumulative whole-dollar cap, and there is no documented webhook signature or transaction
// listing.
//
// The API has no idempotency key either. CreateCard emulates one: it tags the label with a
// short hash of the key ("my label [cw:0123456789abcdef]"), looks for a card carrying the tag
// before creating, and after creating re-lists and keeps only the oldest tagged card (closing
// any duplicate a concurrent retry made), so every attempt with one key converges on one card.
// The tag is stripped from Card.Label.
package aipaymentproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/issuerhttp"
)

// Name is the adapter's registry name.
const Name = "aipaymentproxy"

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://aipaymentproxy.com"

// The API's limit_usd bounds.
const (
	MinLimitUSD = 1
	MaxLimitUSD = 50000
)

// Config configures the adapter.
type Config struct {
	BaseURL    string // DefaultBaseURL when empty
	APIKey     string
	HTTPClient *http.Client
}

// Adapter implements issuer.Issuer for AI Payment Proxy.
type Adapter struct {
	c issuerhttp.Client
}

var _ issuer.Issuer = (*Adapter)(nil)

// New builds the adapter.
func New(cfg Config) (*Adapter, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if _, err := url.ParseRequestURI(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("aipaymentproxy issuer: base URL: %w", err)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("aipaymentproxy issuer: API key is required")
	}
	a := &Adapter{c: issuerhttp.Client{
		BaseURL: cfg.BaseURL, HTTP: cfg.HTTPClient, Authorize: issuerhttp.BearerAuth(cfg.APIKey), DecodeError: decodeError,
	}}
	if a.c.HTTP == nil {
		a.c.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return a, nil
}

// decodeError reads {"success":false,"error":"…"} (and the simulator's extra "code"). The
// origin answers an already-canceled card with a plain message, so recognise that too.
func decodeError(status int, body []byte) (string, string) {
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	if e.Code == "" && (status == http.StatusBadRequest || status == http.StatusConflict) {
		m := strings.ToLower(e.Error)
		if strings.Contains(m, "already") && (strings.Contains(m, "cancel") || strings.Contains(m, "closed")) {
			e.Code = issuerhttp.CodeAlreadyClosed
		}
	}
	return e.Code, e.Error
}

func (a *Adapter) Name() string { return Name }

func (a *Adapter) Capabilities() issuer.Capabilities {
	return issuer.Capabilities{
		LimitIntervals:        []issuer.Interval{issuer.AllTime},
		DailyAnchor:           issuer.AnchorNone,
		UpdatableLimits:       false,
		Pause:                 false,
		Reveal:                true,
		LimitGranularityMinor: 100,
	}
}

// cardWire is a card as the API returns it. Number and CVC are read only by RevealCard; for
// every other call the single-card GET's number is used for last4 and then dropped.
type cardWire struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	LimitUSD  int64     `json:"limit_usd"`
	Status    string    `json:"status"`
	Last4     string    `json:"last4"`
	ExpMonth  int       `json:"exp_month"`
	ExpYear   int       `json:"exp_year"`
	CreatedAt time.Time `json:"created_at"`
}

type secretWire struct {
	cardWire
	Number string `json:"number"`
	CVC    string `json:"cvc"`
}

func (w cardWire) card() issuer.Card {
	var st issuer.CardStatus
	switch w.Status {
	case "active":
		st = issuer.CardActive
	case "paused", "inactive", "frozen":
		st = issuer.CardPaused
	default: // canceled, closed, and anything unknown: not usable
		st = issuer.CardClosed
	}
	label, _ := splitTag(w.Label)
	return issuer.Card{
		ID: w.ID, Last4: w.Last4, ExpMonth: w.ExpMonth, ExpYear: w.ExpYear, Status: st, Currency: "USD",
		Label: label, Limits: []issuer.SpendLimit{{AmountMinor: w.LimitUSD * 100, Interval: issuer.AllTime}},
		CreatedAt: w.CreatedAt,
	}
}

// idempotency tag helpers.

func tagFor(key string) string {
	h := sha256.Sum256([]byte(key))
	return "[cw:" + hex.EncodeToString(h[:8]) + "]"
}

func splitTag(label string) (string, string) {
	i := strings.LastIndex(label, " [cw:")
	if i < 0 {
		if strings.HasPrefix(label, "[cw:") && strings.HasSuffix(label, "]") {
			return "", label
		}
		return label, ""
	}
	if !strings.HasSuffix(label, "]") {
		return label, ""
	}
	return label[:i], label[i+1:]
}

// LimitUSD is the limit_usd a request maps to: the smallest requested limit, whatever its
// interval, rounded down to whole dollars. The card is the only control this API has, so it
// must never allow more in total than any one requested limit does; the workflow enforces
// the rest (it reissues daily because Capabilities says limits are not updatable).
func LimitUSD(limits []issuer.SpendLimit) (int64, error) {
	if len(limits) == 0 {
		return 0, fmt.Errorf("a limit is required (the API has no unlimited cards)")
	}
	lowest := limits[0].AmountMinor
	for _, l := range limits[1:] {
		lowest = min(lowest, l.AmountMinor)
	}
	usd := lowest / 100 // rounding down: never a cent above the requested limit
	if usd < MinLimitUSD {
		return 0, fmt.Errorf("limit %d.%02d USD is below the API's minimum of $%d", lowest/100, lowest%100, MinLimitUSD)
	}
	if usd > MaxLimitUSD {
		return 0, fmt.Errorf("limit $%d is above the API's maximum of $%d", usd, MaxLimitUSD)
	}
	return usd, nil
}

func (a *Adapter) CreateCard(ctx context.Context, req issuer.CreateCardRequest) (issuer.Card, error) {
	const op = "create_card"
	if req.IdempotencyKey == "" {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "idempotency key is required"}
	}
	if req.Currency != "" && !strings.EqualFold(req.Currency, "usd") {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "only USD cards are available"}
	}
	usd, err := LimitUSD(req.Limits)
	if err != nil {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: err.Error()}
	}
	tag := tagFor(req.IdempotencyKey)
	label := strings.TrimSpace(req.Label + " " + tag)

	if w, found, err := a.findTagged(ctx, op, tag); err != nil || found {
		if err != nil {
			return issuer.Card{}, err
		}
		if w.LimitUSD != usd || w.Label != label {
			return issuer.Card{}, &issuer.Error{Kind: issuer.KindIdempotencyConflict, Op: op,
				Message: "a card with this idempotency key already exists with a different label or limit"}
		}
		return a.GetCard(ctx, w.ID)
	}
	var created struct {
		Data cardWire `json:"data"`
	}
	body := map[string]any{"label": label, "limit_usd": usd}
	if err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodPost, Path: "/api/v1/cards", Body: body}, &created); err != nil {
		return issuer.Card{}, err
	}
	// A concurrent attempt with the same key may have created a card too: converge on the
	// oldest and close the others, so every attempt returns the same card.
	w, found, err := a.findTagged(ctx, op, tag)
	if err != nil {
		return issuer.Card{}, err
	}
	if !found {
		w = created.Data
	}
	return a.GetCard(ctx, w.ID)
}

// findTagged returns the oldest card carrying tag, closing any younger duplicates.
func (a *Adapter) findTagged(ctx context.Context, op, tag string) (cardWire, bool, error) {
	var list struct {
		Data []cardWire `json:"data"`
	}
	if err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodGet, Path: "/api/v1/cards"}, &list); err != nil {
		return cardWire{}, false, err
	}
	var tagged []cardWire
	for _, w := range list.Data {
		if _, t := splitTag(w.Label); t == tag {
			tagged = append(tagged, w)
		}
	}
	if len(tagged) == 0 {
		return cardWire{}, false, nil
	}
	sort.Slice(tagged, func(i, j int) bool {
		if !tagged[i].CreatedAt.Equal(tagged[j].CreatedAt) {
			return tagged[i].CreatedAt.Before(tagged[j].CreatedAt)
		}
		return tagged[i].ID < tagged[j].ID
	})
	for _, dup := range tagged[1:] {
		if dup.Status == "active" {
			// Best effort: a failure leaves a spare card with the same limit, never more money.
			a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodDelete, Path: cardPath(dup.ID)}, nil)
		}
	}
	return tagged[0], true, nil
}

func cardPath(id string) string { return "/api/v1/cards/" + url.PathEscape(id) }

func (a *Adapter) getSecret(ctx context.Context, op, cardID string) (secretWire, error) {
	var resp struct {
		Data secretWire `json:"data"`
	}
	if err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodGet, Path: cardPath(cardID)}, &resp); err != nil {
		return secretWire{}, err
	}
	if resp.Data.Last4 == "" && len(resp.Data.Number) >= 4 {
		resp.Data.Last4 = resp.Data.Number[len(resp.Data.Number)-4:]
	}
	return resp.Data, nil
}

// GetCard uses the single-card GET, which also carries the number; the number is discarded
// here and never leaves the adapter.
func (a *Adapter) GetCard(ctx context.Context, cardID string) (issuer.Card, error) {
	w, err := a.getSecret(ctx, "get_card", cardID)
	if err != nil {
		return issuer.Card{}, err
	}
	return w.card(), nil
}

func (a *Adapter) RevealCard(ctx context.Context, cardID string) (issuer.Secrets, error) {
	w, err := a.getSecret(ctx, "reveal_card", cardID)
	if err != nil {
		return issuer.Secrets{}, err
	}
	if w.Number == "" || w.CVC == "" {
		return issuer.Secrets{}, &issuer.Error{Kind: issuer.KindTransient, Op: "reveal_card", Message: "issuer returned no card number"}
	}
	return issuer.Secrets{Number: w.Number, CVC: w.CVC, ExpMonth: w.ExpMonth, ExpYear: w.ExpYear}, nil
}

func notSupported(op, what string) error {
	return &issuer.Error{Kind: issuer.KindNotSupported, Op: op, Message: "AI Payment Proxy cannot " + what}
}

func (a *Adapter) UpdateLimits(context.Context, string, []issuer.SpendLimit) (issuer.Card, error) {
	return issuer.Card{}, notSupported("update_limits", "change a card's limit; reissue the card instead")
}

func (a *Adapter) PauseCard(context.Context, string) (issuer.Card, error) {
	return issuer.Card{}, notSupported("pause_card", "pause a card; close it instead")
}

func (a *Adapter) ResumeCard(context.Context, string) (issuer.Card, error) {
	return issuer.Card{}, notSupported("resume_card", "resume a card")
}

// CloseCard deletes (cancels) the card. A second delete is ErrAlreadyClosed.
func (a *Adapter) CloseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	var resp struct {
		Data cardWire `json:"data"`
	}
	if err := a.c.Do(ctx, "close_card", issuerhttp.Request{Method: http.MethodDelete, Path: cardPath(cardID)}, &resp); err != nil {
		return issuer.Card{}, err
	}
	c := resp.Data.card()
	if c.ID == "" { // some versions answer {"success":true} only
		return a.GetCard(ctx, cardID)
	}
	c.Status = issuer.CardClosed
	return c, nil
}

func (a *Adapter) ListAuthorizations(context.Context, string, time.Time) ([]cardwarden.Event, error) {
	return nil, notSupported("list_authorizations", "list transactions (the API has no such endpoint)")
}

// VerifyWebhook is not supported: the API documents no webhook signature, and accepting
// unsigned events would let anyone move an agent's budget.
func (a *Adapter) VerifyWebhook(http.Header, []byte, time.Time) ([]cardwarden.Event, error) {
	return nil, notSupported("verify_webhook", "sign webhooks (none are documented)")
}
