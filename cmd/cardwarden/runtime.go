package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/logging"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
)

// logFlags choose the log format: JSON for production, text for people.
type logFlags struct {
	format string
	level  string
}

func bindLogFlags(fs *pflag.FlagSet, l *logFlags, defaultFormat string) {
	fs.StringVar(&l.format, "log-format", config.Env("CARDWARDEN_LOG_FORMAT", defaultFormat), "log format: json or text (env CARDWARDEN_LOG_FORMAT)")
	fs.StringVar(&l.level, "log-level", config.Env("CARDWARDEN_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env CARDWARDEN_LOG_LEVEL)")
}

// logger builds the process logger; every handler redacts anything that looks like a card
// number or CVV, so a secret cannot reach the logs by accident.
func (l logFlags) logger(cmd *cobra.Command) (*slog.Logger, error) {
	level, err := logging.ParseLevel(l.level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	lg, err := logging.New(cmd.ErrOrStderr(), logging.Options{Format: l.format, Level: level})
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-format: %w", err)}
	}
	return lg, nil
}

func bindDatabaseURL(fs *pflag.FlagSet, url *string) {
	fs.StringVar(url, "database-url", config.Env("CARDWARDEN_DATABASE_URL", config.DefaultDatabaseURL),
		"application database: postgres://user@host/db?sslmode=disable or sqlite://path (env CARDWARDEN_DATABASE_URL)")
}

// openStore opens the database and, when migrate is set, brings its schema up to date.
func openStore(ctx context.Context, url string, migrate bool, logger *slog.Logger) (*store.Store, error) {
	if err := ensureSQLiteDir(url); err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if migrate {
		applied, err := s.Migrate(ctx)
		if err != nil {
			s.Close()
			return nil, err
		}
		for _, m := range applied {
			logger.Info("applied migration", "version", m.Version, "source", m.Source)
		}
	}
	return s, nil
}

// ensureSQLiteDir creates the directory of a sqlite:// database so a first run just works.
func ensureSQLiteDir(url string) error {
	path, ok := strings.CutPrefix(url, "sqlite://")
	if !ok || path == "" {
		return nil
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("database directory %s: %w", dir, err)
		}
	}
	return nil
}

// loadVault reads CARDWARDEN_VAULT_KEY, or, when keyFile is set and the variable is not, the
// key kept in keyFile (created on first use). Production must set the variable.
func loadVault(keyFile string) (*vault.Vault, error) {
	var key []byte
	var err error
	if s := os.Getenv("CARDWARDEN_VAULT_KEY"); s != "" {
		if key, err = vault.ParseKey(s); err != nil {
			return nil, usageError{err}
		}
	} else if keyFile != "" {
		key, err = vault.LoadOrCreateKeyFile(keyFile)
	} else {
		return nil, usageError{fmt.Errorf("CARDWARDEN_VAULT_KEY is not set: it must hold the 32-byte AES key (64 hex characters) that seals card credentials; generate one with: openssl rand -hex 32")}
	}
	if err != nil {
		return nil, err
	}
	return vault.New(key)
}

// httpServer serves handler on a listener that is already bound, so port errors surface
// before anything else starts.
type httpServer struct {
	srv *http.Server
	ln  net.Listener
}

// Server limits: a client gets 10 s for its headers (64 KiB at most) and 30 s for the whole
// request, so a body trickled in byte by byte cannot hold a connection; answers may take up to
// 90 s (a management update waits up to 60 s for its workflow); an idle keep-alive connection
// is closed after 2 minutes.
const (
	serverReadHeaderTimeout = 10 * time.Second
	serverReadTimeout       = 30 * time.Second
	serverWriteTimeout      = 90 * time.Second
	serverIdleTimeout       = 2 * time.Minute
	serverMaxHeaderBytes    = 64 << 10
)

func newHTTPServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}

func listenHTTP(addr, flagName string, handler http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, portError(addr, flagName, err)
	}
	return &httpServer{ln: ln, srv: newHTTPServer(handler)}, nil
}

func (h *httpServer) serve(logger *slog.Logger, what string) {
	go func() {
		if err := h.srv.Serve(h.ln); err != nil && err != http.ErrServerClosed {
			logger.Error(what+" stopped", "error", err)
		}
	}()
}

func (h *httpServer) shutdown(ctx context.Context) { _ = h.srv.Shutdown(ctx) }

func portError(addr, flagName string, err error) error {
	return fmt.Errorf("cannot listen on %s: %w (the port is probably in use; choose another with --%s)", addr, err, flagName)
}
