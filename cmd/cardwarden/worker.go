package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cardwarden/cardwarden/internal/config"
)

// issuerFlags configure the issuer adapters.
type issuerFlags struct {
	simURL              string
	simAPIKey           string
	simWebhookSecret    string
	stripeAPIKey        string
	stripeURL           string
	stripeWebhookSecret string
	stripeAuthSecret    string
	aippURL             string
	aippAPIKey          string
	rateLimit           float64
}

func bindIssuerFlags(fs *pflag.FlagSet, f *issuerFlags) {
	fs.StringVar(&f.simURL, "issuer-url", config.Env("CARDWARDEN_ISSUER_SIM_URL", ""), "base URL of the issuer simulator (env CARDWARDEN_ISSUER_SIM_URL)")
	config.SecretVar(fs, &f.simAPIKey, "sim-api-key", "CARDWARDEN_SIM_API_KEY", "", "issuer simulator API key")
	config.SecretVar(fs, &f.simWebhookSecret, "sim-webhook-secret", "CARDWARDEN_SIM_WEBHOOK_SECRET", "", "secret that signs the simulator's webhooks")
	config.SecretVar(fs, &f.stripeAPIKey, "stripe-api-key", "CARDWARDEN_STRIPE_API_KEY", "", "Stripe secret key; enables the stripe issuer")
	fs.StringVar(&f.stripeURL, "stripe-url", config.Env("CARDWARDEN_STRIPE_URL", ""), "Stripe API base URL, e.g. a stripe-mock (env CARDWARDEN_STRIPE_URL)")
	config.SecretVar(fs, &f.stripeWebhookSecret, "stripe-webhook-secret", "CARDWARDEN_STRIPE_WEBHOOK_SECRET", "", "Stripe webhook signing secret")
	config.SecretVar(fs, &f.stripeAuthSecret, "stripe-authorization-secret", "CARDWARDEN_STRIPE_AUTHORIZATION_SECRET", "",
		"signing secret of Stripe's real-time authorization endpoint, when it differs from the webhook secret")
	fs.StringVar(&f.aippURL, "aipp-url", config.Env("CARDWARDEN_AIPP_URL", ""), "AI Payment Proxy base URL; enables the aipaymentproxy issuer (env CARDWARDEN_AIPP_URL)")
	config.SecretVar(fs, &f.aippAPIKey, "aipp-api-key", "CARDWARDEN_AIPP_API_KEY", "", "AI Payment Proxy API key")
	fs.Float64Var(&f.rateLimit, "issuer-rate-limit", config.EnvFloat("CARDWARDEN_ISSUER_RATE_LIMIT", 0),
		"the issuer's API rate limit in calls per second: a cap across all workers, and each worker paces its calls evenly at 90% of it; 0 means no limit (env CARDWARDEN_ISSUER_RATE_LIMIT)")
}

func newWorkerCmd() *cobra.Command {
	var (
		temporal config.Temporal
		dbURL    string
		issuer   issuerFlags
		health   string
		logs     logFlags
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the workflows and activities against any Temporal service",
		Long: `Poll the three task queues of the Temporal service at --address: cardwarden (workflows,
store activities, alerts, and the issuer calls that stop a card, started by the worker that
decided them), cardwarden-issuer (issuer activities) and cardwarden-issuer-urgent (stops
scheduled there by earlier versions). Run as many replicas as needed; the issuer queue is capped server-side at --issuer-rate-limit calls per second in total, and each
worker spaces its issuer calls evenly at 90% of it, so a fleet-wide reset does not trip the
issuer's 429s (with several workers, the cap holds on average and a 429 is retried after the
issuer's Retry-After).

Requires CARDWARDEN_VAULT_KEY (32-byte AES key, 64 hex characters) to seal card credentials.`,
		Example: `  CARDWARDEN_VAULT_KEY=$(openssl rand -hex 32) cardwarden worker --address temporal:7233 \
    --database-url postgres://cardwarden@db/cardwarden --issuer-url http://issuer-sim:8090 --issuer-rate-limit 100`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd)
			if err != nil {
				return err
			}
			if err := checkProductionSettings("worker", issuer, ""); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			p, closeAll, err := openProcess(ctx, temporal, dbURL, issuer, logger)
			if err != nil {
				return err
			}
			defer closeAll()
			var healthSrv *httpServer
			if health != "" {
				if healthSrv, err = listenHTTP(health, "health-listen", healthHandler(p.obs.metrics)); err != nil {
					return err
				}
				healthSrv.serve(logger, "health server")
			}
			workers, err := startWorkers(ctx, p.temporal, p.store, p.vault, p.issuers, issuer.rateLimit, p.obs, logger)
			if err != nil {
				return err
			}
			addr, ns := temporal.Target()
			logger.Info("worker running", "temporal", addr, "namespace", ns, "issuer_rate_limit", issuer.rateLimit)
			<-ctx.Done()
			workers.Stop()
			if healthSrv != nil {
				shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				healthSrv.shutdown(shutdownCtx)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	config.BindTemporal(fs, &temporal)
	bindDatabaseURL(fs, &dbURL)
	bindIssuerFlags(fs, &issuer)
	fs.StringVar(&health, "health-listen", config.Env("CARDWARDEN_WORKER_HEALTH_LISTEN", "127.0.0.1:9091"), "address for the worker's /healthz and /metrics; empty disables it (env CARDWARDEN_WORKER_HEALTH_LISTEN)")
	bindLogFlags(fs, &logs, "json")
	return cmd
}
