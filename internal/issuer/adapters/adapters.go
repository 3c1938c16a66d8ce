// Package adapters builds the issuer registry from configuration: one place that knows every
// adapter, so the worker, the API server and `cardwarden dev` configure issuers the same way.
package adapters

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/aipaymentproxy"
	"github.com/cardwarden/cardwarden/internal/issuer/sim"
	"github.com/cardwarden/cardwarden/internal/issuer/stripe"
)

// Environment variables read by FromEnv.
const (
	EnvSimURL              = "CARDWARDEN_ISSUER_SIM_URL"
	EnvSimAPIKey           = "CARDWARDEN_SIM_API_KEY"        // #nosec G101 -- the variable's name, not a credential
	EnvSimWebhookSecret    = "CARDWARDEN_SIM_WEBHOOK_SECRET" // #nosec G101 -- the variable's name, not a credential
	EnvStripeAPIKey        = "CARDWARDEN_STRIPE_API_KEY"
	EnvStripeURL           = "CARDWARDEN_STRIPE_URL"
	EnvStripeWebhookSecret = "CARDWARDEN_STRIPE_WEBHOOK_SECRET" // #nosec G101 -- the variable's name, not a credential
	EnvStripeCardholderID  = "CARDWARDEN_STRIPE_CARDHOLDER_ID"
	// EnvStripeAuthorizationSecret is the signing secret of the real-time authorization
	// endpoint, when it differs from the webhook endpoint's.
	EnvStripeAuthorizationSecret = "CARDWARDEN_STRIPE_AUTHORIZATION_SECRET" // #nosec G101 -- the variable's name, not a credential
	EnvAIPPURL                   = "CARDWARDEN_AIPP_URL"
	EnvAIPPAPIKey                = "CARDWARDEN_AIPP_API_KEY" // #nosec G101 -- the variable's name, not a credential
)

// DefaultSimAPIKey is the simulator's default key (issuersim.DefaultAPIKey), used when the sim
// URL is set without a key.
const DefaultSimAPIKey = "sim_test_key"

// Config holds every adapter's settings. An adapter is built only when configured.
type Config struct {
	Sim    SimConfig
	Stripe StripeConfig
	AIPP   AIPPConfig
	// HTTPClient is shared by all adapters; each builds one with a 30s timeout when nil.
	HTTPClient *http.Client
}

// SimConfig configures the simulator adapter ("sim"), built whenever BaseURL is set.
type SimConfig struct {
	BaseURL       string // CARDWARDEN_ISSUER_SIM_URL, e.g. http://127.0.0.1:8090
	APIKey        string // CARDWARDEN_SIM_API_KEY; DefaultSimAPIKey when empty
	WebhookSecret string // CARDWARDEN_SIM_WEBHOOK_SECRET ("whsec_<base64>" or raw)
}

// StripeConfig configures Stripe Issuing ("stripe"), built only when APIKey is set.
type StripeConfig struct {
	APIKey        string // CARDWARDEN_STRIPE_API_KEY (sk_test_… / sk_live_…)
	BaseURL       string // CARDWARDEN_STRIPE_URL; https://api.stripe.com when empty (stripe-mock: http://127.0.0.1:12111)
	WebhookSecret string // CARDWARDEN_STRIPE_WEBHOOK_SECRET (whsec_… of the webhook endpoint)
	CardholderID  string // CARDWARDEN_STRIPE_CARDHOLDER_ID; found or created when empty
	// AuthorizationSecret (CARDWARDEN_STRIPE_AUTHORIZATION_SECRET) verifies the real-time
	// authorization requests; WebhookSecret when empty.
	AuthorizationSecret string
}

// AIPPConfig configures AI Payment Proxy ("aipaymentproxy"), built when APIKey is set.
type AIPPConfig struct {
	BaseURL string // CARDWARDEN_AIPP_URL; https://aipaymentproxy.com when empty (the simulator serves this dialect too)
	APIKey  string // CARDWARDEN_AIPP_API_KEY
}

// FromEnv reads Config from environment variables through getenv (os.Getenv in production).
func FromEnv(getenv func(string) string) Config {
	return Config{
		Sim: SimConfig{BaseURL: getenv(EnvSimURL), APIKey: getenv(EnvSimAPIKey), WebhookSecret: getenv(EnvSimWebhookSecret)},
		Stripe: StripeConfig{APIKey: getenv(EnvStripeAPIKey), BaseURL: getenv(EnvStripeURL),
			WebhookSecret: getenv(EnvStripeWebhookSecret), CardholderID: getenv(EnvStripeCardholderID),
			AuthorizationSecret: getenv(EnvStripeAuthorizationSecret)},
		AIPP: AIPPConfig{BaseURL: getenv(EnvAIPPURL), APIKey: getenv(EnvAIPPAPIKey)},
	}
}

// New builds a registry holding every configured adapter. It is an error to configure none,
// because nothing could issue a card.
func New(cfg Config) (*issuer.Registry, error) {
	var list []issuer.Issuer
	var errs []error
	if cfg.Sim.BaseURL != "" {
		key := cfg.Sim.APIKey
		if key == "" {
			key = DefaultSimAPIKey
		}
		a, err := sim.New(sim.Config{BaseURL: cfg.Sim.BaseURL, APIKey: key, WebhookSecret: cfg.Sim.WebhookSecret, HTTPClient: cfg.HTTPClient})
		if err != nil {
			errs = append(errs, err)
		} else {
			list = append(list, a)
		}
	}
	if cfg.Stripe.APIKey != "" {
		a, err := stripe.New(stripe.Config{APIKey: cfg.Stripe.APIKey, BaseURL: cfg.Stripe.BaseURL, WebhookSecret: cfg.Stripe.WebhookSecret,
			CardholderID: cfg.Stripe.CardholderID, AuthorizationSecret: cfg.Stripe.AuthorizationSecret, HTTPClient: cfg.HTTPClient})
		if err != nil {
			errs = append(errs, err)
		} else {
			list = append(list, a)
		}
	}
	if cfg.AIPP.APIKey != "" {
		a, err := aipaymentproxy.New(aipaymentproxy.Config{BaseURL: cfg.AIPP.BaseURL, APIKey: cfg.AIPP.APIKey, HTTPClient: cfg.HTTPClient})
		if err != nil {
			errs = append(errs, err)
		} else {
			list = append(list, a)
		}
	} else if cfg.AIPP.BaseURL != "" {
		errs = append(errs, fmt.Errorf("aipaymentproxy issuer: %s is set but %s is not", EnvAIPPURL, EnvAIPPAPIKey))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configure issuers: %w", err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("configure issuers: none configured (set %s, %s or %s)", EnvSimURL, EnvStripeAPIKey, EnvAIPPAPIKey)
	}
	return issuer.NewRegistry(list...), nil
}
