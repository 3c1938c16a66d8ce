package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/cardwarden/cardwarden/internal/config"
)

// runRoot runs the CLI in-process and returns everything it printed and its exit code.
func runRoot(args ...string) (string, int) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		out.WriteString("error: " + err.Error())
	}
	return out.String(), exitCode(err)
}

// Issue 12, item 6: flag defaults read from the environment (Stripe key, AIPP key, Temporal
// API key, …) were printed by --help and by every usage error, e.g. a mistyped flag.
func TestSecretsNeverShownByHelpOrUsageErrors(t *testing.T) {
	secrets := map[string]string{
		"CARDWARDEN_STRIPE_API_KEY":              "sk_live_SENTINEL_stripe_key",
		"CARDWARDEN_STRIPE_WEBHOOK_SECRET":       "whsec_SENTINEL_stripe_webhook",
		"CARDWARDEN_STRIPE_AUTHORIZATION_SECRET": "whsec_SENTINEL_stripe_authorization",
		"CARDWARDEN_AIPP_API_KEY":                "SENTINEL_aipp_key",
		"CARDWARDEN_SIM_API_KEY":                 "SENTINEL_sim_key",
		"CARDWARDEN_SIM_WEBHOOK_SECRET":          "whsec_SENTINEL_sim_webhook",
		"TEMPORAL_API_KEY":                       "SENTINEL_temporal_api_key",
		"CARDWARDEN_AGENT_TOKEN":                 "cwa_SENTINEL_agent_token",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	for _, args := range [][]string{
		{"serve", "--help"}, {"worker", "--help"}, {"dev", "--help"}, {"issuer-sim", "--help"},
		{"agent", "credentials", "--help"}, {"agent", "create", "--help"}, {"schedule", "create", "--help"},
		{"serve", "--no-such-flag"}, {"worker", "--issuer-rate-limit", "fast"}, {"dev", "--temporal-port", "x"},
		{"agent", "credentials", "x", "--bogus"}, {"issuer-sim", "--rate-limit", "many"},
	} {
		out, _ := runRoot(args...)
		require.NotEmpty(t, out, args)
		for name, v := range secrets {
			require.NotContains(t, out, v, "%v prints %s", args, name)
			require.NotContains(t, out, "SENTINEL", "%v prints %s", args, name)
		}
	}
	// The values are still used: the flag's value is the variable's.
	var key string
	cmd := newServeCmd()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "stripe-api-key" {
			key = f.Value.String()
		}
	})
	require.Empty(t, key, "a secret flag's value is never rendered")
}

