// Package config holds the settings every cardwarden command shares, read from flags with
// environment fallbacks, and builds the Temporal client from them.
package config

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
)

// Defaults that other programs and the README rely on.
const (
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
	DefaultDataDir         = ".cardwarden"
	DefaultDatabaseURL     = "sqlite://" + DefaultDataDir + "/cardwarden.db"
	DefaultHTTPListen      = "127.0.0.1:8080"
	DefaultSimListen       = "127.0.0.1:8090"
	DefaultSimAPIKey       = "sim_test_key"
)

// Env returns the environment variable name's value, or def when it is unset or empty.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// EnvInt is Env for integers; an unparsable value falls back to def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// EnvFloat is Env for floats (rates, not money).
func EnvFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// Temporal is how to reach a Temporal service. Settings come, lowest first, from the default
// (127.0.0.1:7233, namespace default), a temporal.toml profile (TEMPORAL_CONFIG_FILE,
// TEMPORAL_PROFILE), Temporal's standard environment variables (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH, …_KEY_PATH,
// …_SERVER_CA_CERT_PATH, …_SERVER_NAME, TEMPORAL_TLS, …), read by the SDK's contrib/envconfig
// exactly as the Temporal CLI reads them, and the flags, which win.
type Temporal struct {
	Address   string
	Namespace string
	APIKey    string
	// TLS client certificate and key, server CA and server name (mTLS, a private CA).
	TLSCertPath, TLSKeyPath, TLSCAPath, TLSServerName string
	// Profile and ConfigFile choose a temporal.toml profile (default: TEMPORAL_PROFILE and
	// TEMPORAL_CONFIG_FILE, else the "default" profile of the standard file, if it exists).
	Profile, ConfigFile string
	// DataConverter, when set, encodes every payload (the payload codec); every client and
	// worker of a deployment must use the same one.
	DataConverter converter.DataConverter
	// MetricsHandler, when set, receives the SDK's own client and worker metrics.
	MetricsHandler client.MetricsHandler
	// Identity names this process's client and workers to the server (pollers listed by
	// DescribeTaskQueue); the SDK's pid@host@ when empty.
	Identity string
}

// BindTemporal registers the connection flags. Their defaults are empty: what is not given
// comes from the profile and the environment (see Temporal).
func BindTemporal(fs *pflag.FlagSet, t *Temporal) {
	fs.StringVar(&t.Address, "address", "", "Temporal frontend host:port (env TEMPORAL_ADDRESS; default "+DefaultTemporalAddress+")")
	fs.StringVar(&t.Namespace, "namespace", "", "Temporal namespace (env TEMPORAL_NAMESPACE; default "+DefaultNamespace+")")
	SecretVar(fs, &t.APIKey, "temporal-api-key", "TEMPORAL_API_KEY", "", "API key for Temporal Cloud; implies TLS")
	fs.StringVar(&t.TLSCertPath, "tls-cert-path", "", "client certificate file for mTLS (env TEMPORAL_TLS_CLIENT_CERT_PATH)")
	fs.StringVar(&t.TLSKeyPath, "tls-key-path", "", "client key file for mTLS (env TEMPORAL_TLS_CLIENT_KEY_PATH)")
	fs.StringVar(&t.TLSCAPath, "tls-ca-path", "", "CA certificate that signs the server's (env TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	fs.StringVar(&t.TLSServerName, "tls-server-name", "", "server name the certificate must have (env TEMPORAL_TLS_SERVER_NAME)")
	fs.StringVar(&t.Profile, "profile", "", "temporal.toml profile (env TEMPORAL_PROFILE)")
	fs.StringVar(&t.ConfigFile, "config-file", "", "temporal.toml file (env TEMPORAL_CONFIG_FILE; default the Temporal CLI's)")
}

// profile resolves the settings: the temporal.toml profile, then the environment, then the
// flags; the defaults for what none of them set.
func (t Temporal) profile() (envconfig.ClientConfigProfile, error) {
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
		ConfigFilePath: t.ConfigFile, ConfigFileProfile: t.Profile,
	})
	if err != nil {
		return prof, fmt.Errorf("temporal connection settings: %w", err)
	}
	prof.Address = cmp.Or(t.Address, prof.Address, DefaultTemporalAddress)
	prof.Namespace = cmp.Or(t.Namespace, prof.Namespace, DefaultNamespace)
	prof.APIKey = cmp.Or(t.APIKey, prof.APIKey)
	if t.TLSCertPath != "" || t.TLSKeyPath != "" || t.TLSCAPath != "" || t.TLSServerName != "" {
		if prof.TLS == nil {
			prof.TLS = &envconfig.ClientConfigTLS{}
		}
		tl := prof.TLS
		if t.TLSCertPath != "" {
			tl.ClientCertPath, tl.ClientCertData = t.TLSCertPath, nil
		}
		if t.TLSKeyPath != "" {
			tl.ClientKeyPath, tl.ClientKeyData = t.TLSKeyPath, nil
		}
		if t.TLSCAPath != "" {
			tl.ServerCACertPath, tl.ServerCACertData = t.TLSCAPath, nil
		}
		tl.ServerName = cmp.Or(t.TLSServerName, tl.ServerName)
	}
	return prof, nil
}

// Target is the address and namespace the settings resolve to (for logs and links).
func (t Temporal) Target() (address, namespace string) {
	prof, err := t.profile()
	if err != nil {
		return cmp.Or(t.Address, DefaultTemporalAddress), cmp.Or(t.Namespace, DefaultNamespace)
	}
	return prof.Address, prof.Namespace
}

// ClientOptions builds SDK client options; logger may be nil.
func (t Temporal) ClientOptions(logger *slog.Logger) (client.Options, error) {
	prof, err := t.profile()
	if err != nil {
		return client.Options{}, err
	}
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return opts, fmt.Errorf("temporal connection settings: %w", err)
	}
	if tl := opts.ConnectionOptions.TLS; tl != nil && tl.MinVersion == 0 {
		tl.MinVersion = tls.VersionTLS12
	}
	opts.DataConverter, opts.MetricsHandler = t.DataConverter, t.MetricsHandler
	if t.Identity != "" {
		opts.Identity = t.Identity
	}
	if logger != nil {
		opts.Logger = sdklog.NewStructuredLogger(logger)
	}
	return opts, nil
}

// Dial connects to Temporal, failing within timeout when it is unreachable.
func (t Temporal) Dial(ctx context.Context, logger *slog.Logger, timeout time.Duration) (client.Client, error) {
	opts, err := t.ClientOptions(logger)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}
