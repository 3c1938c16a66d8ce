package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/cardwarden/cardwarden/internal/codec"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/starter"
)

// The connection of the agent and schedule command groups: their shared flags, and withAgents,
// the one way their commands reach Temporal (and the database).

// ctlFlags are the connection and output flags of the agent and schedule commands. Their
// defaults reach `cardwarden dev` (make dev) on this machine without any flag.
type ctlFlags struct {
	temporal config.Temporal
	dbURL    string
	apiURL   string
	json     bool
	timeout  time.Duration
}

func bindCtlFlags(fs *pflag.FlagSet, f *ctlFlags) {
	config.BindTemporal(fs, &f.temporal)
	bindDatabaseURL(fs, &f.dbURL)
	fs.StringVar(&f.apiURL, "api-url", config.Env("CARDWARDEN_API_URL", "http://"+config.DefaultHTTPListen), "cardwarden HTTP API base URL (env CARDWARDEN_API_URL)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table, for scripts")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for the agent's workflow (a rotation waits for the issuer)")
}

// withAgents is every agent and schedule command's one connection: it connects (with the
// database when withStore is set), runs fn with the control client under --timeout, closes
// everything, and gives the control client's errors their exit codes (cliErr).
func (f *ctlFlags) withAgents(cmd *cobra.Command, withStore bool, fn func(ctx context.Context, ctl *starter.Client) error) error {
	s, err := f.connect(cmd, withStore)
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return cliErr(fn(ctx, s.ctl))
}

// session is one command's connections.
type session struct {
	tc    client.Client
	store *store.Store
	ctl   *starter.Client
}

func (s *session) close() {
	if s.tc != nil {
		s.tc.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// connect dials Temporal (with the payload codec when CARDWARDEN_CODEC_KEY is set, so this
// client reads and writes what the workers do) and, when withStore is set, opens the database.
func (f *ctlFlags) connect(cmd *cobra.Command, withStore bool) (*session, error) {
	ctx := cmd.Context()
	// The SDK logs to stdout by default, which would corrupt --json output.
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cdc, err := codec.FromEnv(os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	opts, err := f.temporal.ClientOptions(logger)
	if err != nil {
		return nil, usageError{err}
	}
	opts.DataConverter = codec.DataConverter(cdc)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tc, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w (is `cardwarden dev` running? set --address or TEMPORAL_ADDRESS)",
			f.temporal.Address, f.temporal.Namespace, err)
	}
	s := &session{tc: tc}
	if withStore {
		st, err := openStore(ctx, f.dbURL, false, logger)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%w (the agent's token is stored there; run `cardwarden migrate`, or use --database-url)", err)
		}
		s.store = st
	}
	rules, err := outboundRules()
	if err != nil {
		s.close()
		return nil, err
	}
	vlt, err := optionalVault()
	if err != nil {
		s.close()
		return nil, err
	}
	s.ctl = starter.New(tc, starter.Options{Store: s.store, Logger: logger, DataConverter: opts.DataConverter,
		Outbound: rules, Vault: vlt})
	return s, nil
}

// cliErr gives control errors their exit codes: not found 3, invalid input 2, the rest 1.
func cliErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, starter.ErrAgentNotFound), errors.Is(err, starter.ErrScheduleNotFound):
		return notFoundError{err}
	case errors.Is(err, starter.ErrInvalidPolicy), errors.Is(err, starter.ErrInvalidRequest):
		return usageError{err}
	default:
		return err
	}
}
