package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/activities"
	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/config"
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
func startWorkers(c client.Client, st *store.Store, vlt *vault.Vault, reg *issuer.Registry, rateLimit float64, logger *slog.Logger) (*worker.Workers, error) {
	acts := &activities.Activities{Issuers: reg, Store: st, Vault: vlt, Logger: logger}
	w := worker.New(c, acts, worker.Config{IssuerRatePerSecond: rateLimit})
	if err := w.Start(); err != nil {
		return nil, err
	}
	return w, nil
}

// loadCodec reads CARDWARDEN_CODEC_KEY; nil when payload encryption is off.
func loadCodec() (*codec.Codec, error) {
	cdc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", codec.EnvKey, err)}
	}
	return cdc, nil
}

// encryptedTemporal makes the Temporal client encrypt payloads when a codec is configured.
func encryptedTemporal(t config.Temporal, cdc *codec.Codec) config.Temporal {
	if cdc != nil {
		t.DataConverter = codec.DataConverter(cdc)
	}
	return t
}

// apiDeps are the HTTP API's dependencies, shared by serve and dev.
func apiDeps(st *store.Store, c client.Client, reg *issuer.Registry, vlt *vault.Vault, cdc *codec.Codec, adminToken string, logger *slog.Logger) api.Deps {
	return api.Deps{
		Store: st, Temporal: c, Logger: logger, AdminToken: adminToken, Issuers: reg, Vault: vlt,
		Codec: cdc, CodecOrigins: codec.OriginsFromEnv(os.Getenv),
	}
}

func healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	return mux
}
