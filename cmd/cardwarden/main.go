// Command cardwarden gives every AI agent its own virtual card with a hard budget and runs that
// card's whole life in a Temporal workflow. One binary: dev, worker, serve, setup, migrate,
// agent, schedule, issuer-sim, bench and version (README.md, "Commands").
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	cmd, err := root.ExecuteC()
	if err != nil {
		printError(os.Stderr, cmd, err)
		os.Exit(exitCode(err))
	}
}

// printError reports a failed command on stderr: as plain text, or, when the command ran with
// --json, as {"error": {"type", "code", "message", "exit_code"}} so a script can read it like
// the output it asked for.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	asJSON := false
	if cmd != nil {
		if fl := cmd.Flags().Lookup("json"); fl != nil && fl.Value.String() == "true" {
			asJSON = true
		}
	}
	if !asJSON {
		fmt.Fprintln(w, "error:", err)
		return
	}
	detail := map[string]any{"message": err.Error(), "exit_code": exitCode(err)}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		detail["type"], detail["code"], detail["status"], detail["request_id"] = ae.Type, ae.Code, ae.Status, ae.RequestID
		if ae.Field != "" {
			detail["field"] = ae.Field
		}
	case exitCode(err) == exitUsage:
		detail["type"], detail["code"] = "usage_error", "usage"
	default:
		detail["type"], detail["code"] = "cli_error", "failed"
	}
	b, _ := json.Marshal(map[string]any{"error": detail})
	fmt.Fprintln(w, string(b))
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
		Version:       version,
	}
	root.SetVersionTemplate("cardwarden {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\n\n%s", err, cmd.UsageString())}
	})
	root.AddCommand(
		newDevCmd(),
		newWorkerCmd(),
		newServeCmd(),
		newMigrateCmd(),
		newSetupCmd(),
		newIssuerSimCmd(),
		newAgentCmd(), newTeamCmd(), newScheduleCmd(),
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
