package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/temporalsetup"
)

// runCLI runs the cobra root in-process with exactly these arguments (no flags added).
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		printError(&errb, cmd, err)
	}
	return out.String(), errb.String(), exitCode(err)
}

// Issue 14, items 2 and 15: `agent create` outside the dev folder started the workflow, then
// failed on a database it could not reach (leaving an empty .cardwarden/cardwarden.db behind)
// and printed no token. The CLI now needs only the API's URL and the admin token, found in the
// nearest .cardwarden/admin.token above the working directory; it opens no database.
func TestCLICreatesAnAgentWithoutDatabaseAccess(t *testing.T) {
	e := newE2E(t)
	repo := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(repo, ".cardwarden"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(repo, ".cardwarden", "admin.token"), []byte(e2eAdminToken+"\n"), 0o600))
	elsewhere := filepath.Join(repo, "deploy", "scripts")
	require.NoError(t, os.MkdirAll(elsewhere, 0o700))
	t.Chdir(elsewhere)
	t.Setenv(api.EnvAdminToken, "")
	t.Setenv("CARDWARDEN_DIR", "")
	// A database nobody can reach: the CLI must not need it.
	t.Setenv("CARDWARDEN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")

	out, errOut, code := runCLI(t, "agent", "create", "--id", "far-bot", "--daily-limit", "20", "--api-url", e.apiURL, "--json")
	require.Equal(t, 0, code, "stdout %s\nstderr %s", out, errOut)
	var created struct {
		Token   string `json:"token"`
		Created bool   `json:"created"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.True(t, created.Created)
	require.True(t, strings.HasPrefix(created.Token, "cwa_"), "the token is printed: %s", out)
	entries, err := os.ReadDir(elsewhere)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing is created in the working directory")

	st := e.waitCard("far-bot", 1)
	out, errOut, code = runCLI(t, "agent", "credentials", "far-bot", "--api-url", e.apiURL, "--token", created.Token, "--json")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, st.Card.ID)

	// Without any token the CLI says where to find one, as a usage error.
	t.Chdir(t.TempDir())
	_, errOut, code = runCLI(t, "agent", "list", "--api-url", e.apiURL)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, api.EnvAdminToken)
}

// Issue 14, item 10: --version was an unknown flag, and --json printed errors as plain text.
func TestVersionFlagAndJSONErrors(t *testing.T) {
	out, _, code := runCLI(t, "--version")
	require.Equal(t, 0, code)
	require.Equal(t, "cardwarden "+version+"\n", out)

	e := newE2E(t)
	_, errOut, code := runCLI(t, "agent", "show", "ghost", "--api-url", e.apiURL, "--admin-token", e2eAdminToken, "--json")
	require.Equal(t, exitNotFound, code)
	var body struct {
		Error struct {
			Type, Code, Message, RequestID string
			ExitCode                       int `json:"exit_code"`
			Status                         int `json:"status"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(errOut)), &body), "stderr is JSON: %q", errOut)
	require.Equal(t, "invalid_request_error", body.Error.Type)
	require.Equal(t, "agent_not_found", body.Error.Code)
	require.Equal(t, exitNotFound, body.Error.ExitCode)
	require.Equal(t, 404, body.Error.Status)

	_, errOut, code = runCLI(t, "agent", "create", "--daily-limit", "5", "--api-url", e.apiURL, "--admin-token", e2eAdminToken, "--json")
	require.Equal(t, exitUsage, code)
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(errOut)), &body), "stderr is JSON: %q", errOut)
	require.Equal(t, "usage_error", body.Error.Type)
	require.Contains(t, body.Error.Message, "policy.agent_id")
}

// Issue 14, item 6: a fresh cluster has no namespace and no search attributes. `cardwarden
// setup` creates both, waits until they are usable, and changes nothing when run again.
func TestSetupPreparesANamespaceIdempotently(t *testing.T) {
	e := newE2E(t)
	ns := "cw-setup-test"
	args := []string{"setup", "--address", e.ts.GetFrontendHostPort(), "--namespace", ns, "--database-url", e.dbURL, "--json", "--log-level", "warn"}
	out, errOut, code := runCLI(t, args...)
	require.Equal(t, 0, code, "stdout %s\nstderr %s", out, errOut)
	var rep struct {
		Temporal temporalsetup.Report `json:"temporal"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.True(t, rep.Temporal.NamespaceCreated)
	require.ElementsMatch(t, []string{"AgentId", "CardStatus", "Issuer"}, rep.Temporal.Added)
	resp, err := e.tc.OperatorService().ListSearchAttributes(context.Background(), &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	require.NoError(t, err)
	for name := range temporalsetup.SearchAttributes() {
		require.Contains(t, resp.GetCustomAttributes(), name)
	}

	out, errOut, code = runCLI(t, args...)
	require.Equal(t, 0, code, "stdout %s\nstderr %s", out, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.False(t, rep.Temporal.NamespaceCreated, "run again: nothing created")
	require.Empty(t, rep.Temporal.Added)
	require.Len(t, rep.Temporal.Present, 3)
}
