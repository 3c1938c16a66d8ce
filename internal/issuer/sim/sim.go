// Package sim is the issuer adapter for cardwarden's own simulator (internal/issuersim), over
// its native JSON API. The simulator supports everything the interface can express, so this
// adapter reports full capabilities.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/issuerhttp"
	"github.com/cardwarden/cardwarden/internal/issuer/stdwebhooks"
)

// Name is the adapter's registry name.
const Name = "sim"

// Config configures the adapter.
type Config struct {
	BaseURL       string // e.g. http://127.0.0.1:8090
	APIKey        string
	WebhookSecret string // "whsec_<base64>" or raw; empty disables VerifyWebhook
	HTTPClient    *http.Client
}

// Adapter implements issuer.Issuer against the simulator.
type Adapter struct {
	c          issuerhttp.Client
	webhookKey []byte
}

var _ issuer.Issuer = (*Adapter)(nil)

// New builds the adapter.
func New(cfg Config) (*Adapter, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("sim issuer: base URL is required")
	}
	if _, err := url.ParseRequestURI(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("sim issuer: base URL: %w", err)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("sim issuer: API key is required")
	}
	a := &Adapter{c: issuerhttp.Client{
		BaseURL: cfg.BaseURL, HTTP: cfg.HTTPClient, Authorize: issuerhttp.BearerAuth(cfg.APIKey), DecodeError: decodeError,
	}}
	if a.c.HTTP == nil {
		a.c.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.WebhookSecret != "" {
		key, err := stdwebhooks.DecodeSecret(cfg.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("sim issuer: %w", err)
		}
		a.webhookKey = key
	}
	return a, nil
}

func decodeError(_ int, body []byte) (string, string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
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

type cardWire struct {
	ID        string              `json:"id"`
	Status    string              `json:"status"`
	Label     string              `json:"label"`
	Currency  string              `json:"currency"`
	Last4     string              `json:"last4"`
	ExpMonth  int                 `json:"exp_month"`
	ExpYear   int                 `json:"exp_year"`
	Limits    []issuer.SpendLimit `json:"limits"`
	CreatedAt time.Time           `json:"created_at"`
}

func (w cardWire) card() issuer.Card {
	st := issuer.CardStatus(w.Status)
	switch st {
	case issuer.CardActive, issuer.CardPaused, issuer.CardClosed:
	default:
		st = issuer.CardClosed // an unknown state must not be mistaken for a usable card
	}
	return issuer.Card{
		ID: w.ID, Last4: w.Last4, ExpMonth: w.ExpMonth, ExpYear: w.ExpYear, Status: st,
		Currency: strings.ToUpper(w.Currency), Label: w.Label, Limits: w.Limits, CreatedAt: w.CreatedAt,
	}
}

func cardPath(id string, rest ...string) string {
	return "/v1/cards/" + url.PathEscape(id) + strings.Join(rest, "")
}

func (a *Adapter) CreateCard(ctx context.Context, req issuer.CreateCardRequest) (issuer.Card, error) {
	const op = "create_card"
	if req.IdempotencyKey == "" {
		return issuer.Card{}, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "idempotency key is required"}
	}
	cur := strings.ToLower(req.Currency)
	if cur == "" {
		cur = "usd"
	}
	limits := req.Limits
	if limits == nil {
		limits = []issuer.SpendLimit{}
	}
	body := map[string]any{"label": req.Label, "currency": cur, "limits": limits}
	if len(req.Metadata) > 0 {
		body["metadata"] = req.Metadata
	}
	var w cardWire
	err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodPost, Path: "/v1/cards", Body: body, IdempotencyKey: req.IdempotencyKey}, &w)
	if err != nil {
		return issuer.Card{}, err
	}
	return w.card(), nil
}

func (a *Adapter) GetCard(ctx context.Context, cardID string) (issuer.Card, error) {
	var w cardWire
	if err := a.c.Do(ctx, "get_card", issuerhttp.Request{Method: http.MethodGet, Path: cardPath(cardID)}, &w); err != nil {
		return issuer.Card{}, err
	}
	return w.card(), nil
}

