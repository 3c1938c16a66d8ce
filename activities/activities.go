// Package activities is the only place that does I/O for the AgentCard workflow: issuer calls,
// the credential vault, ledger and audit writes, and alert delivery. Each exported method of
// *Activities is one activity, named as in workflows/contract.go; issuer failures are mapped
// to retryable or non-retryable Temporal errors (errors.go).
package activities

import (
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/cardwarden/cardwarden"
	"github.com/cardwarden/cardwarden/internal/alerts"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/workflows"
)

// Activities holds what the activities need. Every field but HTTPClient and Logger is required.
type Activities struct {
	Issuers *issuer.Registry
	Store   *store.Store
	Vault   *vault.Vault
	// HTTPClient delivers credential pushes and policies' alert webhooks. It must be an
	// outbound.NewClient (https only, no redirects, no internal addresses); nil means one with
	// the production rules.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Alerts routes alerts (alerts.NewNotifier: Slack, signed webhook); nil sends only to
	// policies' own webhook_url.
	Alerts *alerts.Notifier
	// Metrics observes freeze latency and events found by reconciliation; nil observes nothing.
	Metrics Observer
	// Pacer is this process's share of the issuer's rate limit (package worker sets it from
	// its Config); nil: no limit.
	Pacer *Pacer

	// beforeReconcileRecord, for tests, runs just before Reconcile records an event the ledger
	// did not have when read: where a webhook for it can land.
	beforeReconcileRecord func(cardwarden.Event)
}

var defaultHTTPClient = outbound.NewClient(outbound.Rules{}, outbound.Options{})

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *Activities) httpClient() *http.Client {
	if a.HTTPClient != nil {
		return a.HTTPClient
	}
	return defaultHTTPClient
}

// issuer returns the named adapter; an unconfigured issuer is a permanent failure.
func (a *Activities) issuer(name string) (issuer.Issuer, error) {
	iss, err := a.Issuers.Get(name)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeIssuerNotConfigured, nil)
	}
	return iss, nil
}

// Observer receives what the activities can measure and nothing else can: how long a burst
// took to freeze the card, and events only reconciliation found. *metrics.Metrics is one.
type Observer interface {
	ObserveFreeze(issuerName string, burstStart, pausedAt time.Time)
	ObserveEvent(ev cardwarden.Event)
}
