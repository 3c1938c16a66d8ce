package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// Issue 14, item 8: the Temporal connection is configured the way Temporal's own tools are:
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_* and temporal.toml profiles (the SDK's
// contrib/envconfig), with the flags winning.
func TestTemporalSettingsFollowTemporalsConventions(t *testing.T) {
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE", "TEMPORAL_TLS",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(dir, "absent.toml"))
	parse := func(args ...string) Temporal {
		var tc Temporal
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		BindTemporal(fs, &tc)
		require.NoError(t, fs.Parse(args))
		return tc
	}

	// Defaults.
	opts, err := parse().ClientOptions(nil)
	require.NoError(t, err)
	require.Equal(t, DefaultTemporalAddress, opts.HostPort)
	require.Equal(t, DefaultNamespace, opts.Namespace)
	require.Nil(t, opts.ConnectionOptions.TLS)

	// A temporal.toml profile, as the Temporal CLI writes it.
	toml := filepath.Join(dir, "temporal.toml")
	require.NoError(t, os.WriteFile(toml, []byte(`
[profile.default]
address = "default.example:7233"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod-ns"
api_key = "from-profile"
`), 0o600))
	t.Setenv("TEMPORAL_CONFIG_FILE", toml)
	opts, err = parse().ClientOptions(nil)
	require.NoError(t, err)
	require.Equal(t, "default.example:7233", opts.HostPort)
	t.Setenv("TEMPORAL_PROFILE", "prod")
	opts, err = parse().ClientOptions(nil)
	require.NoError(t, err)
	require.Equal(t, "prod.tmprl.cloud:7233", opts.HostPort)
	require.Equal(t, "prod-ns", opts.Namespace)
	require.NotNil(t, opts.Credentials, "an API key")
	require.NotNil(t, opts.ConnectionOptions.TLS, "an API key implies TLS")

	// The standard environment variables win over the profile; flags win over both.
	t.Setenv("TEMPORAL_ADDRESS", "env.example:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "env-ns")
	tc := parse()
	addr, ns := tc.Target()
	require.Equal(t, "env.example:7233", addr)
	require.Equal(t, "env-ns", ns)
	tc = parse("--address", "flag.example:7233", "--namespace", "flag-ns", "--profile", "default")
	addr, ns = tc.Target()
	require.Equal(t, "flag.example:7233", addr)
	require.Equal(t, "flag-ns", ns)

	// TLS: a missing client certificate file is named, not ignored; a server name is passed on.
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", filepath.Join(dir, "missing.pem"))
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", filepath.Join(dir, "missing.key"))
	_, err = parse().ClientOptions(nil)
	require.ErrorContains(t, err, "missing.pem")
	t.Setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "")
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", "")
	os.Unsetenv("TEMPORAL_TLS_CLIENT_CERT_PATH")
	os.Unsetenv("TEMPORAL_TLS_CLIENT_KEY_PATH")
	opts, err = parse("--tls-server-name", "temporal.internal").ClientOptions(nil)
	require.NoError(t, err)
	require.Equal(t, "temporal.internal", opts.ConnectionOptions.TLS.ServerName)
}
