package main

import (
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
	Restart string `yaml:"restart"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(b, &f))
	return f
}

// envNamesKnown collects every "(env NAME)" the binary's flags document, plus the variables
// read without a flag.
func envNamesKnown(root *cobra.Command) map[string]bool {
	known := map[string]bool{"CARDWARDEN_VAULT_KEY": true, "CARDWARDEN_ADMIN_TOKEN": true, "CARDWARDEN_CODEC_KEY": true}
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
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "cardwarden-worker", "cardwarden-serve", "issuer-sim", "migrate"} {
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

	for _, name := range []string{"cardwarden-worker", "cardwarden-serve", "issuer-sim", "migrate"} {
		env := f.Services[name].Environment
		// cardwarden reaches Temporal, Postgres and the simulator where they listen.
		require.Equal(t, "temporal:7233", env["TEMPORAL_ADDRESS"], name)
		require.True(t, publishedPorts(f.Services["temporal"])["7233"])
		db, err := url.Parse(env["CARDWARDEN_DATABASE_URL"])
		require.NoError(t, err)
		require.Equal(t, "postgres:5432", db.Host, name)
		pg := f.Services["postgres"].Environment
		require.Equal(t, "/"+pg["POSTGRES_DB"], db.Path, name)
		require.Equal(t, pg["POSTGRES_USER"], db.User.Username(), name)
		simURL, err := url.Parse(env["CARDWARDEN_ISSUER_SIM_URL"])
		require.NoError(t, err)
		require.Equal(t, "issuer-sim:"+simPort, simURL.Host, name)
		require.Equal(t, env["CARDWARDEN_SIM_API_KEY"], f.Services["issuer-sim"].Environment["CARDWARDEN_SIM_API_KEY"])
		require.Len(t, env["CARDWARDEN_VAULT_KEY"], 64, "%s: vault key is 32 bytes of hex", name)
	}
}
