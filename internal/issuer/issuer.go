// Package issuer defines the one interface cardwarden uses to talk to a card issuer, the
// normalized card types every adapter translates to and from (the normalized money event is
// cardwarden.Event, in the root package, because callers of package starter need it too), and
// the typed errors activities map to retryable or non-retryable Temporal failures.
//
// Money is always an int64 of minor units (cents for USD). Card numbers and CVCs only ever
// appear in Secrets, whose formatting methods redact them.
package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden"
)

// Interval is the window a SpendLimit applies to.
type Interval string

const (
	PerAuthorization Interval = "per_authorization"
	Daily            Interval = "daily"
	Weekly           Interval = "weekly"
	Monthly          Interval = "monthly"
	AllTime          Interval = "all_time"
)

// SpendLimit caps spend over an interval, in minor units.
type SpendLimit struct {
	AmountMinor int64    `json:"amount_minor"`
	Interval    Interval `json:"interval"`
}

// CardStatus is the normalized card state.
type CardStatus string

const (
	CardActive CardStatus = "active"
	CardPaused CardStatus = "paused"
	CardClosed CardStatus = "closed"
)

// Card is what cardwarden may know and store about a card: never its number or CVC.
type Card struct {
	ID        string       `json:"id"`
	Last4     string       `json:"last4"`
	ExpMonth  int          `json:"exp_month"`
	ExpYear   int          `json:"exp_year"`
	Status    CardStatus   `json:"status"`
	Currency  string       `json:"currency"`
	Label     string       `json:"label,omitempty"`
	Limits    []SpendLimit `json:"limits,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
}

// ExpiresAt is the last instant the card can be used: the end of its expiry month, UTC.
func (c Card) ExpiresAt() time.Time {
	if c.ExpYear == 0 || c.ExpMonth == 0 {
		return time.Time{}
	}
	return time.Date(c.ExpYear, time.Month(c.ExpMonth)+1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
}

// Secrets are the card's credentials. They must only travel from the issuer to the vault and
// from the vault to the agent that owns the card; every formatting path redacts them.
type Secrets struct {
	Number   string
	CVC      string
	ExpMonth int
	ExpYear  int
}

func (Secrets) String() string               { return "issuer.Secrets{redacted}" }
func (Secrets) GoString() string             { return "issuer.Secrets{redacted}" }
func (Secrets) LogValue() slog.Value         { return slog.StringValue("redacted") }
func (Secrets) MarshalJSON() ([]byte, error) { return []byte(`"redacted"`), nil }

// CreateCardRequest asks for a new virtual card. IdempotencyKey is required: the same key must
// never produce two cards, however often the call is retried.
type CreateCardRequest struct {
	IdempotencyKey string            `json:"idempotency_key"`
	Label          string            `json:"label"`
	Currency       string            `json:"currency"`
	Limits         []SpendLimit      `json:"limits"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// WindowAnchor says where an issuer's native daily window starts.
type WindowAnchor string

const (
	AnchorUTCMidnight WindowAnchor = "utc_midnight"
	AnchorRolling     WindowAnchor = "rolling"
	AnchorNone        WindowAnchor = "none"
)

// Capabilities tell the workflow what the issuer does natively, so it can do the rest itself
// (for example reissue a card daily where limits cannot be updated).
type Capabilities struct {
	LimitIntervals  []Interval   `json:"limit_intervals"`
	DailyAnchor     WindowAnchor `json:"daily_anchor"`
	UpdatableLimits bool         `json:"updatable_limits"`
	Pause           bool         `json:"pause"`
	Reveal          bool         `json:"reveal"`
	// LimitGranularityMinor is the smallest step a limit can take (100 where the issuer only
	// takes whole dollars); 0 or 1 means any amount of minor units.
	LimitGranularityMinor int64 `json:"limit_granularity_minor,omitempty"`
}

// Supports reports whether the interval is enforced natively.
func (c Capabilities) Supports(i Interval) bool {
	for _, x := range c.LimitIntervals {
		if x == i {
			return true
		}
	}
	return false
}

// Issuer is a card issuer's API. Every method is safe to retry: creates carry an idempotency
// key, and the rest are idempotent by nature (closing a closed card returns ErrAlreadyClosed).
type Issuer interface {
	Name() string
	Capabilities() Capabilities
	CreateCard(ctx context.Context, req CreateCardRequest) (Card, error)
	GetCard(ctx context.Context, cardID string) (Card, error)
	RevealCard(ctx context.Context, cardID string) (Secrets, error)
	UpdateLimits(ctx context.Context, cardID string, limits []SpendLimit) (Card, error)
	PauseCard(ctx context.Context, cardID string) (Card, error)
	ResumeCard(ctx context.Context, cardID string) (Card, error)
	CloseCard(ctx context.Context, cardID string) (Card, error)
	// ListAuthorizations returns the money events on a card that occurred at or after since,
	// oldest first, for reconciliation against the ledger.
	ListAuthorizations(ctx context.Context, cardID string, since time.Time) ([]cardwarden.Event, error)
	// VerifyWebhook checks the signature and freshness of a delivery and parses its events.
	// A bad or stale signature returns an error of KindUnauthorized and no events.
	VerifyWebhook(header http.Header, body []byte, now time.Time) ([]cardwarden.Event, error)
}

// ErrorKind classifies issuer failures for retry decisions.
type ErrorKind string

const (
	KindRateLimited         ErrorKind = "rate_limited"
	KindTransient           ErrorKind = "transient"
	KindInvalid             ErrorKind = "invalid_request"
	KindNotFound            ErrorKind = "not_found"
	KindAlreadyClosed       ErrorKind = "already_closed"
	KindIdempotencyConflict ErrorKind = "idempotency_conflict"
	KindNotSupported        ErrorKind = "not_supported"
	KindUnauthorized        ErrorKind = "unauthorized"
)

// Error is the typed error every adapter returns for a failed call.
type Error struct {
	Kind       ErrorKind
	Op         string        // e.g. "create_card"
	Message    string        // the issuer's message, never card data
	RetryAfter time.Duration // set for KindRateLimited when the issuer said
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("issuer ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, issuer.ErrNotFound) and friends match on kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Err == nil && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrRateLimited         = &Error{Kind: KindRateLimited}
	ErrTransient           = &Error{Kind: KindTransient}
	ErrInvalid             = &Error{Kind: KindInvalid}
	ErrNotFound            = &Error{Kind: KindNotFound}
	ErrAlreadyClosed       = &Error{Kind: KindAlreadyClosed}
	ErrIdempotencyConflict = &Error{Kind: KindIdempotencyConflict}
	ErrNotSupported        = &Error{Kind: KindNotSupported}
	ErrUnauthorized        = &Error{Kind: KindUnauthorized}
)

// Retryable reports whether retrying the same call can succeed. Unknown errors (network
// failures, context deadlines) are retryable.
func Retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	return e.Kind == KindRateLimited || e.Kind == KindTransient
}

// Registry holds the configured adapters by name.
type Registry struct {
	byName map[string]Issuer
}

// NewRegistry returns a registry holding the given adapters.
func NewRegistry(adapters ...Issuer) *Registry {
	r := &Registry{byName: map[string]Issuer{}}
	for _, a := range adapters {
		r.byName[a.Name()] = a
	}
	return r
}

// Get returns the adapter called name, or an error listing the configured ones.
func (r *Registry) Get(name string) (Issuer, error) {
	if a, ok := r.byName[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("issuer %q is not configured (configured: %s)", name, strings.Join(r.Names(), ", "))
}

// Names lists the configured adapters, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