func (a *Adapter) RevealCard(ctx context.Context, cardID string) (issuer.Secrets, error) {
	var w struct {
		Number   string `json:"number"`
		CVC      string `json:"cvc"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
	}
	if err := a.c.Do(ctx, "reveal_card", issuerhttp.Request{Method: http.MethodGet, Path: cardPath(cardID, "/reveal")}, &w); err != nil {
		return issuer.Secrets{}, err
	}
	if w.Number == "" || w.CVC == "" {
		return issuer.Secrets{}, &issuer.Error{Kind: issuer.KindTransient, Op: "reveal_card", Message: "issuer returned no card number"}
	}
	return issuer.Secrets{Number: w.Number, CVC: w.CVC, ExpMonth: w.ExpMonth, ExpYear: w.ExpYear}, nil
}

// mutate POSTs a state change. The simulator applies these as absolute settings, so a retry
// needs no idempotency key.
func (a *Adapter) mutate(ctx context.Context, op, cardID, suffix string, body any) (issuer.Card, error) {
	var w cardWire
	err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodPost, Path: cardPath(cardID, suffix), Body: body}, &w)
	if err != nil {
		return issuer.Card{}, err
	}
	return w.card(), nil
}

func (a *Adapter) UpdateLimits(ctx context.Context, cardID string, limits []issuer.SpendLimit) (issuer.Card, error) {
	if limits == nil {
		limits = []issuer.SpendLimit{}
	}
	return a.mutate(ctx, "update_limits", cardID, "/limits", map[string]any{"limits": limits})
}

func (a *Adapter) PauseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	return a.mutate(ctx, "pause_card", cardID, "/pause", map[string]any{})
}

func (a *Adapter) ResumeCard(ctx context.Context, cardID string) (issuer.Card, error) {
	return a.mutate(ctx, "resume_card", cardID, "/resume", map[string]any{})
}

func (a *Adapter) CloseCard(ctx context.Context, cardID string) (issuer.Card, error) {
	return a.mutate(ctx, "close_card", cardID, "/close", map[string]any{})
}

func (a *Adapter) ListAuthorizations(ctx context.Context, cardID string, since time.Time) ([]cardwarden.Event, error) {
	const op = "list_authorizations"
	var out []cardwarden.Event
	after := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if !since.IsZero() {
			q.Set("since", since.UTC().Format(time.RFC3339Nano))
		}
		if after != "" {
			q.Set("starting_after", after)
		}
		var page struct {
			Data    []eventWire `json:"data"`
			HasMore bool        `json:"has_more"`
		}
		if err := a.c.Do(ctx, op, issuerhttp.Request{Method: http.MethodGet, Path: cardPath(cardID, "/authorizations"), Query: q}, &page); err != nil {
			return nil, err
		}
		for _, w := range page.Data {
			ev, ok, err := w.event()
			if err != nil {
				return nil, &issuer.Error{Kind: issuer.KindTransient, Op: op, Message: "malformed event", Err: err}
			}
			if ok {
				out = append(out, ev)
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return out, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

// VerifyWebhook checks a Standard Webhooks signature (5-minute tolerance both ways, constant
// time) and parses the delivered event. Card lifecycle events verify but yield no money
// events.
func (a *Adapter) VerifyWebhook(header http.Header, body []byte, now time.Time) ([]cardwarden.Event, error) {
	const op = "verify_webhook"
	if a.webhookKey == nil {
		return nil, &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: "no webhook secret configured for the sim issuer"}
	}
	id, err := stdwebhooks.Verify(a.webhookKey, header, body, now, stdwebhooks.Tolerance)
	if err != nil {
		return nil, &issuer.Error{Kind: issuer.KindUnauthorized, Op: op, Message: err.Error()}
	}
	var w eventWire
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "body is not an event"}
	}
	if w.ID != id {
		return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "webhook-id does not match the event id"}
	}
	ev, ok, err := w.event()
	if err != nil {
		return nil, &issuer.Error{Kind: issuer.KindInvalid, Op: op, Message: "malformed event", Err: err}
	}
	if !ok {
		return []cardwarden.Event{}, nil
	}
	return []cardwarden.Event{ev}, nil
}

type eventWire struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	CardID    string          `json:"card_id"`
	Data      json.RawMessage `json:"data"`
}

type moneyWire struct {
	CardID          string `json:"card_id"`
	AuthorizationID string `json:"authorization_id"`
	TransactionID   string `json:"transaction_id"`
	Approved        bool   `json:"approved"`
	Reason          string `json:"reason"`
	AmountMinor     int64  `json:"amount_minor"`
	AuthorizedMinor int64  `json:"authorized_minor"`
	Currency        string `json:"currency"`
	Merchant        string `json:"merchant"`
	MCC             string `json:"mcc"`
}

var kinds = map[string]cardwarden.EventKind{
	"authorization.created": cardwarden.KindAuthorization,
	"capture.created":       cardwarden.KindCapture,
	"force_capture.created": cardwarden.KindForceCapture,
	"refund.created":        cardwarden.KindRefund,
	"reversal.created":      cardwarden.KindReversal,
}

// event converts a money event; ok is false for event types that carry no money.
func (w eventWire) event() (cardwarden.Event, bool, error) {
	kind, ok := kinds[w.Type]
	if !ok {
		return cardwarden.Event{}, false, nil
	}
	var m moneyWire
	if err := json.Unmarshal(w.Data, &m); err != nil {
		return cardwarden.Event{}, false, fmt.Errorf("event %s: %w", w.ID, err)
	}
	ev := cardwarden.Event{
		ID: w.ID, Issuer: Name, Kind: kind, CardID: m.CardID, AuthorizationID: m.AuthorizationID,
		Approved: m.Approved, AmountMinor: m.AmountMinor, Currency: strings.ToUpper(m.Currency),
		MerchantName: m.Merchant, MCC: m.MCC, OccurredAt: w.CreatedAt,
	}
	if kind == cardwarden.KindCapture {
		ev.AuthorizedMinor = m.AuthorizedMinor
	}
	if ev.CardID == "" {
		ev.CardID = w.CardID
	}
	if !m.Approved {
		ev.RawReason = m.Reason
		ev.DeclineReason = normalizeReason(m.Reason)
	}
	return ev, true, nil
}

func normalizeReason(raw string) cardwarden.DeclineReason {
	switch r := cardwarden.DeclineReason(raw); r {
	case cardwarden.ReasonSpendingLimit, cardwarden.ReasonCardPaused, cardwarden.ReasonCardClosed, cardwarden.ReasonCardExpired,
		cardwarden.ReasonMerchantBlocked, cardwarden.ReasonSuspectedFraud, cardwarden.ReasonDecisionDeclined, cardwarden.ReasonDecisionTimeout:
		return r
	}
	return cardwarden.ReasonOther
}
