// Package config holds the settings every cardwarden command shares, read from flags with
// environment fallbacks, and builds the Temporal client from them.
package config

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
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

// Temporal is how to reach a Temporal service.
type Temporal struct {
	Address   string
	Namespace string
	APIKey    string
	TLSCert   string
	TLSKey    string
	// DataConverter, when set, encodes every payload (the payload codec); every client and
	// worker of a deployment must use the same one.
	DataConverter converter.DataConverter
	// MetricsHandler, when set, receives the SDK's own client and worker metrics.
	MetricsHandler client.MetricsHandler
}

// BindTemporal registers --address, --namespace and the Temporal Cloud credentials.
func BindTemporal(fs *pflag.FlagSet, t *Temporal) {
	fs.StringVar(&t.Address, "address", Env("TEMPORAL_ADDRESS", DefaultTemporalAddress), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	fs.StringVar(&t.Namespace, "namespace", Env("TEMPORAL_NAMESPACE", DefaultNamespace), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	SecretVar(fs, &t.APIKey, "temporal-api-key", "TEMPORAL_API_KEY", "", "API key for Temporal Cloud; implies TLS")
	fs.StringVar(&t.TLSCert, "temporal-tls-cert", os.Getenv("TEMPORAL_TLS_CERT"), "client certificate file for mTLS (env TEMPORAL_TLS_CERT)")
	fs.StringVar(&t.TLSKey, "temporal-tls-key", os.Getenv("TEMPORAL_TLS_KEY"), "client key file for mTLS (env TEMPORAL_TLS_KEY)")
}

// ClientOptions builds SDK client options; logger may be nil.
func (t Temporal) ClientOptions(logger *slog.Logger) (client.Options, error) {
	opts := client.Options{HostPort: t.Address, Namespace: t.Namespace, DataConverter: t.DataConverter, MetricsHandler: t.MetricsHandler}
	if logger != nil {
		opts.Logger = sdklog.NewStructuredLogger(logger)
	}
	if t.TLSCert != "" || t.TLSKey != "" {
		if t.TLSCert == "" || t.TLSKey == "" {
			return opts, fmt.Errorf("--temporal-tls-cert and --temporal-tls-key must be given together")
		}
		cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return opts, fmt.Errorf("load Temporal client certificate: %w", err)
		}
		opts.ConnectionOptions.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
		if opts.ConnectionOptions.TLS == nil {
			opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
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
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", t.Address, t.Namespace, err)
	}
	return c, nil
}