// Issue 12, item 7 and "refuse insecure production settings": serve and worker fell back to
// the simulator's public webhook secret and ran without an admin token. They refuse now,
// before connecting to anything, naming each setting and how to fix it.
func TestProductionCommandsRefuseInsecureSettings(t *testing.T) {
	for _, k := range []string{"CARDWARDEN_ADMIN_TOKEN", "CARDWARDEN_VAULT_KEY", "CARDWARDEN_SIM_WEBHOOK_SECRET", "CARDWARDEN_SIM_API_KEY",
		"CARDWARDEN_ISSUER_SIM_URL", "CARDWARDEN_STRIPE_API_KEY", "CARDWARDEN_AIPP_URL"} {
		t.Setenv(k, "")
	}
	// Nothing listens here: a command that got past the checks would fail differently.
	unreachable := []string{"--address", "127.0.0.1:1", "--database-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"}

	out, code := runRoot(append([]string{"serve", "--issuer-url", "http://127.0.0.1:1"}, unreachable...)...)
	require.Equal(t, exitUsage, code, out)
	for _, want := range []string{"CARDWARDEN_ADMIN_TOKEN is not set", "CARDWARDEN_VAULT_KEY is not set", "CARDWARDEN_SIM_WEBHOOK_SECRET is not set",
		"CARDWARDEN_SIM_API_KEY", "openssl rand"} {
		require.Contains(t, out, want)
	}

	t.Setenv("CARDWARDEN_ADMIN_TOKEN", "short")
	t.Setenv("CARDWARDEN_VAULT_KEY", strings.Repeat("ab", 32))
	t.Setenv("CARDWARDEN_SIM_WEBHOOK_SECRET", config.DevSimWebhookSecret)
	t.Setenv("CARDWARDEN_SIM_API_KEY", "sim_test_key")
	out, code = runRoot(append([]string{"serve", "--issuer-url", "http://127.0.0.1:1"}, unreachable...)...)
	require.Equal(t, exitUsage, code, out)
	require.Contains(t, out, "CARDWARDEN_ADMIN_TOKEN is 5 characters")
	require.Contains(t, out, "public development secret")
	require.Contains(t, out, "public default sim_test_key")
	require.NotContains(t, out, config.DevSimWebhookSecret, "the message names the setting, not its value")

	out, code = runRoot(append([]string{"worker", "--issuer-url", "http://127.0.0.1:1", "--health-listen", ""}, unreachable...)...)
	require.Equal(t, exitUsage, code, out)
	require.Contains(t, out, "public development secret")
	require.NotContains(t, out, "CARDWARDEN_ADMIN_TOKEN", "the worker serves no API")

	t.Setenv("CARDWARDEN_VAULT_KEY", "")
	t.Setenv("CARDWARDEN_SIM_WEBHOOK_SECRET", "whsec_"+strings.Repeat("Q", 40))
	t.Setenv("CARDWARDEN_SIM_API_KEY", "sim_"+strings.Repeat("k", 30))
	out, code = runRoot(append([]string{"worker", "--issuer-url", "http://127.0.0.1:1", "--health-listen", ""}, unreachable...)...)
	require.Equal(t, exitUsage, code, out)
	require.Contains(t, out, "CARDWARDEN_VAULT_KEY is not set")

	// Good settings pass the check (and then fail only on the unreachable database).
	t.Setenv("CARDWARDEN_VAULT_KEY", strings.Repeat("ab", 32))
	t.Setenv("CARDWARDEN_ADMIN_TOKEN", strings.Repeat("t", 40))
	require.NoError(t, checkProductionSettings("serve", issuerFlags{simURL: "http://sim", simAPIKey: "sim_" + strings.Repeat("k", 30),
		simWebhookSecret: "whsec_" + strings.Repeat("Q", 40)}, strings.Repeat("t", 40)))
}

// `cardwarden dev` keeps its defaults and says so.
func TestDevBannerNamesItsDefaults(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, banner{api: "http://127.0.0.1:8080", dir: ".cardwarden", codec: true})
	out := b.String()
	require.Contains(t, out, "Development defaults")
	require.Contains(t, out, "serve and worker refuse them")
	require.Contains(t, out, "public API key and webhook secret")
	require.Contains(t, out, "/codec decrypts workflow payloads without a token")
}

// Issue 12, item 8: the HTTP servers had no read, header or idle timeouts: a body sent at one
// byte per 5 s held a connection for over 75 s. The server's limits are set, and a trickled
// body is cut off by the read timeout instead of holding the connection.
func TestHTTPServerTimeouts(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	require.Equal(t, serverReadHeaderTimeout, srv.ReadHeaderTimeout)
	require.Equal(t, serverReadTimeout, srv.ReadTimeout)
	require.Equal(t, serverWriteTimeout, srv.WriteTimeout)
	require.Equal(t, serverIdleTimeout, srv.IdleTimeout)
	require.Equal(t, serverMaxHeaderBytes, srv.MaxHeaderBytes)
	require.Positive(t, srv.ReadHeaderTimeout)
	require.Positive(t, srv.ReadTimeout)
	require.Positive(t, srv.IdleTimeout)

	// The same server with a one-second read timeout, against a trickling client.
	hs, err := listenHTTP("127.0.0.1:0", "listen", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "slow body", http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	require.NoError(t, err)
	hs.srv.ReadTimeout = time.Second
	hs.srv.ReadHeaderTimeout = time.Second
	go func() { _ = hs.srv.Serve(hs.ln) }()
	t.Cleanup(func() { _ = hs.srv.Close() })

	conn, err := net.Dial("tcp", hs.ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	const bodyLen = 20
	_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", bodyLen)
	require.NoError(t, err)
	sent := 0
	for ; sent < bodyLen; sent++ {
		if _, err := conn.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The server gave up on the body before it was complete: the answer is not a 200, and the
	// connection is closed.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
		resp.Body.Close()
	}
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err, "the connection is closed")
}
