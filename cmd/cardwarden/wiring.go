package main

import (
	"context"
	"log/slog"
	"net/http"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/issuer"
	"github.com/cardwarden/cardwarden/internal/issuer/adapters"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
	"github.com/cardwarden/cardwarden/worker"
)

// issuerRegistry builds the configured issuer adapters.
func (f issuerFlags) registry() (*issuer.Registry, error) {
	return adapters.New(adapters.Config{
		Sim:    adapters.SimConfig{BaseURL: f.simURL, APIKey: f.simAPIKey, WebhookSecret: f.simWebhookSecret},
		Stripe: adapters.StripeConfig{APIKey: f.stripeAPIKey, BaseURL: f.stripeURL, WebhookSecret: f.stripeWebhookSecret},
		AIPP:   adapters.AIPPConfig{BaseURL: f.aippURL, APIKey: f.aippAPIKey},
	})
}

// startWorkers registers the workflows and activities on both task queues and starts polling.
func startWorkers(_ context.Context, c client.Client, st *store.Store, vlt *vault.Vault, f issuerFlags, logger *slog.Logger) (*worker.Workers, error) {
	reg, err := f.registry()
	if err != nil {
		return nil, err
	}
	acts := &activities.Activities{Issuers: reg, Store: st, Vault: vlt, Logger: logger}
	w := worker.New(c, acts, worker.Config{IssuerRatePerSecond: f.rateLimit})
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

func healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux
}
