package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

// newIssuerSimCmd is `cardwarden issuer-sim`: the card issuer simulator as a standalone
// server. `cardwarden dev` starts the same simulator in-process.
func newIssuerSimCmd() *cobra.Command {
	var (
		listen, apiKey, webhookURL, webhookSecret, statePath string
		rateLimit                                            int
		errorRate, duplicates                                float64
		latency                                              time.Duration
		reorder                                              bool
		hook                                                 issuersim.DecisionHook
		hookTimeout                                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issuer-sim",
		Short: "Run the card issuer simulator (native API + AI Payment Proxy dialect)",
		Long: `Run a card issuer simulator that behaves like a real issuer: virtual cards with
spending limits enforced at authorization time (per authorization, daily, weekly,
monthly, all-time; UTC calendar windows), normalized decline reasons, captures,
force-posts, refunds and reversals, Standard Webhooks-signed events delivered at
least once with retries, idempotency keys kept 24 hours, and injectable faults
(429 with Retry-After, 5xx, latency, duplicate and reordered webhooks).

Point cardwarden's sim adapter at it with CARDWARDEN_ISSUER_SIM_URL, and the
aipaymentproxy adapter with CARDWARDEN_AIPP_URL (the same server speaks that
dialect under /api/v1). Every request needs "Authorization: Bearer <api key>".
Counters are at GET /v1/sim/stats; faults can be changed at POST /v1/sim/faults.
The API is documented in docs/issuers.md ("The issuer simulator").`,
		Example: `  # Defaults: 127.0.0.1:8090, API key sim_test_key, no webhooks, state in memory
  cardwarden issuer-sim

  # Deliver events to cardwarden's webhook endpoint, keep cards across restarts,
  # and answer 429 beyond 20 requests per second
  cardwarden issuer-sim --webhook-url http://127.0.0.1:8080/v1/webhooks/sim \
    --webhook-secret whsec_c2VjcmV0 --state .cardwarden/issuer-sim.json --rate-limit 20

  # Buy something with a card
  curl -s -H 'Authorization: Bearer sim_test_key' -d '{"card_id":"card_…","amount_usd":"12.50","merchant":"ACME","mcc":"5734"}' \
    http://127.0.0.1:8090/v1/simulate/authorizations`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if webhookURL != "" && webhookSecret == "" {
				return errors.New("--webhook-secret (or CARDWARDEN_SIM_WEBHOOK_SECRET) is required with --webhook-url")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()

			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv, err := issuersim.NewServer(issuersim.Config{
				APIKey: apiKey, WebhookURL: webhookURL, WebhookSecret: webhookSecret, StatePath: statePath,
				RateLimit: rateLimit, ErrorRate: errorRate, Latency: latency,
				DuplicateWebhooks: duplicates, ReorderWebhooks: reorder, Logger: log,
				Decisions: withTimeout(hook, hookTimeout),
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				srv.Close()
				return fmt.Errorf("issuer-sim: listen on %s: %w", listen, err)
			}
			keyNote := "from --api-key/CARDWARDEN_SIM_API_KEY"
			if apiKey == issuersim.DefaultAPIKey {
				keyNote = issuersim.DefaultAPIKey + " (default)"
			}
			log.Info("issuer simulator listening", "url", "http://"+ln.Addr().String(), "api_key", keyNote,
				"webhook_url", webhookURL, "state", statePath, "rate_limit", rateLimit)
			err = srv.Serve(ctx, ln)
			log.Info("issuer simulator stopped")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8090", "address to listen on")
	config.SecretVar(f, &apiKey, "api-key", "CARDWARDEN_SIM_API_KEY", issuersim.DefaultAPIKey, "bearer key clients must send (default "+issuersim.DefaultAPIKey+")")
	f.StringVar(&webhookURL, "webhook-url", os.Getenv("CARDWARDEN_SIM_WEBHOOK_URL"), "URL that receives events as signed webhooks; empty disables delivery (env CARDWARDEN_SIM_WEBHOOK_URL)")
	config.SecretVar(f, &webhookSecret, "webhook-secret", "CARDWARDEN_SIM_WEBHOOK_SECRET", "", `webhook signing secret, "whsec_<base64>" or a raw string`)
	f.IntVar(&rateLimit, "rate-limit", 0, "API requests admitted per second, answered 429 with Retry-After beyond; 0 means no limit")
	f.StringVar(&statePath, "state", "", "JSON file to keep state in across restarts; empty keeps state in memory")
	f.Float64Var(&errorRate, "error-rate", 0, "share of API requests answered with an injected 500/503 (0..1)")
	f.DurationVar(&latency, "latency", 0, "latency added to every API request, e.g. 200ms")
	f.Float64Var(&duplicates, "duplicate-webhooks", 0, "share of events delivered twice (0..1)")
	f.BoolVar(&reorder, "reorder-webhooks", false, "deliver events out of order")
	f.StringVar(&hook.URL, "decision-url", os.Getenv("CARDWARDEN_SIM_DECISION_URL"),
		"URL asked to approve or decline each purchase in real time, e.g. cardwarden's /v1/authorizations/sim; empty: no hook (env CARDWARDEN_SIM_DECISION_URL)")
	f.DurationVar(&hookTimeout, "decision-timeout", issuersim.DefaultDecisionTimeout, "how long a purchase waits for the decision URL")
	f.StringVar(&hook.Fallback, "decision-fallback", issuersim.FallbackDecline, "what applies when no decision comes in time: decline or approve")
	return cmd
}

// withTimeout sets the hook's timeout from a flag's duration.
func withTimeout(h issuersim.DecisionHook, d time.Duration) issuersim.DecisionHook {
	h.TimeoutMS = d.Milliseconds()
	return h
}
