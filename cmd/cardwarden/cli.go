package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Helpers every command shares: arguments, command groups, the audit actor, output.

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q\n\n%s", cmd.CommandPath(), args, cmd.UsageString())}
	}
	return nil
}

// exactArgs wants the named positional arguments, as a usage error otherwise.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageError{fmt.Errorf("%s wants %s, got %d argument(s)\n\n%s", cmd.CommandPath(), strings.Join(names, " "), len(args), cmd.UsageString())}
		}
		return nil
	}
}

// groupCmd is a parent command: a missing or unknown subcommand is a usage error.
func groupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Long: long, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %s\n\n%s", args[0], cmd.CommandPath(), cmd.UsageString())}
			}
			return usageError{fmt.Errorf("%s needs a subcommand\n\n%s", cmd.CommandPath(), cmd.UsageString())}
		},
	}
}

// actor names the person running the CLI in the audit log.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
