package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// walkthroughScript is the README's Walkthrough as one script: its sh blocks in order, but the
// first (make dev and the PATH, which the test sets up itself).
func walkthroughScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, "\n### Walkthrough\n")
	require.GreaterOrEqual(t, start, 0, "README has a Walkthrough")
	end := strings.Index(readme[start:], "\n#### The same start through")
	require.Greater(t, end, 0)
	section := readme[start : start+end]
	var blocks []string
	for {
		i := strings.Index(section, "```sh\n")
		if i < 0 {
			break
		}
		section = section[i+len("```sh\n"):]
		j := strings.Index(section, "```")
		require.GreaterOrEqual(t, j, 0, "unclosed sh block")
		blocks = append(blocks, section[:j])
		section = section[j+3:]
	}
	require.GreaterOrEqual(t, len(blocks), 5, "the walkthrough's steps")
	require.Contains(t, blocks[0], "make dev")
	return strings.Join(blocks[1:], "\n")
}

// The README's walkthrough runs as written, as one script, against a fresh `cardwarden dev`:
// create an agent, pull its card with the agent's token, buy, watch a decline burst freeze the
// card, unfreeze, rotate, read the admin token for the dashboard. Only the addresses change (the
// test's dev listens on free ports).
func TestREADMEWalkthroughRuns(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		// jq is a Debian package; .ci/run installs it and sets CARDWARDEN_REQUIRE_JQ.
		if os.Getenv("CARDWARDEN_REQUIRE_JQ") == "1" {
			t.Fatal("the walkthrough uses jq, which is not installed")
		}
		t.Skip("the walkthrough uses jq, which is not installed (apt-get install jq)")
	}
	script := walkthroughScript(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	api, sim := freeAddr(t), freeAddr(t)
	startDev(t, bin, "--dir", filepath.Join(dir, ".cardwarden"), "--headless", "--temporal-port", portOfAddr(t, freeAddr(t)),
		"--listen", api, "--sim-listen", sim)

	script = strings.ReplaceAll(script, "127.0.0.1:8080", api)
	script = strings.ReplaceAll(script, "127.0.0.1:8090", sim)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CARDWARDEN_API_URL=http://"+api, "CARDWARDEN_ADMIN_TOKEN=", "CARDWARDEN_ADMIN_TOKEN_FILE=", "CARDWARDEN_AGENT_TOKEN=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the walkthrough failed:\n%s", out)
	t.Logf("walkthrough output:\n%s", out)

	// What it did: the burst froze the card, the unfreeze and the rotation happened.
	show := exec.Command(bin, "agent", "show", "support-bot")
	show.Dir = dir
	show.Env = append(os.Environ(), "CARDWARDEN_API_URL=http://"+api, "CARDWARDEN_ADMIN_TOKEN=", "CARDWARDEN_ADMIN_TOKEN_FILE=")
	state, err := show.CombinedOutput()
	require.NoError(t, err, "%s", state)
	require.Contains(t, string(out), "decline burst")
	require.Regexp(t, `status\s+active`, string(state))
	require.Regexp(t, `1 rotations.*1 freezes`, string(state))
	require.Contains(t, string(out), `"generation": 2`)
}
