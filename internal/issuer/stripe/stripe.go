// Package stripe is the issuer adapter for Stripe Issuing, through the official stripe-go SDK
// (v82, API version 2025-08-27.basil, which Stripe's stripe-mock v0.203.0 accepts).
//
// Every POST carries our own deterministic idempotency key, never the SDK's random one: a
// retried activity must not issue a second card. Limits are spending_controls.spending_limits
// (UTC calendar windows); pause is status=inactive, close is status=canceled (permanent).
// Webhooks are verified with the SDK's webhook package (Stripe-Signature, HMAC-SHA256) and
// issuing_authorization.* / issuing_transaction.* events become cardwarden.Events whose IDs are
// the Stripe object IDs (iauth_…, ipi_…), so a webhook and a reconciliation listing of the
// same authorization deduplicate to one ledger entry. Real-time authorizations
// (issuing_authorization.request) are verified the same way and answered in Stripe's format
// (issuer.Decider, decision.go).
package stripe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

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
	// AuthorizationSecret is the whsec_… signing secret of the real-time authorization
	// endpoint (issuing_authorization.request, ParseDecisionRequest) when Stripe shows that
	// endpoint a secret of its own; WebhookSecret when empty.
	AuthorizationSecret string
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
