package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/cardwarden/cardwarden/internal/alerts"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart   string                                `yaml:"restart"`
	DependsOn map[string]struct{ Condition string } `yaml:"depends_on"`
	Volumes   []string                              `yaml:"volumes"`
	Deploy    struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(b, &f))
	// Secrets are ${NAME:?message} references to the environment (or .env): fill them the way
	// scripts/compose-secrets.sh does, with fresh random values.
	ref := regexp.MustCompile(`^\$\{([A-Z0-9_]+):\?[^}]+\}$`)
	for name, svc := range f.Services {
		for k, v := range svc.Environment {
			if m := ref.FindStringSubmatch(v); m != nil {
				require.Equal(t, k, m[1], "%s: %s refers to another variable", name, k)
				svc.Environment[k] = composeSecret(t, k)
			}
		}
	}
	return f
}

var composeSecrets = map[string]string{}

// composeSecret is one random value per variable, shaped as scripts/compose-secrets.sh makes it.
func composeSecret(t *testing.T, name string) string {
	if v, ok := composeSecrets[name]; ok {
		return v
	}
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	v := hex.EncodeToString(b)
	if strings.HasSuffix(name, "WEBHOOK_SECRET") {
		v = "whsec_" + base64.StdEncoding.EncodeToString(b)
	}
	composeSecrets[name] = v
	return v
}

