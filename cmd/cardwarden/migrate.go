package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	var dbURL string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Long: `Apply every pending versioned migration to the application database (Postgres or SQLite).
Running it again applies nothing. 'cardwarden dev' migrates at start-up by itself.`,
		Example: `  cardwarden migrate --database-url postgres://cardwarden@127.0.0.1:5432/cardwarden?sslmode=disable`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd)
			if err != nil {
				return err
			}
			s, err := openStore(cmd.Context(), dbURL, false, logger)
			if err != nil {
				return err
			}
			defer s.Close()
			applied, err := s.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "database is up to date")
			}
			for _, m := range applied {
				fmt.Fprintf(cmd.OutOrStdout(), "applied %05d %s\n", m.Version, m.Source)
			}
			return nil
		},
	}
	bindDatabaseURL(cmd.Flags(), &dbURL)
	bindLogFlags(cmd.Flags(), &logs, "text")
	return cmd
}
