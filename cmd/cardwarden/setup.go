package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/temporalsetup"
)

func newSetupCmd() *cobra.Command {
	var (
		temporal  config.Temporal
		dbURL     string
		skipDB    bool
		retention time.Duration
		wait      time.Duration
		logs      logFlags
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare a deployment: database migrations, Temporal namespace and search attributes (idempotent)",
		Long: `Everything a fresh deployment needs before worker and serve start, and nothing more when run
again:

  - the application database's migrations (as cardwarden migrate; --skip-database to leave it)
  - the Temporal namespace (--namespace / TEMPORAL_NAMESPACE), created when it does not exist
  - the AgentId, CardStatus and Issuer search attributes (keywords), added when missing, and a
    check that visibility queries on them work

A fresh Temporal cluster has no namespace but, at most, "default", and no search attributes:
without them starting an agent fails. Temporal Cloud namespaces are created in Cloud; there
setup only checks the namespace and adds the attributes (the API key needs that permission).`,
		Example: `  TEMPORAL_ADDRESS=temporal:7233 CARDWARDEN_DATABASE_URL=postgres://… cardwarden setup
  cardwarden setup --namespace cardwarden-prod --retention 720h --skip-database`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			migrated := []string{}
			if !skipDB {
				st, err := openStore(ctx, dbURL, false, logger)
				if err != nil {
					return err
				}
				applied, err := st.Migrate(ctx)
				st.Close()
				if err != nil {
					return err
				}
				for _, m := range applied {
					migrated = append(migrated, fmt.Sprintf("%05d", m.Version))
				}
			}
			c, err := temporal.Dial(ctx, logger, wait)
			if err != nil {
				return err
			}
			defer c.Close()
			_, ns := temporal.Target()
			rep, err := temporalsetup.Ensure(ctx, c, ns, temporalsetup.Options{Retention: retention, Wait: wait, Logger: logger})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, map[string]any{"temporal": rep, "database_skipped": skipDB, "migrations_applied": migrated})
			}
			tw := table(out)
			switch {
			case skipDB:
				fmt.Fprintf(tw, "database\tskipped\n")
			case len(migrated) == 0:
				fmt.Fprintf(tw, "database\tup to date\n")
			default:
				fmt.Fprintf(tw, "database\tapplied migrations %s\n", strings.Join(migrated, ", "))
			}
			state := "exists"
			if rep.NamespaceCreated {
				state = "created"
			}
			fmt.Fprintf(tw, "namespace\t%s (%s)\n", rep.Namespace, state)
			if len(rep.Added) > 0 {
				fmt.Fprintf(tw, "search attributes\tadded %s\n", strings.Join(rep.Added, ", "))
			}
			if len(rep.Present) > 0 {
				fmt.Fprintf(tw, "search attributes\talready there: %s\n", strings.Join(rep.Present, ", "))
			}
			fmt.Fprintf(tw, "ready\tyes\n")
			return tw.Flush()
		},
	}
	fs := cmd.Flags()
	config.BindTemporal(fs, &temporal)
	bindDatabaseURL(fs, &dbURL)
	fs.BoolVar(&skipDB, "skip-database", false, "leave the application database alone (only Temporal)")
	fs.DurationVar(&retention, "retention", 30*24*time.Hour, "how long a namespace setup creates keeps closed workflows")
	fs.DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for Temporal and for a new namespace to be usable")
	fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
	bindLogFlags(fs, &logs, "text")
	return cmd
}
