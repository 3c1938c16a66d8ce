package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
)

// The management CLI's connection: the cardwarden HTTP API at one URL, with the admin token,
// like the Stripe CLI or kubectl. Operators need no Temporal address and no database
// credentials; the API owns both. Direct Temporal access stays for the Temporal CLI and Go
// programs (package starter).
//
// A command group binds ctlFlags on its persistent flags and runs each command through
// withAPI, which connects, applies --timeout and gives API errors their exit codes:
//
//	cmd := groupCmd("team", "…", "…")
//	bindCtlFlags(cmd.PersistentFlags(), &f)
//	… RunE: func(cmd *cobra.Command, args []string) error {
//		return f.withAPI(cmd, func(ctx context.Context, c *apiClient) error {
//			var out T
//			if err := c.post(ctx, "/v1/teams", in, &out); err != nil { return err }
//			return printJSON(cmd.OutOrStdout(), out)
//		})
//	}

// ctlFlags are the connection and output flags of the management commands. Their defaults
// reach `cardwarden dev` on this machine from any folder of the checkout.
type ctlFlags struct {
	apiURL    string
	token     string
	tokenFile string
	json      bool
	timeout   time.Duration
}

func bindCtlFlags(fs *pflag.FlagSet, f *ctlFlags) {
	fs.StringVar(&f.apiURL, "api-url", config.Env("CARDWARDEN_API_URL", "http://"+config.DefaultHTTPListen), "cardwarden HTTP API base URL (env CARDWARDEN_API_URL)")
	config.SecretVar(fs, &f.token, "admin-token", api.EnvAdminToken, "", "the API's admin token")
	fs.StringVar(&f.tokenFile, "admin-token-file", config.Env("CARDWARDEN_ADMIN_TOKEN_FILE", ""),
		"file holding the admin token (env CARDWARDEN_ADMIN_TOKEN_FILE); default: .cardwarden/admin.token in this folder or the nearest parent that has one, as `cardwarden dev` keeps it")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table, for scripts (errors too, on stderr)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for an answer (a rotation waits for the issuer)")
}

// withAPI runs fn with an API client under --timeout and gives API errors their exit codes.
func (f *ctlFlags) withAPI(cmd *cobra.Command, fn func(ctx context.Context, c *apiClient) error) error {
	tok, err := f.adminToken()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return cliErr(fn(ctx, newAPIClient(f.apiURL, tok)))
}

// adminToken is --admin-token or CARDWARDEN_ADMIN_TOKEN, else the token file: --admin-token-file,
// else the .cardwarden/admin.token of this folder or its nearest parent (where `make dev`
// keeps it), else the one under CARDWARDEN_DIR.
func (f *ctlFlags) adminToken() (string, error) {
	if f.token != "" {
		return f.token, nil
	}
	path := f.tokenFile
	if path == "" {
		path = findAdminTokenFile()
	}
	if path == "" {
		return "", usageError{errors.New("no admin token: set " + api.EnvAdminToken + " (or --admin-token-file); `cardwarden dev` keeps one in .cardwarden/admin.token of the folder it runs in")}
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's own token file
	if err != nil {
		return "", usageError{fmt.Errorf("admin token file: %w", err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", usageError{fmt.Errorf("admin token file %s is empty", path)}
	}
	return tok, nil
}

// findAdminTokenFile looks for .cardwarden/admin.token in the working directory and its
// parents, then under CARDWARDEN_DIR; "" when there is none.
func findAdminTokenFile() string {
	if d := os.Getenv("CARDWARDEN_DIR"); d != "" {
		if p := filepath.Join(d, "admin.token"); fileExists(p) {
			return p
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if p := filepath.Join(dir, config.DefaultDataDir, "admin.token"); fileExists(p) {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p) // #nosec G703 -- the operator's own folders, looked at with the operator's permissions
	return err == nil && st.Mode().IsRegular()
}

// cliErr gives API errors their exit codes: not found 3, invalid input 2, the rest 1.
func cliErr(err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	switch {
	case ae.Status == 404:
		return notFoundError{err}
	case ae.Status == 400 || ae.Status == 422:
		return usageError{err}
	default:
		return err
	}
}
