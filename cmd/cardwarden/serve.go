package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
)

func newServeCmd() *cobra.Command {
	var (
		temporal config.Temporal
		dbURL    string
		listen   string
		issuers  issuerFlags
		uiURL    string
		logs     logFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API: issuer webhooks, management API, credential pull, health",
		Long: `Run cardwarden's HTTP server against any Temporal service. Run as many replicas as needed
behind a load balancer; they keep no state in memory. /healthz answers while the process
runs, /readyz only while the database and Temporal are reachable.

Needs CARDWARDEN_ADMIN_TOKEN (the management API's bearer token), CARDWARDEN_VAULT_KEY (to
open card credentials for an agent's own token) and the issuers' webhook secrets.`,
		Example: `  TEMPORAL_ADDRESS=temporal:7233 CARDWARDEN_DATABASE_URL=postgres://... cardwarden serve --listen :8080`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			adminToken := os.Getenv(api.EnvAdminToken)
			if err := checkProductionSettings("serve", issuers, adminToken); err != nil {
				return err
			}
			p, closeAll, err := openProcess(ctx, temporal, dbURL, issuers, logger)
			if err != nil {
				return err
			}
			defer closeAll()
			deps, err := apiDeps(p.store, p.temporal, p.issuers, p.vault, p.codec, adminToken, p.obs, logger)
			if err != nil {
				return err
			}
			_, ns := temporal.Target()
			handler, err := httpHandler(deps, p.obs, uiURL, ns)
			if err != nil {
				return err
			}
			srv, err := listenHTTP(listen, "listen", handler)
			if err != nil {
				return err
			}
			srv.serve(logger, "http server")
			redelivered := api.StartRedelivery(ctx, deps, api.RedeliveryOptions{})
			defer func() { <-redelivered }()
			addr, _ := temporal.Target()
			logger.Info("serving", "listen", listen, "temporal", addr, "namespace", ns)
			<-ctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.shutdown(shutdownCtx)
			return nil
		},
	}
	config.BindTemporal(cmd.Flags(), &temporal)
	bindDatabaseURL(cmd.Flags(), &dbURL)
	bindIssuerFlags(cmd.Flags(), &issuers)
	cmd.Flags().StringVar(&uiURL, "temporal-ui-url", config.Env("CARDWARDEN_TEMPORAL_UI_URL", ""), "Temporal Web UI base URL the dashboard links workflows to (env CARDWARDEN_TEMPORAL_UI_URL)")
	cmd.Flags().StringVar(&listen, "listen", config.Env("CARDWARDEN_LISTEN", config.DefaultHTTPListen), "HTTP listen address (env CARDWARDEN_LISTEN)")
	bindLogFlags(cmd.Flags(), &logs, "json")
	return cmd
}
