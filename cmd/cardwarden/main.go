// Command cardwarden gives every AI agent its own virtual card with a hard budget and runs that
// card's whole life in a Temporal workflow. One binary: dev, worker, serve, migrate, agent,
// schedule, issuer-sim, bench and version (README.md, "Commands").
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes that scripts can tell apart.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// version is stamped by the Makefile with -ldflags; "dev" when built by go run.
var version = "dev"

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cardwarden",
		Short: "Hard spending limits for AI agents: one virtual card per agent, run by a Temporal workflow",
		Long: `cardwarden gives every AI agent its own virtual card with a hard budget. A long-running
Temporal workflow per agent issues the card, resets its daily limit in the agent's time zone,
rotates it weekly, expires it, and freezes or revokes it the moment a burst of declines shows
something is wrong.

Start here:  cardwarden dev      (the whole system in one process, state under ./.cardwarden)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n\n%s", err, cmd.UsageString())}
	})
	root.AddCommand(
		newDevCmd(),
		newWorkerCmd(),
		newServeCmd(),
		newMigrateCmd(),
		newIssuerSimCmd(),
		newAgentCmd(), newScheduleCmd(),
		newVersionCmd(),
		newBenchCmd(),
	)
	return root
}

// usageError marks a bad invocation (exit 2), as opposed to a failure while running.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// notFoundError marks a missing agent or resource (exit 3).
type notFoundError struct{ err error }

func (e notFoundError) Error() string { return e.err.Error() }
func (e notFoundError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	var nf notFoundError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	default:
		return exitFailure
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the cardwarden version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "cardwarden", version)
			return nil
		},
	}
}