// envNamesKnown collects every "(env NAME)" the binary's flags document, plus the variables
// read without a flag.
func envNamesKnown(root *cobra.Command) map[string]bool {
	known := map[string]bool{"CARDWARDEN_VAULT_KEY": true, "CARDWARDEN_ADMIN_TOKEN": true, "CARDWARDEN_CODEC_KEY": true,
		alerts.EnvPublicURL: true}
	re := regexp.MustCompile(`env ([A-Z0-9_]+)`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			for _, m := range re.FindAllStringSubmatch(f.Usage, -1) {
				known[m[1]] = true
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return known
}

func publishedPorts(s composeService) map[string]bool {
	ports := map[string]bool{}
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		ports[parts[len(parts)-1]] = true
	}
	return ports
}

// The compose file cannot be run here (no Docker engine), so check it against the binary: every
// cardwarden service runs a real subcommand with flags that parse, uses only environment
// variables the binary reads, and the addresses services use to reach each other agree.
func TestComposeMatchesBinary(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "cardwarden-worker", "cardwarden-serve", "issuer-sim", "setup"} {
		require.Contains(t, f.Services, name, "compose service %s", name)
	}
	for name, s := range f.Services {
		if s.Restart != "no" {
			require.NotNil(t, s.Healthcheck, "long-running service %s needs a health check", name)
		}
	}

	root := newRootCmd()
	known := envNamesKnown(root)
	parsed := map[string]*cobra.Command{}
	for name, s := range f.Services {
		if s.Image != "cardwarden:latest" {
			continue
		}
		require.NotNil(t, s.Build, "%s builds the cardwarden image from the Dockerfile", name)
		require.NotEmpty(t, s.Command, name)
		sub, rest, err := newRootCmd().Find(s.Command)
		require.NoError(t, err, "%s: command %v", name, s.Command)
		require.NotEqual(t, "cardwarden", sub.Name(), "%s: %q is not a cardwarden subcommand", name, s.Command[0])
		require.NoError(t, sub.ParseFlags(s.Command[1:]), "%s: flags %v", name, s.Command[1:])
		require.Empty(t, sub.Flags().Args(), "%s: stray arguments in %v (rest %v)", name, s.Command, rest)
		parsed[name] = sub
		for k := range s.Environment {
			require.True(t, known[k], "%s: environment variable %s is not read by cardwarden", name, k)
		}
	}

	flag := func(svc, name string) string { return parsed[svc].Flags().Lookup(name).Value.String() }
	portOf := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		require.NoError(t, err, addr)
		return p
	}

	serve, sim, worker := f.Services["cardwarden-serve"], f.Services["issuer-sim"], f.Services["cardwarden-worker"]
	servePort := portOf(flag("cardwarden-serve", "listen"))
	simPort := portOf(flag("issuer-sim", "listen"))
	require.True(t, publishedPorts(serve)[servePort], "serve listens on %s and publishes it", servePort)
	require.True(t, publishedPorts(sim)[simPort], "issuer-sim listens on %s and publishes it", simPort)
	require.Contains(t, strings.Join(serve.Healthcheck.Test, " "), ":"+servePort+"/readyz")
	require.Contains(t, strings.Join(sim.Healthcheck.Test, " "), ":"+simPort+"/")
	require.Contains(t, strings.Join(worker.Healthcheck.Test, " "), ":"+portOf(flag("cardwarden-worker", "health-listen"))+"/healthz")

	// The simulator's webhooks reach serve's webhook endpoint.
	hook, err := url.Parse(flag("issuer-sim", "webhook-url"))
	require.NoError(t, err)
	require.Equal(t, "cardwarden-serve:"+servePort, hook.Host)
	require.Equal(t, "/v1/webhooks/sim", hook.Path)

	// cardwarden reaches Temporal, Postgres and the simulator where they listen, with the same
	// secrets (each service has only the settings deploy/topology gives it).
	require.True(t, publishedPorts(f.Services["temporal"])["7233"])
	for _, name := range []string{"cardwarden-worker", "cardwarden-serve", "issuer-sim", "setup"} {
		env := f.Services[name].Environment
		if v, ok := env["TEMPORAL_ADDRESS"]; ok {
			require.Equal(t, "temporal:7233", v, name)
		}
		if v, ok := env["CARDWARDEN_DATABASE_URL"]; ok {
			db, err := url.Parse(v)
			require.NoError(t, err)
			require.Equal(t, "postgres:5432", db.Host, name)
			pg := f.Services["postgres"].Environment
			require.Equal(t, "/"+pg["POSTGRES_DB"], db.Path, name)
			require.Equal(t, pg["POSTGRES_USER"], db.User.Username(), name)
		}
		if v, ok := env["CARDWARDEN_ISSUER_SIM_URL"]; ok {
			simURL, err := url.Parse(v)
			require.NoError(t, err)
			require.Equal(t, "issuer-sim:"+simPort, simURL.Host, name)
		}
		for _, k := range []string{"CARDWARDEN_SIM_API_KEY", "CARDWARDEN_SIM_WEBHOOK_SECRET"} {
			if v, ok := env[k]; ok {
				require.Equal(t, f.Services["issuer-sim"].Environment[k], v, "%s: %s", name, k)
			}
		}
		if v, ok := env["CARDWARDEN_VAULT_KEY"]; ok {
			require.Len(t, v, 64, "%s: vault key is 32 bytes of hex", name)
		}
	}

	// serve and worker start with these settings: nothing in the file is a known secret.
	for _, svc := range []string{"cardwarden-serve", "cardwarden-worker"} {
		env := f.Services[svc].Environment
		for k, v := range env {
			t.Setenv(k, v)
		}
		flags := issuerFlags{simURL: env["CARDWARDEN_ISSUER_SIM_URL"], simAPIKey: env["CARDWARDEN_SIM_API_KEY"],
			simWebhookSecret: env["CARDWARDEN_SIM_WEBHOOK_SECRET"]}
		require.NoError(t, checkProductionSettings(strings.TrimPrefix(svc, "cardwarden-"), flags, env["CARDWARDEN_ADMIN_TOKEN"]), svc)
	}
	script, err := os.ReadFile("../../scripts/compose-secrets.sh")
	require.NoError(t, err)
	for _, k := range []string{"CARDWARDEN_VAULT_KEY", "CARDWARDEN_SIM_API_KEY", "CARDWARDEN_SIM_WEBHOOK_SECRET", "CARDWARDEN_ADMIN_TOKEN"} {
		require.Contains(t, string(script), k+"=", "scripts/compose-secrets.sh writes %s", k)
	}
}
